package gateway_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// The response cache takes its memory when the first version that
// enables it loads, before that version's first request, and not on a
// node none of whose models enables it (its counters are 24 MB at the
// default budget); a version loaded before the server was made reserves
// it too.
func TestResponseCacheReservedByTheFirstModelThatEnablesIt(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	if gateway.CacheReserved(s.srv) {
		t.Fatal("cache reserved with no model enabling it")
	}
	if err := s.repo.Load("fake", &registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}}); err != nil {
		t.Fatal(err)
	}
	if !gateway.CacheReserved(s.srv) {
		t.Fatal("cache not reserved once a version that enables it loaded")
	}

	early := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	if !gateway.CacheReserved(early.srv) {
		t.Fatal("cache not reserved for a version loaded before the server was made")
	}
}

// TestResponseCache checks that a model with response_cache enabled
// answers a repeated input from the cache, with the request's own id, and
// that bypasses, other inputs, failures and reloads go to the model.
func TestResponseCache(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	execs := func(want float64) {
		t.Helper()
		checkMetric(t, s.metricsText(t), "infergate_inference_exec_count_total{"+fakeSeries+"}", want)
	}
	hit := func(r response, want bool) {
		t.Helper()
		if r.code != fasthttp.StatusOK {
			t.Fatalf("got %s; want 200", r)
		}
		if got := r.header["X-Cache"] == "hit"; got != want {
			t.Fatalf("X-Cache hit: got %v; want %v", got, want)
		}
	}
	withID := []byte(`{"id":"second","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`)
	other := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,5]}]}`)
	bypass := []byte(`{"parameters":{"cache_bypass":true},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`)

	r := s.post(t, fakeInfer, fakeRequest)
	hit(r, false)
	checkFakeAnswer(t, r)
	waitCache(t, s)
	r = s.post(t, fakeInfer, withID)
	hit(r, true)
	checkFakeAnswer(t, r)
	if id := decodeInfer(t, r).ID; id != "second" {
		t.Fatalf("id on a hit: got %q; want the request's own, %q", id, "second")
	}
	if v := r.header["X-Model-Version"]; v != "1" {
		t.Fatalf("X-Model-Version on a hit: %q", v)
	}
	execs(1)

	hit(s.post(t, fakeInfer, other), false)
	hit(s.post(t, fakeInfer, bypass), false)
	hit(s.post(t, fakeInfer, fakeRequest, "Cache-Control", "no-cache"), false)
	execs(4)
	text := s.metricsText(t)
	checkMetric(t, text, "infergate_cache_hits_total{"+fakeSeries+"}", 1)
	// The node's cache as a whole (its Sets apply in the background: the
	// figures themselves are the cache package's tests').
	for _, name := range []string{"infergate_cache_bytes", "infergate_cache_max_bytes", "infergate_cache_entries", "infergate_cache_evictions_total", "infergate_cache_rejections_total"} {
		if _, err := metricValue(text, name); err != nil {
			t.Errorf("/metrics: %v", err)
		}
	}
	checkMetric(t, text, "infergate_cache_misses_total{"+fakeSeries+"}", 2)
	checkMetric(t, text, "infergate_cache_hit_duration_seconds_count{"+fakeSeries+"}", 1)

	// Failures are not cached.
	b.mode.Store(fakeFail)
	fresh := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[9,9,9,9]}]}`)
	checkError(t, s.post(t, fakeInfer, fresh), fasthttp.StatusInternalServerError, "internal error")
	b.mode.Store(fakeOK)
	waitCache(t, s)
	hit(s.post(t, fakeInfer, fresh), false)

	// A reload is a new generation: nothing answers from the old one.
	if err := s.repo.Load("fake", &registry.ModelConfig{Instances: 2, ResponseCache: &registry.ResponseCache{Enable: true}}); err != nil {
		t.Fatal(err)
	}
	hit(s.post(t, fakeInfer, fakeRequest), false)
}

// TestResponseCacheOffByDefault checks that models do not use the cache
// unless their config enables it.
func TestResponseCacheOffByDefault(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	for range 3 {
		if r := s.post(t, fakeInfer, fakeRequest); r.header["X-Cache"] != "" {
			t.Fatalf("X-Cache %q from a model without response_cache", r.header["X-Cache"])
		}
	}
	checkMetric(t, s.metricsText(t), "infergate_inference_exec_count_total{"+fakeSeries+"}", 3)
}

// waitCache lets the cache apply its pending sets.
func waitCache(t *testing.T, s *testServer) {
	t.Helper()
	s.srv.WaitCache()
}

// TestResponseCacheReplaysIdenticalBodies checks the body-keyed entries:
// a byte-identical request is answered with the same bytes (binary outputs
// included) without being decoded, a bypass or another body is not, and a
// body that would fail to decode never gets an entry.
func TestResponseCacheReplaysIdenticalBodies(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	first := s.post(t, fakeInfer, fakeRequest)
	if first.code != fasthttp.StatusOK || first.header["X-Cache"] != "" {
		t.Fatalf("first request: %s, X-Cache %q", first, first.header["X-Cache"])
	}
	waitCache(t, s)
	again := s.post(t, fakeInfer, fakeRequest)
	if again.header["X-Cache"] != "hit" || !bytes.Equal(again.body, first.body) || again.header["Content-Type"] != first.header["Content-Type"] {
		t.Fatalf("identical body: got %s (X-Cache %q, %q); want the first answer's bytes from the cache",
			again, again.header["X-Cache"], again.header["Content-Type"])
	}
	checkFakeAnswer(t, again)
	checkMetric(t, s.metricsText(t), "infergate_inference_exec_count_total{"+fakeSeries+"}", 1)
	// Decoding is skipped on a body hit: the misses counter (counted after
	// decoding) does not move.
	checkMetric(t, s.metricsText(t), "infergate_cache_misses_total{"+fakeSeries+"}", 1)

	// Binary outputs: the replay keeps the JSON length header.
	bin := []byte(`{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`)
	r1 := s.post(t, fakeInfer, bin)
	waitCache(t, s)
	r2 := s.post(t, fakeInfer, bin)
	if r1.header["Inference-Header-Content-Length"] == "" || r2.header["Inference-Header-Content-Length"] != r1.header["Inference-Header-Content-Length"] ||
		!bytes.Equal(r1.body, r2.body) || r2.header["X-Cache"] != "hit" {
		t.Fatalf("binary replay: %v / %v", r1.header, r2.header)
	}

	// A body whose bytes differ in a way decoding ignores still answers
	// from the tensor entry, with its own id.
	spaced := []byte(`{ "id":"spaced", "inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1, 2, 3, 4]}]}`)
	r := s.post(t, fakeInfer, spaced)
	if r.header["X-Cache"] != "hit" || decodeInfer(t, r).ID != "spaced" {
		t.Fatalf("respaced body: X-Cache %q, id %q; want a hit answered with its own id", r.header["X-Cache"], decodeInfer(t, r).ID)
	}
	// Cache-Control: no-cache skips both kinds.
	if r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", "no-cache"); r.header["X-Cache"] != "" {
		t.Fatal("no-cache answered from the cache")
	}
	// A malformed body is refused every time, never cached.
	bad := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3]}]}`)
	for range 2 {
		checkError(t, s.post(t, fakeInfer, bad), fasthttp.StatusBadRequest, "")
		waitCache(t, s)
	}
}

// TestStatusPageTraffic: the status page says what each loaded version
// served, why requests failed, how it batches and how its cache does.
func TestStatusPageTraffic(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	for range 2 {
		if r := s.post(t, fakeInfer, fakeRequest); r.code != fasthttp.StatusOK {
			t.Fatalf("got %s; want 200", r)
		}
		waitCache(t, s)
	}
	if r := s.post(t, fakeInfer, []byte(`{"inputs":[]}`)); r.code != fasthttp.StatusBadRequest {
		t.Fatalf("no inputs: got %s; want 400", r)
	}
	page := s.do(t, "GET", "/", nil)
	for _, want := range []string{
		"<h2>Traffic</h2>",
		// Served 2, failed 1, 1 row per batch, the mean wait and run, no
		// run sampled for its CPU share yet, the queue now.
		`<td>fake</td><td>1</td><td>2</td><td title="bad_request 1">1 <small>\(bad_request 1\)</small></td><td>1.0</td>` +
			`<td>[0-9.]+(ns|µs|ms|s)</td><td>[0-9.]+(ns|µs|ms)</td><td>—</td><td>0 of `,
		"on: 50% of 2 lookups hit",
	} {
		if !regexp.MustCompile(want).Match(page.body) {
			t.Errorf("status page lacks %q:\n%s", want, page.body)
		}
	}
	// A model that asks for the cache on a node without one.
	cfg := gateway.DefaultConfig()
	cfg.CacheBytes = 0
	s = startFake(t, newFakeBackend(), cfg, registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	if page := s.do(t, "GET", "/", nil); !bytes.Contains(page.body, []byte("off: this node has no cache (--cache-bytes 0)")) {
		t.Errorf("status page on a node without a cache:\n%s", page.body)
	}
}

// A priority above the model's levels runs at the default level whether
// or not the cache holds the request's inputs: the answer never depends on
// the cache.
func TestCacheHitPriorityAboveLevels(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	above := []byte(`{"parameters":{"priority":7},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`)
	first := s.post(t, fakeInfer, above)
	if first.code != fasthttp.StatusOK || first.header["X-Cache"] != "" {
		t.Fatalf("first: %s, X-Cache %q; want 200 from the model", first, first.header["X-Cache"])
	}
	waitCache(t, s)
	r := s.post(t, fakeInfer, above)
	if r.code != fasthttp.StatusOK || r.header["X-Cache"] != "hit" || !bytes.Equal(r.body, first.body) {
		t.Fatalf("again: %s, X-Cache %q; want the same answer from the cache", r, r.header["X-Cache"])
	}
}

// Cache-Control's no-cache skips the cache in any case of its name, among
// other directives, and in a second Cache-Control header.
func TestNoCacheDirectiveAnyCase(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	if r := s.post(t, fakeInfer, fakeRequest); r.code != fasthttp.StatusOK {
		t.Fatalf("first: %s", r)
	}
	waitCache(t, s)
	if r := s.post(t, fakeInfer, fakeRequest); r.header["X-Cache"] != "hit" {
		t.Fatalf("a repeated request: X-Cache %q; want hit", r.header["X-Cache"])
	}
	for _, h := range []string{"no-cache", "No-Cache", "max-age=0, NO-CACHE", " no-cache=\"x\" "} {
		if r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", h); r.code != fasthttp.StatusOK || r.header["X-Cache"] != "" {
			t.Errorf("Cache-Control: %s: %s, X-Cache %q; want 200 from the model", h, r, r.header["X-Cache"])
		}
	}
	if r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", "max-age=0", "Cache-Control", "no-cache"); r.header["X-Cache"] != "" {
		t.Errorf("no-cache in a second Cache-Control header: X-Cache %q; want none", r.header["X-Cache"])
	}
	if r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", "no-cache-please"); r.header["X-Cache"] != "hit" {
		t.Errorf("Cache-Control: no-cache-please: X-Cache %q; want hit (not the directive)", r.header["X-Cache"])
	}
}

// Nothing of a Cache-Control: no-store request is stored (RFC 9111,
// 5.2.1.5): the next identical request is computed again.
func TestNoStoreRequestIsNotStored(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", "No-Store")
	if r.code != fasthttp.StatusOK || r.header["X-Cache"] != "" {
		t.Fatalf("no-store request: %s, X-Cache %q; want 200 from the model", r, r.header["X-Cache"])
	}
	waitCache(t, s)
	if r := s.post(t, fakeInfer, fakeRequest); r.header["X-Cache"] == "hit" {
		t.Fatalf("the answer to a Cache-Control: no-store request was stored: the next identical request got X-Cache %q", r.header["X-Cache"])
	}
	// The plain request's answer is stored, and no-store skips it too.
	waitCache(t, s)
	if r := s.post(t, fakeInfer, fakeRequest, "Cache-Control", "no-store"); r.header["X-Cache"] != "" {
		t.Fatalf("no-store after a stored answer: X-Cache %q; want none", r.header["X-Cache"])
	}
}

// TestResponseCacheReloadInFullCache checks that a reloaded version's
// answers get into a full cache: the entries of the load it replaced,
// which nothing asks for any more, are deleted, where before they held
// the budget, and the admission policy, counting how often they had been
// asked for, refused the new answers for as long as they stayed.
func TestResponseCacheReloadInFullCache(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.CacheBytes = 1 << 16
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	// 40 distinct requests of 32 rows: their answers fill the cache, which
	// has no room for a second set of them.
	reqs := make([][]byte, 40)
	for i := range reqs {
		var b strings.Builder
		fmt.Fprintf(&b, `{"inputs":[{"name":"x","datatype":"FP32","shape":[32,4],"data":[`)
		for j := range 32 * 4 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", i*1000+j)
		}
		b.WriteString(`]}]}`)
		reqs[i] = []byte(b.String())
	}
	pass := func() (hits int) {
		t.Helper()
		for _, body := range reqs {
			r := s.post(t, fakeInfer, body)
			if r.code != fasthttp.StatusOK {
				t.Fatalf("got %s; want 200", r)
			}
			if r.header["X-Cache"] == "hit" {
				hits++
			}
			waitCache(t, s)
		}
		return hits
	}
	for range 4 {
		pass()
	}
	before := pass()
	if before < len(reqs)/4 {
		t.Fatalf("got %d hits of %d in the fifth pass; want %d or more", before, len(reqs), len(reqs)/4)
	}

	if r := s.post(t, "/v2/repository/models/fake/load", []byte(`{"parameters":{"config":"{\"max_batch_size\":64,\"response_cache\":{\"enable\":true}}"}}`)); r.code != fasthttp.StatusOK {
		t.Fatalf("reload: got %s; want 200", r)
	}
	// The replaced load's entries go once it has drained, in the
	// background.
	entries := func() float64 {
		v, err := metricValue(s.metricsText(t), "infergate_cache_entries")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for deadline := time.Now().Add(5 * time.Second); entries() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %v entries 5s after the reload; want those of the replaced load deleted", entries())
		}
	}
	pass()
	if after := pass(); after < before {
		t.Fatalf("got %d hits of %d in the second pass after the reload; want as many as before it, %d", after, len(reqs), before)
	}
}
