package engine

import (
	"context"
	"errors"
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
