package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
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
	// The log's cost (Config.Logging, lines to io.Discard): at verbose
	// level 0 a request looks at the level alone; at 1 it writes a line.
	for _, v := range []uint32{0, 1} {
		b.Run(fmt.Sprintf("fake-verbose-%d", v), func(b *testing.B) {
			ls := logging.DefaultSettings()
			ls.VerboseLevel = v
			cfg := gateway.DefaultConfig()
			cfg.Logging = logging.New(io.Discard, ls)
			cfg.Logf = cfg.Logging.Logf
			s := startFake(b, newFakeBackend(), cfg, registry.ModelConfig{})
			run(b, s, fakeInfer, fakeRequest)
		})
	}
	// The traffic log's cost: an id for every response, and a sample of
	// the predictions encoded and handed to the log's writer.
	for _, c := range []struct {
		percent float64
		arms    bool // an A/A experiment splits the requests
	}{{1, false}, {100, false}, {1, true}} {
		name := fmt.Sprintf("fake-traffic-%g%%", c.percent)
		if c.arms {
			name += "-arms"
		}
		b.Run(name, func(b *testing.B) {
			tc := trafficlog.DefaultConfig()
			tc.Dir = b.TempDir()
			tc.Logf = b.Logf
			tl, err := trafficlog.Open(tc)
			if err != nil {
				b.Fatal(err)
			}
			cfg := gateway.DefaultConfig()
			cfg.TrafficLog, cfg.TrafficPercent = tl, c.percent
			s := startFake(b, newFakeBackend(), cfg, registry.ModelConfig{})
			b.Cleanup(func() { tl.Close() })
			if c.arms {
				s.repo.SetExperiment("fake", &route.Experiment{Name: "aa", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 1, Weight: 1}}})
			}
			run(b, s, "/v2/models/fake/infer", fakeRequest)
		})
	}
	// Many callers at once on the free backend: requests queue, a worker
	// runs them in batches and wakes their callers, which "fake" alone
	// never does.
	b.Run("fake-parallel", func(b *testing.B) {
		s := startFake(b, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
		runParallel(b, s, 8, fakeInfer, fakeRequest)
		// The share of requests whose callers a worker woke.
		b.ReportMetric(metricSum(b, s, "infergate_inference_wake_duration_seconds_count{")/float64(b.N), "woken/op")
	})
	// ctr from many callers at once: the batched path on ONNX Runtime
	// without the network. Under taskset -c N (one processor) ns/op is
	// the CPU a request costs the gateway from its body to its response.
	b.Run("ctr-parallel", func(b *testing.B) {
		s := startServer(b, serverOptions{cfg: gateway.DefaultConfig(),
			defaults: registry.ModelConfig{MaxBatchSize: 64}, // serve's default
			files:    map[string][]byte{"ctr/1": ctrONNX()}})
		runParallel(b, s, 32, "/v2/models/ctr/infer", body)
		b.ReportMetric(float64(b.N)/metricSum(b, s, "infergate_inference_exec_count_total{"), "rows/batch")
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

// metricSum adds up the values of the series of s's /metrics whose line
// starts with prefix.
func metricSum(tb testing.TB, s *testServer, prefix string) float64 {
	var m bytes.Buffer
	s.set.WritePrometheus(&m)
	sum := 0.0
	for line := range strings.Lines(m.String()) {
		if strings.HasPrefix(line, prefix) {
			_, v, _ := strings.Cut(line, "} ")
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatalf("%s: %v", line, err)
			}
			sum += n
		}
	}
	return sum
}

// runParallel calls s's handler with body on uri from parallelism
// goroutines per processor, b.N times in all, and fails on any answer but
// 200.
func runParallel(b *testing.B, s *testServer, parallelism int, uri string, body []byte) {
	h := s.srv.Handler()
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI(uri)
		ctx.Request.SetBody(body)
		for pb.Next() {
			ctx.Response.Reset()
			h(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				b.Errorf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
		}
	})
}
