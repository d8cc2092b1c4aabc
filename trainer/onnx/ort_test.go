package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infergate/infergate/internal/testenv"
)

// ortOnce initializes the ONNX Runtime environment for the whole test binary;
// ortErr is its result. TestMain destroys the environment.
var (
	ortOnce sync.Once
	ortErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if ort.IsInitialized() {
		if err := ort.DestroyEnvironment(); err != nil {
			fmt.Fprintf(os.Stderr, "cannot destroy the ONNX Runtime environment: %s\n", err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// startORT makes sure the ONNX Runtime environment is up.
func startORT(t *testing.T) {
	t.Helper()
	lib := testenv.ORTLib(t)
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment()
	})
	if ortErr != nil {
		t.Fatalf("cannot initialize ONNX Runtime from %s: %s", lib, ortErr)
	}
}

// session loads model into ONNX Runtime; the test destroys it when done.
func session(t *testing.T, model []byte, inputs, outputs []string) *ort.DynamicAdvancedSession {
	t.Helper()
	startORT(t)
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the model: %s", err)
	}
	t.Cleanup(func() {
		if err := s.Destroy(); err != nil {
			t.Errorf("cannot destroy session: %s", err)
		}
	})
	return s
}

// run runs s on one input tensor and returns a copy of its one output.
func run[In, Out ort.TensorData](t *testing.T, s *ort.DynamicAdvancedSession, inShape ort.Shape, in []In, outShape ort.Shape) []Out {
	t.Helper()
	x, err := ort.NewTensor(inShape, in)
	if err != nil {
		t.Fatalf("cannot make input tensor %v: %s", inShape, err)
	}
	defer x.Destroy()
	y, err := ort.NewEmptyTensor[Out](outShape)
	if err != nil {
		t.Fatalf("cannot make output tensor %v: %s", outShape, err)
	}
	defer y.Destroy()
	if err := s.Run([]ort.Value{x}, []ort.Value{y}); err != nil {
		t.Fatalf("run with input %v: %s", inShape, err)
	}
	return slices.Clone(y.GetData())
}

func TestORTParity(t *testing.T) {
	f := func(name string, m *MLP) {
		t.Run(name, func(t *testing.T) {
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			s := session(t, m.Model().Marshal(), []string{m.InputName}, []string{m.OutputName})
			for _, rows := range []int{1, 7, 64} {
				x := uniformInputs(uint64(rows), rows, m.In())
				want := m.Forward(x, rows)
				got := run[float32, float32](t, s, ort.NewShape(int64(rows), int64(m.In())), x, ort.NewShape(int64(rows), int64(m.Out())))
				maxDiff := 0.0
				for i := range want {
					maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
				}
				t.Logf("rows %d: max |ORT - Forward| = %.2g", rows, maxDiff)
				if !(maxDiff <= 1e-5) {
					t.Fatalf("rows %d: max |ORT - Forward| = %g; want <= 1e-5 (first row: ORT %v, Forward %v)", rows, maxDiff, got[0], want[0])
				}
			}
		})
	}
	f("ctr", DemoCTR())
	f("ranker", DemoRanker())
	f("logistic", NewLogisticRegression(3, 16))
	f("linear-3-layer", NewMLP(4, []int{5, 8, 8, 3}, Sigmoid, None))
}

func TestORTInputOutputInfo(t *testing.T) {
	startORT(t)
	f := func(m *MLP) {
		t.Helper()
		ins, outs, err := ort.GetInputOutputInfoWithONNXData(m.Model().Marshal())
		if err != nil {
			t.Fatalf("cannot read input and output info: %s", err)
		}
		check := func(what string, infos []ort.InputOutputInfo, name string, dims ort.Shape) {
			t.Helper()
			if len(infos) != 1 {
				t.Fatalf("%d %ss; want 1", len(infos), what)
			}
			got := infos[0]
			if got.Name != name || got.OrtValueType != ort.ONNXTypeTensor ||
				got.DataType != ort.TensorElementDataTypeFloat || !slices.Equal(got.Dimensions, dims) {
				t.Fatalf("%s: %s; want tensor %q of float %v", what, &got, name, dims)
			}
		}
		check("input", ins, m.InputName, ort.NewShape(-1, int64(m.In())))
		check("output", outs, m.OutputName, ort.NewShape(-1, int64(m.Out())))
	}
	f(DemoCTR())
	f(DemoRanker())
	f(NewLogisticRegression(3, 16))
}

func TestORTMetadata(t *testing.T) {
	m := DemoCTR()
	s := session(t, m.Model().Marshal(), []string{"features"}, []string{"score"})
	md, err := s.GetModelMetadata()
	if err != nil {
		t.Fatalf("cannot read metadata: %s", err)
	}
	defer md.Destroy()
	f := func(what string, get func() (string, error), want string) {
		t.Helper()
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %s", what, err)
		}
		if got != want {
			t.Fatalf("%s = %q; want %q", what, got, want)
		}
	}
	f("producer", md.GetProducerName, "infergate")
	f("graph name", md.GetGraphName, "infergate_mlp")
	f("description", md.GetDescription, m.DocString)
	for k, want := range m.Model().Metadata {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil || !ok || v != want {
			t.Fatalf("custom metadata %q = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
}

// graphCase builds a model x [batch, 3] -> nodes -> y [batch, 3] of one
// element type, runs it on in and compares with want.
func graphCase[T ort.TensorData](t *testing.T, typ DataType, nodes []Node, inits []Tensor, in, want []T) {
	t.Helper()
	m := &Model{Graph: Graph{
		Name:         "case",
		Inputs:       []ValueInfo{{Name: "x", Type: typ, Dims: []int64{-1, 3}}},
		Outputs:      []ValueInfo{{Name: "y", Type: typ, Dims: []int64{-1, 3}}},
		Nodes:        nodes,
		Initializers: inits,
	}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	s := session(t, m.Marshal(), []string{"x"}, []string{"y"})
	shape := ort.NewShape(int64(len(in)/3), 3)
	got := run[T, T](t, s, shape, in, shape)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v; want %v", typ, got, want)
	}
}

func TestORTGraphTypes(t *testing.T) {
	identity := []Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}}
	addC := []Node{{OpType: "Add", Name: "add", Inputs: []string{"x", "c"}, Outputs: []string{"y"}}}
	le := binary.LittleEndian

	t.Run("int32", func(t *testing.T) {
		graphCase(t, Int32, identity, nil, []int32{1, -2, math.MaxInt32, 4, 5, math.MinInt32}, []int32{1, -2, math.MaxInt32, 4, 5, math.MinInt32})
	})
	t.Run("int32-raw-initializer", func(t *testing.T) {
		var raw []byte
		for _, v := range []int32{10, -20, 30} {
			raw = le.AppendUint32(raw, uint32(v))
		}
		c := Tensor{Name: "c", Type: Int32, Dims: []int64{3}, Raw: raw}
		graphCase(t, Int32, addC, []Tensor{c}, []int32{1, 2, 3, 4, 5, 6}, []int32{11, -18, 33, 14, -15, 36})
	})
	t.Run("int64", func(t *testing.T) {
		graphCase(t, Int64, identity, nil, []int64{math.MinInt64, 0, math.MaxInt64}, []int64{math.MinInt64, 0, math.MaxInt64})
	})
	t.Run("int64-initializer", func(t *testing.T) {
		c := Tensor{Name: "c", Type: Int64, Dims: []int64{3}, Int64s: []int64{1 << 40, -1, 7}}
		graphCase(t, Int64, addC, []Tensor{c}, []int64{1, 2, 3}, []int64{1<<40 + 1, 1, 10})
	})
	t.Run("double", func(t *testing.T) {
		graphCase(t, Double, identity, nil, []float64{math.Pi, -1e300, 0.1}, []float64{math.Pi, -1e300, 0.1})
	})
	t.Run("double-raw-initializer", func(t *testing.T) {
		var raw []byte
		for _, v := range []float64{0.5, 1e-300, -2} {
			raw = le.AppendUint64(raw, math.Float64bits(v))
		}
		c := Tensor{Name: "c", Type: Double, Dims: []int64{1, 3}, Raw: raw}
		graphCase(t, Double, addC, []Tensor{c}, []float64{1, 2, 3, 0, 0, 0}, []float64{1.5, 2 + 1e-300, 1, 0.5, 1e-300, -2})
	})
	t.Run("uint8", func(t *testing.T) {
		graphCase(t, Uint8, identity, nil, []uint8{0, 1, 255, 128, 7, 9}, []uint8{0, 1, 255, 128, 7, 9})
	})
	t.Run("bool", func(t *testing.T) {
		not := []Node{{OpType: "Not", Inputs: []string{"x"}, Outputs: []string{"y"}}}
		graphCase(t, Bool, not, nil, []bool{true, false, true}, []bool{false, true, false})
	})
	t.Run("bool-raw-initializer", func(t *testing.T) {
		nodes := []Node{
			{OpType: "Not", Inputs: []string{"x"}, Outputs: []string{"nx"}},
			{OpType: "And", Inputs: []string{"nx", "c"}, Outputs: []string{"y"}},
		}
		c := Tensor{Name: "c", Type: Bool, Dims: []int64{3}, Raw: []byte{1, 1, 0}}
		graphCase(t, Bool, nodes, []Tensor{c},
			[]bool{false, true, false, true, false, true}, []bool{true, false, false, false, true, false})
	})
}

// TestORTAttrs checks that ONNX Runtime reads every kind of attribute the way
// it was meant.
func TestORTAttrs(t *testing.T) {
	t.Run("ints-float-floats", func(t *testing.T) {
		// y = LeakyRelu(Transpose(x), alpha 0.5) + [10, 20], x [2, 3] -> y [3, 2].
		m := &Model{Graph: Graph{
			Inputs:  []ValueInfo{{Name: "x", Type: Float, Dims: []int64{2, 3}}},
			Outputs: []ValueInfo{{Name: "y", Type: Float, Dims: []int64{3, 2}}},
			Nodes: []Node{
				{OpType: "Transpose", Inputs: []string{"x"}, Outputs: []string{"xt"}, Attrs: []Attr{AttrInts("perm", []int64{1, 0})}},
				{OpType: "LeakyRelu", Inputs: []string{"xt"}, Outputs: []string{"lr"}, Attrs: []Attr{AttrFloat("alpha", 0.5)}},
				{OpType: "Constant", Outputs: []string{"c"}, Attrs: []Attr{AttrFloats("value_floats", []float32{10, 20})}},
				{OpType: "Add", Inputs: []string{"lr", "c"}, Outputs: []string{"y"}},
			},
		}}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		s := session(t, m.Marshal(), []string{"x"}, []string{"y"})
		got := run[float32, float32](t, s, ort.NewShape(2, 3), []float32{1, -2, 3, -4, 5, -6}, ort.NewShape(3, 2))
		want := []float32{1 + 10, -2 + 20, -1 + 10, 5 + 20, 3 + 10, -3 + 20}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v; want %v", got, want)
		}
	})
	t.Run("int-string", func(t *testing.T) {
		// DepthToSpace with blocksize 2 on 8 channels: mode CRD keeps the
		// channel order, DCR interleaves it.
		f := func(mode string, want []float32) {
			t.Helper()
			m := &Model{Graph: Graph{
				Inputs:  []ValueInfo{{Name: "x", Type: Float, Dims: []int64{1, 8, 1, 1}}},
				Outputs: []ValueInfo{{Name: "y", Type: Float, Dims: []int64{1, 2, 2, 2}}},
				Nodes: []Node{{OpType: "DepthToSpace", Inputs: []string{"x"}, Outputs: []string{"y"},
					Attrs: []Attr{AttrInt("blocksize", 2), AttrString("mode", mode)}}},
			}}
			s := session(t, m.Marshal(), []string{"x"}, []string{"y"})
			got := run[float32, float32](t, s, ort.NewShape(1, 8, 1, 1), []float32{0, 1, 2, 3, 4, 5, 6, 7}, ort.NewShape(1, 2, 2, 2))
			if !slices.Equal(got, want) {
				t.Fatalf("mode %s: got %v; want %v", mode, got, want)
			}
		}
		f("CRD", []float32{0, 1, 2, 3, 4, 5, 6, 7})
		f("DCR", []float32{0, 2, 4, 6, 1, 3, 5, 7})
	})
}
