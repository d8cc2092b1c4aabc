package gateway_test

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// BenchmarkMetricsScrape measures one GET /metrics as `infergate serve`
// answers it (with # HELP and # TYPE lines), without the network: the
// handler called on a prepared RequestCtx, over one version's series and
// the Go and process metrics. Most of the time is the metrics library's
// and /proc's.
func BenchmarkMetricsScrape(b *testing.B) {
	metrics.ExposeMetadata(true)
	b.Cleanup(func() { metrics.ExposeMetadata(false) })
	s := startFake(b, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	h := s.srv.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI("/metrics")
	h(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(ctx.Response.Body())))
	b.ResetTimer()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
	}
}
