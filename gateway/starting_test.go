package gateway_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
)

// TestModelNotLoadedYetWhileStarting: serve listens before its initial
// models are loaded (a node restarted in a rolling upgrade answers on its
// port at once, and a large model takes minutes to load), and a request
// for a model not loaded yet got 404 "is not served here", which tells a
// client the model does not exist: a client hitting the node directly
// saw one or two of them on each node restarted in the roll, for models
// the node served before it stopped and served again a moment later.
// Until the server is ready, a model it does not hold yet gets 503 with
// Retry-After, naming why; once ready, an unknown model gets 404.
func TestModelNotLoadedYetWhileStarting(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	// ranker is in the repository but not loaded yet.
	p := filepath.Join(s.repo.Dir(), "ranker", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, rankerONNX(), 0o644); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 256)
	body := []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[1,256],"data":` + jsonFloats(x) + `}]}`)

	s.srv.SetReady(false)
	f := func(method, uri string, body []byte) {
		t.Helper()
		r := s.do(t, method, uri, body, "Content-Type", "application/json")
		checkError(t, r, fasthttp.StatusServiceUnavailable, "still loading its initial models")
		if got := r.header["Retry-After"]; got != "1" {
			t.Fatalf("%s %s while starting: Retry-After got %q; want %q", method, uri, got, "1")
		}
	}
	f(fasthttp.MethodPost, "/v2/models/ranker/infer", body)
	f(fasthttp.MethodPost, "/v2/models/ranker/versions/1/infer", body)
	f(fasthttp.MethodGet, "/v2/models/ranker", nil)
	f(fasthttp.MethodGet, "/v2/models/ranker/ready", nil)
	// What is loaded serves meanwhile.
	if r := s.post(t, "/v2/models/ctr/infer", ctrRequest(make([]float32, 64), 1)); r.code != fasthttp.StatusOK {
		t.Fatalf("ctr while starting: got %s; want 200", r)
	}

	s.srv.SetReady(true)
	checkError(t, s.post(t, "/v2/models/ranker/infer", body), fasthttp.StatusNotFound, `model "ranker" is not served here`)
}
