package engine

import (
	"context"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// A model that does not batch (input b is fixed) and whose input a has a
// leading -1 that must match b's 4 rows (a Concat along axis 1) is
// valid: a request of 4 rows of a works. The warm-up picks 1 for a's
// leading dimension, which the model refuses on zeros and ones alike;
// that size was picked by the warm-up, not fixed by the model, so the
// model loads tolerant (a pickedDims that skipped the leading -1 of
// [-1, fixed...] inputs refused it).
func TestLeadingDimOfNonBatchModelIsPicked(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name: "concat_rows",
		Inputs: []onnx.ValueInfo{
			{Name: "a", Type: onnx.Float, Dims: []int64{-1, 3}},
			{Name: "b", Type: onnx.Float, Dims: []int64{4, 3}},
		},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{4, 6}}},
		Nodes: []onnx.Node{{OpType: "Concat", Name: "c", Inputs: []string{"a", "b"}, Outputs: []string{"y"},
			Attrs: []onnx.Attr{onnx.AttrInt("axis", 1)}}},
	}}
	var m *Model
	var err error
	captureStderr(t, func() { m, err = Load(mo.Marshal(), Options{}) })
	if err != nil {
		t.Fatalf("Load of a valid model whose a must have 4 rows: %v\nwant it loaded (tolerant): a request of 4 rows works", err)
	}
	defer m.Close()
	out, err := m.Run(context.Background(), []oip.Tensor{
		{Name: "a", Datatype: oip.FP32, Shape: []int64{4, 3}, Data: make([]byte, 48)},
		{Name: "b", Datatype: oip.FP32, Shape: []int64{4, 3}, Data: make([]byte, 48)},
	}, nil, nil)
	if err != nil || oip.FormatShape(out[0].Shape) != "[4,6]" {
		t.Fatalf("Run of 4 rows: %v, %v; want [4,6]", out, err)
	}
}

// A model of batch 1 only (z reshapes x into [1,4], declared [-1,4])
// whose FP16 output y is x itself (it follows the batch) loads and serves
// batch-1 requests: the FP16 probe's second batch-2 run fails in the
// Reshape, as the first did, which does not blame y.
func TestFP16ProbeBlamesOnlyItsOutput(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:   "batch1_only",
		Inputs: []onnx.ValueInfo{{Name: "x", Type: onnx.Float16, Dims: []int64{-1, 4}}},
		Outputs: []onnx.ValueInfo{
			{Name: "y", Type: onnx.Float16, Dims: []int64{-1, 4}},
			{Name: "z", Type: onnx.Float, Dims: []int64{-1, 4}},
		},
		Nodes: []onnx.Node{
			{OpType: "Identity", Name: "id", Inputs: []string{"x"}, Outputs: []string{"y"}},
			{OpType: "Cast", Name: "cast", Inputs: []string{"x"}, Outputs: []string{"xf"}, Attrs: []onnx.Attr{onnx.AttrInt("to", int64(onnx.Float))}},
			{OpType: "Reshape", Name: "r", Inputs: []string{"xf", "s"}, Outputs: []string{"z"}},
		},
		Initializers: []onnx.Tensor{{Name: "s", Type: onnx.Int64, Dims: []int64{2}, Int64s: []int64{1, 4}}},
	}}
	var m *Model
	var err error
	captureStderr(t, func() { m, err = Load(mo.Marshal(), Options{}) })
	if err != nil {
		t.Fatalf("Load: %v\nwant it loaded: y follows the batch, and a request of 1 row works", err)
	}
	defer m.Close()
	out, err := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP16, Shape: []int64{1, 4}, Data: make([]byte, 8)}}, nil, nil)
	if err != nil || oip.FormatShape(out[0].Shape) != "[1,4]" {
		t.Fatalf("Run of 1 row: %v, %v; want y [1,4]", out, err)
	}
}
