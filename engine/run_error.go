package engine

import "strings"

// ONNX Runtime's error messages carry no code that onnxruntime_go passes
// on, so Run tells its failures apart by their text, as ONNX Runtime 1.30
// writes it. A text that matches nothing here is ErrRunFailed.
const (
	// kernelFailure starts the message of an operator that failed:
	// "Non-zero status code returned while running Gather node.
	// Name:'lookup' Status Message: indices element out of data bounds,
	// idx=99 must be within the inclusive range [-10,9]".
	kernelFailure = "Non-zero status code returned while running "
	// statusMessage precedes the operator's own words in a kernel failure.
	statusMessage = "Status Message:"
	// mismatchOutput and mismatchShape mark the kernel failure of an
	// output whose buffer Run preallocated in a shape that the run did not
	// compute: "The output OrtValue provided for output 'y' of node 'c'
	// (Concat) has shape {3,2} but the computed output shape for this run
	// is {6,2}."
	mismatchOutput = "The output OrtValue provided for output '"
	mismatchShape  = "but the computed output shape"
)

// serverSide holds words, in lower case, of an operator's failure that is
// not the input values' fault even when they are to blame: memory that
// could not be allocated (which the same request may get on a quieter
// server), and device errors.
var serverSide = []string{
	"alloc", // "Failed to allocate memory for requested buffer of size", bad_alloc, "Memory allocation failed"
	"out of memory",
	"available memory",
	"cuda",
	"cublas",
	"cudnn",
}

// scalarOutput is onnxruntime_go's complaint about an output that ONNX
// Runtime allocated without dimensions: a model whose outputs' rank
// depends on its inputs' values (ReduceSum over input-given axes without
// keepdims) made a scalar of one it declares with dimensions.
const scalarOutput = "The shape has no dimensions"

// runError classifies an error of a session run and describes it.
func runError(err error) error {
	text := err.Error()
	if rejectsInput(text) {
		return causef(ErrInputRejected, err, "%s", ortMessage(err))
	}
	if strings.Contains(text, scalarOutput) {
		return causef(ErrInputRejected, err, "these inputs make the model return an output without dimensions (a scalar), which it declares with dimensions and infergate cannot carry; send inputs that keep every output's dimensions")
	}
	return causef(ErrRunFailed, err, "ONNX Runtime failed to run the model: %s", ortMessage(err))
}

// rejectsInput reports whether text is the failure of an operator on the
// values it was given: a kernel failure that is neither a preallocated
// output of the wrong shape (Run's doing) nor a server-side failure.
func rejectsInput(text string) bool {
	i := strings.Index(text, kernelFailure)
	if i < 0 {
		return false
	}
	if _, ok := mismatchedOutput(text); ok {
		return false
	}
	// Look only at the operator's words: the node's name is the model's.
	status := text[i:]
	if j := strings.Index(status, statusMessage); j >= 0 {
		status = status[j+len(statusMessage):]
	}
	status = strings.ToLower(status)
	for _, w := range serverSide {
		if strings.Contains(status, w) {
			return false
		}
	}
	return true
}

// mismatchedOutput reports whether text says that ONNX Runtime computed
// another shape for an output than the one of the buffer Run gave it, and
// the name of that output ("" when the text names none that can be read).
func mismatchedOutput(text string) (name string, ok bool) {
	i := strings.Index(text, mismatchOutput)
	if i < 0 || !strings.Contains(text[i:], mismatchShape) {
		return "", false
	}
	rest := text[i+len(mismatchOutput):]
	if j := strings.Index(rest, "' of node '"); j >= 0 {
		name = rest[:j]
	}
	return name, true
}
