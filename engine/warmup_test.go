package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// bigInputModel: x FP32 [-1, 1024] -> MatMul with a [1024, 1]
// initializer -> y FP32 [-1, 1]. Its outputs are 4 bytes a row; its
// inputs 4 KiB a row.
func bigInputModel() []byte {
	w := make([]float32, 1024)
	for i := range w {
		w[i] = 1
	}
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "sum",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 1024}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{-1, 1}}},
		Nodes:        []onnx.Node{{OpType: "MatMul", Name: "mm", Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "w", Type: onnx.Float, Dims: []int64{1024, 1}, Floats: w}},
	}}
	return mo.Marshal()
}

// MaxOutputBytes bounds the outputs of a run (Options, config.json
// max_output_bytes). A model whose outputs are far under the limit must
// load, however large its inputs: they come from the client, bounded by
// --max-body, not by max_output_bytes.
func TestLoadSmallOutputLimitLargeInput(t *testing.T) {
	initORT(t)
	m, err := Load(bigInputModel(), Options{MaxOutputBytes: 1024})
	if err != nil {
		t.Fatalf("Load of a model with 4-byte outputs under max_output_bytes 1024: %v; want it loaded (its input is 4 KiB a row)", err)
	}
	defer m.Close()
	x := make([]float32, 1024)
	for i := range x {
		x[i] = 1
	}
	out, err := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 1024}, Data: f32Bytes(x)}}, nil, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := bytesF32(out[0].Data); len(got) != 1 || got[0] != 1024 {
		t.Fatalf("y: got %v; want [1024]", got)
	}
}

// A model that fails in a kernel for every input (a Reshape of [N,4]
// into [3], which no N allows) is broken, not picky about zeros: Load must
// refuse it, so that a hot swap keeps the version that serves and an
// upload's trial load refuses it.
func TestLoadRefusesModelThatFailsEveryInput(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "badreshape",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 4}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{3}}},
		Nodes:        []onnx.Node{{OpType: "Reshape", Name: "r", Inputs: []string{"x", "s"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "s", Type: onnx.Int64, Dims: []int64{1}, Int64s: []int64{3}}},
	}}
	m, err := Load(mo.Marshal(), Options{})
	if err == nil {
		defer m.Close()
		_, rerr := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: f32Bytes([]float32{1, 2, 3, 4})}}, nil, nil)
		t.Fatalf("Load of a model that fails for every input succeeded (a Run with ones: %v); want ErrInvalidModel", rerr)
	}
	if !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("Load: got %v; want ErrInvalidModel", err)
	}
}

// Options.Warmup's samples run on every instance before Load returns
// (config's model_warmup): a sample the model refuses fails the load,
// naming the sample; ones it takes leave the model serving.
func TestLoadRunsWarmupSamples(t *testing.T) {
	initORT(t)
	ones := func(rows, cols int) oip.Tensor {
		x := make([]float32, rows*cols)
		for i := range x {
			x[i] = 1
		}
		return oip.Tensor{Name: "x", Datatype: oip.FP32, Shape: []int64{int64(rows), int64(cols)}, Data: f32Bytes(x)}
	}
	samples := func(ws ...WarmupRun) func(in, out []oip.TensorMetadata) ([]WarmupRun, error) {
		return func(in, out []oip.TensorMetadata) ([]WarmupRun, error) {
			if len(in) != 1 || in[0].Name != "x" || len(out) != 1 {
				t.Errorf("Warmup called with inputs %v, outputs %v; want the model's x and y", in, out)
			}
			return ws, nil
		}
	}
	m, err := Load(bigInputModel(), Options{Instances: 2, Warmup: samples(
		WarmupRun{Name: "eight", Inputs: []oip.Tensor{ones(8, 1024)}, Count: 3},
		WarmupRun{Name: "one", Inputs: []oip.Tensor{ones(1, 1024)}},
	)})
	if err != nil {
		t.Fatalf("Load with warm-up samples the model takes: %v", err)
	}
	out, err := m.Run(context.Background(), []oip.Tensor{ones(2, 1024)}, nil, nil)
	m.Close()
	if err != nil || len(out) != 1 || !slices.Equal(bytesF32(out[0].Data), []float32{1024, 1024}) {
		t.Fatalf("Run after the warm-up: %v, %v; want [1024 1024]", out, err)
	}

	f := func(w WarmupRun, want string) {
		t.Helper()
		m, err := Load(bigInputModel(), Options{Instances: 2, Warmup: samples(WarmupRun{Name: "fine", Inputs: []oip.Tensor{ones(1, 1024)}}, w)})
		if err == nil {
			m.Close()
		}
		if !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load with warm-up sample %q: got %v; want ErrInvalidModel containing %q", w.Name, err, want)
		}
	}
	f(WarmupRun{Name: "narrow", Inputs: []oip.Tensor{ones(4, 1000)}}, `warm-up sample "narrow" (model_warmup) failed on instance 0: `)
	wrongName := ones(1, 1024)
	wrongName.Name = "features"
	f(WarmupRun{Name: "named", Inputs: []oip.Tensor{wrongName}}, `warm-up sample "named" (model_warmup) failed on instance 0: `)
	f(WarmupRun{Name: "empty"}, `warm-up sample "empty" (model_warmup) failed`)

	// The samples' own error fails the load as it is.
	bad := errors.New("no such warm-up file")
	if _, err := Load(bigInputModel(), Options{Warmup: func(in, out []oip.TensorMetadata) ([]WarmupRun, error) { return nil, bad }}); !errors.Is(err, bad) {
		t.Fatalf("Load whose Warmup fails: got %v; want its error", err)
	}
}
