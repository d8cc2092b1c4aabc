package onnx

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// identityModel returns a valid model: x -> Identity -> y, plus one unused
// initializer.
func identityModel() *Model {
	return &Model{Graph: Graph{
		Inputs:       []ValueInfo{{Name: "x", Type: Int32, Dims: []int64{-1, 2}}},
		Outputs:      []ValueInfo{{Name: "y", Type: Int32, Dims: []int64{-1, 2}}},
		Nodes:        []Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Initializers: []Tensor{{Name: "c", Type: Int32, Dims: []int64{2}, Raw: make([]byte, 8)}},
	}}
}

func TestModelValidate(t *testing.T) {
	f := func(change func(m *Model), wantErr string) {
		t.Helper()
		m := identityModel()
		change(m)
		err := m.Validate()
		if wantErr == "" {
			if err != nil {
				t.Fatalf("unexpected error: %s", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got error %v; want one containing %q", err, wantErr)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %q does not wrap ErrInvalid", err)
		}
	}
	f(func(*Model) {}, "")
	f(func(m *Model) {
		m.Graph.Initializers[0] = Tensor{Name: "c", Type: Int64, Dims: []int64{2, 3}, Int64s: make([]int64, 6)}
	}, "")
	f(func(m *Model) { m.Graph.Initializers[0].Dims = []int64{3} }, `initializer 0 "c": dims [3] of INT32 need 12 raw bytes; Raw has 8`)
	f(func(m *Model) { m.Graph.Initializers[0].Floats = []float32{1, 2} }, "2 of Floats, Int64s and Raw are set; want exactly 1")
	f(func(m *Model) { m.Graph.Initializers[0].Raw = nil }, "0 of Floats, Int64s and Raw are set")
	f(func(m *Model) {
		m.Graph.Initializers[0] = Tensor{Name: "c", Type: Double, Dims: []int64{2}, Floats: []float32{1, 2}}
	}, "type is DOUBLE but Floats is set; want FLOAT")
	f(func(m *Model) {
		m.Graph.Initializers[0] = Tensor{Name: "c", Type: Float, Dims: []int64{2}, Floats: []float32{1}}
	}, "dims [2] need 2 values; Floats has 1")
	f(func(m *Model) { m.Graph.Initializers[0].Dims = []int64{-2} }, "negative dimension")
	f(func(m *Model) { m.Graph.Initializers[0].Type = String }, "unsupported element type STRING")
	f(func(m *Model) { m.Graph.Initializers[0].Name = "x" }, `initializer 0: name "x" is already used by input 0`)
	f(func(m *Model) { m.Graph.Nodes[0].Inputs = []string{"z"} }, `node 0 (Identity ""): input "z" is not a graph input`)
	f(func(m *Model) { m.Graph.Nodes[0].OpType = "" }, "empty op type")
	f(func(m *Model) { m.Graph.Nodes[0].Outputs = []string{"c"} }, `node 0 (Identity "") output: name "c" is already used by initializer 0`)
	f(func(m *Model) { m.Graph.Nodes[0].Attrs = []Attr{AttrInt("a", 1), AttrFloat("a", 1)} }, `attribute "a" is set twice`)
	f(func(m *Model) { m.Graph.Nodes[0].Attrs = []Attr{{}} }, "was not built by an Attr function")
	f(func(m *Model) { m.Graph.Outputs[0].Name = "w" }, `output 0 "w" is not produced`)
	f(func(m *Model) { m.Graph.Outputs = nil }, `graph "main": no outputs`)
	f(func(m *Model) { m.Graph.Inputs[0].Type = 99 }, "unsupported element type DataType(99)")
	f(func(m *Model) { m.Graph.Inputs[0].Name = "" }, "input 0 has an empty name")
	f(func(m *Model) { m.Metadata = map[string]string{"": "v"} }, "metadata has an empty key")
	f(func(m *Model) { m.Opset = -1 }, "negative version")
}

func TestMarshalDeterministic(t *testing.T) {
	a := DemoCTR().Model().Marshal()
	b := DemoCTR().Model().Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("two marshals of DemoCTR differ (%d and %d bytes)", len(a), len(b))
	}
	// Map iteration order varies from run to run; metadata must not.
	m := identityModel()
	m.Metadata = map[string]string{}
	for _, k := range strings.Fields("q w e r t y u i o p a s d f g h j k l") {
		m.Metadata[k] = k + k
	}
	first := m.Marshal()
	for range 20 {
		if !bytes.Equal(m.Marshal(), first) {
			t.Fatalf("marshals of a model with many metadata keys differ")
		}
	}
	c := NewMLP(7, []int{64, 256, 256, 1}, Relu, Sigmoid).Model().Marshal()
	if bytes.Equal(a, c) {
		t.Fatalf("seeds 1 and 7 marshal to the same bytes")
	}
}

func TestDataType(t *testing.T) {
	f := func(dt DataType, name string, size int) {
		t.Helper()
		if got := dt.String(); got != name {
			t.Fatalf("DataType(%d).String() = %q; want %q", int32(dt), got, name)
		}
		if got := dt.Size(); got != size {
			t.Fatalf("%s.Size() = %d; want %d", dt, got, size)
		}
	}
	f(Float, "FLOAT", 4)
	f(Bool, "BOOL", 1)
	f(Double, "DOUBLE", 8)
	f(Uint64, "UINT64", 8)
	f(Float16, "FLOAT16", 2)
	f(String, "STRING", 0)
	f(0, "DataType(0)", 0)
	f(14, "DataType(14)", 0)
}

// Validate reports two nodes of one name, which ONNX Runtime refuses
// ("two nodes with same node name"); any number of nodes may have none.
func TestValidateDuplicateNodeNames(t *testing.T) {
	graph := func(a, b string) *Model {
		return &Model{Graph: Graph{
			Inputs:  []ValueInfo{{Name: "x", Type: Float, Dims: []int64{-1, 2}}},
			Outputs: []ValueInfo{{Name: "z", Type: Float, Dims: []int64{-1, 2}}},
			Nodes: []Node{
				{OpType: "Relu", Name: a, Inputs: []string{"x"}, Outputs: []string{"y"}},
				{OpType: "Sigmoid", Name: b, Inputs: []string{"y"}, Outputs: []string{"z"}},
			},
		}}
	}
	if err := graph("act", "act").Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `node name "act" is already node 0's`) {
		t.Fatalf("two nodes named act: %v; want ErrInvalid naming the first", err)
	}
	if err := graph("", "").Validate(); err != nil {
		t.Fatalf("two nodes without names: %v; want nil", err)
	}
}
