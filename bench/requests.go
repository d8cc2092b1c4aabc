package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/infergate/infergate/oip"
)

// Encodings of request bodies (--encoding).
const (
	EncodingJSON   = "json"
	EncodingBinary = "binary"
)

// body is one request, encoded before the step so that encoding stays off
// the timed path.
type body struct {
	data []byte
	// headerLen is the length of the JSON header that binary tensors
	// follow, or -1 for an all-JSON body.
	headerLen int
	// headerLenText is headerLen as the Inference-Header-Content-Length
	// header value; empty for JSON.
	headerLenText []byte
	// rows is the batch dimension of the request.
	rows int
	// outputs are the outputs the answer must hold, with their shapes
	// ([rows, ...] for a batched output).
	outputs []oip.TensorMetadata
}

// requestPool is the set of bodies a step cycles through.
type requestPool struct {
	bodies []body
	binary bool
}

// poolOptions say how to make a requestPool.
type poolOptions struct {
	rows      int
	size      int // distinct bodies
	seed      uint64
	binary    bool
	cacheHits bool // one body, cacheable; otherwise cache_bypass is set
	inputFile string
	priority  int64 // parameters.priority of every body; 0 leaves it out
	// grpc makes the bodies ModelInferRequest messages of md's model,
	// for a gRPC target.
	grpc bool
}

// newPool makes the bodies for model md: from opts.inputFile when set,
// otherwise random data shaped by the metadata.
func newPool(md *oip.ModelMetadata, opts poolOptions) (*requestPool, error) {
	if opts.inputFile != "" {
		return readPool(md, opts)
	}
	return generatePool(md, opts)
}

// generatePool makes opts.size bodies of opts.rows rows of uniform random
// data per input: floats in [-1, 1), integers in [0, 100), booleans,
// 16-letter strings. With opts.cacheHits it makes a single body.
func generatePool(md *oip.ModelMetadata, opts poolOptions) (*requestPool, error) {
	n := max(opts.size, 1)
	if opts.cacheHits {
		n = 1
	}
	rng := rand.New(rand.NewPCG(opts.seed, 0x5851f42d4c957f2d))
	p := &requestPool{binary: opts.binary}
	for range n {
		req := &oip.InferRequest{BinaryDataOutput: opts.binary, CacheBypass: !opts.cacheHits, Priority: opts.priority}
		for _, in := range md.Inputs {
			shape := concreteShape(in.Shape, opts.rows)
			count := oip.ShapeElements(shape)
			if count < 0 || count > oip.MaxElements {
				return nil, fmt.Errorf("input %q: shape %v is too large to generate", in.Name, shape)
			}
			data, err := randomData(rng, in.Datatype, int(count))
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", in.Name, err)
			}
			req.Inputs = append(req.Inputs, oip.Tensor{Name: in.Name, Datatype: in.Datatype, Shape: shape, Data: data})
		}
		b, err := encodeBody(md, req, opts.binary, opts.grpc)
		if err != nil {
			return nil, err
		}
		p.bodies = append(p.bodies, b)
	}
	return p, nil
}

// readPool reads OIP infer request bodies, one JSON document a line, and
// re-encodes each with the pool's encoding and cache setting. With
// opts.cacheHits only the first is used.
func readPool(md *oip.ModelMetadata, opts poolOptions) (*requestPool, error) {
	f, err := os.Open(opts.inputFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the request bodies: %w", err)
	}
	defer f.Close()
	p := &requestPool{binary: opts.binary}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		req := &oip.InferRequest{}
		if err := oip.DecodeRequest(req, text, -1); err != nil {
			return nil, fmt.Errorf("%s line %d: not an OIP infer request: %w", opts.inputFile, line, err)
		}
		req.BinaryDataOutput = opts.binary
		req.CacheBypass = !opts.cacheHits
		if opts.priority > 0 {
			req.Priority = opts.priority
		}
		for i := range req.Outputs {
			req.Outputs[i].HasBinary = false
		}
		b, err := encodeBody(md, req, opts.binary, opts.grpc)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", opts.inputFile, line, err)
		}
		p.bodies = append(p.bodies, b)
		if opts.cacheHits {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", opts.inputFile, err)
	}
	if len(p.bodies) == 0 {
		return nil, fmt.Errorf("%s holds no request bodies", opts.inputFile)
	}
	return p, nil
}

// encodeBody checks req against the model and encodes it: as a
// ModelInferRequest message with grpc, else as an HTTP body.
func encodeBody(md *oip.ModelMetadata, req *oip.InferRequest, binaryInputs, grpc bool) (body, error) {
	if err := oip.CheckInputs(req.Inputs, md.Inputs, 0); err != nil {
		return body{}, fmt.Errorf("the request does not fit model %q: %w", md.Name, err)
	}
	if err := oip.CheckOutputs(req.Outputs, md.Outputs); err != nil {
		return body{}, fmt.Errorf("the request does not fit model %q: %w", md.Name, err)
	}
	rows := 1
	if len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		rows = int(req.Inputs[0].Shape[0])
	}
	b := body{rows: rows, headerLen: -1, outputs: expectedOutputs(md, req.Outputs)}
	if grpc {
		b.data = oip.AppendModelInferRequest(nil, md.Name, "", req)
		return b, nil
	}
	b.data, b.headerLen = oip.AppendRequest(nil, req, binaryInputs)
	if binaryInputs {
		b.headerLenText = fmt.Appendf(nil, "%d", b.headerLen)
	} else {
		b.headerLen = -1
	}
	return b, nil
}

// expectedOutputs returns the outputs an answer must hold: those asked for,
// or all the model's.
func expectedOutputs(md *oip.ModelMetadata, asked []oip.RequestedOutput) []oip.TensorMetadata {
	if len(asked) == 0 {
		return md.Outputs
	}
	var out []oip.TensorMetadata
	for _, a := range asked {
		for _, m := range md.Outputs {
			if m.Name == a.Name {
				out = append(out, m)
			}
		}
	}
	return out
}

// checkOutputs checks n decoded outputs, got(0) to got(n-1), against
// want: the same names, each with its datatype and a shape of the right
// rank whose fixed dimensions match and whose variable first dimension is
// rows, and data of that size.
func checkOutputs(n int, got func(i int) *oip.Tensor, rows int, want []oip.TensorMetadata) error {
	if n != len(want) {
		return fmt.Errorf("%d outputs; want %d (%s)", n, len(want), outputNames(want))
	}
	for i := range want {
		w := &want[i]
		t := got(i)
		if t.Name != w.Name {
			t = nil
			for k := range n {
				if got(k).Name == w.Name {
					t = got(k)
				}
			}
		}
		if t == nil {
			return fmt.Errorf("no output %q", w.Name)
		}
		if t.Datatype != w.Datatype {
			return fmt.Errorf("output %q is %s; want %s", w.Name, t.Datatype, w.Datatype)
		}
		if len(t.Shape) != len(w.Shape) {
			return fmt.Errorf("output %q has shape %v; want rank %d", w.Name, t.Shape, len(w.Shape))
		}
		for k, d := range w.Shape {
			switch {
			case k == 0 && d < 0 && t.Shape[0] != int64(rows):
				return fmt.Errorf("output %q has shape %v; want %d rows", w.Name, t.Shape, rows)
			case d >= 0 && t.Shape[k] != d:
				return fmt.Errorf("output %q has shape %v; want %v", w.Name, t.Shape, w.Shape)
			}
		}
		if n := oip.ShapeElements(t.Shape); t.Datatype.Size() > 0 && int64(len(t.Data)) != n*int64(t.Datatype.Size()) {
			return fmt.Errorf("output %q holds %d bytes for shape %v", w.Name, len(t.Data), t.Shape)
		}
	}
	return nil
}

func outputNames(ms []oip.TensorMetadata) string {
	names := make([]string, len(ms))
	for i := range ms {
		names[i] = ms[i].Name
	}
	return strings.Join(names, ", ")
}

// randomData returns n uniform random elements of dt in the layout of
// oip.Tensor.Data.
func randomData(rng *rand.Rand, dt oip.DataType, n int) ([]byte, error) {
	if dt == oip.BYTES {
		const letters = "abcdefghijklmnopqrstuvwxyz"
		var out []byte
		var s [16]byte
		for range n {
			for i := range s {
				s[i] = letters[rng.IntN(len(letters))]
			}
			out = oip.AppendBytesElement(out, s[:])
		}
		return out, nil
	}
	size := dt.Size()
	if size == 0 {
		return nil, fmt.Errorf("cannot generate %s data", dt)
	}
	out := make([]byte, n*size)
	for i := range n {
		e := out[i*size : (i+1)*size]
		switch dt {
		case oip.BOOL:
			e[0] = byte(rng.IntN(2))
		case oip.FP16:
			binary.LittleEndian.PutUint16(e, halfBits(float32(rng.Float64()*2-1)))
		case oip.FP32:
			binary.LittleEndian.PutUint32(e, math.Float32bits(float32(rng.Float64()*2-1)))
		case oip.FP64:
			binary.LittleEndian.PutUint64(e, math.Float64bits(rng.Float64()*2-1))
		default: // integers, in [0, 100), little-endian of any width
			v := uint64(rng.IntN(100))
			for k := range e {
				e[k] = byte(v >> (8 * k))
			}
		}
	}
	return out, nil
}

// halfBits converts f, a finite float32 of magnitude below 65504, to IEEE
// 754 half precision, rounding to nearest even.
func halfBits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - exp)
		h := mant >> shift
		rem, half := mant&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// concreteShape turns a model's shape into one to generate data for: the
// leading variable dimension is rows, other variable ones 1.
func concreteShape(model []int64, rows int) []int64 {
	shape := make([]int64, len(model))
	for k, d := range model {
		switch {
		case d >= 0:
			shape[k] = d
		case k == 0:
			shape[k] = int64(rows)
		default:
			shape[k] = 1
		}
	}
	return shape
}
