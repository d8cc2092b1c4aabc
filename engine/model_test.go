package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// load loads model with opts and closes it when the test ends.
func load(tb testing.TB, model []byte, opts Options) *Model {
	tb.Helper()
	initORT(tb)
	m, err := Load(model, opts)
	if err != nil {
		tb.Fatalf("Load: %s", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Close: %s", err)
		}
	})
	return m
}

// features returns rows*in float32 values in [-1, 1) drawn from seed.
func features(seed uint64, rows, in int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func bytesF32(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// checkMLP runs m on rows random rows and compares with mlp.Forward.
func checkMLP(t *testing.T, m *Model, mlp *onnx.MLP, rows int, seed uint64, dst []oip.Tensor) []oip.Tensor {
	t.Helper()
	x := features(seed, rows, mlp.In())
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{int64(rows), int64(mlp.In())}, Data: f32Bytes(x)}}
	out, err := m.Run(context.Background(), in, nil, dst)
	if err != nil {
		t.Fatalf("Run with %d rows: %s", rows, err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d outputs; want 1", len(out))
	}
	o := out[0]
	if o.Name != "score" || o.Datatype != oip.FP32 || len(o.Shape) != 2 || o.Shape[0] != int64(rows) || o.Shape[1] != 1 {
		t.Fatalf("got output %q %s %v; want \"score\" FP32 [%d 1]", o.Name, o.Datatype, o.Shape, rows)
	}
	got := bytesF32(o.Data)
	want := mlp.Forward(x, rows)
	if len(got) != len(want) {
		t.Fatalf("got %d values; want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
			t.Fatalf("row %d of %d: got %v; want %v (|diff| %g > 1e-5)", i, rows, got[i], want[i], d)
		}
	}
	return out
}

func TestDemoModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		mlp  *onnx.MLP
	}{
		{"ctr", onnx.DemoCTR()},
		{"ranker", onnx.DemoRanker()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, tc.mlp.Model().Marshal(), Options{})
			wantIn := []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, int64(tc.mlp.In())}}}
			wantOut := []oip.TensorMetadata{{Name: "score", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
			checkMeta(t, "inputs", m.Inputs(), wantIn)
			checkMeta(t, "outputs", m.Outputs(), wantOut)
			if m.Instances() != 1 {
				t.Fatalf("Instances() = %d; want 1", m.Instances())
			}
			if got := m.out[0].rule; got != ruleBatch {
				t.Fatalf("output rule %d; want ruleBatch (%d)", got, ruleBatch)
			}
			var dst []oip.Tensor
			for i, rows := range []int{1, 64, 3, 64, 1} {
				dst = checkMLP(t, m, tc.mlp, rows, uint64(i), dst)
			}
			// Passing the result back reuses its buffers.
			before := &dst[0].Data[0]
			dst = checkMLP(t, m, tc.mlp, 1, 9, dst)
			if &dst[0].Data[0] != before {
				t.Fatalf("Run did not reuse dst's Data")
			}
			if g := &m.guesses[0]; g.off.Load() || g.debt.Load() != 0 {
				t.Fatalf("Run's guess of the output shape failed (debt %d, off %v); want it to hold", g.debt.Load(), g.off.Load())
			}
		})
	}
}

func checkMeta(t *testing.T, what string, got, want []oip.TensorMetadata) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %+v; want %+v", what, got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Datatype != w.Datatype || oip.FormatShape(g.Shape) != oip.FormatShape(w.Shape) {
			t.Fatalf("%s[%d]: got %+v; want %+v", what, i, g, w)
		}
	}
}

// onnxTypes maps the engine's datatypes to the ONNX writer's.
var onnxTypes = map[oip.DataType]onnx.DataType{
	oip.BOOL: onnx.Bool, oip.UINT8: onnx.Uint8, oip.UINT16: onnx.Uint16, oip.UINT32: onnx.Uint32, oip.UINT64: onnx.Uint64,
	oip.INT8: onnx.Int8, oip.INT16: onnx.Int16, oip.INT32: onnx.Int32, oip.INT64: onnx.Int64,
	oip.FP16: onnx.Float16, oip.FP32: onnx.Float, oip.FP64: onnx.Double,
}

// oneNode returns a model of one node op from input x to output y.
func oneNode(op string, in, out onnx.DataType, inDims, outDims []int64, attrs ...onnx.Attr) []byte {
	m := onnx.Model{Graph: onnx.Graph{
		Name:    strings.ToLower(op),
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: in, Dims: inDims}},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: out, Dims: outDims}},
		Nodes:   []onnx.Node{{OpType: op, Name: "n", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: attrs}},
	}}
	return m.Marshal()
}

// randomData returns n elements of dt as raw bytes; BOOL gets 0 and 1.
func randomData(r *rand.Rand, dt oip.DataType, n int) []byte {
	b := make([]byte, n*dt.Size())
	for i := range b {
		b[i] = byte(r.Uint32())
		if dt == oip.BOOL {
			b[i] &= 1
		}
	}
	return b
}

// TestDatatypes sends random bytes of every datatype through Identity and
// Cast-to-itself graphs with batch-only, fully dynamic and fixed shapes,
// which exercise all three ways of providing outputs, and expects the
// bytes back exactly.
func TestDatatypes(t *testing.T) {
	initORT(t)
	r := rand.New(rand.NewPCG(1, 2))
	for dt, ot := range onnxTypes {
		for _, tc := range []struct {
			name  string
			dims  []int64
			shape []int64
			rule  outputRule
		}{
			{"batch", []int64{-1, 3}, []int64{5, 3}, ruleBatch},
			{"dynamic", []int64{-1, -1}, []int64{4, 7}, ruleDynamic},
			{"fixed", []int64{2, 3}, []int64{2, 3}, ruleStatic},
		} {
			for _, op := range []string{"Identity", "Cast"} {
				t.Run(dt.String()+"/"+tc.name+"/"+op, func(t *testing.T) {
					var attrs []onnx.Attr
					if op == "Cast" {
						attrs = append(attrs, onnx.AttrInt("to", int64(ot)))
					}
					model := oneNode(op, ot, ot, tc.dims, tc.dims, attrs...)
					if dt == oip.FP16 && tc.rule == ruleDynamic {
						_, err := Load(model, Options{})
						if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), `output "y" is FP16 of shape [-1,-1]`) {
							t.Fatalf("Load of an FP16 output [-1,-1]: got %v; want ErrUnsupportedType naming it", err)
						}
						return
					}
					m := load(t, model, Options{})
					if m.Inputs()[0].Datatype != dt || m.Outputs()[0].Datatype != dt {
						t.Fatalf("got datatypes %s -> %s; want %s", m.Inputs()[0].Datatype, m.Outputs()[0].Datatype, dt)
					}
					if got := m.out[0].rule; got != tc.rule {
						t.Fatalf("output rule %d; want %d", got, tc.rule)
					}
					var dst []oip.Tensor
					for range 3 {
						data := randomData(r, dt, int(oip.ShapeElements(tc.shape)))
						in := []oip.Tensor{{Name: "x", Datatype: dt, Shape: tc.shape, Data: data}}
						out, err := m.Run(context.Background(), in, nil, dst)
						if err != nil {
							t.Fatalf("Run: %s", err)
						}
						if len(out) != 1 || out[0].Name != "y" || out[0].Datatype != dt || oip.FormatShape(out[0].Shape) != oip.FormatShape(tc.shape) {
							t.Fatalf("got %+v; want one output \"y\" %s %v", out, dt, tc.shape)
						}
						if !bytes.Equal(out[0].Data, data) {
							t.Fatalf("bytes differ:\ngot  %x\nwant %x", out[0].Data, data)
						}
						dst = out
					}
				})
			}
		}
	}
}

// twoOutputs is x FP32 [-1,2] -> a = Identity(x) FP32, b = Cast(x) FP64.
func twoOutputs() []byte {
	m := onnx.Model{Graph: onnx.Graph{
		Name:    "two",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 2}}},
		Outputs: []onnx.ValueInfo{{Name: "a", Type: onnx.Float, Dims: []int64{-1, 2}}, {Name: "b", Type: onnx.Double, Dims: []int64{-1, 2}}},
		Nodes: []onnx.Node{
			{OpType: "Identity", Name: "id", Inputs: []string{"x"}, Outputs: []string{"a"}},
			{OpType: "Cast", Name: "cast", Inputs: []string{"x"}, Outputs: []string{"b"}, Attrs: []onnx.Attr{onnx.AttrInt("to", int64(onnx.Double))}},
		},
	}}
	return m.Marshal()
}

func TestOutputSelection(t *testing.T) {
	m := load(t, twoOutputs(), Options{})
	x := []float32{1.5, -2, 3.25, 0.125}
	in := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{2, 2}, Data: f32Bytes(x)}}
	wantB := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(wantB[8*i:], math.Float64bits(float64(v)))
	}
	f := func(names []string, want ...string) {
		t.Helper()
		out, err := m.Run(context.Background(), in, names, nil)
		if err != nil {
			t.Fatalf("Run(%q): %s", names, err)
		}
		if len(out) != len(want) {
			t.Fatalf("Run(%q): got %d outputs; want %d", names, len(out), len(want))
		}
		for i, name := range want {
			o := out[i]
			if o.Name != name || oip.FormatShape(o.Shape) != "[2,2]" {
				t.Fatalf("Run(%q): output %d is %q %v; want %q [2,2]", names, i, o.Name, o.Shape, name)
			}
			switch name {
			case "a":
				if o.Datatype != oip.FP32 || !bytes.Equal(o.Data, in[0].Data) {
					t.Fatalf("a: got %s %x; want FP32 %x", o.Datatype, o.Data, in[0].Data)
				}
			case "b":
				if o.Datatype != oip.FP64 || !bytes.Equal(o.Data, wantB) {
					t.Fatalf("b: got %s %x; want FP64 %x", o.Datatype, o.Data, wantB)
				}
			}
		}
	}
	f(nil, "a", "b")
	f([]string{}, "a", "b")
	f([]string{"b"}, "b")
	f([]string{"b", "a"}, "b", "a")
	f([]string{"a"}, "a")

	_, err := m.Run(context.Background(), in, []string{"c"}, nil)
	if !errors.Is(err, ErrUnknownOutput) || err.Error() != `unknown output "c"; the model's outputs are "a", "b"` {
		t.Fatalf("unknown output: got %v", err)
	}
	_, err = m.Run(context.Background(), in, []string{"a", "a"}, nil)
	if !errors.Is(err, ErrUnknownOutput) {
		t.Fatalf("output twice: got %v; want ErrUnknownOutput", err)
	}
}

func TestBadInputs(t *testing.T) {
	m := load(t, onnx.DemoCTR().Model().Marshal(), Options{})
	good := oip.Tensor{Name: "features", Datatype: oip.FP32, Shape: []int64{2, 64}, Data: make([]byte, 2*64*4)}
	f := func(in []oip.Tensor, want string) {
		t.Helper()
		out, err := m.Run(context.Background(), in, nil, nil)
		if err == nil {
			t.Fatalf("Run(%+v) = %v; want error %q", in, out, want)
		}
		if !errors.Is(err, ErrInvalidInput) || err.Error() != want {
			t.Fatalf("got %q; want ErrInvalidInput %q", err, want)
		}
	}
	with := func(change func(*oip.Tensor)) []oip.Tensor {
		t := good
		change(&t)
		return []oip.Tensor{t}
	}
	f(nil, `missing input "features" (FP32 [-1,64]); the model needs all of "features"`)
	f(with(func(t *oip.Tensor) { t.Name = "x" }), `unknown input "x"; the model's inputs are "features"`)
	f([]oip.Tensor{good, good}, `input "features" is given twice`)
	f(with(func(t *oip.Tensor) { t.Datatype = oip.FP64 }), `input "features" has datatype FP64; the model expects FP32`)
	f(with(func(t *oip.Tensor) { t.Shape = []int64{2, 63} }), `input "features" has shape [2,63]; the model expects [-1,64] (-1: any size)`)
	f(with(func(t *oip.Tensor) { t.Shape = []int64{128} }), `input "features" has shape [128]; the model expects [-1,64] (-1: any size)`)
	f(with(func(t *oip.Tensor) { t.Shape = []int64{0, 64} }), `input "features" has shape [0,64]; every dimension must be at least 1`)
	f(with(func(t *oip.Tensor) { t.Data = t.Data[:100] }), `input "features" has 100 bytes of data; shape [2,64] of FP32 needs 512`)
	f(with(func(t *oip.Tensor) { t.Shape = []int64{1 << 62, 64} }), `input "features" has shape [4611686018427387904,64], which is too large`)

	// The model still works after all that.
	checkMLP(t, m, onnx.DemoCTR(), 2, 1, nil)
}

func TestUnsupportedTypes(t *testing.T) {
	initORT(t)
	f := func(model []byte, want string) {
		t.Helper()
		_, err := Load(model, Options{})
		if !errors.Is(err, ErrUnsupportedType) || err.Error() != want {
			t.Fatalf("Load: got %v; want ErrUnsupportedType %q", err, want)
		}
	}
	f(oneNode("Identity", onnx.String, onnx.String, []int64{-1}, []int64{-1}),
		`input "x" is a STRING tensor; the engine supports tensors of BOOL, INT8-64, UINT8-64, FP16, FP32 and FP64`)
	f(oneNode("Identity", onnx.Float, onnx.Float, nil, nil),
		`input "x" is a scalar (rank 0); infergate serves tensors with at least one dimension`)
	// A scalar output: the sum of a vector.
	sum := onnx.Model{Graph: onnx.Graph{
		Name:    "sum",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1}}},
		Outputs: []onnx.ValueInfo{{Name: "s", Type: onnx.Float, Dims: []int64{}}},
		Nodes:   []onnx.Node{{OpType: "ReduceSum", Name: "sum", Inputs: []string{"x"}, Outputs: []string{"s"}, Attrs: []onnx.Attr{onnx.AttrInt("keepdims", 0)}}},
	}}
	f(sum.Marshal(), `output "s" is a scalar (rank 0); infergate serves tensors with at least one dimension`)
	// A string output from a numeric input.
	f(oneNode("Cast", onnx.Float, onnx.String, []int64{-1}, []int64{-1}, onnx.AttrInt("to", int64(onnx.String))),
		`output "y" is a STRING tensor; the engine supports tensors of BOOL, INT8-64, UINT8-64, FP16, FP32 and FP64`)

	if _, err := Load([]byte("not onnx"), Options{}); !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("Load of junk: got %v; want ErrInvalidModel", err)
	}
	if _, err := Load(nil, Options{}); !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("Load of nothing: got %v; want ErrInvalidModel", err)
	}
	if _, err := Load(onnx.DemoCTR().Model().Marshal(), Options{Device: "tpu"}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Load with device tpu: got %v; want ErrInvalidOptions", err)
	}
}

func TestDevice(t *testing.T) {
	initORT(t)
	model := onnx.DemoCTR().Model().Marshal()
	for _, dev := range []string{"", "cpu"} {
		m := load(t, model, Options{Device: dev})
		checkMLP(t, m, onnx.DemoCTR(), 4, 1, nil)
	}

	lib := testenv.ORTLib(t)
	if _, err := os.Stat(strings.TrimSuffix(lib, "libonnxruntime.so.1") + "libonnxruntime_providers_cuda.so"); err == nil {
		t.Skipf("the library at %s has a CUDA provider; this test wants one without", lib)
	}
	_, err := Load(model, Options{Device: "cuda:0"})
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Fatalf("Load on cuda:0: got %v; want ErrDeviceUnavailable", err)
	}
	want := "cannot use device cuda:0: the ONNX Runtime library at " + LibPath() + " has no CUDA execution provider (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so must sit beside it); use --device cpu or a CUDA build of ONNX Runtime"
	if err.Error() != want {
		t.Fatalf("Load on cuda:0:\ngot  %s\nwant %s", err, want)
	}
}

// TestConcurrentRuns runs 8 goroutines on 3 instances, each on its own
// session or all on one (ShareSession), checking every answer.
func TestConcurrentRuns(t *testing.T) {
	for _, share := range []bool{false, true} {
		t.Run(fmt.Sprintf("share=%v", share), func(t *testing.T) {
			mlp := onnx.DemoCTR()
			m := load(t, mlp.Model().Marshal(), Options{Instances: 3, ShareSession: share})
			if m.Instances() != 3 {
				t.Fatalf("Instances() = %d; want 3", m.Instances())
			}
			sessions := make(map[*session]bool)
			for _, inst := range m.instances {
				sessions[inst.sess] = true
			}
			if want := map[bool]int{false: 3, true: 1}[share]; len(sessions) != want || m.Sessions() != want {
				t.Fatalf("%d sessions, Sessions() %d; want %d", len(sessions), m.Sessions(), want)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					var dst []oip.Tensor
					for i := range 20 {
						rows := 1 + (g*7+i*13)%64
						dst = checkMLP(t, m, mlp, rows, uint64(g*100+i), dst)
					}
				})
			}
			wg.Wait()
			// Close destroys each session once, after its last instance.
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			for s := range sessions {
				if n := s.refs.Load(); n != 0 {
					t.Fatalf("a session has %d references left after Close; want 0", n)
				}
			}
		})
	}
}

func TestRunBounded(t *testing.T) {
	m := load(t, onnx.DemoCTR().Model().Marshal(), Options{Instances: 2})
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, 64}, Data: make([]byte, 64*4)}}

	// Hold both instances: Run must wait, and give up with the context.
	held := []*instance{<-m.free, <-m.free}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Run(ctx, in, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 busy instances") {
		t.Fatalf("Run while all instances are busy: got %v; want DeadlineExceeded naming 2 busy instances", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctx, in, nil, nil)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run canceled while waiting: got %v; want context.Canceled", err)
	}
	// A done context fails fast even with an instance free.
	m.free <- held[1]
	if _, err := m.Run(ctx, in, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a canceled context: got %v; want context.Canceled", err)
	}
	// A waiting Run gets the instance as soon as it is back.
	go func() {
		_, err := m.Run(context.Background(), in, nil, nil)
		done <- err
	}()
	m.free <- held[0]
	if err := <-done; err != nil {
		t.Fatalf("Run: %s", err)
	}
}

func TestClose(t *testing.T) {
	initORT(t)
	m, err := Load(onnx.DemoCTR().Model().Marshal(), Options{Instances: 2})
	if err != nil {
		t.Fatalf("Load: %s", err)
	}
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, 64}, Data: make([]byte, 64*4)}}

	// Close while a Run waits for an instance: the Run gets ErrClosed and
	// Close returns once the held instances are back.
	held := []*instance{<-m.free, <-m.free}
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), in, nil, nil)
		waiting <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Fatalf("Run waiting during Close: got %v; want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while instances were held", err)
	case <-time.After(10 * time.Millisecond):
	}
	m.free <- held[0]
	m.free <- held[1]
	if err := <-closed; err != nil {
		t.Fatalf("Close: %s", err)
	}

	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %s", err)
	}
	if _, err := m.Run(context.Background(), in, nil, nil); err != ErrClosed {
		t.Fatalf("Run after Close: got %v; want ErrClosed", err)
	}
}

// TestInputRejected checks an operator that fails on what the client sent:
// Reshape to [2,2] works only for 4 elements.
func TestInputRejected(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "reshape",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 4}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{2, 2}}},
		Nodes:        []onnx.Node{{OpType: "Reshape", Name: "r", Inputs: []string{"x", "shape"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "shape", Type: onnx.Int64, Dims: []int64{2}, Int64s: []int64{2, 2}}},
	}}
	m := load(t, mo.Marshal(), Options{})
	x := make([]byte, 3*4*4)
	_, err := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{3, 4}, Data: x}}, nil, nil)
	if !errors.Is(err, ErrInputRejected) || errors.Is(err, ErrRunFailed) || !strings.HasPrefix(err.Error(), `node "r" (Reshape): `) {
		t.Fatalf("Run of 12 elements into [2,2]: got %v; want ErrInputRejected naming node \"r\"", err)
	}
	out, err := m.Run(context.Background(), []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: x[:16]}}, nil, nil)
	if err != nil || oip.FormatShape(out[0].Shape) != "[2,2]" {
		t.Fatalf("Run of 4 elements: got %v, %v; want [2,2]", out, err)
	}
}

// TestPreallocFallback makes Run guess an output shape wrong: y = x
// concatenated with itself has 2*batch rows, not batch. Load's probe sees
// that; forcing the guess back on, Run must notice, answer right, and stop
// guessing y's shape after repeated mismatches, but not z's, which holds.
func TestPreallocFallback(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:   "concat",
		Inputs: []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, 2}}},
		Outputs: []onnx.ValueInfo{
			{Name: "y", Type: onnx.Float, Dims: []int64{-1, 2}},
			{Name: "z", Type: onnx.Float, Dims: []int64{-1, 2}},
		},
		Nodes: []onnx.Node{
			{OpType: "Concat", Name: "c", Inputs: []string{"x", "x"}, Outputs: []string{"y"}, Attrs: []onnx.Attr{onnx.AttrInt("axis", 0)}},
			{OpType: "Neg", Name: "n", Inputs: []string{"x"}, Outputs: []string{"z"}},
		},
	}}
	m := load(t, mo.Marshal(), Options{})
	if y, z := m.out[0].rule, m.out[1].rule; y != ruleDynamic || z != ruleBatch {
		t.Fatalf("output rules %d, %d after Load's probe; want ruleDynamic, ruleBatch", y, z)
	}
	m.out[0].rule = ruleBatch // what a model with a data-dependent shape could fool Load into
	x := []float32{1, 2, 3, 4, 5, 6}
	in := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{3, 2}, Data: f32Bytes(x)}}
	neg := make([]float32, len(x))
	for i, v := range x {
		neg[i] = -v
	}
	// run runs the model and checks the answer; it returns how many times
	// ONNX Runtime refused y's preallocated buffer.
	run := func() int {
		t.Helper()
		var out []oip.Tensor
		var err error
		logged := captureStderr(t, func() {
			out, err = m.Run(context.Background(), in, nil, nil)
		})
		if err != nil {
			t.Fatalf("Run: %s", err)
		}
		if oip.FormatShape(out[0].Shape) != "[6,2]" || !slices.Equal(bytesF32(out[0].Data), append(x[:len(x):len(x)], x...)) {
			t.Fatalf("y: got %v %v; want [6,2] x twice", out[0].Shape, bytesF32(out[0].Data))
		}
		if oip.FormatShape(out[1].Shape) != "[3,2]" || !slices.Equal(bytesF32(out[1].Data), neg) {
			t.Fatalf("z: got %v %v; want [3,2] %v", out[1].Shape, bytesF32(out[1].Data), neg)
		}
		return bytes.Count(logged, []byte("The output OrtValue provided for output 'y'"))
	}
	for i := 1; i <= 3; i++ {
		if n := run(); n != 1 {
			t.Fatalf("run %d: ONNX Runtime refused y's buffer %d times; want 1", i, n)
		}
		if off := m.guesses[0].off.Load(); off != (i == 3) {
			t.Fatalf("after %d mismatches in a row, Run stops guessing y's shape: %v; want %v", i, off, i == 3)
		}
	}
	if n := run(); n != 0 {
		t.Fatalf("ONNX Runtime refused y's buffer %d times after Run stopped guessing; want 0", n)
	}
	if g := &m.guesses[1]; g.off.Load() || g.debt.Load() != 0 {
		t.Fatalf("z's guess: debt %d, off %v; want 0, false: a mismatch of y is not z's", g.debt.Load(), g.off.Load())
	}
	inst := <-m.free
	pre := slices.Clone(inst.pre)
	m.free <- inst
	if !slices.Equal(pre, []bool{false, true}) {
		t.Fatalf("preallocated outputs of the last run: %v; want [false true] (y left to ONNX Runtime, z still preallocated)", pre)
	}
}

// TestShapeGuess checks when Run gives up guessing an output's shape: after
// repeated mismatches, not after one odd request now and then.
func TestShapeGuess(t *testing.T) {
	// f plays runs: 'm' a mismatch, 'h' a run whose guess held, a number n
	// n held runs.
	f := func(runs string, wantOff bool) {
		t.Helper()
		var g shapeGuess
		for _, step := range strings.Fields(runs) {
			switch step {
			case "m":
				g.missed()
			case "h":
				g.held()
			default:
				n, err := strconv.Atoi(step)
				if err != nil {
					t.Fatalf("bad step %q", step)
				}
				for range n {
					g.held()
				}
			}
		}
		if off := g.off.Load(); off != wantOff {
			t.Fatalf("%q: off %v (debt %d); want %v", runs, off, g.debt.Load(), wantOff)
		}
	}
	f("", false)
	f("m", false)
	f("m m", false)
	f("m m m", true)
	f("m h m h m", false) // 190, just short
	f("m h m h m h m", true)
	f("m 64 m 64 m 64 m", false)
	f("m 1000 m 1000 m 1000 m", false)
	f("m 32 m 32 m 32 m 32 m 32 m", true)
	f("m m m 1000", true) // for good
	f("m m 200 m m", false)
}

// TestNoLeaks runs many inferences on each path (preallocated, allocated by
// ONNX Runtime, failed) and checks that the process's resident memory does
// not grow by anything like what leaking the ONNX Runtime values would
// cost.
func TestNoLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	initORT(t)
	const rows, cols = 256, 1024 // 1 MiB per FP32 tensor
	batch := load(t, oneNode("Identity", onnx.Float, onnx.Float, []int64{-1, cols}, []int64{-1, cols}), Options{})
	dynamic := load(t, oneNode("Identity", onnx.Float, onnx.Float, []int64{-1, -1}, []int64{-1, -1}), Options{})
	in := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{rows, cols}, Data: make([]byte, rows*cols*4)}}
	bad := []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{rows, cols}, Data: make([]byte, 8)}}
	var dst1, dst2 []oip.Tensor
	round := func() {
		var err error
		if dst1, err = batch.Run(context.Background(), in, nil, dst1); err != nil {
			t.Fatal(err)
		}
		if dst2, err = dynamic.Run(context.Background(), in, nil, dst2); err != nil {
			t.Fatal(err)
		}
		if _, err = dynamic.Run(context.Background(), bad, nil, nil); err == nil {
			t.Fatal("Run with bad data succeeded")
		}
	}
	for range 20 {
		round()
	}
	before := rssBytes(t)
	const n = 300
	for range n {
		round()
	}
	if grown := rssBytes(t) - before; grown > 64<<20 {
		t.Fatalf("resident memory grew by %d MiB over %d rounds; leaking 1 MiB a round would be %d MiB", grown>>20, n, 2*n)
	}
}

// rssBytes returns the resident set size of the process.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("cannot read /proc/self/statm: %s", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("cannot parse /proc/self/statm %q: %s", b, err)
	}
	return pages * int64(os.Getpagesize())
}

// TestReuseBuffers passes the same input buffer with new contents and with
// a new shape, and the result back as dst, as a batcher does: the values
// that wrap the buffers are reused, one per shape, and only while they fit.
func TestReuseBuffers(t *testing.T) {
	mlp := onnx.DemoCTR()
	m := load(t, mlp.Model().Marshal(), Options{})
	buf := make([]byte, 8*64*4)
	var dst []oip.Tensor
	for i, rows := range []int{8, 8, 3, 3, 8, 1} {
		x := features(uint64(i), rows, 64)
		copy(buf, f32Bytes(x))
		in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{int64(rows), 64}, Data: buf[:rows*64*4]}}
		out, err := m.Run(context.Background(), in, nil, dst)
		if err != nil {
			t.Fatalf("Run %d: %s", i, err)
		}
		got, want := bytesF32(out[0].Data), mlp.Forward(x, rows)
		if len(got) != rows {
			t.Fatalf("Run %d: got %d rows; want %d", i, len(got), rows)
		}
		for r := range want {
			if d := math.Abs(float64(got[r] - want[r])); d > 1e-5 {
				t.Fatalf("Run %d row %d: got %v; want %v", i, r, got[r], want[r])
			}
		}
		dst = out
	}

	// With the buffers reused, Run allocates only what onnxruntime_go does
	// per call (its slices of value pointers): 4 for one input and output.
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{8, 64}, Data: buf}}
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = m.Run(context.Background(), in, nil, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Fatalf("Run allocates %v times per call with reused buffers; want at most 4", allocs)
	}

	// Batch sizes that come back, over the same buffers, reuse the values
	// made for them the first time.
	i := 0
	allocs = testing.AllocsPerRun(100, func() {
		rows := []int{8, 3, 1, 5}[i%4]
		i++
		in[0].Shape[0] = int64(rows)
		in[0].Data = buf[:rows*64*4]
		var err error
		if dst, err = m.Run(context.Background(), in, nil, dst); err != nil {
			t.Fatal(err)
		}
		if len(dst[0].Data) != rows*4 {
			t.Fatalf("got %d bytes of output for %d rows", len(dst[0].Data), rows)
		}
	})
	if allocs > 4 {
		t.Fatalf("Run allocates %v times per call over batch sizes seen before; want at most 4", allocs)
	}
}

// TestTwoInputs matches inputs by name whatever their order, and survives
// inputs that disagree on the batch size.
func TestTwoInputs(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "add",
		Inputs:  []onnx.ValueInfo{{Name: "a", Type: onnx.Int64, Dims: []int64{-1, 3}}, {Name: "b", Type: onnx.Int64, Dims: []int64{-1, 3}}},
		Outputs: []onnx.ValueInfo{{Name: "c", Type: onnx.Int64, Dims: []int64{-1, 3}}},
		Nodes:   []onnx.Node{{OpType: "Add", Name: "add", Inputs: []string{"a", "b"}, Outputs: []string{"c"}}},
	}}
	m := load(t, mo.Marshal(), Options{})
	i64 := func(v ...int64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
		}
		return b
	}
	a := oip.Tensor{Name: "a", Datatype: oip.INT64, Shape: []int64{2, 3}, Data: i64(1, 2, 3, 4, 5, 6)}
	b := oip.Tensor{Name: "b", Datatype: oip.INT64, Shape: []int64{2, 3}, Data: i64(10, 20, 30, -40, -50, -60)}
	out, err := m.Run(context.Background(), []oip.Tensor{b, a}, nil, nil)
	if err != nil {
		t.Fatalf("Run: %s", err)
	}
	if want := i64(11, 22, 33, -36, -45, -54); !bytes.Equal(out[0].Data, want) || oip.FormatShape(out[0].Shape) != "[2,3]" {
		t.Fatalf("got %v %x; want [2,3] %x", out[0].Shape, out[0].Data, want)
	}

	_, err = m.Run(context.Background(), []oip.Tensor{a}, nil, nil)
	if !errors.Is(err, ErrInvalidInput) || err.Error() != `missing input "b" (INT64 [-1,3]); the model needs all of "a", "b"` {
		t.Fatalf("Run without b: got %v", err)
	}
	b.Shape, b.Data = []int64{3, 3}, i64(1, 2, 3, 4, 5, 6, 7, 8, 9)
	if _, err = m.Run(context.Background(), []oip.Tensor{a, b}, nil, nil); !errors.Is(err, ErrInputRejected) {
		t.Fatalf("Run with batches 2 and 3: got %v; want ErrInputRejected", err)
	}
}
