package oip

// Tests of the codec at the edges of its input: nested data made of empty
// arrays, shapes with a 0, and answers other servers write.

import (
	"testing"
)

// Nested "data" with empty arrays must follow the shape like any other:
// values beside empty arrays, or empty arrays nested other than the shape
// says, are refused.
func TestNestedDataWithEmptyArrays(t *testing.T) {
	f := func(dt, shape, data string) {
		t.Helper()
		body := `{"inputs":[{"name":"x","datatype":"` + dt + `","shape":` + shape + `,"data":` + data + `}]}`
		var req InferRequest
		err := DecodeRequest(&req, []byte(body), -1)
		if err == nil {
			t.Errorf("shape %s data %s: accepted as %v %x; want an error", shape, data, req.Inputs[0].Shape, req.Inputs[0].Data)
			return
		}
		wantError(t, err, `"data"`)
	}
	// Values and empty arrays side by side: neither flat nor nested.
	f("FP32", "[2]", "[1,[],2]")
	f("INT8", "[2]", "[[],1,2]")
	f("FP32", "[2]", "[1,[[[]]],2]")
	f("BYTES", "[1]", `[[],"a"]`)
	f("FP32", "[]", "[4,[]]") // a scalar
	// Only empty arrays, in a structure the shape does not have.
	f("FP32", "[0]", "[[],[],[]]") // 3 rows for a shape of 0 rows
	f("FP32", "[5,0]", "[[]]")     // 1 row for a shape of 5
	f("FP32", "[1,0]", "[[[[]]]]") // nested 4 deep for a rank of 2
}

// A shape whose product is 0 is 0 elements, even when the product of its
// other dimensions would overflow.
func TestShapeZeroAfterLargeDims(t *testing.T) {
	if n := ShapeElements([]int64{1 << 28, 1 << 28, 1 << 28, 0}); n != 0 {
		t.Errorf("ShapeElements([2^28,2^28,2^28,0]) = %d; want 0", n)
	}
	body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[268435456,268435456,268435456,0],"data":[]}]}`
	var req InferRequest
	if err := DecodeRequest(&req, []byte(body), -1); err != nil {
		t.Errorf("DecodeRequest(%s): %s; want it accepted (0 elements, each dimension within the limit)", body, err)
	}
}

// "model_version": null, as KServe's Python server writes it for a model
// without versions, reads as no version.
func TestResponseModelVersionNull(t *testing.T) {
	body := `{"id":null,"model_name":"m","model_version":null,"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]}]}`
	var resp InferResponse
	if err := DecodeResponse(&resp, []byte(body), -1); err != nil {
		t.Fatalf("DecodeResponse(%s): %s; want it accepted with ModelVersion \"\"", body, err)
	}
	if resp.ModelVersion != "" || resp.ModelName != "m" || len(resp.Outputs) != 1 {
		t.Fatalf("got %+v", resp)
	}
}

// Binary outputs that are all empty need no Inference-Header-Content-Length:
// with no bytes after the JSON, nothing is ambiguous.
func TestEmptyBinaryOutputWithoutHeader(t *testing.T) {
	resp := InferResponse{ModelName: "det", ModelVersion: "1", Outputs: []OutputTensor{
		{Tensor: Tensor{Name: "boxes", Datatype: FP32, Shape: []int64{0, 4}, Data: []byte{}}, Binary: true},
	}}
	out, headerLen := AppendResponse(nil, &resp)
	if headerLen != len(out) {
		t.Fatalf("headerLen %d, len %d", headerLen, len(out))
	}
	var back InferResponse
	if err := DecodeResponse(&back, out, -1); err != nil {
		t.Fatalf("DecodeResponse(%s, -1): %s; want it decoded: binary_data_size 0 needs no header", out, err)
	}
}
