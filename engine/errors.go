package engine

import (
	"errors"
	"fmt"
)

// Sentinel errors. The errors that this package returns match them with
// errors.Is; their messages say what happened with the values involved and
// do not repeat the sentinel's own text.
var (
	// ErrLibraryNotFound means the ONNX Runtime shared library is not at
	// the path given to Init.
	ErrLibraryNotFound = errors.New("ONNX Runtime library not found")
	// ErrLibraryLoad means the file exists but cannot be loaded as ONNX
	// Runtime (wrong file, wrong architecture, too old a version).
	ErrLibraryLoad = errors.New("cannot load ONNX Runtime library")
	// ErrAlreadyInitialized means Init was called again with another
	// library than the one the process has loaded.
	ErrAlreadyInitialized = errors.New("ONNX Runtime is already initialized from another library")
	// ErrNotInitialized means Load was called before Init.
	ErrNotInitialized = errors.New("ONNX Runtime is not initialized")
	// ErrInvalidOptions means Options that fail Validate.
	ErrInvalidOptions = errors.New("invalid engine options")
	// ErrDeviceUnavailable means the device in Options cannot be used with
	// the loaded library or on this machine.
	ErrDeviceUnavailable = errors.New("device unavailable")
	// ErrInvalidModel means ONNX Runtime cannot load the model bytes, or
	// the warm-up inference fails.
	ErrInvalidModel = errors.New("invalid model")
	// ErrUnsupportedType means a model input or output whose type the
	// engine cannot carry: string tensors, sequences, maps, bfloat16 and
	// the like.
	ErrUnsupportedType = errors.New("unsupported tensor type")
	// ErrInvalidInput means a Run whose inputs do not fit the model: an
	// unknown, missing or repeated name, a wrong datatype or shape, or data
	// of the wrong length. It is the caller's fault (HTTP 400).
	ErrInvalidInput = errors.New("invalid input")
	// ErrUnknownOutput means a Run that asks for an output the model does
	// not have, or asks for one twice (HTTP 400).
	ErrUnknownOutput = errors.New("unknown output")
	// ErrInputRejected means an operator of the model failed on the input
	// values of a Run whose inputs fit the model's declared inputs: an
	// index past the end of an embedding table (Gather), a Reshape or a
	// broadcast that the sizes sent do not allow. It is the caller's fault
	// (HTTP 400); the message is ONNX Runtime's, naming the node, such as
	// `node "lookup" (Gather): indices element out of data bounds, idx=99
	// must be within the inclusive range [-10,9]`. Failures to allocate
	// memory are ErrRunFailed instead. With batching, a Run carries the
	// rows of several requests, and one bad request fails them all.
	ErrInputRejected = errors.New("the model rejected the input values")
	// ErrOutputTooLarge means a Run whose outputs would take more than
	// Options.MaxOutputBytes: the message names the largest output, its
	// shape and size, and the limit. The request asks for too much at once
	// (HTTP 413): fewer rows per request, or a higher limit, help.
	ErrOutputTooLarge = errors.New("output too large")
	// ErrRunFailed means ONNX Runtime failed to run inputs that passed
	// validation for a reason that is not the input values' fault: memory
	// it could not allocate, a device error, a bug (HTTP 500).
	ErrRunFailed = errors.New("inference failed")
	// ErrClosed means the Model was closed.
	ErrClosed = errors.New("model closed")
)

// taggedError is an error with a message written out in full that matches
// a sentinel, and optionally a cause, with errors.Is and errors.As.
type taggedError struct {
	msg      string
	sentinel error
	cause    error
}

func (e *taggedError) Error() string { return e.msg }

func (e *taggedError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

// errorf returns an error with the formatted message that matches sentinel.
func errorf(sentinel error, format string, args ...any) error {
	return &taggedError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// causef is errorf with an underlying cause that errors.Is also matches.
// The caller puts what it wants of the cause's text into the message.
func causef(sentinel, cause error, format string, args ...any) error {
	return &taggedError{msg: fmt.Sprintf(format, args...), sentinel: sentinel, cause: cause}
}
