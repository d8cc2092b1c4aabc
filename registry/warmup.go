package registry

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/infergate/infergate/oip"
)

// WarmupSample is one entry of a configuration's model_warmup, in
// Triton's spelling: an inference that every instance of a version runs
// Count times once it has loaded, before the version serves, so that its
// first requests find the shapes they bring warm. Load runs its own
// warm-up at batch 1 whatever the configuration says; these samples add
// the shapes and values a person picks.
type WarmupSample struct {
	// Name names the sample in errors and logs; required, and unique
	// within the list.
	Name string `json:"name"`
	// BatchSize is the rows of the sample for a model that batches: each
	// input's shape is BatchSize followed by its Dims. 0 means 1. For a
	// model configured with max_batch_size 0 the dims are whole shapes,
	// and BatchSize must be 0 or 1.
	BatchSize int64 `json:"batch_size,omitempty"`
	// Inputs gives each input of the model, by name.
	Inputs map[string]WarmupInput `json:"inputs"`
	// Count is how many times each instance runs the sample; 0 means 1.
	// The counts of a configuration's samples add up to at most 1,000.
	Count int64 `json:"count,omitempty"`
}

// WarmupInput is one input of a WarmupSample: its type and shape, and
// exactly one source of its values.
type WarmupInput struct {
	DataType string  `json:"data_type"`
	Dims     []int64 `json:"dims"`
	// ZeroData fills the input with zeros.
	ZeroData bool `json:"zero_data,omitempty"`
	// RandomData fills it with random values: uniform in [0, 1) for the
	// floating-point types (random bits would make NaNs and infinities),
	// random bytes for the others; the same values
	// at every load.
	RandomData bool `json:"random_data,omitempty"`
	// InputDataFile names a file under the model's warmup directory
	// (<model>/warmup/<file>, as in Triton) whose bytes are the input's,
	// little-endian in row-major order, exactly as many as the shape
	// holds. A cluster model has no such directory.
	InputDataFile string `json:"input_data_file,omitempty"`
}

// Bounds on model_warmup: enough for every shape a model serves, and
// a warm-up that cannot hold a load for long or take much memory.
const (
	maxWarmupSamples = 64
	maxWarmupCount   = 1000
	// maxWarmupBytes bounds the inputs of one sample together.
	maxWarmupBytes = 64 << 20
)

// checkWarmup reports the first entry of c.ModelWarmup that no model
// could run, naming it as bad does. c is the configuration as written:
// a max_batch_size the node fills in is checked by checkMerged.
func (c *ModelConfig) checkWarmup(bad func(path, format string, args ...any) error) error {
	if len(c.ModelWarmup) > maxWarmupSamples {
		return bad("model_warmup", "model_warmup has %d samples; give at most %d", len(c.ModelWarmup), maxWarmupSamples)
	}
	seen := make(map[string]bool, len(c.ModelWarmup))
	runs := int64(0)
	for i, s := range c.ModelWarmup {
		if runs += max(s.Count, 1); s.Count <= maxWarmupCount && runs > maxWarmupCount {
			return bad(fmt.Sprintf("model_warmup[%d].count", i), "model_warmup runs %d inferences on each instance by sample %q; give at most %d together (counts of 0 count 1)", runs, s.Name, maxWarmupCount)
		}
		path := fmt.Sprintf("model_warmup[%d]", i)
		switch {
		case s.Name == "":
			return bad(path, "%s has no name; name each warm-up sample", path)
		case seen[s.Name]:
			return bad(path+".name", "model_warmup names %q twice; give each sample a name of its own", s.Name)
		case s.Count < 0 || s.Count > maxWarmupCount:
			return bad(path+".count", "model_warmup %q: count must be between 1 and %d (0 means 1), got %d", s.Name, maxWarmupCount, s.Count)
		case c.noBatchDim && s.BatchSize > 1:
			return bad(path+".batch_size", "model_warmup %q: batch_size is %d, but max_batch_size 0 says the model has no batch dimension: give batch_size 1 and the whole shapes as dims", s.Name, s.BatchSize)
		case s.BatchSize < 0 || s.BatchSize > 1<<16:
			return bad(path+".batch_size", "model_warmup %q: batch_size must be between 1 and max_batch_size (0 means 1), got %d", s.Name, s.BatchSize)
		case c.MaxBatchSize > 0 && s.BatchSize > c.MaxBatchSize:
			return bad(path+".batch_size", "model_warmup %q: batch_size %d is above max_batch_size %d", s.Name, s.BatchSize, c.MaxBatchSize)
		case len(s.Inputs) == 0:
			return bad(path+".inputs", "model_warmup %q gives no inputs; give every input of the model", s.Name)
		}
		seen[s.Name] = true
		var total int64
		for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
			in := s.Inputs[name]
			ipath := path + ".inputs." + name
			dt, ok := tritonDataType(in.DataType)
			switch {
			case !ok:
				return bad(ipath+".data_type", "model_warmup %q input %q: data_type %q is not a Triton type such as TYPE_FP32", s.Name, name, in.DataType)
			case dt == oip.BYTES:
				return bad(ipath+".data_type", "model_warmup %q input %q: TYPE_STRING inputs cannot be warmed: infergate serves no string tensors", s.Name, name)
			case len(in.Dims) > oip.MaxRank:
				return bad(ipath+".dims", "model_warmup %q input %q has %d dims; at most %d", s.Name, name, len(in.Dims), oip.MaxRank)
			}
			n := max(s.BatchSize, 1)
			if c.noBatchDim {
				n = 1
			}
			for _, d := range in.Dims {
				if d < 1 {
					return bad(ipath+".dims", "model_warmup %q input %q: dims %s; a warm-up's shape is fixed: give each dimension's size (no -1)", s.Name, name, oip.FormatShape(in.Dims))
				}
				if n > maxWarmupBytes/d {
					n = maxWarmupBytes + 1
					break
				}
				n *= d
			}
			if total += n * int64(dt.Size()); n > maxWarmupBytes || total > maxWarmupBytes {
				return bad(ipath, "model_warmup %q: its inputs take more than %d bytes (64 MiB); warm up on smaller shapes", s.Name, maxWarmupBytes)
			}
			sources := 0
			for _, on := range []bool{in.ZeroData, in.RandomData, in.InputDataFile != ""} {
				if on {
					sources++
				}
			}
			if sources != 1 {
				return bad(ipath, "model_warmup %q input %q: give exactly one of zero_data, random_data and input_data_file", s.Name, name)
			}
			if f := in.InputDataFile; f != "" && !filepath.IsLocal(f) {
				return bad(ipath+".input_data_file", "model_warmup %q input %q: input_data_file %q must name a file under the model's warmup directory", s.Name, name, f)
			}
		}
	}
	return nil
}

// warmupFiles reports whether c reads any warm-up input from a file.
func (c *ModelConfig) warmupFiles() bool {
	for _, s := range c.ModelWarmup {
		for _, in := range s.Inputs {
			if in.InputDataFile != "" {
				return true
			}
		}
	}
	return false
}

// errWarmupFiles is CheckClusterConfig's error for a configuration that
// reads warm-up inputs from files.
var errWarmupFiles = fmt.Errorf("%w: model_warmup reads input_data_file from the model's warmup directory, which a cluster model does not have (the cluster carries only model.onnx); use zero_data or random_data", ErrBadConfig)

// CheckClusterConfig reports what a configuration asks that a cluster
// model cannot give: files beside the model's versions.
func (c *ModelConfig) CheckClusterConfig() error {
	if c.warmupFiles() {
		return errWarmupFiles
	}
	return nil
}

// WarmupRun is a warm-up sample made ready to run: the inputs of one
// inference, whole shapes, and how many times each instance runs it.
type WarmupRun struct {
	Name   string
	Inputs []oip.Tensor
	Count  int
}

// Warmups makes the inputs of c.ModelWarmup for a version whose tensors
// are inputs and outputs, reading input_data_file from the model's warmup
// directory: a LoadFunc calls it once the model's tensors are known, and
// runs them on every instance before the version serves. For a version
// that batches (Batched), a sample's shapes are its batch_size followed by
// its dims; for one that does not, as for its input dims, the dims are the
// whole shapes. Nil when there are none.
func (c *ModelConfig) Warmups(inputs, outputs []oip.TensorMetadata) ([]WarmupRun, error) {
	batched := c.Batched(inputs, outputs)
	if err := c.checkWarmupModel(inputs, batched); err != nil {
		return nil, err
	}
	var runs []WarmupRun
	for _, s := range c.ModelWarmup {
		run := WarmupRun{Name: s.Name, Count: int(max(s.Count, 1))}
		for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
			in := s.Inputs[name]
			dt, _ := tritonDataType(in.DataType)
			shape := slices.Clone(in.Dims)
			if batched {
				shape = append([]int64{max(s.BatchSize, 1)}, in.Dims...)
			}
			size := oip.ShapeElements(shape) * int64(dt.Size())
			if size < 0 || size > maxWarmupBytes {
				return nil, fmt.Errorf("%w: model_warmup %q input %q: shape %s of %s takes more than %d bytes", ErrBadConfig, s.Name, name, oip.FormatShape(shape), dt, maxWarmupBytes)
			}
			var data []byte
			switch {
			case in.InputDataFile != "":
				var err error
				if data, err = c.warmupFile(in.InputDataFile, size); err != nil {
					return nil, fmt.Errorf("%w: model_warmup %q input %q: %w (shape %s of %s takes %d bytes)",
						ErrBadConfig, s.Name, name, err, oip.FormatShape(shape), dt, size)
				}
			case in.RandomData:
				data = randomData(dt, size, s.Name+"/"+name)
			default:
				data = make([]byte, size)
			}
			run.Inputs = append(run.Inputs, oip.Tensor{Name: name, Datatype: dt, Shape: shape, Data: data})
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// warmupFile reads file from the warmup directory, which must hold
// exactly size bytes.
func (c *ModelConfig) warmupFile(file string, size int64) ([]byte, error) {
	if c.warmupDir == "" {
		return nil, fmt.Errorf("input_data_file %q: this model has no warmup directory (a cluster model carries only model.onnx)", file)
	}
	path := filepath.Join(c.warmupDir, file)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != size {
		return nil, fmt.Errorf("%s holds %d bytes", path, st.Size())
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// randomData returns size bytes of random values of dt, the same for the
// same seed: floats uniform in [0, 1), random bytes for the other types
// (a BOOL's 0 or 1).
func randomData(dt oip.DataType, size int64, seed string) []byte {
	var h uint64 = 14695981039346656037 // FNV-1a of the seed
	for i := range len(seed) {
		h = (h ^ uint64(seed[i])) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(h, h>>1|1))
	data := make([]byte, size)
	switch dt {
	case oip.FP32:
		for i := 0; i < len(data); i += 4 {
			binary.LittleEndian.PutUint32(data[i:], math.Float32bits(rng.Float32()))
		}
	case oip.FP64:
		for i := 0; i < len(data); i += 8 {
			binary.LittleEndian.PutUint64(data[i:], math.Float64bits(rng.Float64()))
		}
	case oip.FP16:
		for i := 0; i < len(data); i += 2 {
			// 0x3c00 is 1.0; below it, sign 0 and exponent 0 to 14 are
			// [0, 1), without NaNs or infinities.
			binary.LittleEndian.PutUint16(data[i:], uint16(rng.IntN(0x3c00)))
		}
	case oip.BOOL:
		for i := range data {
			data[i] = byte(rng.IntN(2))
		}
	default:
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
	}
	return data
}
