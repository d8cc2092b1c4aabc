package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

const (
	fakeInfer = "/v2/models/fake/infer"
	// fakeSeries is the label set of the fake model's version metrics.
	fakeSeries = `model="fake",version="1"`
)

func successSeries(labels string) string {
	return "infergate_inference_request_success_total{" + labels + "}"
}

func failureSeries(labels, reason string) string {
	return "infergate_inference_request_failure_total{" + labels + `,reason="` + reason + `"}`
}

// checkRetryAfter checks that r says when to retry, in whole seconds.
func checkRetryAfter(t testing.TB, r response) {
	t.Helper()
	v, ok := r.header["Retry-After"]
	if n, err := strconv.Atoi(v); !ok || err != nil || n < 1 {
		t.Fatalf("Retry-After: got %q (present %v); want a positive number of seconds", v, ok)
	}
}

// TestBackendPanic checks that a panic in a backend answers 500 with the
// generic message, is counted and logged, leaks nothing to the client,
// releases the version, and leaves the server serving.
func TestBackendPanic(t *testing.T) {
	b := newFakeBackend()
	// Room for two requests in flight: a reference that a panic leaked
	// would soon overload the version.
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 1})
	b.mode.Store(fakePanic)
	for i := 1; i <= 3; i++ {
		r := s.post(t, fakeInfer, fakeRequest)
		checkError(t, r, fasthttp.StatusInternalServerError, internalErrorMsg)
		if msg, _ := errorMessage(r.body); msg != internalErrorMsg {
			t.Fatalf("error message: got %q; want exactly %q", msg, internalErrorMsg)
		}
		if strings.Contains(string(r.body), "boom") {
			t.Fatalf("the panic value reached the client: %s", r.body)
		}
		// The batcher's worker recovered it; no handler panicked.
		checkMetric(t, s.metricsText(t), "infergate_http_panics_total", 0)
	}
	if l := s.log.String(); !strings.Contains(l, "backend panicked") || !strings.Contains(l, "fake backend: boom") {
		t.Fatalf("server log: got %q; want the panic and its value", l)
	}
	if n := s.repo.Model("fake").Latest().InFlight(); n != 0 {
		t.Fatalf("in flight after the panics: got %d; want 0", n)
	}

	b.mode.Store(fakeOK)
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	text := s.metricsText(t)
	checkMetric(t, text, successSeries(fakeSeries), 1)
	// A panic is a failed request of the version like any other bug.
	checkMetric(t, text, failureSeries(fakeSeries, "internal"), 3)
}

// TestBackendError checks that a backend error that is no fault of the
// client answers 500 with the generic message and goes to the log.
func TestBackendError(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	b.mode.Store(fakeFail)
	r := s.post(t, fakeInfer, fakeRequest)
	checkError(t, r, fasthttp.StatusInternalServerError, internalErrorMsg)
	if strings.Contains(string(r.body), "bus") {
		t.Fatalf("the backend's error reached the client: %s", r.body)
	}
	if l := s.log.String(); !strings.Contains(l, "the device fell off the bus") {
		t.Fatalf("server log: got %q; want the backend's error", l)
	}
	checkMetric(t, s.metricsText(t), failureSeries(fakeSeries, "internal"), 1)
	b.mode.Store(fakeOK)
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
}

// occupy starts a request that holds the fake model's only instance in a
// blocked Run, and returns the channel its answer arrives on once b is
// unblocked.
func occupy(t *testing.T, s *testServer, b *fakeBackend) <-chan response {
	t.Helper()
	b.mode.Store(fakeBlock)
	done := make(chan response, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := b.running.Load(); n != 1 {
			return fmt.Errorf("%d requests in Run; want 1", n)
		}
		return nil
	})
	return done
}

// TestRequestTimeout checks that a request that cannot start in time gets
// 503 with Retry-After: by its own "timeout" parameter (µs) when that is
// shorter, else by the server's RequestTimeout. It is dropped from the
// queue without costing compute; a request already running finishes.
func TestRequestTimeout(t *testing.T) {
	t.Run("parameter", func(t *testing.T) {
		b := newFakeBackend()
		cfg := gateway.DefaultConfig()
		cfg.RequestTimeout = time.Minute
		s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1})
		running := occupy(t, s, b)
		body := `{"parameters":{"timeout":20000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`
		r := s.post(t, fakeInfer, []byte(body))
		checkError(t, r, fasthttp.StatusServiceUnavailable, "timed out after 20ms waiting in the queue")
		checkRetryAfter(t, r)
		if r.took < 20*time.Millisecond || r.took > 20*time.Second {
			t.Fatalf("answered after %s; want about 20ms, the request's timeout", r.took)
		}
		b.unblock()
		if r := <-running; r.code != fasthttp.StatusOK {
			t.Fatalf("the running request: got %s; want 200", r)
		}
		text := s.metricsText(t)
		checkMetric(t, text, failureSeries(fakeSeries, "timeout"), 1)
		checkMetric(t, text, successSeries(fakeSeries), 1)
		checkMetric(t, text, "infergate_inference_exec_count_total{"+fakeSeries+"}", 1)

		b.mode.Store(fakeOK)
		checkFakeAnswer(t, s.post(t, fakeInfer, []byte(body)))
	})
	// With allow_timeout_override false (Triton's queue policy), the
	// parameter is ignored: the request waits for the busy instance.
	t.Run("parameter not allowed", func(t *testing.T) {
		b := newFakeBackend()
		cfg := gateway.DefaultConfig()
		cfg.RequestTimeout = time.Minute
		no := false
		s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1, DynamicBatching: &registry.DynamicBatching{AllowTimeoutOverride: &no}})
		running := occupy(t, s, b)
		body := `{"parameters":{"timeout":1000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`
		answered := make(chan response, 1)
		go func() {
			r, err := s.send(fasthttp.MethodPost, fakeInfer, []byte(body))
			if err != nil {
				t.Error(err)
			}
			answered <- r
		}()
		select {
		case r := <-answered:
			t.Fatalf("answered %s while the instance was busy; want it to wait past its 1 ms timeout parameter", r)
		case <-time.After(100 * time.Millisecond):
		}
		b.unblock()
		if r := <-running; r.code != fasthttp.StatusOK {
			t.Fatalf("the running request: got %s; want 200", r)
		}
		if r := <-answered; r.code != fasthttp.StatusOK {
			t.Fatalf("the waiting request: got %s; want 200", r)
		}
	})
	t.Run("server", func(t *testing.T) {
		b := newFakeBackend()
		cfg := gateway.DefaultConfig()
		cfg.RequestTimeout = 30 * time.Millisecond
		s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1})
		running := occupy(t, s, b)
		// A longer timeout parameter does not extend the server's bound.
		body := `{"parameters":{"timeout":60000000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`
		r := s.post(t, fakeInfer, []byte(body))
		checkError(t, r, fasthttp.StatusServiceUnavailable, "timed out after 30ms")
		checkRetryAfter(t, r)
		if r.took > 20*time.Second {
			t.Fatalf("answered after %s; want about 30ms, the server's RequestTimeout", r.took)
		}
		b.unblock()
		<-running
		checkMetric(t, s.metricsText(t), failureSeries(fakeSeries, "timeout"), 1)
	})
}

// TestOverload checks that with instances 1 and max_queue 1, a third
// request while two are in flight gets 503 with Retry-After at once, and
// that the two in flight are answered once the backend moves.
func TestOverload(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 1})
	b.mode.Store(fakeBlock)

	results := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest)
			if err == nil && r.code != fasthttp.StatusOK {
				err = fmt.Errorf("blocked request: got %s; want 200 once unblocked", r)
			}
			results <- err
		}()
	}
	v := s.repo.Model("fake").Latest()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n, m := v.InFlight(), b.running.Load(); n != 2 || m != 1 {
			return fmt.Errorf("in flight: got %d requests, %d in Run; want 2, 1 (one instance, one queued)", n, m)
		}
		return nil
	})

	r := s.post(t, fakeInfer, fakeRequest)
	checkError(t, r, fasthttp.StatusServiceUnavailable, "max_queue")
	checkRetryAfter(t, r)
	if r.took > 2*time.Second {
		t.Fatalf("the refusal took %s; want it at once", r.took)
	}

	b.unblock()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	text := s.metricsText(t)
	checkMetric(t, text, successSeries(fakeSeries), 3)
	checkMetric(t, text, failureSeries(fakeSeries, "overloaded"), 1)
}

// TestPriorityDisplacesUnderOverload: with the queue full of
// default-priority requests, one sent with priority 1 takes the place of
// the newest of them, which gets a 503 naming why; the priority-1 request
// is answered, and the early refusal before decoding does not turn it away.
func TestPriorityDisplacesUnderOverload(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 1,
		DynamicBatching: &registry.DynamicBatching{PriorityLevels: 2, DefaultPriorityLevel: 2}})
	b.mode.Store(fakeBlock)

	send := func(body []byte) <-chan response {
		ch := make(chan response, 1)
		go func() {
			r, err := s.send(fasthttp.MethodPost, fakeInfer, body)
			if err != nil {
				t.Error(err)
			}
			ch <- r
		}()
		return ch
	}
	v := s.repo.Model("fake").Latest()
	inFlight := func(n int64) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, func() error {
			if got := v.InFlight(); got != n {
				return fmt.Errorf("in flight: got %d; want %d", got, n)
			}
			return nil
		})
	}
	running := send(fakeRequest)
	inFlight(1)
	queued := send(fakeRequest)
	inFlight(2)
	urgent := send([]byte(`{"parameters":{"priority":1},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`))

	r := <-queued
	checkError(t, r, fasthttp.StatusServiceUnavailable, "to one of higher priority")
	checkRetryAfter(t, r)
	b.unblock()
	for _, ch := range []<-chan response{running, urgent} {
		if r := <-ch; r.code != fasthttp.StatusOK {
			t.Fatalf("got %s; want 200", r)
		}
	}
	text := s.metricsText(t)
	checkMetric(t, text, failureSeries(fakeSeries, "displaced"), 1)
	checkMetric(t, text, failureSeries(fakeSeries, "overloaded"), 0)
}

// TestMetricsByReason checks the per-version success and failure
// counters, the row and execution counters, the latency histogram, and
// the counters of requests that found no version.
func TestMetricsByReason(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = 200 * time.Millisecond
	s := startFake(t, b, cfg, registry.ModelConfig{})

	two := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8]}]}`)
	for range 3 {
		checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	}
	if r := s.post(t, fakeInfer, two); r.code != fasthttp.StatusOK {
		t.Fatalf("two rows: got %s", r)
	}
	checkError(t, s.post(t, fakeInfer, []byte(`{`)), fasthttp.StatusBadRequest, "invalid JSON")
	checkError(t, s.post(t, fakeInfer, []byte(`{"inputs":[]}`)), fasthttp.StatusBadRequest, `missing input "x"`)
	b.mode.Store(fakeFail)
	checkError(t, s.post(t, fakeInfer, fakeRequest), fasthttp.StatusInternalServerError, internalErrorMsg)
	running := occupy(t, s, b)
	checkError(t, s.post(t, fakeInfer, fakeRequest), fasthttp.StatusServiceUnavailable, "timed out")
	b.unblock()
	<-running
	checkError(t, s.post(t, "/v2/models/nope/infer", fakeRequest), fasthttp.StatusNotFound, "nope")
	checkError(t, s.post(t, "/v2/models/fake/versions/7/infer", fakeRequest), fasthttp.StatusNotFound, "no ready version 7")

	text := s.metricsText(t)
	f := func(series string, want float64) {
		t.Helper()
		checkMetric(t, text, series, want)
	}
	f(successSeries(fakeSeries), 5)
	f(failureSeries(fakeSeries, "bad_request"), 2)
	f(failureSeries(fakeSeries, "internal"), 1)
	f(failureSeries(fakeSeries, "timeout"), 1)
	f(failureSeries(fakeSeries, "overloaded"), 0)
	f(failureSeries(fakeSeries, "canceled"), 0)
	f("infergate_inference_count_total{"+fakeSeries+"}", 6)
	f("infergate_inference_exec_count_total{"+fakeSeries+"}", 5)
	f("infergate_inference_request_duration_seconds_count{"+fakeSeries+"}", 5)
	f(`infergate_inference_unrouted_total{reason="model_not_found"}`, 1)
	f(`infergate_inference_unrouted_total{reason="version_not_found"}`, 1)
	f(`infergate_models_ready`, 1)
	if err := func() error {
		for line := range strings.SplitSeq(text, "\n") {
			if strings.HasPrefix(line, "infergate_inference_request_") && !strings.Contains(line, fakeSeries) {
				return errors.New("series without the model and version labels: " + line)
			}
		}
		return nil
	}(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentRequests sends good and bad requests from many goroutines
// at once to ctr on ONNX Runtime and checks every answer, so that pooled
// buffers shared between requests show up as wrong scores (or as races
// under -race).
func TestConcurrentRequests(t *testing.T) {
	s := startServer(t, serverOptions{
		cfg:      gateway.DefaultConfig(),
		defaults: registry.ModelConfig{Instances: 2, MaxQueue: 64},
		files:    map[string][]byte{"ctr/1": ctrONNX()},
	})
	const workers, each = 8, 40
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for i := range each {
					rows := 1 + (w+i)%4
					x := features(uint64(1000*w+i), rows, 64)
					var r response
					var err error
					switch i % 4 {
					case 0: // JSON in, JSON out
						r, err = s.send(fasthttp.MethodPost, "/v2/models/ctr/infer", ctrRequest(x, rows))
					case 1, 2: // binary in, binary out on odd workers
						header := fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,64],"parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":%v}}`, rows, 256*rows, w%2 == 1)
						r, err = s.send(fasthttp.MethodPost, "/v2/models/ctr/infer", append([]byte(header), f32Bytes(x)...),
							"Inference-Header-Content-Length", strconv.Itoa(len(header)))
					case 3: // a mistake
						bad := fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,64],"data":%s}]}`, rows+1, jsonFloats(x))
						r, err = s.send(fasthttp.MethodPost, "/v2/models/ctr/infer", []byte(bad))
						if err != nil {
							return err
						}
						if msg, err := errorMessage(r.body); r.code != fasthttp.StatusBadRequest || err != nil || !strings.Contains(msg, "needs") {
							return fmt.Errorf("bad request: got %s; want 400 with the JSON error body", r)
						}
						continue
					}
					if err != nil {
						return err
					}
					if r.code != fasthttp.StatusOK {
						return fmt.Errorf("request %d of worker %d: got %s", i, w, r)
					}
					headerLen := -1
					if h, ok := r.header["Inference-Header-Content-Length"]; ok {
						if headerLen, err = strconv.Atoi(h); err != nil {
							return err
						}
					}
					var resp oip.InferResponse
					if err := oip.DecodeResponse(&resp, r.body, headerLen); err != nil {
						return err
					}
					got := bytesF32(resp.Outputs[0].Data)
					want := ctrMLP().Forward(x, rows)
					if len(got) != len(want) {
						return fmt.Errorf("request %d of worker %d: got %d scores; want %d", i, w, len(got), len(want))
					}
					for k := range want {
						if d := math.Abs(float64(got[k] - want[k])); !(d <= 1e-5) {
							return fmt.Errorf("request %d of worker %d: score %d: got %v; want %v", i, w, k, got[k], want[k])
						}
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	text := s.metricsText(t)
	checkMetric(t, text, successSeries(`model="ctr",version="1"`), workers*each*3/4)
	checkMetric(t, text, failureSeries(`model="ctr",version="1"`, "bad_request"), workers*each/4)
}

// TestUnroutedCountsInferenceOnly checks that the counters of inference
// requests that found no version count inference requests only, not the
// metadata and readiness probes that ask about a model.
func TestUnroutedCountsInferenceOnly(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkError(t, s.post(t, "/v2/models/nope/infer", fakeRequest), fasthttp.StatusNotFound, "nope")
	for _, uri := range []string{"/v2/models/nope", "/v2/models/nope/ready", "/v2/models/fake/versions/7", "/v2/models/fake/versions/7/ready"} {
		if r := s.do(t, fasthttp.MethodGet, uri, nil); r.code != fasthttp.StatusNotFound {
			t.Fatalf("GET %s: got %s; want 404", uri, r)
		}
	}
	text := s.metricsText(t)
	checkMetric(t, text, `infergate_inference_unrouted_total{reason="model_not_found"}`, 1)
	checkMetric(t, text, `infergate_inference_unrouted_total{reason="version_not_found"}`, 0)
}

// TestShutdownDrains checks that Shutdown waits for a request in flight,
// which is answered, and that the server accepts nothing after.
func TestShutdownDrains(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 4})
	b.mode.Store(fakeBlock)
	answered := make(chan error, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest)
		if err == nil && r.code != fasthttp.StatusOK {
			err = fmt.Errorf("the request in flight during Shutdown: got %s; want 200", r)
		}
		answered <- err
	}()
	v := s.repo.Model("fake").Latest()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := b.running.Load(); n != 1 {
			return fmt.Errorf("requests in Run: got %d; want 1", n)
		}
		return nil
	})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	case err := <-answered:
		t.Fatalf("the request in flight was answered before its model did: %v", err)
	default:
	}
	b.unblock()
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %s", err)
	}
	if n := v.InFlight(); n != 0 {
		t.Fatalf("in flight after Shutdown: got %d; want 0", n)
	}
	if r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest); err == nil {
		t.Fatalf("a request after Shutdown: got %s; want no connection", r)
	}
}

// TestComputeOnCPUMetrics serves 128 ctr requests one after another and
// checks the sampled compute and CPU series: two runs sampled, CPU time
// above zero and within the compute time (Linux only).
func TestComputeOnCPUMetrics(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the thread CPU clock is read on Linux only")
	}
	s := startDemo(t, gateway.DefaultConfig(), false)
	for i := range 128 {
		if r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(uint64(i), 1, 64), 1)); r.code != fasthttp.StatusOK {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	text := s.metricsText(t)
	const series = `{model="ctr",version="1"}`
	compute, err := metricValue(text, "infergate_inference_compute_sampled_seconds_total"+series)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := metricValue(text, "infergate_inference_compute_sampled_cpu_seconds_total"+series)
	if err != nil {
		t.Fatal(err)
	}
	all, err := metricValue(text, "infergate_inference_compute_duration_seconds_sum"+series)
	if err != nil {
		t.Fatal(err)
	}
	if !(compute > 0 && compute < all && cpu > 0 && cpu <= compute+1e-3) {
		t.Fatalf("sampled compute %gs, its CPU %gs, all compute %gs; want 0 < CPU ≤ sampled < all", compute, cpu, all)
	}
	// The status page gives the share.
	want := fmt.Sprintf("<td>%.0f%%</td>", 100*min(cpu/compute, 1))
	if page := s.do(t, "GET", "/", nil); !strings.Contains(string(page.body), want) {
		t.Fatalf("status page lacks %s:\n%s", want, page.body)
	}

	// With two intra-op threads the calling thread does part of the work:
	// the page gives no share.
	s = startServer(t, serverOptions{cfg: gateway.DefaultConfig(), defaults: registry.ModelConfig{IntraOpThreads: 2},
		files: map[string][]byte{"ctr/1": ctrONNX()}})
	for i := range 64 {
		if r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(uint64(i), 1, 64), 1)); r.code != fasthttp.StatusOK {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	if v, err := metricValue(s.metricsText(t), "infergate_inference_compute_sampled_seconds_total"+series); err != nil || v <= 0 {
		t.Fatalf("two intra-op threads: sampled %g, %v; want a sample", v, err)
	}
	if page := s.do(t, "GET", "/", nil); !regexp.MustCompile(`<td>[0-9.]+(µs|ms)</td><td>—</td>`).Match(page.body) {
		t.Fatalf("two intra-op threads: the status page gives a CPU share:\n%s", page.body)
	}
}

// A request that waits for its batch to fill while the instance is idle
// (a queue delay) does not count against max_queue for the refusal
// before decoding either: the batcher takes the next request, so the
// gateway does not answer it 503.
func TestEarlyRefusalCountsIdleInstances(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 1, MaxBatchSize: 8,
		DynamicBatching: &registry.DynamicBatching{MaxQueueDelayUS: new(int64(2_000_000))}})
	first := make(chan response, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest)
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	v := s.repo.Model("fake").Latest()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := v.Batcher.QueueLen(); n != 1 {
			return fmt.Errorf("queued: %d; want 1", n)
		}
		return nil
	})
	r := s.post(t, fakeInfer, fakeRequest)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("second request while the instance is idle: got %s; want 200", r)
	}
	checkFakeAnswer(t, r)
	if r := <-first; r.code != fasthttp.StatusOK {
		t.Fatalf("first: %s", r)
	}
}

// TestPinnedDefaultNotReadySaysWhich: a model whose unversioned requests
// are pinned to a version that is not ready (a cluster's production on a
// node still loading it) answers 503 naming that version and the ready
// ones a request may name, not "no ready version".
func TestPinnedDefaultNotReadySaysWhich(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	s.repo.SetDefault("fake", 3)
	r := s.post(t, "/v2/models/fake/infer", fakeRequest)
	checkError(t, r, fasthttp.StatusServiceUnavailable, `model "fake": unversioned requests go to version 3 (its production version), which is not ready on this node yet; ready versions, which a request may name: 1`)
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest))
	s.repo.SetDefault("fake", 0)
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
}

// TestRetiredStandInAnswersUnversionedOnly: a version a cluster retired
// while it answers the unversioned requests in place of a production not
// ready here yet (registry.Repository.HandOver with retired) takes those
// still, and a request that names it gets 404 saying why.
func TestRetiredStandInAnswersUnversionedOnly(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	s.repo.HandOver("fake", 1, 2, true)
	r := s.post(t, "/v2/models/fake/infer", fakeRequest)
	checkFakeAnswer(t, r)
	if got := r.header["X-Model-Version"]; got != "1" {
		t.Fatalf("X-Model-Version %q; want 1", got)
	}
	const why = `model "fake" version 1 is retired; this node answers unversioned requests with it only until production version 2 is ready here; ready versions, which a request may name: none`
	checkError(t, s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest), fasthttp.StatusNotFound, why)
	checkError(t, s.do(t, "GET", "/v2/models/fake/versions/1/ready", nil), fasthttp.StatusNotFound, why)
	if r := s.do(t, "GET", "/v2/models/fake/ready", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("unversioned ready: %s; want 200", r)
	}
	if page := s.do(t, "GET", "/", nil); !strings.Contains(string(page.body), "retired: unversioned only, until version 2 is ready") {
		t.Fatalf("the status page does not name the stand-in:\n%s", page.body)
	}
	// Not retired: a version that serves in production's place takes
	// requests that name it too.
	s.repo.HandOver("fake", 1, 2, false)
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest))
}

// TestRepeatedServerErrorsDoNotFloodTheLog: a version whose backend fails
// every run, under a client that retries in a loop, gets one log line
// saying why, not one per request: before, each 500 wrote its line, and
// a client looping on it filled the disk under the log.
func TestRepeatedServerErrorsDoNotFloodTheLog(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	b.mode.Store(fakeFail)
	const n = 200
	for range n {
		checkError(t, s.post(t, fakeInfer, fakeRequest), fasthttp.StatusInternalServerError, internalErrorMsg)
	}
	l := s.log.String()
	if got := strings.Count(l, "the device fell off the bus"); got < 1 || got > 2 {
		t.Fatalf("log lines of %d failed requests: got %d; want 1 (2 if a period passed):\n%s", n, got, l)
	}
	checkMetric(t, s.metricsText(t), failureSeries(fakeSeries, "internal"), n)
}
