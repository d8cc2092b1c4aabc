package gateway_test

import (
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// BenchmarkHandler measures the gateway's own work per request, without
// the network: the handler called on a prepared RequestCtx. "ctr" runs the
// model through the batcher (one row); "ctr-cached" answers from the
// response cache; "fake" runs a backend that costs nothing, which leaves
// the protocol, routing, batcher hand-off and metrics.
func BenchmarkHandler(b *testing.B) {
	x := features(1, 1, 64)
	body := ctrRequest(x, 1)
	run := func(b *testing.B, s *testServer, uri string, body []byte) {
		h := s.srv.Handler()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI(uri)
		ctx.Request.SetBody(body)
		h(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for b.Loop() {
			ctx.Response.Reset()
			h(&ctx)
		}
	}
	b.Run("ctr", func(b *testing.B) {
		s := startDemo(b, gateway.DefaultConfig(), false)
		run(b, s, "/v2/models/ctr/infer", body)
	})
	b.Run("ctr-cached", func(b *testing.B) {
		s := startServer(b, serverOptions{cfg: gateway.DefaultConfig(),
			defaults: registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}},
			files:    map[string][]byte{"ctr/1": ctrONNX()}})
		run(b, s, "/v2/models/ctr/infer", body)
	})
	b.Run("fake", func(b *testing.B) {
		s := startFake(b, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
		run(b, s, fakeInfer, fakeRequest)
	})
	b.Run("live", func(b *testing.B) {
		s := startFake(b, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
		h := s.srv.Handler()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodGet)
		ctx.Request.SetRequestURI("/v2/health/live")
		b.ReportAllocs()
		for b.Loop() {
			ctx.Response.Reset()
			h(&ctx)
		}
	})
}
