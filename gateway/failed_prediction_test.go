package gateway_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// TestFailedResponseIsNotLogged: a request whose response fails after the
// model ran (a classification over max_output_bytes: 413) is no
// prediction the client got: neither logged nor remembered for its arm
// (found by a reviewing helper: it was logged before the response was
// written).
func TestFailedResponseIsNotLogged(t *testing.T) {
	cfg, tl, _ := trafficConfig(t, 100)
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{MaxOutputBytes: 8})
	body := []byte(`{"id":"refused-1","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],"outputs":[{"name":"y","parameters":{"classification":1}}]}`)
	checkError(t, s.post(t, fakeInfer, body), fasthttp.StatusRequestEntityTooLarge, "fewer classes")
	// A feedback is fsynced after anything appended before it.
	if r := s.post(t, "/v2/models/fake/feedback", []byte(`{"id":"marker","label":0}`)); r.code != 200 {
		t.Fatalf("feedback: %s", r)
	}
	var logged []string
	if _, err := tl.Read(0, 1<<20, func(_ int64, rec []byte) bool {
		var e trafficlog.Event
		if _, err := trafficlog.Decode(rec, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == trafficlog.Prediction {
			logged = append(logged, e.ID)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 0 {
		t.Fatalf("the client got 413, yet the log holds the prediction(s) %q as answered", logged)
	}
}
