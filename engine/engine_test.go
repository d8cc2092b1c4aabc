package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/testenv"
)

// initORT loads ONNX Runtime for the test binary. Init itself makes the
// environment once per process, so every test that needs the runtime just
// calls this; there is no TestMain because testenv.ORTLib needs a
// testing.TB.
func initORT(tb testing.TB) {
	tb.Helper()
	if err := Init(testenv.ORTLib(tb)); err != nil {
		tb.Fatalf("cannot initialize ONNX Runtime: %s", err)
	}
}

func TestInit(t *testing.T) {
	initORT(t)
	lib := testenv.ORTLib(t)

	// Again with the same library, also through another spelling of the
	// path, is a no-op.
	if err := Init(lib); err != nil {
		t.Fatalf("second Init(%q): %s", lib, err)
	}
	rel, err := filepath.Rel(mustGetwd(t), lib)
	if err != nil {
		t.Fatalf("cannot make %s relative: %s", lib, err)
	}
	if err := Init(rel); err != nil {
		t.Fatalf("Init(%q) of the same library: %s", rel, err)
	}
	if got := LibPath(); got != lib {
		t.Fatalf("LibPath() = %q; want %q", got, lib)
	}
	if v := RuntimeVersion(); v == "" || strings.Count(v, ".") != 2 {
		t.Fatalf("RuntimeVersion() = %q; want a version like 1.30.0", v)
	}

	// Another library is refused: a process holds one.
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(other, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Init(other)
	if !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("Init(%q) after Init(%q): got %v; want ErrAlreadyInitialized", other, lib, err)
	}

	// A missing file says so in one line that tells how to fix it.
	missing := filepath.Join(t.TempDir(), "nope", "libonnxruntime.so.1")
	err = Init(missing)
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("Init(%q): got %v; want ErrLibraryNotFound", missing, err)
	}
	want := `ONNX Runtime library not found at ` + missing + `: run "make setup" or point --ort-lib / INFERGATE_ORT_LIB at libonnxruntime.so`
	if err.Error() != want {
		t.Fatalf("Init(%q):\ngot  %s\nwant %s", missing, err, want)
	}
}

func TestResolveLibPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(LibEnv, "")

	f := func(flag, want string) {
		t.Helper()
		if got := ResolveLibPath(flag); got != want {
			t.Fatalf("ResolveLibPath(%q) = %q; want %q", flag, got, want)
		}
	}
	local := filepath.Join(dir, "lib", "libonnxruntime.so.1")

	// Nothing exists: the working-directory path, for Init's message.
	f("", local)
	// The flag wins over everything.
	f("/opt/ort/libonnxruntime.so", "/opt/ort/libonnxruntime.so")
	// lib/ under the working directory when it exists.
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f("", local)
	// The environment wins over lib/, the flag over the environment.
	t.Setenv(LibEnv, "/env/libonnxruntime.so")
	f("", "/env/libonnxruntime.so")
	f("/flag/libonnxruntime.so", "/flag/libonnxruntime.so")
}

func TestOptionsValidate(t *testing.T) {
	f := func(o Options, want string) {
		t.Helper()
		err := o.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("%+v: got %q; want no error", o, err)
			}
			return
		}
		if err == nil || err.Error() != want {
			t.Fatalf("%+v: got %v; want %q", o, err, want)
		}
		if !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("%+v: %v does not match ErrInvalidOptions", o, err)
		}
	}
	f(Options{}, "")
	f(DefaultOptions(), "")
	f(Options{Instances: 4, IntraOpThreads: 2, InterOpThreads: 2, Device: "cuda:1"}, "")
	f(Options{Device: "cuda:0"}, "")
	f(Options{Device: "gpu"}, `device "gpu": use "cpu" or "cuda:N"`)
	f(Options{Device: "cuda"}, `device "cuda": use "cpu" or "cuda:N" with N the GPU index, such as "cuda:0"`)
	f(Options{Device: "cuda:x"}, `device "cuda:x": N in "cuda:N" must be a GPU index such as 0`)
	f(Options{Device: "cuda:-1"}, `device "cuda:-1": N in "cuda:N" must be a GPU index such as 0`)
	f(Options{Device: "cuda:+1"}, `device "cuda:+1": N in "cuda:N" must be a GPU index such as 0`)
	f(Options{Instances: -1}, "instances -1: must be between 1 and 256 (0 means 1)")
	f(Options{Instances: 1000}, "instances 1000: must be between 1 and 256 (0 means 1)")
	f(Options{IntraOpThreads: -2}, "intra-op threads -2: must be between 1 and 1024 (0 means 1)")
	f(Options{InterOpThreads: 5000}, "inter-op threads 5000: must be between 1 and 1024 (0 means 1)")
	f(Options{MaxOutputBytes: 1}, "")
	f(Options{MaxOutputBytes: -1}, "max output bytes -1: must be positive (0 means 268435456, 256 MiB)")
	if got := DefaultOptions().MaxOutputBytes; got != 256<<20 {
		t.Fatalf("DefaultOptions().MaxOutputBytes = %d; want 256 MiB", got)
	}
}

func TestOrtMessage(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := ortMessage(errors.New(in)); got != want {
			t.Fatalf("ortMessage(%q):\ngot  %q\nwant %q", in, got, want)
		}
	}
	f("plain", "plain")
	f("Error running network: Non-zero status code returned while running Reshape node. Name:'r' Status Message: /src/reshape_helper.h:47 onnxruntime::ReshapeHelper [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : The input tensor cannot be reshaped to the requested shape. Input shape:{3,4}, requested shape:{2,2}\n",
		`node "r" (Reshape): The input tensor cannot be reshaped to the requested shape. Input shape:{3,4}, requested shape:{2,2}`)
	f("Error creating C session: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from memory failed:Protobuf parsing failed.",
		"Load model from memory failed:Protobuf parsing failed.")
	f("Error creating temporary session: Failed to load model because protobuf parsing failed.",
		"Failed to load model because protobuf parsing failed.")
	f("Error running network: Non-zero status code returned while running Reshape node. Name:'r' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped to the requested shape. Input shape:{3,4}, requested shape:{2,2}",
		`node "r" (Reshape): input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped to the requested shape. Input shape:{3,4}, requested shape:{2,2}`)
	f("Error running network: Non-zero status code returned while running Concat node. Name:'c' Status Message: /onnxruntime_src/onnxruntime/core/framework/op_kernel.cc:83 virtual OrtValue* onnxruntime::OpKernelContext::OutputMLValue(int, const onnxruntime::TensorShape&) [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : The output OrtValue provided for output 'y' of node 'c' (Concat) has shape {3,2} but the computed output shape for this run is {6,2}.",
		`node "c" (Concat): The output OrtValue provided for output 'y' of node 'c' (Concat) has shape {3,2} but the computed output shape for this run is {6,2}.`)
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
