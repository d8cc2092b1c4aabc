package oip

import (
	"strings"
	"testing"
)

// TestDecodeRequestPointsV1ColumnsToPredict: a body of KServe's v1
// protocol sent to the v2 endpoint is told where to go, as the README
// says, whether it holds "instances" or whole tensors in "inputs" (the
// one input's tensor, or an object of them by name). Before, only
// "instances" was: "inputs" got "inputs[0] must be an object, not an
// array" and "\"inputs\" must be an array, not an object".
func TestDecodeRequestPointsV1ColumnsToPredict(t *testing.T) {
	f := func(body string) {
		t.Helper()
		var req InferRequest
		err := DecodeRequest(&req, []byte(body), -1)
		if err == nil || !strings.Contains(err.Error(), "POST /v1/models/{name}:predict") {
			t.Fatalf("%s: got %v; want an error pointing to POST /v1/models/{name}:predict", body, err)
		}
	}
	f(`{"instances":[[1,2,3,4]]}`)
	f(`{"inputs":[[1,2,3,4]]}`)
	f(`{"inputs":[1,2,3,4]}`)
	f(`{"inputs":{"x":[[1,2,3,4]]}}`)
}
