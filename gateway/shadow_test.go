package gateway_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trainer/onnx"
)

// TestShadowComparesWithoutChangingAnswers copies every request of ctr to
// a shadow version: one with the same weights agrees, one with other
// weights disagrees; the clients' answers stay production's throughout.
func TestShadowComparesWithoutChangingAnswers(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	other := onnx.NewMLP(7, []int{64, 256, 256, 1}, onnx.Relu, onnx.Sigmoid).Model().Marshal()
	for _, b := range [][]byte{ctrONNX(), other} { // versions 2 (same weights) and 3
		if r := s.admin(t, "POST", "/v1/models/ctr/versions", b); r.code != 201 {
			t.Fatalf("upload: %s", r)
		}
	}
	body := func(i int) []byte {
		return []byte(inputs(input("features", "FP32", "[1,64]", jsonFloats(features(uint64(i+1), 1, 64)))))
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, v := range []string{"2", "3"} {
			if r := s.post(t, "/v2/models/ctr/versions/"+v+"/infer", body(0)); r.code != 200 {
				return fmt.Errorf("version %s not ready: %s", v, r)
			}
		}
		return nil
	})

	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2}`)), 400, "percent 0 is out of range")
	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":9,"percent":5}`)), 404, `model "ctr" has no version 9`)
	checkError(t, s.admin(t, "DELETE", "/v1/models/ctr/shadow", nil), 404, `model "ctr" has no shadow`)

	// value returns a series' value, 0 when absent.
	value := func(series string) float64 {
		v, _ := metricValue(s.metricsText(t), series)
		return v
	}
	// send sends n unversioned requests and checks that production (1)
	// answered each as it answers when asked by version.
	send := func(n int) {
		t.Helper()
		for i := range n {
			want := s.post(t, "/v2/models/ctr/versions/1/infer", body(i))
			r := s.post(t, "/v2/models/ctr/infer", body(i))
			if r.code != 200 || r.header["X-Model-Version"] != "1" || !bytes.Equal(r.body, want.body) {
				t.Fatalf("request %d with a shadow: %s from version %q; want version 1's answer %s", i, r, r.header["X-Model-Version"], want)
			}
		}
	}
	shadowed := func(version, result string) string {
		return fmt.Sprintf(`infergate_shadow_requests_total{model="ctr",version=%q,result=%q}`, version, result)
	}
	waitFor := func(series string, want float64) {
		t.Helper()
		testenv.CheckFor(t, 10*time.Second, func() error {
			if got := value(series); got != want {
				return fmt.Errorf("%s = %v; want %v", series, got, want)
			}
			return nil
		})
	}

	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2,"percent":100}`)); r.code != 200 {
		t.Fatalf("start the shadow: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		s.post(t, "/v2/models/ctr/infer", body(0))
		if value(shadowed("2", "compared")) == 0 {
			return fmt.Errorf("no copy compared yet")
		}
		return nil
	})
	base := value(shadowed("2", "compared"))
	success2 := value(`infergate_inference_request_success_total{model="ctr",version="2"}`)
	send(20) // 40 requests: 20 unversioned, copied, and 20 to version 1, copied too
	waitFor(shadowed("2", "compared"), base+40)
	if d := value(`infergate_shadow_disagreements_total{model="ctr",version="2"}`); d != 0 {
		t.Errorf("the same weights disagreed %v times", d)
	}
	if got := value(`infergate_inference_request_success_total{model="ctr",version="2"}`); got != success2+40 {
		t.Errorf("version 2 counted %v successes for the 40 copies; want %v", got-success2, 40)
	}
	if text := s.metricsText(t); !strings.Contains(text, `infergate_shadow_max_abs_diff_bucket{model="ctr",version="2",le="0"} `+fmt.Sprint(base+40)) {
		t.Errorf("every difference should be 0:\n%s", grepLines(text, "infergate_shadow_max_abs_diff"))
	}
	// Requests to the shadow version itself are not copied to it.
	s.post(t, "/v2/models/ctr/versions/2/infer", body(1))

	// Another version, other weights: every copy disagrees. The first
	// shadow's series leave /metrics.
	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":3,"percent":100}`)); r.code != 200 {
		t.Fatalf("change the shadow: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if text := s.metricsText(t); strings.Contains(text, `version="2",result="compared"`) {
			return fmt.Errorf("the old shadow's series are still there")
		}
		return nil
	})
	send(10)
	waitFor(shadowed("3", "compared"), 20)
	waitFor(`infergate_shadow_disagreements_total{model="ctr",version="3"}`, 20)
	page := s.do(t, "GET", "/", nil)
	for _, want := range []string{"<td>version 3 gets a copy of 100% of the requests (tolerance 0.001)</td>", "<td>3 <small>(shadow)</small></td>"} {
		if !bytes.Contains(page.body, []byte(want)) {
			t.Errorf("the status page lacks %q:\n%s", want, page.body)
		}
	}
	checkError(t, s.admin(t, "DELETE", "/v1/models/ctr/versions/3", nil), 409, "it is the model's shadow")

	if r := s.admin(t, "DELETE", "/v1/models/ctr/shadow", nil); r.code != 200 {
		t.Fatalf("end the shadow: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if text := s.metricsText(t); strings.Contains(text, "infergate_shadow_") {
			return fmt.Errorf("shadow series after the end:\n%s", grepLines(text, "infergate_shadow_"))
		}
		return nil
	})
	success3 := value(`infergate_inference_request_success_total{model="ctr",version="3"}`)
	send(5)
	time.Sleep(100 * time.Millisecond)
	if got := value(`infergate_inference_request_success_total{model="ctr",version="3"}`); got != success3 {
		t.Errorf("version 3 still got %v copies after the end", got-success3)
	}
}
