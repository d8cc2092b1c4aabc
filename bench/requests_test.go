package bench

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
)

var ctrMetadata = &oip.ModelMetadata{
	Name:     "ctr",
	Platform: "onnxruntime_onnx",
	Inputs:   []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, 64}}},
	Outputs:  []oip.TensorMetadata{{Name: "score", Datatype: oip.FP32, Shape: []int64{-1, 1}}},
}

func TestGeneratePool(t *testing.T) {
	for _, binaryEnc := range []bool{false, true} {
		p, err := generatePool(ctrMetadata, poolOptions{rows: 3, size: 8, seed: 1, binary: binaryEnc})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.bodies) != 8 {
			t.Fatalf("%d bodies; want 8", len(p.bodies))
		}
		seen := map[string]bool{}
		for _, b := range p.bodies {
			var req oip.InferRequest
			if err := oip.DecodeRequest(&req, b.data, b.headerLen); err != nil {
				t.Fatalf("binary=%v: body does not decode: %s", binaryEnc, err)
			}
			in := req.Inputs[0]
			if in.Name != "features" || in.Datatype != oip.FP32 || len(in.Shape) != 2 || in.Shape[0] != 3 || in.Shape[1] != 64 {
				t.Fatalf("input %+v", in)
			}
			for i := 0; i < len(in.Data); i += 4 {
				if v := math.Float32frombits(binary.LittleEndian.Uint32(in.Data[i:])); !(v >= -1 && v < 1) {
					t.Fatalf("element %g outside [-1, 1)", v)
				}
			}
			if !req.CacheBypass || req.BinaryDataOutput != binaryEnc || b.rows != 3 {
				t.Fatalf("cache_bypass %v binary_data_output %v rows %d", req.CacheBypass, req.BinaryDataOutput, b.rows)
			}
			if binaryEnc != (b.headerLen >= 0) {
				t.Fatalf("binary=%v but headerLen %d", binaryEnc, b.headerLen)
			}
			seen[string(in.Data)] = true
		}
		if len(seen) != 8 {
			t.Fatalf("%d distinct bodies; want 8", len(seen))
		}
	}
	p, err := generatePool(ctrMetadata, poolOptions{rows: 1, size: 2, seed: 1, priority: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range p.bodies {
		var req oip.InferRequest
		if err := oip.DecodeRequest(&req, b.data, b.headerLen); err != nil || req.Priority != 2 {
			t.Fatalf("--priority 2: priority %d, %v; want 2", req.Priority, err)
		}
	}
	p, err = generatePool(ctrMetadata, poolOptions{rows: 1, size: 64, seed: 1, cacheHits: true})
	if err != nil {
		t.Fatal(err)
	}
	var req oip.InferRequest
	if len(p.bodies) != 1 || oip.DecodeRequest(&req, p.bodies[0].data, -1) != nil || req.CacheBypass {
		t.Fatalf("cache hits: %d bodies, cache_bypass %v; want 1 cacheable body", len(p.bodies), req.CacheBypass)
	}
}

func TestRandomDataEveryType(t *testing.T) {
	md := &oip.ModelMetadata{Name: "m"}
	for dt := oip.BOOL; dt <= oip.BYTES; dt++ {
		md.Inputs = append(md.Inputs, oip.TensorMetadata{Name: "in_" + dt.String(), Datatype: dt, Shape: []int64{-1, 3, -1}})
	}
	p, err := generatePool(md, poolOptions{rows: 2, size: 2, seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var req oip.InferRequest
	if err := oip.DecodeRequest(&req, p.bodies[0].data, -1); err != nil {
		t.Fatal(err)
	}
	if err := oip.CheckInputs(req.Inputs, md.Inputs, 0); err != nil {
		t.Fatal(err)
	}
	for _, in := range req.Inputs {
		if len(in.Shape) != 3 || in.Shape[0] != 2 || in.Shape[1] != 3 || in.Shape[2] != 1 {
			t.Fatalf("%s shape %v; want [2 3 1]", in.Name, in.Shape)
		}
	}
}

func TestHalfBits(t *testing.T) {
	f := func(x float32, want uint16) {
		t.Helper()
		if got := halfBits(x); got != want {
			t.Fatalf("halfBits(%g) = %#04x; want %#04x", x, got, want)
		}
	}
	f(0, 0)
	f(1, 0x3c00)
	f(-1, 0xbc00)
	f(0.5, 0x3800)
	f(-0.999, 0xbbfe)
	f(65504, 0x7bff)
	f(1e6, 0x7c00)
	f(5.960464477539063e-08, 0x0001) // smallest subnormal
	f(1e-9, 0)
	f(0.333333333, 0x3555)
}

func TestCheckOutputs(t *testing.T) {
	want := []oip.TensorMetadata{{Name: "score", Datatype: oip.FP32, Shape: []int64{-1, 1}}, {Name: "emb", Datatype: oip.FP32, Shape: []int64{-1, -1}}}
	f := func(got []oip.Tensor, rows int, wantErr string) {
		t.Helper()
		err := checkOutputs(len(got), func(i int) *oip.Tensor { return &got[i] }, rows, want)
		if (wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("checkOutputs: %v; want %q", err, wantErr)
		}
	}
	score := func(shape ...int64) oip.Tensor {
		return oip.Tensor{Name: "score", Datatype: oip.FP32, Shape: shape, Data: make([]byte, 4*oip.ShapeElements(shape))}
	}
	emb := oip.Tensor{Name: "emb", Datatype: oip.FP32, Shape: []int64{2, 5}, Data: make([]byte, 40)}
	f([]oip.Tensor{score(2, 1), emb}, 2, "")
	f([]oip.Tensor{emb, score(2, 1)}, 2, "")
	f([]oip.Tensor{score(2, 1)}, 2, "1 outputs; want 2")
	f([]oip.Tensor{score(3, 1), emb}, 2, "want 2 rows")
	f([]oip.Tensor{score(2, 2), emb}, 2, "want [-1 1]")
	f([]oip.Tensor{score(2), emb}, 2, "want rank 2")
	f([]oip.Tensor{{Name: "score", Datatype: oip.FP64, Shape: []int64{2, 1}, Data: make([]byte, 16)}, emb}, 2, "is FP64")
	f([]oip.Tensor{{Name: "other", Datatype: oip.FP32, Shape: []int64{2, 1}, Data: make([]byte, 8)}, emb}, 2, `no output "score"`)
	f([]oip.Tensor{{Name: "score", Datatype: oip.FP32, Shape: []int64{2, 1}, Data: make([]byte, 4)}, emb}, 2, "holds 4 bytes")
}

func TestReadPool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	lines := `{"inputs":[{"name":"features","datatype":"FP32","shape":[2,64],"data":[` + strings.TrimSuffix(strings.Repeat("0.5,", 128), ",") + `]}]}

{"id":"x","inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":[` + strings.TrimSuffix(strings.Repeat("1,", 64), ",") + `]}],"outputs":[{"name":"score"}]}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := readPool(ctrMetadata, poolOptions{inputFile: path, binary: true, priority: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.bodies) != 2 || p.bodies[0].rows != 2 || p.bodies[1].rows != 1 || p.bodies[0].headerLen < 0 {
		t.Fatalf("bodies %d rows %d,%d", len(p.bodies), p.bodies[0].rows, p.bodies[1].rows)
	}
	var req oip.InferRequest
	if err := oip.DecodeRequest(&req, p.bodies[1].data, p.bodies[1].headerLen); err != nil || !req.CacheBypass || !req.BinaryDataOutput || req.ID != "x" || req.Priority != 1 {
		t.Fatalf("re-encoded body: %v %+v", err, req)
	}
	if err := os.WriteFile(path, []byte(`{"inputs":[{"name":"nope","datatype":"FP32","shape":[1],"data":[1]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPool(ctrMetadata, poolOptions{inputFile: path}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a request that does not fit: %v", err)
	}
}
