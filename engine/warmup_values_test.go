package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// A model whose operators refuse all-zero and all-one inputs alike, at the
// same node with the same message (y = a / (b*(b-1)), an integer division:
// b=0 and b=1 divide by zero there), cannot be told from a broken one by
// its warm-up, and fails to load with a message that says which run
// failed. (It would serve b=2 and beyond; a model like it needs a
// divisor guard in its graph.)
func TestWarmUpRefusedAlike(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "div2",
		Inputs:  []onnx.ValueInfo{{Name: "a", Type: onnx.Int64, Dims: []int64{-1}}, {Name: "b", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: onnx.Int64, Dims: []int64{-1}}},
		Nodes: []onnx.Node{
			{OpType: "Sub", Name: "s", Inputs: []string{"b", "one"}, Outputs: []string{"bm1"}},
			{OpType: "Mul", Name: "m", Inputs: []string{"b", "bm1"}, Outputs: []string{"d"}},
			{OpType: "Div", Name: "q", Inputs: []string{"a", "d"}, Outputs: []string{"y"}},
		},
		Initializers: []onnx.Tensor{{Name: "one", Type: onnx.Int64, Dims: []int64{1}, Int64s: []int64{1}}},
	}}
	m, err := Load(mo.Marshal(), Options{})
	if err == nil {
		m.Close()
	}
	if !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), "ones as inputs") {
		t.Fatalf("Load: got %v; want ErrInvalidModel naming the warm-up on ones", err)
	}
}

// A model with an input that must be nonzero (an integer divisor) and one
// that must be zero (an index into a table of one row): zeros fail in the
// Div, ones in the Gather. Its warm-up cannot run it, but the failures
// differ, so it loads unchecked, and its requests are the judges.
func TestWarmUpRefusedApart(t *testing.T) {
	initORT(t)
	table := make([]float32, 4)
	mo := onnx.Model{Graph: onnx.Graph{
		Name: "divgather",
		Inputs: []onnx.ValueInfo{
			{Name: "a", Type: onnx.Int64, Dims: []int64{-1}},
			{Name: "b", Type: onnx.Int64, Dims: []int64{-1}},
			{Name: "ids", Type: onnx.Int64, Dims: []int64{-1}},
		},
		Outputs: []onnx.ValueInfo{
			{Name: "y", Type: onnx.Int64, Dims: []int64{-1}},
			{Name: "emb", Type: onnx.Float, Dims: []int64{-1, 4}},
		},
		Nodes: []onnx.Node{
			{OpType: "Div", Name: "q", Inputs: []string{"a", "b"}, Outputs: []string{"y"}},
			{OpType: "Gather", Name: "g", Inputs: []string{"table", "ids"}, Outputs: []string{"emb"}},
		},
		Initializers: []onnx.Tensor{{Name: "table", Type: onnx.Float, Dims: []int64{1, 4}, Floats: table}},
	}}
	m, err := Load(mo.Marshal(), Options{})
	if err != nil {
		t.Fatalf("Load of a valid model (b a divisor, ids an index into one row): %v; want it loaded", err)
	}
	defer m.Close()
	i64 := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	out, err := m.Run(context.Background(), []oip.Tensor{
		{Name: "a", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(6)},
		{Name: "b", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(3)},
		{Name: "ids", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(0)},
	}, []string{"y"}, nil)
	if err != nil || string(out[0].Data) != string(i64(2)) {
		t.Fatalf("6/3 with index 0: got %v, %v; want y = 2", out, err)
	}
}
