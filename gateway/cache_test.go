package gateway_test

import (
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

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
