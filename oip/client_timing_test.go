package oip

// The client's own cost per call, against the in-process test server over
// an in-memory listener (so the server's work is in the numbers too):
//
//	go test -run='^$' -bench=BenchmarkClientInfer -benchmem ./oip/

import (
	"fmt"
	"testing"
)

func BenchmarkClientInfer(b *testing.B) {
	for _, binary := range []bool{false, true} {
		b.Run(fmt.Sprintf("binary=%v", binary), func(b *testing.B) {
			s := startTestServer(b)
			c := s.client("http://gateway")
			req := &InferRequest{Inputs: []Tensor{tensor("features", FP32, shape(2, 4), 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)},
				BinaryDataOutput: binary}
			var resp InferResponse
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Infer("sum", "", req, &resp, binary); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
