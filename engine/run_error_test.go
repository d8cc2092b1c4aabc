package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// captureStderr runs fn with file descriptor 2, where ONNX Runtime's
// logger writes, redirected to a pipe, and returns what was written.
func captureStderr(t *testing.T, fn func()) []byte {
	t.Helper()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Skipf("dup: %s", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Skipf("dup3: %s", err)
	}
	fn()
	syscall.Dup3(saved, 2, 0)
	syscall.Close(saved)
	w.Close()
	return <-done
}

// embeddingModel is ids INT64 [-1] -> emb FP32 [-1,4] = Gather(table, ids)
// over a table of 10 rows: an embedding lookup, whose output Run
// preallocates.
func embeddingModel() []byte {
	mo := onnx.Model{Graph: onnx.Graph{
		Name:         "embedding",
		Inputs:       []onnx.ValueInfo{{Name: "ids", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs:      []onnx.ValueInfo{{Name: "emb", Type: onnx.Float, Dims: []int64{-1, 4}}},
		Nodes:        []onnx.Node{{OpType: "Gather", Name: "lookup", Inputs: []string{"table", "ids"}, Outputs: []string{"emb"}}},
		Initializers: []onnx.Tensor{{Name: "table", Type: onnx.Float, Dims: []int64{10, 4}, Floats: make([]float32, 40)}},
	}}
	return mo.Marshal()
}

// TestFailedRunNotRetried sends an embedding id past the table. Run must
// not run the model again (only a preallocated output of the wrong shape
// calls for that), and the error is the client's: ErrInputRejected with
// ONNX Runtime's words and the node, not ErrRunFailed.
func TestFailedRunNotRetried(t *testing.T) {
	m := load(t, embeddingModel(), Options{})
	in := []oip.Tensor{{Name: "ids", Datatype: oip.INT64, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint64(nil, 99)}}
	var err error
	logged := captureStderr(t, func() {
		_, err = m.Run(context.Background(), in, nil, nil)
	})
	runs := bytes.Count(logged, []byte("running Gather node"))
	if runs != 1 {
		t.Errorf("one Run with a bad id executed the model %d times; want 1 (retry only when ONNX Runtime rejects a preallocated output's shape)", runs)
	}
	if errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad id: got ErrRunFailed (HTTP 500) %q; want an error the gateway answers with 400", err)
	}
	const want = `node "lookup" (Gather): indices element out of data bounds, idx=99 must be within the inclusive range [-10,9]`
	if !errors.Is(err, ErrInputRejected) || err.Error() != want {
		t.Errorf("bad id: got %v; want ErrInputRejected %q", err, want)
	}
	if g := &m.guesses[0]; g.off.Load() || g.debt.Load() != 0 {
		t.Errorf("a bad id counted against the output's shape guess: debt %d, off %v", g.debt.Load(), g.off.Load())
	}
	// The model still works, on the preallocated path.
	in[0].Data = binary.LittleEndian.AppendUint64(nil, 9)
	if out, err := m.Run(context.Background(), in, nil, nil); err != nil || oip.FormatShape(out[0].Shape) != "[1,4]" {
		t.Fatalf("good id: got %v, %v; want [1,4]", out, err)
	}
}

// TestAllocationFailure checks that an operator that cannot get memory is
// ErrRunFailed, though the input asked for it: the server may be short of
// memory, and the same request may pass later.
func TestAllocationFailure(t *testing.T) {
	mo := onnx.Model{Graph: onnx.Graph{
		Name:    "fill",
		Inputs:  []onnx.ValueInfo{{Name: "shape", Type: onnx.Int64, Dims: []int64{1}}},
		Outputs: []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{-1}}},
		Nodes:   []onnx.Node{{OpType: "ConstantOfShape", Name: "fill", Inputs: []string{"shape"}, Outputs: []string{"y"}}},
	}}
	m := load(t, mo.Marshal(), Options{})
	// 2^61 elements of 4 bytes: more than any address space holds, so the
	// allocation fails whatever the machine's overcommit policy.
	in := []oip.Tensor{{Name: "shape", Datatype: oip.INT64, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint64(nil, 1<<61)}}
	_, err := m.Run(context.Background(), in, nil, nil)
	if !errors.Is(err, ErrRunFailed) || errors.Is(err, ErrInputRejected) {
		t.Fatalf("ConstantOfShape of 2^61 elements: got %v; want ErrRunFailed", err)
	}
	// A negative size is the input's fault.
	in[0].Data = binary.LittleEndian.AppendUint64(nil, 1<<64-5)
	if _, err = m.Run(context.Background(), in, nil, nil); !errors.Is(err, ErrInputRejected) {
		t.Fatalf("ConstantOfShape of -5 elements: got %v; want ErrInputRejected", err)
	}
}

func TestRejectsInput(t *testing.T) {
	f := func(text string, want bool) {
		t.Helper()
		if got := rejectsInput(text); got != want {
			t.Fatalf("rejectsInput(%q) = %v; want %v", text, got, want)
		}
	}
	const run = "Error running network: "
	f(run+"Non-zero status code returned while running Gather node. Name:'lookup' Status Message: indices element out of data bounds, idx=99 must be within the inclusive range [-10,9]", true)
	f(run+"Non-zero status code returned while running Reshape node. Name:'r' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped to the requested shape. Input shape:{3,4}, requested shape:{2,2}", true)
	// A node's name is the model's, not the failure's.
	f(run+"Non-zero status code returned while running Gather node. Name:'alloc_cuda_lookup' Status Message: indices element out of data bounds, idx=99 must be within the inclusive range [-10,9]", true)
	f(run+"Non-zero status code returned while running ConstantOfShape node. Name:'c' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 4398046511104", false)
	f(run+"Non-zero status code returned while running MatMul node. Name:'m' Status Message: std::bad_alloc", false)
	f(run+"Non-zero status code returned while running MatMul node. Name:'m' Status Message: CUDA error cudaErrorMemoryAllocation:out of memory", false)
	f(run+"Non-zero status code returned while running Conv node. Name:'c' Status Message: CUDNN failure 4: CUDNN_STATUS_INTERNAL_ERROR", false)
	f(run+"Non-zero status code returned while running Concat node. Name:'c' Status Message: /onnxruntime_src/onnxruntime/core/framework/op_kernel.cc:83 virtual OrtValue* onnxruntime::OpKernelContext::OutputMLValue(int, const onnxruntime::TensorShape&) [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : The output OrtValue provided for output 'y' of node 'c' (Concat) has shape {3,2} but the computed output shape for this run is {6,2}. When calling Run() with pre-allocated output OrtValues on a model with dynamic output shapes, either supply unallocated output OrtValues or ensure the pre-allocated shapes match the expected output shapes for each run.", false)
	f(run+"Got invalid dimensions for input: x for the following indices", false)
	f("Error creating tensor from ort: Invalid tensor shape: The shape has no dimensions", false)
}

func TestMismatchedOutput(t *testing.T) {
	f := func(text, wantName string, wantOK bool) {
		t.Helper()
		name, ok := mismatchedOutput(text)
		if name != wantName || ok != wantOK {
			t.Fatalf("mismatchedOutput(%q) = %q, %v; want %q, %v", text, name, ok, wantName, wantOK)
		}
	}
	f("Non-zero status code returned while running Concat node. Name:'c' Status Message: [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : The output OrtValue provided for output 'y' of node 'c' (Concat) has shape {3,2} but the computed output shape for this run is {6,2}.", "y", true)
	f("The output OrtValue provided for output 'a b' of node 'n' (Neg) has shape {1} but the computed output shape for this run is {2}.", "a b", true)
	f("The output OrtValue provided for output 'y' has shape {1} but the computed output shape for this run is {2}.", "", true)
	f("Non-zero status code returned while running Gather node. Name:'lookup' Status Message: indices element out of data bounds", "", false)
	f("", "", false)
}

// A model whose output's rank depends on its inputs' values (ReduceSum
// over axes the request gives, without keepdims) answers inputs that make
// a scalar of it with ErrInputRejected, saying so, not a server failure.
func TestScalarOutputRejected(t *testing.T) {
	mo := onnx.Model{Opset: 18, Graph: onnx.Graph{
		Name:    "reduce",
		Inputs:  []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{-1, -1}}, {Name: "axes", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs: []onnx.ValueInfo{{Name: "s", Type: onnx.Float, Dims: []int64{-1}}},
		Nodes: []onnx.Node{
			{OpType: "ReduceSum", Name: "sum", Inputs: []string{"x", "axes"}, Outputs: []string{"s"}, Attrs: []onnx.Attr{onnx.AttrInt("keepdims", 0)}},
		},
	}}
	m := load(t, mo.Marshal(), Options{})
	axes := func(v ...int64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, uint64(x))
		}
		return b
	}
	in := []oip.Tensor{
		{Name: "x", Datatype: oip.FP32, Shape: []int64{2, 2}, Data: make([]byte, 16)},
		{Name: "axes", Datatype: oip.INT64, Shape: []int64{1}, Data: axes(0)},
	}
	if _, err := m.Run(context.Background(), in, nil, nil); err != nil {
		t.Fatalf("axes [0]: %v", err)
	}
	in[1] = oip.Tensor{Name: "axes", Datatype: oip.INT64, Shape: []int64{2}, Data: axes(0, 1)}
	_, err := m.Run(context.Background(), in, nil, nil)
	if !errors.Is(err, ErrInputRejected) || !bytes.Contains([]byte(err.Error()), []byte("an output without dimensions (a scalar)")) {
		t.Fatalf("axes [0,1]: %v; want ErrInputRejected saying the output became a scalar", err)
	}
}
