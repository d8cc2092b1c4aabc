package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// trafficConfig returns the gateway's default config with a traffic log
// logging percent of the predictions, and the log's metrics. The log
// closes when the test ends, after a server started later has shut down.
func trafficConfig(t testing.TB, percent float64) (gateway.Config, *trafficlog.Log, *metrics.Set) {
	t.Helper()
	return trafficConfigIn(t, t.TempDir(), percent)
}

// trafficConfigIn is trafficConfig with the traffic log in dir.
func trafficConfigIn(t testing.TB, dir string, percent float64) (gateway.Config, *trafficlog.Log, *metrics.Set) {
	t.Helper()
	tc := trafficlog.DefaultConfig()
	tc.Dir = dir
	tc.SyncInterval = 10 * time.Millisecond
	tc.Logf = t.Logf
	tc.Metrics = metrics.NewSet()
	tl, err := trafficlog.Open(tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	cfg := gateway.DefaultConfig()
	cfg.TrafficLog, cfg.TrafficPercent = tl, percent
	return cfg, tl, tc.Metrics
}

// startTraffic starts the demo server (ctr, real ONNX Runtime) with a
// traffic log logging percent of the predictions.
func startTraffic(t testing.TB, percent float64, defaults registry.ModelConfig) (*testServer, *trafficlog.Log, *metrics.Set) {
	t.Helper()
	cfg, tl, set := trafficConfig(t, percent)
	return startServer(t, serverOptions{cfg: cfg, defaults: defaults, files: map[string][]byte{"ctr/1": ctrONNX()}}), tl, set
}

// startTwoVersions starts ctr versions 1 and 2 (the same model) with a
// traffic log of every prediction, for experiments.
func startTwoVersions(t *testing.T) *testServer {
	t.Helper()
	cfg, _, _ := trafficConfig(t, 100)
	return startServer(t, serverOptions{cfg: cfg,
		defaults: registry.ModelConfig{VersionPolicy: registry.VersionPolicy{All: &struct{}{}}},
		files:    map[string][]byte{"ctr/1": ctrONNX(), "ctr/2": ctrONNX()}})
}

// trafficLine is a line of GET /v1/traffic.
type trafficLine struct {
	Position int64  `json:"position"`
	Kind     string `json:"kind"`
	Time     string `json:"time"`
	ID       string `json:"id"`
	Model    string `json:"model"`
	Version  int64  `json:"version"`
	Inputs   []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float32 `json:"data"`
	} `json:"inputs"`
	Outputs []struct {
		Name string    `json:"name"`
		Data []float32 `json:"data"`
	} `json:"outputs"`
	Label  *float64 `json:"label"`
	Reward *float64 `json:"reward"`
	Arm    string   `json:"arm"`
}

func readTraffic(t *testing.T, s *testServer, query string) ([]trafficLine, response) {
	t.Helper()
	r := s.admin(t, "GET", "/v1/traffic"+query, nil) // the token is ignored where none is set
	if r.code != 200 {
		t.Fatalf("GET /v1/traffic%s: %s", query, r)
	}
	var lines []trafficLine
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l trafficLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	return lines, r
}

// TestTrafficLogAndFeedback: every prediction (100%) is logged with its
// inputs and the outputs the client got, under the request's id or one
// the response gives; feedback is logged once on disk; /v1/traffic reads
// both back, as JSON lines and as records.
func TestTrafficLogAndFeedback(t *testing.T) {
	s, tl, set := startTraffic(t, 100, registry.ModelConfig{})
	x := features(1, 1, 64)
	withID := fmt.Appendf(nil, `{"id":"imp-1","inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":%s}]}`, jsonFloats(x))
	var ids []string
	var scores []float32
	for _, body := range [][]byte{withID, ctrRequest(x, 1), ctrRequest(x, 1)} {
		resp := decodeInfer(t, s.post(t, "/v2/models/ctr/infer", body))
		ids = append(ids, resp.ID)
		scores = append(scores, bytesF32(resp.Outputs[0].Data)...)
	}
	if ids[0] != "imp-1" || len(ids[1]) != 16 || len(ids[2]) != 16 || ids[1] == ids[2] {
		t.Fatalf("response ids %q; want imp-1, then two distinct ids of 16 hex digits", ids)
	}
	if r := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"imp-1","label":1}`)); r.code != 200 || string(r.body) != `{"accepted":1,"attributed":0}` {
		t.Fatalf("feedback: %s", r)
	}
	fb := fmt.Appendf(nil, `[{"id":%q,"reward":0.25},{"id":%q,"label":0,"reward":-1,"version":1}]`, ids[1], ids[2])
	if r := s.post(t, "/v2/models/ctr/feedback", fb); r.code != 200 || string(r.body) != `{"accepted":2,"attributed":0}` {
		t.Fatalf("feedback array: %s", r)
	}
	// Feedback is answered once on disk, and the predictions before it
	// were written before it.
	lines, r := readTraffic(t, s, "")
	if len(lines) != 6 {
		t.Fatalf("read %d events; want 3 predictions and 3 feedback:\n%s", len(lines), r.body)
	}
	for i, l := range lines[:3] {
		if l.Kind != "prediction" || l.ID != ids[i] || l.Model != "ctr" || l.Version != 1 || len(l.Inputs) != 1 || len(l.Outputs) != 1 {
			t.Fatalf("prediction %d: %+v", i, l)
		}
		if in := l.Inputs[0]; in.Name != "features" || in.Datatype != "FP32" || fmt.Sprint(in.Shape) != "[1 64]" || fmt.Sprint(in.Data) != fmt.Sprint(x) {
			t.Fatalf("prediction %d's input: %+v; want the request's", i, in)
		}
		if out := l.Outputs[0]; out.Name != "score" || len(out.Data) != 1 || out.Data[0] != scores[i] {
			t.Fatalf("prediction %d's output: %+v; want the score the client got, %v", i, out, scores[i])
		}
	}
	if l := lines[3]; l.Kind != "feedback" || l.ID != "imp-1" || l.Label == nil || *l.Label != 1 || l.Reward != nil {
		t.Fatalf("first feedback: %+v", l)
	}
	if l := lines[5]; l.ID != ids[2] || *l.Label != 0 || *l.Reward != -1 || l.Version != 1 {
		t.Fatalf("third feedback: %+v", l)
	}
	st := tl.Stats()
	if next := r.header["X-Traffic-Next"]; next != strconv.FormatInt(st.Next, 10) || r.header["X-Traffic-First"] != "0" || r.header["X-Traffic-Log"] != tl.ID() {
		t.Fatalf("headers %v; want next %d, first 0, the log's identity %s", r.header, st.Next, tl.ID())
	}
	// From a position, bounded, and as records.
	tail, _ := readTraffic(t, s, "?from="+strconv.FormatInt(lines[4].Position, 10))
	if len(tail) != 2 || tail[0].ID != ids[1] {
		t.Fatalf("from the fifth: %+v", tail)
	}
	one, r1 := readTraffic(t, s, "?max_bytes=1")
	if len(one) != 1 || r1.header["X-Traffic-Next"] != strconv.FormatInt(lines[1].Position, 10) {
		t.Fatalf("max_bytes=1: %d events, next %s; want one, next %d", len(one), r1.header["X-Traffic-Next"], lines[1].Position)
	}
	rb := s.do(t, "GET", "/v1/traffic?format=binary", nil)
	var e trafficlog.Event
	n, err := trafficlog.Decode(rb.body, &e)
	if err != nil || e.ID != "imp-1" || e.Kind != trafficlog.Prediction || len(e.Inputs) != 1 {
		t.Fatalf("binary: %d, %v, %+v", n, err, e)
	}
	for _, c := range []struct{ query, want string }{
		{"?from=x", "is not a position"},
		{"?from=3", "no traffic log record starts at position 3"},
		{"?from=" + strconv.FormatInt(st.Next+1, 10), "beyond the log's end"},
		{"?max_bytes=0", "max_bytes"},
		{"?format=csv", "use jsonl"},
	} {
		checkError(t, s.do(t, "GET", "/v1/traffic"+c.query, nil), fasthttp.StatusBadRequest, c.want)
	}
	// Not a record's position: no damage, and no way past any.
	if r := s.do(t, "GET", "/v1/traffic?from=3", nil); r.header["X-Traffic-Damaged"] != "" || r.header["X-Traffic-Skip"] != "" {
		t.Fatalf("a read from inside a record: X-Traffic-Damaged %q, X-Traffic-Skip %q; want neither", r.header["X-Traffic-Damaged"], r.header["X-Traffic-Skip"])
	}
	rs := s.do(t, "GET", "/v1/traffic/stats", nil)
	if !strings.Contains(string(rs.body), `"end":`+strconv.FormatInt(st.Next, 10)) || !strings.Contains(string(rs.body), `"percent":100`) ||
		!strings.Contains(string(rs.body), `"log":"`+tl.ID()+`"`) {
		t.Fatalf("stats: %s", rs)
	}
	var mb bytes.Buffer
	set.WritePrometheus(&mb)
	text := mb.String()
	checkMetric(t, text, `infergate_traffic_events_total{kind="prediction"}`, 3)
	checkMetric(t, text, `infergate_traffic_events_total{kind="feedback"}`, 3)
}

func TestFeedbackRefusesBadBodies(t *testing.T) {
	s, _, _ := startTraffic(t, 100, registry.ModelConfig{})
	const bad = fasthttp.StatusBadRequest
	for _, c := range []struct {
		uri, body string
		code      int
		want      string
	}{
		{"/v2/models/ctr/feedback", `{"label":1}`, bad, `"id" is missing`},
		{"/v2/models/ctr/feedback", `{"id":"a"}`, bad, `neither "label" nor "reward"`},
		{"/v2/models/ctr/feedback", `{"id":"a","label":"yes"}`, bad, "not the expected JSON"},
		{"/v2/models/ctr/feedback", `{"id":"a","label":1,"extra":2}`, bad, "unknown field"},
		{"/v2/models/ctr/feedback", `[]`, bad, "array is empty"},
		{"/v2/models/ctr/feedback", `[{"id":"a","label":1},{"id":"b"}]`, bad, "feedback 1: neither"},
		{"/v2/models/ctr/feedback", `{"id":"` + strings.Repeat("x", 257) + `","label":1}`, bad, `"id" has 257 bytes; at most 256`},
		{"/v2/models/ctr/feedback", `{"id":"a","label":1,"version":-1}`, bad, `"version" is negative`},
		// Squared and summed, 1e200 overflowed an experiment's sums.
		{"/v2/models/ctr/feedback", `{"id":"a","reward":1e200}`, bad, `"reward" is 1e+200; give one within ±1e+12`},
		{"/v2/models/ctr/feedback", `{"id":"a","label":-2e12}`, bad, `"label" is -2e+12; give one within ±1e+12`},
		{"/v2/models/ctr/versions/1/feedback", `{"id":"a","label":1,"version":2}`, bad, "names version 2, the path version 1"},
		{"/v2/models/nope/feedback", `{"id":"a","label":1}`, fasthttp.StatusNotFound, `model "nope" is not served here`},
	} {
		checkError(t, s.post(t, c.uri, []byte(c.body)), c.code, c.want)
	}
	checkError(t, s.do(t, "GET", "/v2/models/ctr/feedback", nil), fasthttp.StatusMethodNotAllowed, "")
	long := fmt.Appendf(nil, `{"id":%q,"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":%s}]}`, strings.Repeat("i", 257), jsonFloats(features(1, 1, 64)))
	checkError(t, s.post(t, "/v2/models/ctr/infer", long), bad, "the request's id has 257 bytes")
	if lines, _ := readTraffic(t, s, ""); len(lines) != 0 {
		t.Fatalf("refused feedback was logged: %+v", lines)
	}
}

// TestTrafficOff: without a traffic log, responses keep the request's id
// (none when it gave none), and feedback and /v1/traffic say how to turn
// it on.
func TestTrafficOff(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	if resp := decodeInfer(t, s.post(t, "/v2/models/ctr/infer", ctrRequest(features(1, 1, 64), 1))); resp.ID != "" {
		t.Fatalf("id %q without a traffic log; want none", resp.ID)
	}
	checkError(t, s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"a","label":1}`)), fasthttp.StatusNotFound, "--traffic-percent")
	checkError(t, s.do(t, "GET", "/v1/traffic", nil), fasthttp.StatusNotFound, "--traffic-percent")
}

// TestTrafficSampleAndCache: at 0.001% nearly nothing is logged, yet
// every response has an id for feedback; and a response cache never
// replays one prediction's id to the next identical request.
func TestTrafficSampleAndCache(t *testing.T) {
	s, tl, _ := startTraffic(t, 0.001, registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	body := ctrRequest(features(2, 1, 64), 1)
	seen := map[string]bool{}
	hits := 0
	for i := range 50 {
		if i == 1 {
			s.srv.WaitCache() // the first answer is stored
		}
		r := s.post(t, "/v2/models/ctr/infer", body)
		if r.header["X-Cache"] == "hit" {
			hits++
		}
		id := decodeInfer(t, r).ID
		if len(id) != 16 || seen[id] {
			t.Fatalf("id %q (seen before: %t); want a new one for each prediction", id, seen[id])
		}
		seen[id] = true
	}
	if hits != 49 {
		t.Fatalf("%d cache hits of 50 identical requests; want 49, the test needs the cache answering", hits)
	}
	time.Sleep(50 * time.Millisecond)
	if st := tl.Stats(); st.Next > 2000 {
		t.Fatalf("at 0.001%%, 50 requests wrote %d bytes; want about none", st.Next)
	}
}

// TestFeedbackCountsForItsArm: while an experiment runs, feedback counts
// for the arm that answered: named in the feedback (X-Experiment-Arm), or
// remembered by the node that answered when only the id is given. The
// traffic log's feedback events carry the arm for the trainer.
func TestFeedbackCountsForItsArm(t *testing.T) {
	s := startTwoVersions(t)
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "control", Version: 1, Weight: 1}, {Name: "treatment", Version: 2, Weight: 1}}}
	s.repo.SetExperiment("ctr", e)
	byArm := map[string][]string{} // arm -> response ids
	for i := 0; len(byArm["control"]) < 3 || len(byArm["treatment"]) < 3; i++ {
		r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(1, 1, 64), 1), gateway.HeaderUnitID, fmt.Sprint("user-", i))
		arm := r.header[gateway.HeaderExperimentArm]
		byArm[arm] = append(byArm[arm], decodeInfer(t, r).ID)
	}
	c, tr := byArm["control"], byArm["treatment"]
	post := func(body string, want string) {
		t.Helper()
		if r := s.post(t, "/v2/models/ctr/feedback", []byte(body)); r.code != 200 || string(r.body) != want {
			t.Fatalf("feedback %s: %s; want %s", body, r, want)
		}
	}
	// By id alone: this node remembers the arms.
	post(fmt.Sprintf(`[{"id":%q,"reward":1},{"id":%q,"reward":3,"label":1},{"id":%q,"reward":-2}]`, c[0], c[1], tr[0]), `{"accepted":3,"attributed":3}`)
	// Naming the arm, as a client does whose feedback reaches another
	// node; an arm the experiment does not have (any more) is logged, not
	// counted; an id nobody knows, without an arm, neither.
	post(`{"id":"from-elsewhere","reward":5,"arm":"treatment"}`, `{"accepted":1,"attributed":1}`)
	post(`{"id":"older","reward":5,"arm":"gone"}`, `{"accepted":1,"attributed":0}`)
	post(`{"id":"unknown","reward":5}`, `{"accepted":1,"attributed":0}`)

	text := s.metricsText(t)
	for series, want := range map[string]float64{
		`infergate_experiment_rewards_total{model="ctr",experiment="exp",arm="control",version="1"}`:   2,
		`infergate_experiment_reward_sum{model="ctr",experiment="exp",arm="control",version="1"}`:      4,
		`infergate_experiment_labels_total{model="ctr",experiment="exp",arm="control",version="1"}`:    1,
		`infergate_experiment_rewards_total{model="ctr",experiment="exp",arm="treatment",version="2"}`: 2,
		`infergate_experiment_reward_sum{model="ctr",experiment="exp",arm="treatment",version="2"}`:    3,
		`infergate_experiment_labels_total{model="ctr",experiment="exp",arm="treatment",version="2"}`:  0,
	} {
		checkMetric(t, text, series, want)
	}
	lines, _ := readTraffic(t, s, "")
	arms := map[string]string{}
	for _, l := range lines {
		if l.Kind == "feedback" {
			arms[l.ID] = l.Arm
		}
	}
	if arms[c[0]] != "control" || arms[tr[0]] != "treatment" || arms["older"] != "gone" || arms["unknown"] != "" {
		t.Fatalf("feedback arms in the log: %v", arms)
	}
	page := string(s.do(t, "GET", "/", nil).body)
	for _, want := range []string{"<td>control</td>", "<td>treatment</td>", "2 (mean 2)", "2 (mean 1.5)"} {
		if !strings.Contains(page, want) {
			t.Fatalf("the status page lacks %q:\n%s", want, page)
		}
	}
}
