package gateway_test

// What /metrics and the log tell the person paged at 3 a.m.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// startFakeWithLoader starts a server over a fake model "fake" version 1 whose
// loader refuses files that start with "broken"; triton turns on
// --triton-metrics.
func startFakeWithLoader(t *testing.T, b *fakeBackend, triton bool) *testServer {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fake", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake", "1", "model.onnx"), []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(data []byte, _ registry.ModelConfig) (registry.Backend, error) {
		if bytes.HasPrefix(data, []byte("broken")) {
			return nil, errors.New("not an ONNX model")
		}
		return b, nil
	}
	logs := &syncLog{}
	set := metrics.NewSet()
	repo, err := registry.New(registry.Config{Dir: dir, Load: load, Metrics: set, Logf: logs.printf, TritonMetrics: triton})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	if err := repo.LoadAll(); err != nil {
		t.Fatal(err)
	}
	gcfg := gateway.DefaultConfig()
	gcfg.Logf = logs.printf
	srv, err := gateway.New(gcfg, repo, set)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	s := &testServer{srv: srv, repo: repo, set: set, log: logs, served: make(chan error, 2)}
	addr := s.listenTCP(t)
	s.hc = &fasthttp.HostClient{Addr: addr, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxIdemponentCallAttempts: 1}
	t.Cleanup(func() {
		b.unblock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		for _, ln := range s.listeners {
			ln.Close()
		}
		s.serving.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return s
}

// breakVersion2 puts a model file the loader refuses as version 2 and
// asks the load API for the model again.
func breakVersion2(t *testing.T, s *testServer) response {
	t.Helper()
	p := filepath.Join(s.repo.Dir(), "fake", "2", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("broken bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.post(t, "/v2/repository/models/fake/load", nil)
	if r.code != 400 {
		t.Fatalf("load of a broken version 2: got %s; want 400", r)
	}
	return r
}

// Every histogram on /metrics is usable by Prometheus' histogram_quantile:
// cumulative buckets labelled le (infergate_model_load_duration_seconds
// had VictoriaMetrics' vmrange buckets).
func TestMetricsHistogramsAreUsableByPrometheus(t *testing.T) {
	s := startFakeWithLoader(t, newFakeBackend(), false)
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	text := s.metricsText(t)
	var bad []string
	for line := range strings.SplitSeq(text, "\n") {
		name, _, _ := strings.Cut(line, "{")
		if strings.HasSuffix(name, "_bucket") && !strings.Contains(line, `le="`) {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d histogram bucket lines have no le label, so histogram_quantile() cannot read them; e.g.\n%s", len(bad), strings.Join(bad[:min(3, len(bad))], "\n"))
	}
}

// A version's queue, which the status page shows as "queued N of M", is
// on /metrics too, depth and bound, for an alert before it sheds.
func TestQueueDepthIsOnMetrics(t *testing.T) {
	s := startFakeWithLoader(t, newFakeBackend(), false)
	text := s.metricsText(t)
	for _, want := range []string{
		`infergate_inference_queue_requests{model="fake",version="1"} 0`,
		`infergate_inference_queue_max_requests{model="fake",version="1"} 1024`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

// A load through the repository API that fails is logged, naming the
// model and version, not only answered 400 to its caller.
func TestFailedLoadIsLogged(t *testing.T) {
	s := startFakeWithLoader(t, newFakeBackend(), false)
	before := s.log.String()
	r := breakVersion2(t, s)
	time.Sleep(100 * time.Millisecond)
	after := strings.TrimPrefix(s.log.String(), before)
	if !strings.Contains(after, "fake") || !strings.Contains(after, "version 2") {
		t.Fatalf("the load API answered %s, but the server logged nothing about it; log since the load: %q", r, after)
	}
}

// A version whose load fails counts in infergate_model_load_failing for
// as long as it fails, and leaves it once fixed: an alert can fire on it
// and clear, where the load failure counter only says one failed once.
// The status page's head counts it too.
func TestFailedVersionIsOnMetrics(t *testing.T) {
	s := startFakeWithLoader(t, newFakeBackend(), false)
	failing := func() float64 {
		t.Helper()
		v, err := metricValue(s.metricsText(t), "infergate_model_load_failing")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := failing(); n != 0 {
		t.Fatalf("infergate_model_load_failing %v before; want 0", n)
	}
	breakVersion2(t, s)
	if n := failing(); n != 1 {
		t.Fatalf("infergate_model_load_failing %v with version 2 broken; want 1", n)
	}
	// The status page's head says so too.
	if page := string(s.do(t, fasthttp.MethodGet, "/", nil).body); !strings.Contains(page, "1 not serving (below, with the reason)") {
		t.Fatalf("the status page's head does not say a version is not serving:\n%.600s", page)
	}
	if err := os.WriteFile(filepath.Join(s.repo.Dir(), "fake", "2", "model.onnx"), []byte("fixed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.post(t, "/v2/repository/models/fake/load", nil); r.code != 200 {
		t.Fatalf("load of the fixed version 2: %s", r)
	}
	if n := failing(); n != 0 {
		t.Fatalf("infergate_model_load_failing %v once version 2 loads; want 0", n)
	}
}

// Every infergate_ and nv_ family on /metrics has a HELP text, which
// Grafana's metric browser shows: a node of a cluster with a traffic log,
// Triton's series, an A/B experiment and a shadow. A series added without
// a text fails here, named.
func TestEveryFamilyOnMetricsHasHelp(t *testing.T) {
	text := everyPartMetrics(t)
	families := 0
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "# HELP ")
		if !ok || !strings.HasPrefix(rest, "infergate_") && !strings.HasPrefix(rest, "nv_") {
			continue
		}
		families++
		if name, help, _ := strings.Cut(strings.TrimSuffix(rest, "\n"), " "); strings.TrimSpace(help) == "" {
			t.Errorf("%s has no HELP text on /metrics: add one to helpTexts in gateway/metrics_help.go", name)
		}
	}
	t.Logf("%d infergate_ and nv_ families checked", families)
}

// everyPartMetrics returns /metrics of a server with every part that
// exports series in-process: a node of a cluster with a traffic log,
// Triton's series, an A/B experiment and a shadow.
func everyPartMetrics(t *testing.T) string {
	t.Helper()
	// As `infergate serve` sets it.
	metrics.ExposeMetadata(true)
	t.Cleanup(func() { metrics.ExposeMetadata(false) })
	cfg, _, set := trafficConfig(t, 100)
	cfg.AdminToken = adminToken
	cfg.Logging = logging.New(io.Discard, logging.DefaultSettings())
	s := startAdminWith(t, serverOptions{cfg: cfg, set: set, triton: true, files: map[string][]byte{"ctr/1": ctrONNX()}})
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code != 201 {
		t.Fatalf("upload version 2: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/experiment", []byte(`{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`)); r.code != 200 {
		t.Fatalf("start an experiment: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2,"percent":100}`)); r.code != 200 {
		t.Fatalf("start a shadow: %s", r)
	}
	// The series of each part, so that a part missing from the server
	// above fails, not passes unchecked.
	want := []string{"infergate_inference_request_success_total", "infergate_inference_unrouted_total",
		"infergate_model_load_total", "infergate_http_panics_total", "infergate_cluster_is_leader",
		"infergate_traffic_events_total", "infergate_experiment_requests_total", "infergate_shadow_requests_total",
		"nv_inference_count", "infergate_log_lines_total"}
	var text string
	testenv.CheckFor(t, 10*time.Second, func() error {
		// The reconciler sets the experiment and the shadow up
		// asynchronously.
		text = s.metricsText(t)
		for _, name := range want {
			if !strings.Contains(text, "\n# HELP "+name) {
				return fmt.Errorf("no family %s on /metrics", name)
			}
		}
		return nil
	})
	return text
}

// TestNoGaugeNamedTotal: a family named _total is a counter, and says so
// in its TYPE line: a collector that converts by type (OpenTelemetry's
// Prometheus receiver, say) makes a gauge a gauge, on which a backend
// computes no rate. Before, the metrics library's process_io_*_total
// (bytes and system calls since the process started) were typed gauge.
func TestNoGaugeNamedTotal(t *testing.T) {
	metrics.ExposeMetadata(true)
	t.Cleanup(func() { metrics.ExposeMetadata(false) })
	s := startDemo(t, gateway.DefaultConfig(), false)
	text := s.metricsText(t)
	if !strings.Contains(text, "\n# TYPE process_io_read_bytes_total ") {
		t.Skip("no process_io_* series here (not Linux)")
	}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasSuffix(f[2], "_total") && f[3] != "counter" {
			t.Errorf("%s: got TYPE %s; want counter", f[2], f[3])
		}
	}
}
