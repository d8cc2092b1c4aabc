package engine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibEnv is the environment variable that names the ONNX Runtime library
// when no flag does.
const LibEnv = "INFERGATE_ORT_LIB"

// defaultLib is where `make setup` puts the library, relative to the
// repository root or to the directory above bin/.
const defaultLib = "lib/libonnxruntime.so.1"

// The process-wide ONNX Runtime state. onnxruntime_go keeps one
// environment per process, so Init sets these once.
var (
	// initMu protects libPath and version.
	initMu sync.Mutex
	// libPath is the absolute path of the loaded library; "" before Init.
	libPath string
	// version is the loaded library's version string.
	version string
)

// ResolveLibPath picks the ONNX Runtime library: flagValue if set, else
// $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 under the working
// directory when it exists, else ../lib/libonnxruntime.so.1 beside the
// executable's directory (bin/infergate finds lib/) when it exists. When
// none exists it returns the working-directory path, so that Init names it
// in its error.
func ResolveLibPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv(LibEnv); p != "" {
		return p
	}
	local, err := filepath.Abs(defaultLib)
	if err != nil {
		local = defaultLib
	}
	if isFile(local) {
		return local
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(filepath.Dir(exe)), defaultLib)
		if isFile(p) {
			return p
		}
	}
	return local
}

// Init loads the ONNX Runtime shared library at path and creates the
// process's ONNX Runtime environment, logging warnings and worse to
// stderr. It is safe to call from several goroutines and more than once
// with the same library; a call with another library fails with
// ErrAlreadyInitialized, because a process can hold only one. An empty
// path means ResolveLibPath("").
func Init(path string) error {
	if path == "" {
		path = ResolveLibPath("")
	}
	st, err := os.Stat(path)
	if err != nil || st.IsDir() {
		return errorf(ErrLibraryNotFound, "ONNX Runtime library not found at %s: run \"make setup\" or point --ort-lib / %s at libonnxruntime.so", path, LibEnv)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}

	initMu.Lock()
	defer initMu.Unlock()
	if libPath != "" {
		if loaded, err := os.Stat(libPath); err == nil && os.SameFile(loaded, st) {
			return nil
		}
		return errorf(ErrAlreadyInitialized, "cannot load ONNX Runtime from %s: this process already loaded %s, and a process can hold only one", abs, libPath)
	}
	if ort.IsInitialized() {
		return errorf(ErrAlreadyInitialized, "cannot load ONNX Runtime from %s: another package of this process already initialized onnxruntime_go", abs)
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelWarning()); err != nil {
		return causef(ErrLibraryLoad, err, "cannot load ONNX Runtime library at %s (infergate needs ONNX Runtime 1.24 or newer): %s", abs, ortMessage(err))
	}
	libPath = abs
	version = ort.GetVersion()
	return nil
}

// RuntimeVersion returns the version of the loaded ONNX Runtime library,
// such as "1.30.0", or "" before Init.
func RuntimeVersion() string {
	initMu.Lock()
	defer initMu.Unlock()
	return version
}

// LibPath returns the absolute path of the loaded ONNX Runtime library, or
// "" before Init.
func LibPath() string {
	initMu.Lock()
	defer initMu.Unlock()
	return libPath
}

// isFile reports whether p names an existing file that is not a directory.
func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// ortMessage returns the part of an ONNX Runtime error that a person can
// act on, on one line: without onnxruntime_go's "Error running network:"
// prefixes, ONNX Runtime's "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :"
// codes, source locations and C++ signatures, but with the node that
// failed.
func ortMessage(err error) string {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	for strings.HasPrefix(msg, "Error ") {
		i := strings.Index(msg, ": ")
		if i < 0 {
			break
		}
		msg = msg[i+2:]
	}
	// A kernel failure reads "Non-zero status code returned while running
	// MatMul node. Name:'/l1/MatMul' Status Message: ...".
	node := ""
	const running, named, status = "while running ", " node. Name:'", "Status Message:"
	if i := strings.Index(msg, running); i >= 0 {
		rest := msg[i+len(running):]
		if j := strings.Index(rest, named); j >= 0 {
			op, name := rest[:j], rest[j+len(named):]
			if k := strings.IndexByte(name, '\''); k >= 0 {
				node = "node " + strconv.Quote(name[:k]) + " (" + op + "): "
				msg = strings.TrimSpace(name[k+1:])
				msg = strings.TrimSpace(strings.TrimPrefix(msg, status))
			}
		}
	}
	const marker = "[ONNXRuntimeError] : "
	if i := strings.LastIndex(msg, marker); i >= 0 {
		// What follows is "CODE_NUMBER : CODE_NAME : message".
		if parts := strings.SplitN(msg[i+len(marker):], " : ", 3); len(parts) == 3 {
			return node + strings.TrimSpace(parts[2])
		}
	}
	// "/onnxruntime_src/.../reshape_helper.h:91 onnxruntime::ReshapeHelper::
	// ReshapeHelper(const TensorShape&, bool) input_shape_size == ...".
	if strings.HasPrefix(msg, "/") {
		if i := strings.IndexByte(msg, ' '); i >= 0 {
			msg = msg[i+1:]
		}
		if strings.HasPrefix(msg, "onnxruntime::") {
			msg = skipSignature(msg)
		}
	}
	return node + strings.TrimSpace(msg)
}

// skipSignature returns msg after the C++ function signature it starts
// with, or msg when the parentheses do not balance.
func skipSignature(msg string) string {
	open := strings.IndexByte(msg, '(')
	if open < 0 {
		return msg
	}
	depth := 0
	for i := open; i < len(msg); i++ {
		switch msg[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return msg[i+1:]
			}
		}
	}
	return msg
}
