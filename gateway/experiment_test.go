package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
)

// TestExperimentSplitsUnversionedRequests runs an A/B experiment on ctr
// through the admin API of a one-node cluster: unversioned requests go to
// their unit's arm, the same arm every time, and say which; requests that
// name a version are left alone; the arms' versions cannot be retired
// while it runs; ending it sends everything to production again.
func TestExperimentSplitsUnversionedRequests(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code != 201 {
		t.Fatalf("upload version 2: %s", r)
	}
	body := []byte(inputs(input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64)))))
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/versions/2/infer", body); r.code != 200 {
			return fmt.Errorf("version 2 not ready: %s", r)
		}
		return nil
	})

	for _, c := range []struct {
		name, uri, body string
		code            int
		fragment        string
	}{
		{"one arm", "/v1/models/ctr/experiment", `{"name":"e","arms":[{"name":"a","version":1,"weight":1}]}`, 400, "has 1 arms"},
		{"unknown field", "/v1/models/ctr/experiment", `{"name":"e","arms":[],"split":1}`, 400, "unknown field"},
		{"bad arm name", "/v1/models/ctr/experiment", `{"name":"e","arms":[{"name":"A","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`, 400, `name "A" is not valid`},
		{"unknown version", "/v1/models/ctr/experiment", `{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":9,"weight":1}]}`, 404, `arm "b": model "ctr" has no version 9`},
		{"unknown model", "/v1/models/nope/experiment", `{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`, 404, `model "nope" is not registered`},
	} {
		checkError(t, s.admin(t, "PUT", c.uri, []byte(c.body)), c.code, c.fragment)
	}
	checkError(t, s.admin(t, "DELETE", "/v1/models/ctr/experiment", nil), 404, `model "ctr" runs no experiment`)
	checkError(t, s.admin(t, "GET", "/v1/models/ctr/experiment", nil), 405, "")

	exp := route.Experiment{Name: "ranking", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 50},
		{Name: "treatment", Version: 2, Weight: 50},
	}}
	eb, _ := json.Marshal(exp)
	if r := s.admin(t, "PUT", "/v1/models/ctr/experiment", eb); r.code != 200 || !bytes.Contains(r.body, []byte(`"name":"ranking"`)) || !bytes.Contains(r.body, []byte(`"new_phase":true`)) {
		t.Fatalf("start the experiment: %s", r)
	}
	// Set again, its phase goes on.
	if r := s.admin(t, "PUT", "/v1/models/ctr/experiment", eb); r.code != 200 || !bytes.Contains(r.body, []byte(`"new_phase":false`)) {
		t.Fatalf("set the experiment again: %s", r)
	}
	var mv cluster.ModelView
	if r := s.admin(t, "GET", "/v1/models/ctr", nil); json.Unmarshal(r.body, &mv) != nil || !mv.Experiment.SameSplit(&exp) || mv.Experiment.Phase == 0 || mv.Experiment.Started.IsZero() {
		t.Fatalf("GET /v1/models/ctr shows experiment %+v; want %+v", mv.Experiment, exp)
	}

	// The reconciler applies it asynchronously.
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/infer", body, gateway.HeaderUnitID, "u"); r.header["X-Experiment-Arm"] == "" {
			return fmt.Errorf("no arm yet: %s %v", r, r.header)
		}
		return nil
	})
	got := map[string]int{}
	for i := range 60 {
		unit := fmt.Sprintf("user-%d", i)
		want := exp.Arms[exp.Assign([]byte(unit))]
		for range 2 {
			r := s.post(t, "/v2/models/ctr/infer", body, gateway.HeaderUnitID, unit)
			if r.code != 200 || r.header["X-Experiment-Arm"] != want.Name || r.header["X-Model-Version"] != fmt.Sprint(want.Version) {
				t.Fatalf("unit %s: %s, arm %q, version %q; want arm %s, version %d", unit, r, r.header["X-Experiment-Arm"], r.header["X-Model-Version"], want.Name, want.Version)
			}
			got[want.Name]++
		}
	}
	if got["control"] == 0 || got["treatment"] == 0 {
		t.Fatalf("arms got %v; want both used", got)
	}
	// Without a unit, each request gets an arm at random.
	random := map[string]int{}
	for range 40 {
		r := s.post(t, "/v2/models/ctr/infer", body)
		random[r.header["X-Experiment-Arm"]]++
	}
	if random["control"] == 0 || random["treatment"] == 0 || len(random) != 2 {
		t.Fatalf("requests without a unit got arms %v; want both arms", random)
	}
	// A version in the path wins, and no arm is named.
	if r := s.post(t, "/v2/models/ctr/versions/1/infer", body, gateway.HeaderUnitID, "user-1"); r.code != 200 || r.header["X-Experiment-Arm"] != "" || r.header["X-Model-Version"] != "1" {
		t.Fatalf("versioned request: %s, headers %v", r, r.header)
	}
	checkError(t, s.post(t, "/v2/models/ctr/infer", body, gateway.HeaderUnitID, strings.Repeat("u", route.MaxUnitLen+1)), 400, "X-Unit-Id has 257 bytes")

	text := s.metricsText(t)
	for _, a := range exp.Arms {
		series := fmt.Sprintf(`infergate_experiment_requests_total{model="ctr",experiment="ranking",arm=%q,version="%d"}`, a.Name, a.Version)
		n, err := metricValue(text, series)
		// The wait above counted one or more requests of unit "u" too.
		if min := float64(got[a.Name] + random[a.Name]); err != nil || n < min || n > min+100 {
			t.Errorf("%s = %v (%v); want %v and a few", series, n, err, min)
		}
	}

	checkError(t, s.admin(t, "DELETE", "/v1/models/ctr/versions/2", nil), 409, `it is an arm of experiment "ranking"`)
	page := s.do(t, "GET", "/", nil)
	for _, want := range []string{"<td>ranking: control=version 1 (50%), treatment=version 2 (50%)</td>",
		"<td>ctr</td><td>ranking</td><td>" + mv.Experiment.Started.UTC().Format("2006-01-02 15:04:05 MST") + "</td><td>control</td>",
		"<td>1 <small>(fallback of the arms)</small> <small>(arm control)</small></td>", "<td>2 <small>(arm treatment)</small></td>"} {
		if !bytes.Contains(page.body, []byte(want)) {
			t.Errorf("the status page lacks %q:\n%s", want, page.body)
		}
	}

	if r := s.admin(t, "DELETE", "/v1/models/ctr/experiment", nil); r.code != 200 {
		t.Fatalf("end the experiment: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		for i := range 20 {
			r := s.post(t, "/v2/models/ctr/infer", body, gateway.HeaderUnitID, fmt.Sprintf("user-%d", i))
			if r.code != 200 || r.header["X-Experiment-Arm"] != "" || r.header["X-Model-Version"] != "1" {
				return fmt.Errorf("after the end: %s, headers %v; want production, version 1, without an arm", r, r.header)
			}
		}
		return nil
	})
	if text := s.metricsText(t); strings.Contains(text, "infergate_experiment_requests_total") {
		t.Errorf("the ended experiment's series are still on /metrics:\n%s", grepLines(text, "infergate_experiment"))
	}
	if r := s.admin(t, "DELETE", "/v1/models/ctr/versions/2", nil); r.code != 200 {
		t.Fatalf("retire version 2 after the experiment: %s", r)
	}
}
