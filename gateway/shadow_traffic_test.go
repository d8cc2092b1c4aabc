package gateway_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
)

// TestShadowOutputsAreLogged: with the traffic log on, what a shadow
// answered to a copy of a logged prediction is logged under the
// prediction's id (kind "shadow", the shadow's version, its outputs and
// no inputs), and only for the predictions the log sampled: the trainer
// pairs them with the feedback to judge the shadow on live traffic.
func TestShadowOutputsAreLogged(t *testing.T) {
	cfg, _, _ := trafficConfig(t, 50)
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	other := onnx.NewMLP(7, []int{64, 256, 256, 1}, onnx.Relu, onnx.Sigmoid).Model().Marshal()
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", other); r.code != 201 {
		t.Fatalf("upload: %s", r)
	}
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"id":"req-%d","inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":%s}]}`, i, jsonFloats(features(uint64(i+1), 1, 64)))
	}
	// Version 2's own answers, asked before the shadow starts (logged as
	// version 2's predictions, which the check below leaves aside).
	want := map[string][]float32{}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/versions/2/infer", body(0)); r.code != 200 {
			return fmt.Errorf("version 2 not ready: %s", r)
		}
		return nil
	})
	const n = 40
	for i := range n {
		out := decodeInfer(t, s.post(t, "/v2/models/ctr/versions/2/infer", body(i))).Outputs[0]
		want[fmt.Sprint("req-", i)] = bytesF32(out.Data)
	}

	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2,"percent":100}`)); r.code != 200 {
		t.Fatalf("start the shadow: %s", r)
	}
	for i := range n {
		if r := s.post(t, "/v2/models/ctr/infer", body(i)); r.code != 200 || r.header["X-Model-Version"] != "1" {
			t.Fatalf("request %d: %s from version %q; want version 1", i, r, r.header["X-Model-Version"])
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		lines, _ := readTraffic(t, s, "")
		var sampled, shadowed []string
		for _, l := range lines {
			switch {
			case l.Kind == "prediction" && l.Version == 1:
				sampled = append(sampled, l.ID)
			case l.Kind == "shadow":
				if l.Version != 2 || len(l.Inputs) != 0 || len(l.Outputs) != 1 {
					return fmt.Errorf("shadow line %+v; want version 2, no inputs, one output", l)
				}
				if got, w := l.Outputs[0].Data, want[l.ID]; !slices.Equal(got, w) {
					t.Fatalf("shadow line of %s has %v; want version 2's answer %v", l.ID, got, w)
				}
				shadowed = append(shadowed, l.ID)
			}
		}
		slices.Sort(sampled)
		slices.Sort(shadowed)
		if !slices.Equal(sampled, shadowed) {
			return fmt.Errorf("shadow lines for %v; want them for the sampled predictions %v", shadowed, sampled)
		}
		if len(sampled) == 0 || len(sampled) == n {
			// Also while the log has not synced them all yet.
			return fmt.Errorf("the log sampled %d of %d predictions at 50%%; the test needs some of each", len(sampled), n)
		}
		return nil
	})
}

// TestShadowGetsCacheHits: a request the response cache answers is a
// request of production's traffic like any other: its shadow gets a copy
// (found by a review: only misses were copied, so the shadow never saw
// repeated inputs).
func TestShadowGetsCacheHits(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdminWith(t, serverOptions{cfg: cfg, files: map[string][]byte{"ctr/1": ctrONNX()},
		defaults: registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}}})
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code != 201 {
		t.Fatalf("upload: %s", r)
	}
	body := ctrRequest(features(3, 1, 64), 1)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/versions/2/infer", body); r.code != 200 {
			return fmt.Errorf("version 2 not ready: %s", r)
		}
		return nil
	})
	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2,"percent":100}`)); r.code != 200 {
		t.Fatalf("start the shadow: %s", r)
	}
	hits := 0
	for i := range 10 {
		if i == 1 {
			s.srv.WaitCache()
		}
		if r := s.post(t, "/v2/models/ctr/infer", body); r.header["X-Cache"] == "hit" {
			hits++
		}
	}
	if hits != 9 {
		t.Fatalf("%d hits of 10 identical requests; the test needs 9", hits)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		text := s.metricsText(t)
		n := 0.0
		for _, res := range []string{"compared", "dropped", "failed", "not_ready"} {
			v, _ := metricValue(text, fmt.Sprintf(`infergate_shadow_requests_total{model="ctr",version="2",result=%q}`, res))
			n += v
		}
		if n != 10 {
			return fmt.Errorf("%v copies of 10 requests (9 of them cache hits) reached the shadow", n)
		}
		return nil
	})
}
