package engine

// Tests of what a model file may declare that Load must bound or handle:
// huge inputs and outputs, an input passed through as an output, operators
// that refuse zeros; and of a Model dropped without Close.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// inChild runs the test named name in a child process with env
// ENGINE_TEST_CHILD=name and returns its combined output and error: for
// failures that kill the process (fatal errors, panics in finalizers).
func inChild(t *testing.T, name string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "ENGINE_TEST_CHILD="+name)
	out, err := cmd.CombinedOutput()
	if len(out) > 1500 {
		out = out[:1500]
	}
	return out, err
}

// A model whose declared input dimensions overflow when multiplied fails
// to load with an error, not a panic.
func TestLoadHugeInputDims(t *testing.T) {
	initORT(t)
	dims := []int64{1 << 40, 1 << 40}
	model := oneNode("Identity", onnx.Float, onnx.Float, dims, dims)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Load of a model with input dims %v panicked: %v; want an error", dims, p)
			}
		}()
		var m *Model
		m, err = Load(model, Options{})
		if m != nil {
			m.Close()
		}
	}()
	if err == nil && !t.Failed() {
		t.Errorf("Load of a model with input dims %v succeeded; want ErrInvalidModel", dims)
	}
}

// A 200-byte model whose input is UINT8 [2^40] fails to load with an
// error: the warm-up must not try to allocate a TiB, which would kill the
// process (checkModel, the trial load of an admin upload, included).
func TestLoadHugeInputAllocation(t *testing.T) {
	const name = "TestLoadHugeInputAllocation"
	if os.Getenv("ENGINE_TEST_CHILD") == name {
		initORT(t)
		model := oneNode("Identity", onnx.Uint8, onnx.Uint8, []int64{1 << 40}, []int64{1 << 40})
		m, err := Load(model, Options{})
		if err == nil {
			m.Close()
			t.Fatalf("Load succeeded")
		}
		t.Logf("Load: %v", err)
		return
	}
	out, err := inChild(t, name)
	if err != nil {
		t.Fatalf("Load of a model with input UINT8 [2^40] killed the process (%v); want an error:\n%s", err, out)
	}
}

// A fixed output over the limit is refused before ONNX Runtime allocates
// it, at Load as in Run.
func TestLoadOutputLimitBeforeAllocation(t *testing.T) {
	initORT(t)
	const n = 1 << 24 // FP32: 64 MiB
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "expand",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{1}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{n}}},
		Nodes:        []onnx.Node{{OpType: "Expand", Name: "e", Inputs: []string{"x", "s"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "s", Type: onnx.Int64, Dims: []int64{1}, Int64s: []int64{n}}},
	}}
	const limit = 1 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := Load(mo.Marshal(), Options{MaxOutputBytes: limit})
	runtime.ReadMemStats(&after)
	if m != nil {
		m.Close()
	}
	if !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("Load: got %v; want ErrOutputTooLarge", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Fatalf("Load refused a fixed output of %d bytes over the limit of %d only after allocating %d MiB of Go memory for it; want the refusal before", 4*n, limit, grown>>20)
	}
}

// passthroughModel: x [-1,2] -> outputs x (the graph input itself) and
// y = Neg(x). ONNX allows a graph output that is a graph input.
func passthroughModel(dt onnx.DataType) []byte {
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "passthrough",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: dt, Dims: []int64{-1, 2}}},
		Outputs: []onnx.ValueInfo{{Name: "x", Type: dt, Dims: []int64{-1, 2}}, {Name: "y", Type: dt, Dims: []int64{-1, 2}}},
		Nodes:   []onnx.Node{{OpType: "Neg", Name: "n", Inputs: []string{"x"}, Outputs: []string{"y"}}},
	}}
	return mo.Marshal()
}

// An output that is a graph input passed through holds this request's
// input: ONNX Runtime hands back the input's value, never writing a buffer
// given for it, so Run must not give one (with dst reuse it would return
// the previous request's bytes).
func TestPassthroughOutput(t *testing.T) {
	m := load(t, passthroughModel(onnx.Float), Options{})
	x1 := f32Bytes([]float32{1, 2, 3, 4})
	x2 := f32Bytes([]float32{10, 20, 30, 40})
	in := func(x []byte) []oip.Tensor {
		return []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{2, 2}, Data: x}}
	}

	out, err := m.Run(context.Background(), in(x1), []string{"x"}, nil)
	if err != nil {
		t.Fatalf("Run: %s", err)
	}
	if !bytes.Equal(out[0].Data, x1) {
		t.Errorf("output x of a fresh Run: got %v; want the input %v", bytesF32(out[0].Data), bytesF32(x1))
	}

	// A batcher passes the previous result back as dst: the previous
	// request's y comes back as this request's x.
	prev, err := m.Run(context.Background(), in(x1), []string{"y"}, nil)
	if err != nil {
		t.Fatalf("Run: %s", err)
	}
	out, err = m.Run(context.Background(), in(x2), []string{"x"}, prev)
	if err != nil {
		t.Fatalf("Run: %s", err)
	}
	if !bytes.Equal(out[0].Data, x2) {
		t.Errorf("output x with dst reused: got %v (the previous request's y); want the input %v", bytesF32(out[0].Data), bytesF32(x2))
	}
}

// An FP16 output passed through from the input cannot be served (FP16
// outputs need a buffer from Run, which ONNX Runtime would not fill): Load
// refuses it and says what to do.
func TestPassthroughOutputFP16(t *testing.T) {
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "passthrough16",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: onnx.Float16, Dims: []int64{-1, 2}}},
		Outputs: []onnx.ValueInfo{{Name: "x", Type: onnx.Float16, Dims: []int64{-1, 2}}},
	}}
	initORT(t)
	m, err := Load(mo.Marshal(), Options{})
	if err == nil {
		m.Close()
	}
	if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), "an Identity node") {
		t.Fatalf("Load: got %v; want ErrUnsupportedType saying to give the output a name of its own", err)
	}
}

// A Model dropped without Close leaks nothing that kills the process: its
// instances' pinned buffers are released when it is collected.
func TestModelWithoutClose(t *testing.T) {
	const name = "TestModelWithoutClose"
	if os.Getenv("ENGINE_TEST_CHILD") == name {
		initORT(t)
		func() {
			m, err := Load(onnx.DemoCTR().Model().Marshal(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, 64}, Data: make([]byte, 256)}}
			if _, err := m.Run(context.Background(), in, nil, nil); err != nil {
				t.Fatal(err)
			}
		}()
		for range 5 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		return
	}
	out, err := inChild(t, name)
	if err != nil {
		t.Fatalf("dropping a Model without Close killed the process (%v):\n%s", err, out)
	}
}

// A model whose operator refuses zeros (an integer Div by an input) loads,
// runs on other values, and answers zeros with ErrInputRejected.
func TestWarmupZeros(t *testing.T) {
	initORT(t)
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "div",
		Inputs:  []onnx.ValueInfo{{Name: "a", Type: onnx.Int64, Dims: []int64{-1}}, {Name: "b", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: onnx.Int64, Dims: []int64{-1}}},
		Nodes:   []onnx.Node{{OpType: "Div", Name: "d", Inputs: []string{"a", "b"}, Outputs: []string{"y"}}},
	}}
	m, err := Load(mo.Marshal(), Options{})
	if err != nil {
		if !strings.Contains(err.Error(), "division by zero") {
			t.Fatalf("Load: %v", err)
		}
		t.Fatalf("Load of a valid integer-division model: %v; want it loaded (a request with b=0 is the client's ErrInputRejected)", err)
	}
	defer m.Close()
	i64 := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	out, err := m.Run(context.Background(), []oip.Tensor{
		{Name: "a", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(6)},
		{Name: "b", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(3)},
	}, nil, nil)
	if err != nil || !bytes.Equal(out[0].Data, i64(2)) {
		t.Fatalf("6/3: got %v, %v; want 2", out, err)
	}
	_, err = m.Run(context.Background(), []oip.Tensor{
		{Name: "a", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(6)},
		{Name: "b", Datatype: oip.INT64, Shape: []int64{1}, Data: i64(0)},
	}, nil, nil)
	if !errors.Is(err, ErrInputRejected) {
		t.Fatalf("6/0: got %v; want ErrInputRejected", err)
	}
}
