package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// TestModelStatistics checks the statistics extension: what each counter
// counts after a known mix of requests, the three scopes of the URL, and
// the errors.
func TestModelStatistics(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	get := func(uri string) oip.ModelStatistics {
		t.Helper()
		r := s.do(t, fasthttp.MethodGet, uri, nil)
		if r.code != fasthttp.StatusOK {
			t.Fatalf("GET %s: got %s; want 200", uri, r)
		}
		var st oip.ModelStatistics
		if err := json.Unmarshal(r.body, &st); err != nil {
			t.Fatalf("GET %s: %s in %s", uri, err, r.body)
		}
		return st
	}
	st := get("/v2/models/fake/stats")
	if len(st.ModelStats) != 1 || st.ModelStats[0].Name != "fake" || st.ModelStats[0].Version != "1" ||
		st.ModelStats[0].LastInference != 0 || st.ModelStats[0].InferenceStats.Success.Count != 0 || st.ModelStats[0].BatchStats == nil {
		t.Fatalf("before any request: %+v", st)
	}

	before := time.Now().UnixMilli()
	// Computed, answered from the cache, refused, computed with 2 rows.
	for _, req := range []struct {
		body string
		code int
	}{
		{string(fakeRequest), fasthttp.StatusOK},
		{string(fakeRequest), fasthttp.StatusOK},
		{`{"inputs":[]}`, fasthttp.StatusBadRequest},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8]}]}`, fasthttp.StatusOK},
	} {
		if r := s.post(t, fakeInfer, []byte(req.body)); r.code != req.code {
			t.Fatalf("%s: got %s; want %d", req.body, r, req.code)
		}
		waitCache(t, s)
	}
	after := time.Now().UnixMilli()

	for _, uri := range []string{"/v2/models/stats", "/v2/models/fake/stats", "/v2/models/fake/versions/1/stats"} {
		st := get(uri)
		if len(st.ModelStats) != 1 {
			t.Fatalf("GET %s: %d entries; want 1", uri, len(st.ModelStats))
		}
		ms := st.ModelStats[0]
		is := ms.InferenceStats
		if ms.LastInference < before || ms.LastInference > after {
			t.Errorf("GET %s: last_inference %d; want within [%d, %d]", uri, ms.LastInference, before, after)
		}
		f := func(what string, got, want uint64) {
			t.Helper()
			if got != want {
				t.Errorf("GET %s: %s: got %d; want %d", uri, what, got, want)
			}
		}
		f("inference_count (rows)", ms.InferenceCount, 3)
		f("execution_count", ms.ExecutionCount, 2)
		f("success.count", is.Success.Count, 3)
		f("fail.count", is.Fail.Count, 1)
		f("cache_hit.count", is.CacheHit.Count, 1)
		f("cache_miss.count (the two computed)", is.CacheMiss.Count, 2)
		f("queue.count (the hit too, as in Triton)", is.Queue.Count, 3)
		f("compute_infer.count", is.ComputeInfer.Count, 2)
		f("compute_input.count", is.ComputeInput.Count, 2)
		f("compute_input.ns", is.ComputeInput.NS, 0)
		for _, d := range []oip.DurationStat{is.Success, is.Fail, is.CacheHit, is.CacheMiss, is.ComputeInfer} {
			if d.NS == 0 {
				t.Errorf("GET %s: a duration of 0 ns in %+v", uri, is)
			}
		}
		if is.Success.NS < is.CacheHit.NS {
			t.Errorf("GET %s: success %d ns, which includes the cache hit, is less than the hit's %d ns", uri, is.Success.NS, is.CacheHit.NS)
		}
		if got := fmt.Sprintf("%d:%d %d:%d", ms.BatchStats[0].BatchSize, ms.BatchStats[0].ComputeInfer.Count,
			ms.BatchStats[1].BatchSize, ms.BatchStats[1].ComputeInfer.Count); len(ms.BatchStats) != 2 || got != "1:1 2:1" {
			t.Errorf("GET %s: batch_stats %+v; want one execution of 1 row and one of 2", uri, ms.BatchStats)
		}
	}

	// The client reads the same answer.
	c := oip.NewClient("http://" + s.listenTCP(t))
	if st, err := c.ModelStatistics("fake", "1"); err != nil || len(st.ModelStats) != 1 || st.ModelStats[0].ExecutionCount != 2 {
		t.Fatalf("client: %+v, %v", st, err)
	}
	if st, err := c.ModelStatistics("", ""); err != nil || len(st.ModelStats) != 1 {
		t.Fatalf("client, every model: %+v, %v", st, err)
	}

	checkError(t, s.do(t, fasthttp.MethodGet, "/v2/models/nope/stats", nil), fasthttp.StatusNotFound, "nope")
	checkError(t, s.do(t, fasthttp.MethodGet, "/v2/models/fake/versions/9/stats", nil), fasthttp.StatusNotFound, "9")
	if r := s.do(t, fasthttp.MethodPost, "/v2/models/stats", nil); r.code != fasthttp.StatusMethodNotAllowed {
		t.Fatalf("POST /v2/models/stats: got %s; want 405", r)
	}
	var sm oip.ServerMetadata
	if err := oip.DecodeServerMetadata(&sm, s.do(t, fasthttp.MethodGet, "/v2", nil).body); err != nil || !slices.Contains(sm.Extensions, "statistics") {
		t.Fatalf("server metadata %+v, %v; want the statistics extension listed", sm, err)
	}
}
