package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// TestRawRequest checks the shape a raw binary request takes from the
// model, and each refusal's message.
func TestRawRequest(t *testing.T) {
	f := func(inputs []oip.TensorMetadata, batchable bool, bodyLen int, want string) {
		t.Helper()
		v := &registry.Version{Model: "m", Inputs: inputs, Batchable: batchable}
		var req oip.InferRequest
		err := rawRequest(&req, v, make([]byte, bodyLen))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			in := req.Inputs[0]
			got = fmt.Sprintf("%s %s %v %d binary=%v", in.Name, in.Datatype, in.Shape, len(in.Data), req.BinaryDataOutput)
		}
		if !strings.Contains(got, want) {
			t.Fatalf("%v batchable=%v, %d bytes: got %q; want %q", inputs, batchable, bodyLen, got, want)
		}
	}
	x := func(dt oip.DataType, shape ...int64) []oip.TensorMetadata {
		return []oip.TensorMetadata{{Name: "x", Datatype: dt, Shape: shape}}
	}
	f(x(oip.FP32, -1, 64), true, 256, "x FP32 [1 64] 256 binary=true")
	f(x(oip.FP32, -1, -1, 3), true, 48, "x FP32 [1 4 3] 48")
	f(x(oip.INT64, 2, 3), false, 48, "x INT64 [2 3] 48")
	f(x(oip.UINT8, -1), false, 7, "x UINT8 [7] 7")
	f(x(oip.FP16, -1, 8), true, 16, "x FP16 [1 8] 16")

	f(x(oip.FP32, -1, 64), true, 0, "the body is empty")
	f(x(oip.FP32, -1, 64), true, 255, "the body's 255 bytes are not a whole number of FP32 elements of input \"x\" (4 bytes each)")
	f(x(oip.FP32, -1, 64), true, 512, "the body holds 128 FP32 elements, which do not fill input \"x\" of shape [-1,64] at batch 1")
	f(x(oip.FP32, -1, -1, 3), true, 20, "the body holds 5 FP32 elements")
	f(x(oip.FP32, -1, -1, -1), true, 16, "more than one variable dimension besides the batch")
	f(x(oip.BYTES, -1), true, 16, "cannot carry input \"x\" of datatype BYTES")
	// 2^62+1 times 4 wraps around to 4: the body's 4 elements must not
	// take a shape of 2^64+4.
	f(x(oip.FP32, -1, 1<<62+1, 4), true, 16, "input \"x\" has shape [-1,4611686018427387905,4], too large for any body")
	two := append(x(oip.FP32, -1, 2), oip.TensorMetadata{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 2}})
	f(two, true, 8, "is for a model of one input; model \"m\" has 2")
}
