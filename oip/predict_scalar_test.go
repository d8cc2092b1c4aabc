package oip

import (
	"strings"
	"testing"
)

// TestDecodePredictRequestScalarInput: a model whose input is a scalar
// (shape [], which ONNX allows) has no first dimension to stack rows
// along: "instances" gets a 400 saying so. Before, the decoder panicked
// slicing the input's shape (in.Shape[1:] of an empty shape), a 500 from
// the server for the client's bytes.
func TestDecodePredictRequestScalarInput(t *testing.T) {
	in := []TensorMetadata{{Name: "x", Datatype: FP32, Shape: []int64{}}}
	for _, body := range []string{`{"instances":[1,2]}`, `{"instances":[{"x":1}]}`} {
		var req InferRequest
		_, err := DecodePredictRequest(&req, []byte(body), in)
		if err == nil || !strings.Contains(err.Error(), `has shape [], no first dimension to stack the rows of "instances" along`) {
			t.Fatalf("%s: got %v; want an error saying the input has no first dimension", body, err)
		}
	}
}
