package gateway_test

import (
	"fmt"
	"testing"

	"github.com/infergate/infergate/registry"
)

// A request the traffic log samples is logged when the response cache
// answers it, whether its body is byte for byte one seen before (the body
// key's replay) or not (the tensor key): the cache never changes which
// predictions the log holds, as it never changes which a shadow sees.
func TestTrafficLogsCachedIdenticalBodies(t *testing.T) {
	s, _, _ := startTraffic(t, 100, registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	body := fmt.Appendf(nil, `{"id":"imp-7","inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":%s}]}`, jsonFloats(features(3, 1, 64)))
	for i := range 3 {
		r := s.post(t, "/v2/models/ctr/infer", body)
		if r.code != 200 {
			t.Fatalf("request %d: %s", i, r)
		}
		if i > 0 && r.header["X-Cache"] != "hit" {
			t.Fatalf("request %d: X-Cache %q; want hit, the test needs the cache answering", i, r.header["X-Cache"])
		}
		s.srv.WaitCache()
	}
	// Feedback is answered once on disk, after the predictions before it.
	if r := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"imp-7","label":1}`)); r.code != 200 {
		t.Fatalf("feedback: %s", r)
	}
	lines, _ := readTraffic(t, s, "")
	n := 0
	for _, l := range lines {
		if l.Kind == "prediction" && l.ID == "imp-7" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d predictions logged of 3 sampled (100%%) requests, 2 answered from the cache; want 3", n)
	}
}
