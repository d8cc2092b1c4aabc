package engine

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// A valid model that needs at least two rows (the top 2 of a batch of
// candidate scores) loads: refused at batch 1 the same way on zeros and
// on ones ("k ... greater than ... axis dim value [1]"), it takes 2 rows,
// so the batch, not the model, was at fault.
func TestWarmUpLoadsModelThatNeedsTwoRows(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "top2",
		Inputs:       []onnx.ValueInfo{{Name: "scores", Type: onnx.Float, Dims: []int64{-1}}},
		Outputs:      []onnx.ValueInfo{{Name: "top", Type: onnx.Float, Dims: []int64{2}}, {Name: "idx", Type: onnx.Int64, Dims: []int64{2}}},
		Nodes:        []onnx.Node{{OpType: "TopK", Name: "topk", Inputs: []string{"scores", "k"}, Outputs: []string{"top", "idx"}}},
		Initializers: []onnx.Tensor{{Name: "k", Type: onnx.Int64, Dims: []int64{1}, Int64s: []int64{2}}},
	}}
	var m *Model
	var err error
	captureStderr(t, func() { m, err = Load(mo.Marshal(), Options{}) })
	if err != nil {
		t.Fatalf("Load of a valid top-2 model: %v\nwant it loaded: 3 scores are a fine request", err)
	}
	defer m.Close()
	out, err := m.Run(context.Background(), []oip.Tensor{{Name: "scores", Datatype: oip.FP32, Shape: []int64{3}, Data: f32Bytes([]float32{1, 5, 3})}}, nil, nil)
	if err != nil || !slices.Equal(bytesF32(out[0].Data), []float32{5, 3}) {
		t.Fatalf("top 2 of [1 5 3]: got %v, %v; want [5 3]", out, err)
	}
}

// An FP16 output declared [batch,4] that does not follow the batch (the
// first row of x) must be refused like any FP16 output of another shape
// (onnxruntime_go cannot copy out an FP16 output that ONNX Runtime
// allocates). Load's batch-2 probe sees ONNX Runtime refuse the buffer;
// demote cannot let ONNX Runtime allocate an FP16 output, so Load refuses
// the model, rather than every request of more than one row failing with
// ErrRunFailed (HTTP 500).
func TestFP16OutputNotFollowingBatch(t *testing.T) {
	initORT(t)
	i64 := func(name string, v ...int64) onnx.Tensor {
		return onnx.Tensor{Name: name, Type: onnx.Int64, Dims: []int64{int64(len(v))}, Int64s: v}
	}
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "first_row16",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float16, Dims: []int64{-1, 4}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float16, Dims: []int64{-1, 4}}},
		Nodes:        []onnx.Node{{OpType: "Slice", Name: "s", Inputs: []string{"x", "st", "en", "ax"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{i64("st", 0), i64("en", 1), i64("ax", 0)},
	}}
	var m *Model
	var err error
	captureStderr(t, func() { m, err = Load(mo.Marshal(), Options{}) })
	if err != nil {
		if !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrInvalidModel) {
			t.Fatalf("Load: got %v; want ErrUnsupportedType (or ErrInvalidModel) naming output \"y\"", err)
		}
		return
	}
	defer m.Close()
	var out []oip.Tensor
	captureStderr(t, func() {
		out, err = m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP16, Shape: []int64{2, 4}, Data: make([]byte, 16)}}, nil, nil)
	})
	if err != nil || oip.FormatShape(out[0].Shape) != "[1,4]" {
		t.Fatalf("Load accepted an FP16 output that does not follow the batch, and a Run of 2 rows got %v, %v (ErrRunFailed %v); want Load to refuse the model or the Run to answer [1,4]",
			out, err, errors.Is(err, ErrRunFailed))
	}
}
