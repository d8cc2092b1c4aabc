package oip

import (
	"strings"
	"testing"
)

// Bare NaN, Infinity and -Infinity are taken in FP16, FP32 and FP64
// tensor data only (see doc.go): not where a value is skipped, as in an
// unknown member of the request, of "parameters", of a tensor.
func TestBareNonFiniteOutsideTensorDataIsRefused(t *testing.T) {
	const in = `{"name":"x","datatype":"FP32","shape":[1],"data":[1]}`
	for _, body := range []string{
		`{"inputs":[` + in + `],"extra":NaN}`,
		`{"inputs":[` + in + `],"parameters":{"custom":Infinity}}`,
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"extra":-Infinity}]}`,
		`{"inputs":[` + in + `],"outputs":[{"name":"y","extra":NaN}]}`,
	} {
		var req InferRequest
		if err := DecodeRequest(&req, []byte(body), -1); err == nil {
			t.Errorf("DecodeRequest(%s) = nil; want an error: NaN/Infinity are not JSON outside tensor data", body)
		}
	}
}

// A bare NaN, Infinity or -Infinity in an INT32 tensor gets "data element
// 0 is a non-finite number but INT32 needs ..." (-Infinity got a syntax
// error about a digit, as if the JSON were broken).
func TestBareNonFiniteIntegerMessage(t *testing.T) {
	var req InferRequest
	ok := `{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[Infinity]}]}`
	err := DecodeRequest(&req, []byte(ok), -1)
	if err == nil || !strings.Contains(err.Error(), "non-finite number but INT32 needs") {
		t.Fatalf("Infinity: %v", err)
	}
	body := `{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[-Infinity]}]}`
	err = DecodeRequest(&req, []byte(body), -1)
	if err == nil || !strings.Contains(err.Error(), "non-finite number but INT32 needs") {
		t.Fatalf("-Infinity in INT32 data: %v; want the message Infinity and NaN get (non-finite number but INT32 needs ...)", err)
	}
}
