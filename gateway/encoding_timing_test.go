package gateway

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// BenchmarkSetBody times answering with a JSON response of random FP32
// outputs, without and with --compress-responses for a client that
// accepts gzip: what compression adds to a request.
func BenchmarkSetBody(b *testing.B) {
	for _, n := range []int{256, 2560} {
		rng := rand.New(rand.NewPCG(1, 2))
		data := make([]byte, 0, 4*n)
		for range n {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(rng.Float32()))
		}
		resp := &oip.InferResponse{ModelName: "m", ModelVersion: "1", Outputs: []oip.OutputTensor{
			{Tensor: oip.Tensor{Name: "y", Datatype: oip.FP32, Shape: []int64{int64(n)}, Data: data}}}}
		body, jsonLen := oip.AppendResponse(nil, resp)
		for _, compress := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dB/compress=%v", len(body), compress), func(b *testing.B) {
				s := &Server{cfg: Config{CompressResponses: compress}}
				sc := &scratch{}
				var ctx fasthttp.RequestCtx
				ctx.Request.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					ctx.Response.Reset()
					s.setBody(&ctx, sc, body, jsonLen)
				}
				b.ReportMetric(float64(len(ctx.Response.Body()))/float64(len(body)), "sent/body")
			})
		}
	}
}
