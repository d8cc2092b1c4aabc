package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// otlpCollector keeps the spans OTLP/HTTP requests bring it.
type otlpCollector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []gateway.OTLPSpan
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	c := &otlpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		spans := gateway.OTLPSpans(t, body)
		c.mu.Lock()
		c.spans = append(c.spans, spans...)
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

// take waits for n spans more than were taken before, and returns them.
func (c *otlpCollector) take(t *testing.T, n int) []gateway.OTLPSpan {
	t.Helper()
	var got []gateway.OTLPSpan
	testenv.CheckFor(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.spans) < n {
			return fmt.Errorf("the collector has %d spans; want %d", len(c.spans), n)
		}
		got, c.spans = c.spans[:n], c.spans[n:]
		return nil
	})
	return got
}

// none checks that no span came.
func (c *otlpCollector) none(t *testing.T, what string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // ten export delays
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.spans) > 0 {
		t.Fatalf("%s: the collector got %d spans (%+v); want none", what, len(c.spans), c.spans)
	}
}

// In OpenTelemetry mode a request's spans go to the collector, under the
// span of a caller that sent a sampled traceparent, over HTTP and gRPC;
// at rate 0 only those are traced, and a caller that did not sample its
// trace is not traced; a failed request's spans carry its error.
func TestTraceOpenTelemetry(t *testing.T) {
	defer gateway.SetOTelDelay(10 * time.Millisecond)()
	col := newOTLPCollector(t)
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = "adm"
	cfg.Trace = gateway.TraceConfig{Mode: gateway.TraceModeOpenTelemetry, OTelURL: col.URL + "/v1/traces", Level: gateway.TraceTimestamps, Rate: 0, Count: -1}
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})

	r := s.do(t, "GET", "/v2/trace/setting", nil)
	if want := `"trace_rate":"0","trace_count":"-1","log_frequency":"0","trace_mode":"opentelemetry"}`; !strings.HasSuffix(string(r.body), want) {
		t.Fatalf("settings: %s; want them to end %s", r.body, want)
	}

	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest, "traceparent", "00-"+caller+"-00f067aa0ba902b7-00"))
	col.none(t, "rate 0, a request without a trace context and one its caller did not sample")

	checkFakeAnswer(t, s.post(t, fakeInfer, []byte(`{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`),
		"traceparent", "00-"+caller+"-00f067aa0ba902b7-01", "tracestate", "vendor=a"))
	spans := col.take(t, 3)
	root, model, compute := spans[0], spans[1], spans[2]
	if root.Name != "InferRequest" || root.TraceID != caller || root.ParentID != "00f067aa0ba902b7" || root.TraceState != "vendor=a" {
		t.Fatalf("root span %+v; want InferRequest under the caller's span", root)
	}
	if model.Name != "fake" || model.TraceID != caller || model.ParentID != root.SpanID || model.Attrs["triton.request_id"] != "r1" || model.Attrs["triton.model_version"] != "1" {
		t.Fatalf("model span %+v; want fake under the root", model)
	}
	if compute.Name != "compute" || compute.TraceID != caller || compute.ParentID != model.SpanID {
		t.Fatalf("compute span %+v; want compute under the model's", compute)
	}

	// A request that fails: its spans say why.
	checkError(t, s.post(t, fakeInfer, []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`),
		"traceparent", "00-"+caller+"-00f067aa0ba902b8-01"), fasthttp.StatusBadRequest, "shape")
	spans = col.take(t, 2)
	if !strings.Contains(spans[0].Status, "shape") || spans[0].Status != spans[1].Status {
		t.Fatalf("the spans of a failed request: status %q and %q; want the error", spans[0].Status, spans[1].Status)
	}

	// Over gRPC, the call's metadata carries the context.
	c := s.serveGRPC(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	if _, err := c.infer(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	spans = col.take(t, 3)
	if spans[0].TraceID != "0af7651916cd43dd8448eb211c80319c" || spans[0].ParentID != "b7ad6b7169203331" {
		t.Fatalf("gRPC root span %+v; want it under the caller's span", spans[0])
	}

	// At rate 1, a request without a context starts a trace of its own.
	r = s.post(t, "/v2/trace/setting", []byte(`{"trace_rate":"1"}`), "Authorization", "Bearer adm")
	if r.code != fasthttp.StatusOK {
		t.Fatalf("setting the rate: %s", r)
	}
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	spans = col.take(t, 3)
	if spans[0].ParentID != "" || spans[0].TraceID == caller || spans[1].TraceID != spans[0].TraceID {
		t.Fatalf("spans of a request without a context: %+v", spans)
	}
	text := s.metricsText(t)
	checkMetric(t, text, "infergate_traces_total", 4)
	if v, err := metricValue(text, `infergate_trace_exports_total{result="ok"}`); err != nil || v < 1 {
		t.Fatalf("exports counted ok: %v, %v", v, err)
	}
	checkMetric(t, text, `infergate_trace_exports_total{result="failed"}`, 0)
	// The mode is serve's: the API cannot change it.
	checkError(t, s.post(t, "/v2/trace/setting", []byte(`{"trace_mode":"triton"}`), "Authorization", "Bearer adm"),
		fasthttp.StatusBadRequest, `this server's is "opentelemetry"`)
}

// OpenTelemetry mode needs no trace file; the collector's URL must be
// one; rate 0 is taken in that mode only.
func TestTraceOpenTelemetryConfig(t *testing.T) {
	f := func(c gateway.TraceConfig, fragment string) {
		t.Helper()
		err := c.Validate()
		if fragment == "" && err != nil || fragment != "" && (err == nil || !strings.Contains(err.Error(), fragment)) {
			t.Fatalf("Validate(%+v): %v; want %q", c, err, fragment)
		}
	}
	f(gateway.TraceConfig{Mode: gateway.TraceModeOpenTelemetry, Level: gateway.TraceTimestamps, Rate: 0}, "")
	f(gateway.TraceConfig{Mode: gateway.TraceModeOpenTelemetry, OTelURL: "localhost:4318"}, "OTLP/HTTP traces endpoint")
	f(gateway.TraceConfig{Mode: "jaeger"}, `trace mode "jaeger"`)
	f(gateway.TraceConfig{Level: gateway.TraceTimestamps}, "--trace-mode opentelemetry")
	f(gateway.TraceConfig{Rate: -1}, "or 0 with --trace-mode opentelemetry")
}
