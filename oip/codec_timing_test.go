package oip

// Benchmarks of the codec on FP32 tensors of 64 and 4,096 elements (a row of
// the ctr demo model and a batch of 64 rows), as JSON and as binary tensors:
//
//	go test -run='^$' -bench='Request|Response' -benchmem ./oip/
//
// MB/s counts the encoded body.

import (
	"fmt"
	"testing"
)

// benchRequest returns a request with one FP32 input of n elements.
func benchRequest(n int) *InferRequest {
	_, vals := floatBody(n, 7)
	in := Tensor{Name: "features", Datatype: FP32, Shape: []int64{int64(n / 64), 64}}
	if n < 64 {
		in.Shape = []int64{1, int64(n)}
	}
	for _, v := range vals {
		in.Data = appendElem(in.Data, FP32, float64(v))
	}
	return &InferRequest{ID: "42", Inputs: []Tensor{in}}
}

// benchResponse returns a response with one FP32 output of n elements.
func benchResponse(n int, binary bool) *InferResponse {
	in := benchRequest(n).Inputs[0]
	in.Name = "score"
	return &InferResponse{ModelName: "ctr", ModelVersion: "1", ID: "42", Outputs: []OutputTensor{{Tensor: in, Binary: binary}}}
}

// benchCases runs bench for every size and encoding.
func benchCases(b *testing.B, bench func(b *testing.B, n int, binary bool)) {
	for _, n := range []int{64, 4096} {
		for _, binary := range []bool{false, true} {
			enc := "json"
			if binary {
				enc = "binary"
			}
			b.Run(fmt.Sprintf("%s/fp32x%d", enc, n), func(b *testing.B) {
				b.ReportAllocs()
				bench(b, n, binary)
			})
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	benchCases(b, func(b *testing.B, n int, binary bool) {
		body, headerLen := AppendRequest(nil, benchRequest(n), binary)
		b.SetBytes(int64(len(body)))
		var req InferRequest
		for b.Loop() {
			if err := DecodeRequest(&req, body, headerLen); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendRequest(b *testing.B) {
	benchCases(b, func(b *testing.B, n int, binary bool) {
		req := benchRequest(n)
		buf, _ := AppendRequest(nil, req, binary)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf, _ = AppendRequest(buf[:0], req, binary)
		}
	})
}

func BenchmarkAppendResponse(b *testing.B) {
	benchCases(b, func(b *testing.B, n int, binary bool) {
		resp := benchResponse(n, binary)
		buf, _ := AppendResponse(nil, resp)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf, _ = AppendResponse(buf[:0], resp)
		}
	})
}

func BenchmarkDecodeResponse(b *testing.B) {
	benchCases(b, func(b *testing.B, n int, binary bool) {
		body, headerLen := AppendResponse(nil, benchResponse(n, binary))
		b.SetBytes(int64(len(body)))
		var resp InferResponse
		for b.Loop() {
			if err := DecodeResponse(&resp, body, headerLen); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCheckInputs(b *testing.B) {
	req := benchRequest(4096)
	want := []TensorMetadata{{Name: "features", Datatype: FP32, Shape: []int64{-1, 64}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckInputs(req.Inputs, want, 256); err != nil {
			b.Fatal(err)
		}
	}
}
