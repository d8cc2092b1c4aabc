package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// A load of a name that is no model in the repository answers 404, and
// must leave nothing "failing" behind: there is no model to fix, the index
// shows nothing, and only a poll (which an explicit-mode server never
// runs) would clear it. infergate_model_load_failing is "what is failing
// now"; a typo in a deploy script must not page someone for ever.
func TestRepoLoadUnknownModelLeavesNothingFailing(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkMetric(t, s.metricsText(t), "infergate_model_load_failing", 0)

	r := s.post(t, "/v2/repository/models/no-such-model/load", nil)
	checkError(t, r, fasthttp.StatusNotFound, "no-such-model")

	idx := s.post(t, "/v2/repository/index", nil)
	if idx.code != fasthttp.StatusOK {
		t.Fatalf("index: %s", idx)
	}
	var entries []registry.IndexEntry
	if err := json.Unmarshal(idx.body, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == "no-such-model" {
			t.Fatalf("index lists the unknown model: %+v", entries)
		}
	}
	// The index shows every model as fine; the gauge must agree.
	checkMetric(t, s.metricsText(t), "infergate_model_load_failing", 0)
}

// While a serving version is reloaded (here with a new configuration
// through the load API), it keeps serving: /ready answers 200 and infer
// requests run on it. The repository index must say so too (READY, as
// Triton reports a version whose reload is in progress); with
// {"ready": true} it must still list the model (it reported LOADING, and
// the ready filter dropped a model that served).
func TestRepoIndexDuringReloadOfServingVersion(t *testing.T) {
	gate := make(chan struct{})
	var calls atomic.Int64
	b := newFakeBackend()
	load := func([]byte, registry.ModelConfig) (registry.Backend, error) {
		if calls.Add(1) == 2 {
			<-gate // the reload: hold it while the test looks
		}
		return b, nil
	}
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), load: load,
		files: map[string][]byte{"fake/1": []byte("fake")}})
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)

	done := make(chan response, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, "/v2/repository/models/fake/load",
			[]byte(`{"parameters":{"config":{"max_queue":17}}}`), "Content-Type", "application/json")
		if err != nil {
			r = response{code: -1, body: []byte(err.Error())}
		}
		done <- r
	}()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the reload never reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/versions/1/ready", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("ready of the serving version during its reload: %s", r)
	}
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))

	all := indexOf(t, s, nil)
	readyOnly := indexOf(t, s, []byte(`{"ready":true}`))
	release()
	if r := <-done; r.code != fasthttp.StatusOK {
		t.Fatalf("reload: %s", r)
	}

	if len(all) != 1 || all[0].Version != "1" || all[0].State != registry.StateReady {
		t.Errorf("index while version 1 serves and reloads: %+v; want fake version 1 READY", all)
	}
	if len(readyOnly) != 1 {
		t.Errorf(`index {"ready":true} while version 1 serves and reloads: %+v; want fake version 1`, readyOnly)
	}
}

func indexOf(t *testing.T, s *testServer, body []byte) []registry.IndexEntry {
	t.Helper()
	r := s.post(t, "/v2/repository/index", body)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("index: %s", r)
	}
	var out []registry.IndexEntry
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Triton's unload of a model that is not loaded has no effect and
// succeeds (TRITONSERVER_ServerUnloadModel: "Unloading a model that is not
// loaded on server has no affect and success code will be returned"), so
// that teardown scripts and Triton's clients (unload_model raises on any
// non-200) can unload idempotently: a second unload answers 200 (it
// answered 404).
func TestRepoUnloadTwiceIsIdempotent(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	if r := s.post(t, "/v2/repository/models/fake/unload", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("first unload: %s", r)
	}
	if r := s.post(t, "/v2/repository/models/fake/unload", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("second unload of a model in the repository that is no longer loaded: got %s; want 200 (Triton: no effect, success)", r)
	}
}

// A model unloaded through the API "stays unloaded until the API loads
// it" (README, --poll-interval). A load call that fails (here: its
// configuration names an input the model has not) loads nothing and says
// so with a 4xx; the model must stay unloaded, not come back at the next
// poll with its config.json, a configuration the operator did not ask for.
func TestRepoFailedLoadLeavesModelUnloaded(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	if r := s.post(t, "/v2/repository/models/fake/unload", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("unload: %s", r)
	}
	r := s.post(t, "/v2/repository/models/fake/load",
		[]byte(`{"parameters":{"config":{"input":[{"name":"nope","data_type":"TYPE_FP32","dims":[4]}]}}}`))
	if r.code != fasthttp.StatusBadRequest {
		t.Fatalf("load with a configuration that does not fit: got %s; want 400", r)
	}
	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/ready", nil); r.code != fasthttp.StatusNotFound {
		t.Fatalf("ready after the failed load: %s; want 404", r)
	}
	// What --poll-interval runs.
	if err := s.repo.Poll(); err != nil && !errors.Is(err, registry.ErrLoadFailed) {
		t.Logf("poll: %v", err)
	}
	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/ready", nil); r.code != fasthttp.StatusNotFound {
		t.Fatalf("after a failed load call and a poll, the unloaded model serves again: ready %s; want 404 (the failed load loaded nothing, so it stays unloaded)", r)
	}
}

// After a hot swap (version 2 copied in, load) version 1 drains: the
// index says UNLOADING until its last request is answered. The status
// page's "in flight" column and infergate_inference_requests_in_flight are
// what an operator watches to see what the drain waits for; both must
// count the request still running on the draining load (they read only
// the routing table, from which it is gone, and said 0).
func TestRepoDrainingVersionShowsItsInFlight(t *testing.T) {
	b1 := newFakeBackend()
	var calls atomic.Int64
	load := func([]byte, registry.ModelConfig) (registry.Backend, error) {
		if calls.Add(1) == 1 {
			return b1, nil
		}
		return newFakeBackend(), nil
	}
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), load: load,
		files: map[string][]byte{"fake/1": []byte("fake")}})
	t.Cleanup(b1.unblock)
	b1.mode.Store(fakeBlock)
	done := make(chan response, 1)
	go func() {
		r, _ := s.send(fasthttp.MethodPost, "/v2/models/fake/versions/1/infer", fakeRequest, "Content-Type", "application/json")
		done <- r
	}()
	deadline := time.Now().Add(10 * time.Second)
	for b1.running.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p := filepath.Join(s.repo.Dir(), "fake", "2", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("fake2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.post(t, "/v2/repository/models/fake/load", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("load of version 2: %s", r)
	}
	idx := indexOf(t, s, nil)
	if len(idx) != 2 || idx[0].State != registry.StateUnloading {
		t.Fatalf("index: %+v; want version 1 UNLOADING", idx)
	}
	page := string(s.do(t, fasthttp.MethodGet, "/", nil).body)
	metricsText := s.metricsText(t)
	b1.unblock()
	<-done

	var failures []string
	row := `<td class="UNLOADING">UNLOADING</td><td>1</td>`
	if !strings.Contains(page, row) {
		failures = append(failures, "status page: version 1 drains one request, but its row is "+grepLines(page, "UNLOADING"))
	}
	got, err := metricValue(metricsText, `infergate_inference_requests_in_flight{model="fake",version="1"}`)
	if err != nil || got != 1 {
		failures = append(failures, fmt.Sprintf("infergate_inference_requests_in_flight of the draining version 1: %v (%v); want 1", got, err))
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// The unload API takes the body Triton's clients send
// ({"parameters":{"unload_dependents":false}}) and refuses anything else,
// as the load API does: a misspelt field must not read as a done unload
// of something else, and must unload nothing.
func TestRepoUnloadBody(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	r := s.post(t, "/v2/repository/models/fake/unload", []byte(`{"parameters":{"unload_dependent":true}}`))
	if r.code != fasthttp.StatusBadRequest || !strings.Contains(string(r.body), `unknown field \"unload_dependent\"`) {
		t.Fatalf("unload with a misspelt parameter: got %s; want 400 naming the field", r)
	}
	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/ready", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("ready after a refused unload: %s; want 200 (nothing was unloaded)", r)
	}
	if r := s.post(t, "/v2/repository/models/fake/unload", []byte(`{"parameters":{"unload_dependents":false}}`)); r.code != fasthttp.StatusOK {
		t.Fatalf("unload with the body Triton's clients send: %s", r)
	}
	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/ready", nil); r.code != fasthttp.StatusNotFound {
		t.Fatalf("ready after the unload: %s; want 404", r)
	}
}
