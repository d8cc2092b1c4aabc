package trainer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// fakeGateway is the part of a gateway node's API a Loop uses, over
// state a test sets: the model "ctr" (one FP32 [-1, 4] input), its
// versions, routing, /metrics text, and a traffic log of encoded
// records. It records the writes it takes.
type fakeGateway struct {
	mu         sync.Mutex
	production int64
	rollbackTo int64 // rollback_to: the version a rollback goes to
	versions   []int64
	sums       map[int64]string // sha256 of the uploaded bytes
	retired    map[int64]bool
	// unreachable makes a version's node report "unreachable".
	unreachable map[int64]bool
	shadow      *struct {
		Version int64   `json:"version"`
		Percent float64 `json:"percent"`
	}
	experiment *Experiment
	metrics    string
	log        []byte
	writes     []string
	// refuse answers the next write named so 503, conflict 409 (and
	// records it); standsIn answers every write named so 409 with the
	// stands-in kind, as a retire refused for a node where production
	// failed.
	refuse, conflict, standsIn string
	// members are the HTTP addresses of the cluster's members besides
	// the node asked (GET /v1/cluster), each named "n-" and its address.
	members []string
	// removed answers GET /v1/models/ctr as for a model removed from
	// the cluster (models remove): no production, every version retired.
	removed bool
}

func (f *fakeGateway) append(e *trafficlog.Event) {
	f.mu.Lock()
	f.log = trafficlog.AppendRecord(f.log, e)
	f.mu.Unlock()
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	reply := func(v any) { json.NewEncoder(w).Encode(v) }
	write := func() { f.writes = append(f.writes, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/v1/models/ctr")) }
	if name := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/v1/models/ctr"); name == f.refuse {
		f.refuse = ""
		f.writes = append(f.writes, name+" (refused)")
		http.Error(w, `{"error":"no leader"}`, 503)
		return
	} else if name == f.conflict {
		f.conflict = ""
		f.writes = append(f.writes, name+" (conflict)")
		http.Error(w, `{"error":"conflict: aliases point to it"}`, 409)
		return
	} else if name == f.standsIn {
		f.writes = append(f.writes, name+" (stands in)")
		w.Header().Set("X-Infergate-Error-Kind", "stands-in")
		http.Error(w, `{"error":"retiring version 3 of model \"ctr\" would leave a node with no version for the model's unversioned requests"}`, 409)
		return
	}
	switch p := r.URL.Path; {
	case p == "/v2/models/ctr":
		reply(map[string]any{"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{-1, 4}}},
			"outputs": []any{map[string]any{"name": "p"}}})
	case p == "/metrics":
		io.WriteString(w, f.metrics)
	case p == "/v1/cluster":
		members := []any{map[string]string{"id": "n1", "http_addr": r.Host + "/"}}
		for _, a := range f.members {
			members = append(members, map[string]string{"id": "n-" + a, "http_addr": a})
		}
		reply(map[string]any{"members": members})
	case p == "/v1/traffic":
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		w.Header().Set("X-Traffic-Next", strconv.Itoa(len(f.log)))
		w.Header().Set("X-Traffic-End", strconv.Itoa(len(f.log)))
		w.Write(f.log[from:])
	case p == "/v1/models/ctr" && r.Method == "GET":
		m := map[string]any{"production": f.production, "experiment": f.experiment, "shadow": f.shadow}
		if f.rollbackTo > 0 {
			m["rollback_to"] = f.rollbackTo
		}
		if f.removed {
			m["production"], m["removed"], m["experiment"], m["shadow"] = 0, true, nil, nil
		}
		var vs []any
		for _, v := range f.versions {
			vv := map[string]any{"version": v, "stage": "staged", "sha256": f.sums[v]}
			if f.removed {
				vv["stage"] = "retired"
			}
			switch {
			case f.unreachable[v]:
				vv["nodes"] = map[string]any{"n1": map[string]string{"state": "ready"}, "n2": map[string]string{"state": "unreachable"}}
			case !f.retired[v]:
				vv["nodes"] = map[string]any{"n1": map[string]string{"state": "ready"}}
			}
			vs = append(vs, vv)
		}
		m["versions"] = vs
		reply(m)
	case p == "/v1/models/ctr/versions" && r.Method == "POST":
		write()
		v := f.versions[len(f.versions)-1] + 1
		f.versions = append(f.versions, v)
		sum := sha256.Sum256(body)
		if f.sums == nil {
			f.sums = map[int64]string{}
		}
		f.sums[v] = hex.EncodeToString(sum[:])
		w.WriteHeader(201)
		reply(map[string]any{"version": v})
	case strings.HasPrefix(p, "/v1/models/ctr/versions/") && r.Method == "DELETE":
		write()
		v, _ := strconv.ParseInt(strings.TrimPrefix(p, "/v1/models/ctr/versions/"), 10, 64)
		f.retired[v] = true
		reply(map[string]any{})
	case p == "/v1/models/ctr/shadow":
		write()
		if r.Method == "DELETE" {
			f.shadow = nil
		} else if err := json.Unmarshal(body, &f.shadow); err != nil {
			http.Error(w, err.Error(), 400)
		}
		reply(map[string]any{})
	case p == "/v1/models/ctr/experiment":
		write()
		if r.Method == "DELETE" {
			f.experiment = nil
		} else if err := json.Unmarshal(body, &f.experiment); err != nil {
			http.Error(w, err.Error(), 400)
		}
		reply(map[string]any{})
	case p == "/v1/models/ctr/aliases/production" && r.Method == "PUT":
		write()
		var q struct{ Version int64 }
		json.Unmarshal(body, &q)
		f.production = q.Version
		reply(map[string]any{})
	default:
		http.Error(w, `{"error":"no such call in the fake"}`, 404)
	}
}

func (f *fakeGateway) takeWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

// loopWorld drives a Loop against a fakeGateway on a clock the test
// moves: it logs predictions of four features (feature 3 shifted when
// drifted), labeled by x0 > 0, with the live and shadow scores a test
// chooses.
type loopWorld struct {
	t       *testing.T
	f       *fakeGateway
	cfg     LoopConfig
	now     time.Time
	rng     *rand.Rand
	n       int
	drifted bool
	// noise labels at random, whatever the features.
	noise bool
	logs  []string
	// gap is the time between two predictions of traffic (0: a second).
	gap time.Duration
}

func newLoopWorld(t *testing.T) *loopWorld {
	w := &loopWorld{t: t, f: &fakeGateway{production: 1, versions: []int64{1}, retired: map[int64]bool{}},
		now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(1, 2))}
	srv := httptest.NewServer(w.f)
	t.Cleanup(srv.Close)
	cfg := DefaultLoopConfig()
	cfg.Model = "ctr"
	cfg.Gateway = &Gateway{Nodes: []string{srv.URL}}
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	cfg.DriftRows, cfg.MinExamples, cfg.Window = 200, 200, 5000
	cfg.Policy.MinShadowPairs, cfg.Policy.MinCanaryExamples = 50, 50
	cfg.Now = func() time.Time { return w.now }
	cfg.Logf = func(format string, args ...any) { w.logs = append(w.logs, fmt.Sprintf(format, args...)) }
	w.cfg = cfg
	return w
}

func (w *loopWorld) loop() *Loop {
	w.t.Helper()
	l, err := NewLoop(w.t.Context(), w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

func f32bytes(xs ...float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// traffic logs n labeled predictions answered by version (arm, when not
// empty), a second apart. live and shadow give the scores from the label
// (shadow nil: no shadow copy).
func (w *loopWorld) traffic(n int, version int64, arm string, live func(y float64) float32, shadow func(y float64) float32, shadowVersion int64) {
	for range n {
		gap := w.gap
		if gap == 0 {
			gap = time.Second
		}
		w.now = w.now.Add(gap)
		x := make([]float32, 4)
		for k := range x {
			x[k] = float32(w.rng.NormFloat64())
		}
		if w.drifted {
			x[3] += 2
		}
		y := 0.0
		if x[0] > 0 {
			y = 1
		}
		if w.noise {
			y = float64(w.rng.IntN(2))
		}
		id := fmt.Sprint("r-", w.n)
		w.n++
		w.f.append(&trafficlog.Event{Kind: trafficlog.Prediction, Time: w.now, ID: id, Model: "ctr", Version: version, Arm: arm,
			Inputs:  []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 4}, Data: f32bytes(x...)}},
			Outputs: []oip.Tensor{{Name: "p", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: f32bytes(live(y))}}})
		if shadow != nil {
			w.f.append(&trafficlog.Event{Kind: trafficlog.Shadow, Time: w.now, ID: id, Model: "ctr", Version: shadowVersion,
				Outputs: []oip.Tensor{{Name: "p", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: f32bytes(shadow(y))}}})
		}
		w.f.append(&trafficlog.Event{Kind: trafficlog.Feedback, Time: w.now, ID: id, Model: "ctr", Label: y, HasLabel: true})
	}
}

func (w *loopWorld) step(l *Loop) {
	w.t.Helper()
	if err := l.Step(w.t.Context()); err != nil {
		w.t.Fatalf("step: %v\nlog:\n%s", err, strings.Join(w.logs, "\n"))
	}
}

func (w *loopWorld) wantWrites(want ...string) {
	w.t.Helper()
	if got := w.f.takeWrites(); strings.Join(got, "; ") != strings.Join(want, "; ") {
		w.t.Fatalf("the loop made the writes %q; want %q\nlog:\n%s", got, want, strings.Join(w.logs, "\n"))
	}
}

func (w *loopWorld) wantLast(action string, v int64, reason string) {
	w.t.Helper()
	b, err := os.ReadFile(w.cfg.StateFile)
	if err != nil {
		w.t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		w.t.Fatal(err)
	}
	d := st.History[len(st.History)-1]
	if d.Action != action || d.Version != v || !strings.Contains(d.Reason, reason) {
		w.t.Fatalf("the last decision is %+v; want %s version %d, saying %q", d, action, v, reason)
	}
}

// Scores: the demo's coin flip, a model that knows the rule, one that
// has it backwards.
func coin(float64) float32     { return 0.5 }
func knows(y float64) float32  { return float32(0.1 + 0.8*y) }
func wrongs(y float64) float32 { return float32(0.9 - 0.8*y) }

// uploadCandidate takes the world from no drift to a candidate, version
// 2, uploaded and shadowing.
func (w *loopWorld) uploadCandidate(l *Loop) {
	w.t.Helper()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites() // the inputs keep to the reference: nothing to do
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites("POST /versions")
	w.wantLast("upload", 2, "drift: ")
	w.step(l)
	w.wantWrites("PUT /shadow")
	w.wantLast("shadow", 2, "ready on every node")
}

// TestLoopRollsBackAWorseShadow: a candidate that scores the shadowed
// requests worse than production is rolled back (shadow ended, version
// retired), and the loop does not train again during the cool-down
// though the inputs are still drifted.
func TestLoopRollsBackAWorseShadow(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(20, 1, "", coin, wrongs, 2)
	w.step(l)
	w.wantWrites() // 20 of the 50 pairs needed
	w.traffic(40, 1, "", coin, wrongs, 2)
	// The retire fails once (no leader, say): the next step finishes the
	// roll back, though the shadow is gone by then.
	w.f.refuse = "DELETE /versions/2"
	if err := l.Step(t.Context()); err == nil || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("step: %v; want the refused retire", err)
	}
	w.wantWrites("DELETE /shadow", "DELETE /versions/2 (refused)")
	w.step(l)
	w.wantWrites("DELETE /versions/2")
	w.wantLast("roll back", 2, "in the shadow stage, worse: ")
	if st := l.State(); st.Stage != Watching || !st.NextTrain.Equal(w.now.Add(w.cfg.Cooldown)) {
		t.Fatalf("state %+v; want watching, training again after the cool-down", st)
	}
	w.traffic(300, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
}

// TestLoopPromotesAcrossARestart: a better shadow goes on to the canary
// (an experiment against production); a trainer restarted from its state
// file judges the canary where the first left off and promotes it, then
// watches the new production.
func TestLoopPromotesAcrossARestart(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, knows, 2)
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.wantLast("canary", 2, "better: ")
	if x := w.f.experiment; x == nil || x.Name != "trainer-v2" || len(x.Arms) != 2 || x.Arms[0] != (Arm{"control", 1, 90}) || x.Arms[1] != (Arm{"candidate", 2, 10}) {
		t.Fatalf("experiment %+v; want trainer-v2 with control 1 at 90 and candidate 2 at 10", x)
	}

	l = w.loop() // a restart
	if st := l.State(); st.Stage != Canary || st.Candidate != 2 || st.Control != 1 {
		t.Fatalf("restarted in %+v; want the canary of version 2 against 1", st)
	}
	for range 3 {
		w.traffic(20, 1, "control", coin, nil, 0)
		w.traffic(20, 2, "candidate", knows, nil, 0)
	}
	w.step(l)
	w.wantWrites("PUT /aliases/production", "DELETE /experiment")
	w.wantLast("promote", 2, "the canary stage passed: better: ")
	if st := l.State(); st.Stage != Watching || !st.ReferenceSince.Equal(w.now) || w.f.production != 2 {
		t.Fatalf("state %+v, production %d; want watching version 2 from now on", st, w.f.production)
	}
}

// TestLoopCanaryGuards: the canary is rolled back when its version fails
// more than the policy allows, whatever its log loss; a stage someone
// else ended is abandoned (the version left as it is); a shadow someone
// else runs keeps the loop from training.
func TestLoopCanaryGuards(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, knows, 2)
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.f.metrics = `# TYPE infergate_inference_request_success_total counter
infergate_inference_request_success_total{model="ctr",version="2"} 190
infergate_inference_request_failure_total{model="ctr",version="2",reason="internal"} 2
infergate_inference_request_failure_total{model="ctr",version="2",reason="bad_request"} 50
infergate_experiment_fallback_total{model="ctr",experiment="trainer-v2",arm="candidate",version="2"} 8
infergate_experiment_requests_total{model="ctr",experiment="trainer-v2",arm="candidate",version="2"} 200
`
	for range 3 {
		w.traffic(20, 1, "control", coin, nil, 0)
		w.traffic(20, 2, "candidate", knows, nil, 0)
	}
	w.step(l)
	w.wantWrites("DELETE /experiment", "DELETE /versions/2")
	w.wantLast("roll back", 2, "the canary fails: 10 of its 200 runs failed")

	// Someone ends the next candidate's shadow: abandoned, not retired.
	w.f.metrics = ""
	w.now = w.now.Add(w.cfg.Cooldown)
	w.traffic(100, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites("POST /versions")
	w.step(l)
	w.wantWrites("PUT /shadow")
	w.f.shadow = nil
	w.step(l)
	w.wantWrites()
	w.wantLast("abandon", 3, "its shadow was ended or replaced by someone else")

	// A shadow the loop did not start: it would train, but waits.
	w.f.shadow = &struct {
		Version int64   `json:"version"`
		Percent float64 `json:"percent"`
	}{3, 5}
	w.now = w.now.Add(w.cfg.Cooldown)
	w.traffic(100, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
	if last := w.logs[len(w.logs)-1]; !strings.Contains(last, "a shadow (version 3) the trainer did not start") {
		t.Fatalf("the loop logged %q; want it to say why it waits", last)
	}
}

func TestSumSeries(t *testing.T) {
	text := `# HELP x
a_total{model="ctr",version="2",result="ok"} 3
a_total{model="ctr",version="2",result="failed"} 1.5
a_total{model="ctr",version="12",result="ok"} 100
a_total{model="c\"tr",version="2"} 7
a_total_more{model="ctr"} 9
a_total 2
`
	f := func(match map[string]string, want float64) {
		t.Helper()
		if got := SumSeries(text+text, "a_total", match); got != want {
			t.Fatalf("SumSeries(%v) = %v; want %v", match, got, want)
		}
	}
	f(map[string]string{"model": "ctr", "version": "2"}, 9)
	f(map[string]string{"model": "ctr", "version": "2", "result": "failed"}, 3)
	f(map[string]string{"model": `c"tr`}, 14)
	f(nil, 2*(3+1.5+100+7+2))
}

// readState reads the loop's state file.
func (w *loopWorld) readState() State {
	w.t.Helper()
	b, err := os.ReadFile(w.cfg.StateFile)
	if err != nil {
		w.t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		w.t.Fatal(err)
	}
	return st
}

// TestLoopFinishesAStepCutShort: a trainer stopped between the calls of
// a step (here: the experiment started, the shadow not yet ended) has
// recorded the step first; started again, it finishes it and goes on,
// rather than taking its own experiment for someone else's.
func TestLoopFinishesAStepCutShort(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, knows, 2)
	w.f.refuse = "DELETE /shadow"
	if err := l.Step(t.Context()); err == nil {
		t.Fatal("the step went through though ending the shadow failed")
	}
	w.wantWrites("PUT /experiment", "DELETE /shadow (refused)")
	if st := w.readState(); st.Pending != "canary" || st.Stage != Shadowing {
		t.Fatalf("state after the cut: %+v; want the canary step pending", st)
	}
	l = w.loop() // a restart
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.wantLast("canary", 2, "the shadow stage passed (better: ")
	if st := l.State(); st.Stage != Canary || st.Pending != "" || st.Control != 1 {
		t.Fatalf("state %+v; want the canary against version 1", st)
	}
}

// TestLoopLeavesAPersonsPromotion: a candidate someone promoted by hand
// during its canary is left alone (not retired, not rolled back), and a
// roll back whose retire the cluster refuses (409) ends, saying so.
func TestLoopLeavesAPersonsPromotion(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, knows, 2)
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.f.production = 2
	w.step(l)
	w.wantWrites("DELETE /experiment") // its own, which would still split traffic with the old version
	w.wantLast("abandon", 2, "someone made version 2 production during its canary")

	// The next candidate is worse in its shadow, and its retire is
	// refused as a conflict.
	w.now = w.now.Add(w.cfg.Cooldown)
	w.traffic(400, 2, "", coin, nil, 0)
	w.step(l)
	w.wantWrites() // the reference of version 2
	w.drifted = false
	w.traffic(300, 2, "", coin, nil, 0)
	w.step(l)
	w.wantWrites("POST /versions")
	w.step(l)
	w.wantWrites("PUT /shadow")
	w.traffic(60, 2, "", coin, wrongs, 3)
	w.f.conflict = "DELETE /versions/3"
	w.step(l)
	w.wantWrites("DELETE /shadow", "DELETE /versions/3 (conflict)")
	w.wantLast("roll back", 3, "version 3 not retired: ")
	if st := l.State(); st.Stage != Watching || st.Pending != "" {
		t.Fatalf("state %+v; want watching, nothing pending", st)
	}
}

// TestLoopWithANodeDown: a node that cannot be reached does not stop the
// loop: it judges on the others, rolls a worse candidate back, but does
// not pass a stage until every node can be read; nor does it train while
// a node is down (the candidate could not be ready on every node).
func TestLoopWithANodeDown(t *testing.T) {
	w := newLoopWorld(t)
	down := httptest.NewServer(w.f) // a second node, down once the shadow runs
	w.cfg.Gateway.Nodes = append(w.cfg.Gateway.Nodes, down.URL)
	l := w.loop()
	w.uploadCandidate(l)
	down.Close()
	w.traffic(60, 1, "", coin, knows, 2)
	w.step(l)
	w.wantWrites()
	if last := w.logs[len(w.logs)-1]; !strings.Contains(last, "would pass (better: ") || !strings.Contains(last, "cannot read "+down.URL) {
		t.Fatalf("the loop logged %q; want a pass held back for the node down", last)
	}
	w.traffic(100, 1, "", coin, wrongs, 2)
	w.step(l)
	w.wantWrites("DELETE /shadow", "DELETE /versions/2")
	w.wantLast("roll back", 2, "worse: ")
	w.now = w.now.Add(w.cfg.Cooldown)
	w.traffic(100, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
	if last := w.logs[len(w.logs)-1]; !strings.Contains(last, "would train (drift: ") || !strings.Contains(last, "but cannot read "+down.URL) {
		t.Fatalf("the loop logged %q; want it to wait for the node down", last)
	}
}

// TestLoopKeepsItsReference: the drift reference is saved: a trainer
// restarted after the inputs drifted while it was down (its window now
// holds only drifted predictions) still sees the drift.
func TestLoopKeepsItsReference(t *testing.T) {
	w := newLoopWorld(t)
	w.cfg.Window, w.cfg.DriftRows, w.cfg.MinExamples = 600, 200, 200
	w.cfg.Policy.MinShadowPairs, w.cfg.Policy.MinCanaryExamples = 50, 50
	l := w.loop()
	w.traffic(300, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
	if st := w.readState(); st.Reference == nil || st.Reference.Version != 1 || st.Reference.Bins.N() != 200 {
		t.Fatalf("saved reference %+v; want one of 200 predictions of version 1", st.Reference)
	}
	w.drifted = true
	w.traffic(800, 1, "", coin, nil, 0) // while the trainer is down
	l = w.loop()
	w.step(l)
	w.wantWrites("POST /versions")
	w.wantLast("upload", 2, "drift: ")
}

// TestLoopKeepsNoiseOut: labels the features do not predict give a
// candidate no better than their base rate: nothing is uploaded, however
// miscalibrated production is.
func TestLoopKeepsNoiseOut(t *testing.T) {
	w := newLoopWorld(t)
	w.noise = true
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.drifted = true
	w.traffic(600, 1, "", func(float64) float32 { return 0.9 }, nil, 0)
	w.step(l)
	w.wantWrites()
	w.wantLast("keep", 0, "no better than the labels' base rate")
	// After the cool-down, the same examples would give the same
	// verdict: it waits for new ones.
	w.now = w.now.Add(w.cfg.Cooldown)
	w.step(l)
	if last := w.logs[len(w.logs)-1]; !strings.Contains(last, "no labeled example came since the last training") {
		t.Fatalf("the loop logged %q; want it to wait for new examples", last)
	}
}

// TestLoopWaitsForAnUnreachableNode: a candidate that is not ready on a
// node only because the node cannot be reached waits for it, past the
// ready timeout, and says so; it is not rolled back for another's outage.
func TestLoopWaitsForAnUnreachableNode(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0)
	w.f.unreachable = map[int64]bool{2: true}
	w.step(l)
	w.wantWrites("POST /versions")
	w.now = w.now.Add(2 * w.cfg.ReadyTimeout)
	w.step(l)
	w.wantWrites()
	if last := w.logs[len(w.logs)-1]; !strings.Contains(last, "version 2 waits to be ready on every node: n2: unreachable") {
		t.Fatalf("the loop logged %q; want it to wait for the unreachable node", last)
	}
	w.f.mu.Lock()
	w.f.unreachable = nil
	w.f.mu.Unlock()
	w.step(l)
	w.wantWrites("PUT /shadow")
}

func TestDriftThreshold(t *testing.T) {
	l := &Loop{cfg: LoopConfig{DriftThreshold: 0.2}}
	f := func(n, refN int, want float64) {
		t.Helper()
		if got := l.driftThreshold(DriftReport{N: n, RefN: refN}); math.Abs(got-want) > 1e-12 {
			t.Fatalf("threshold for %d and %d rows: %v; want %v", n, refN, got, want)
		}
	}
	f(100, 100, 4*9*0.02) // the noise of small windows raises it
	f(300, 300, 4*9*2.0/300)
	f(2000, 2000, 0.2) // large ones keep the configured threshold
}

// TestMissingMembers: the members --addr leaves out are named, however
// the addresses are written.
func TestMissingMembers(t *testing.T) {
	w := newLoopWorld(t)
	w.f.members = []string{"http://10.0.0.2:8080"}
	g := w.cfg.Gateway
	missing, err := g.MissingMembers(t.Context())
	if err != nil || len(missing) != 1 || missing[0] != "n-http://10.0.0.2:8080 (http://10.0.0.2:8080)" {
		t.Fatalf("missing %q, %v; want n2 alone", missing, err)
	}
}

// TestLoopRetiresOldPromotions: the loop keeps production and the
// version before it of those it promoted (KeepVersions 2), retires the
// older ones, leaves one the cluster keeps (409) and never touches a
// version a person uploaded.
func TestLoopRetiresOldPromotions(t *testing.T) {
	w := newLoopWorld(t)
	w.f.versions, w.f.production = []int64{1, 2, 3, 4}, 4
	l := w.loop()
	l.state.Promoted = []int64{2, 3, 4}
	w.step(l)
	w.wantWrites("DELETE /versions/2")
	w.wantLast("retire", 2, "keeps 2 of the versions it promoted")
	if p := l.State().Promoted; !slices.Equal(p, []int64{3, 4}) {
		t.Fatalf("promoted %v; want [3 4]", p)
	}
	w.step(l)
	w.wantWrites() // nothing more to retire

	// Version 5 promoted; 3 is held by the cluster (an alias, say).
	w.f.versions, w.f.production = append(w.f.versions, 5), 5
	l.state.Promoted = append(l.state.Promoted, 5)
	w.f.conflict = "DELETE /versions/3"
	w.step(l)
	w.wantWrites("DELETE /versions/3 (conflict)")
	w.wantLast("leave", 3, "not retired, the cluster keeps it")
	if p := l.State().Promoted; !slices.Equal(p, []int64{4, 5}) {
		t.Fatalf("promoted %v; want [4 5]", p)
	}

	// A person promotes version 6 of theirs: the loop keeps its newest (5),
	// which "infergate models rollback" goes back to, and retires 4.
	w.f.versions, w.f.production = append(w.f.versions, 6), 6
	w.step(l)
	w.wantWrites("DELETE /versions/4")
	if p := l.State().Promoted; !slices.Equal(p, []int64{5}) {
		t.Fatalf("promoted %v; want [5]", p)
	}

	// A restart keeps the list.
	l = w.loop()
	if p := l.State().Promoted; !slices.Equal(p, []int64{5}) {
		t.Fatalf("promoted after a restart %v; want [5]", p)
	}
	w.cfg.KeepVersions = 1
	if _, err := NewLoop(t.Context(), w.cfg); err == nil || !strings.Contains(err.Error(), "keep versions 1") {
		t.Fatalf("KeepVersions 1: %v", err)
	}
}

// TestLoopRetiresAfterAStandIn: a retirement the cluster refuses because
// a node where production failed still answers with the version ends by
// itself once production is ready there: the loop keeps the version on
// its list and retires it at a later step, saying once meanwhile why it
// waits (found by a reviewing helper: it dropped the version for good,
// as it does one a person's alias holds).
func TestLoopRetiresAfterAStandIn(t *testing.T) {
	w := newLoopWorld(t)
	w.f.versions, w.f.production = []int64{1, 2, 3, 4}, 4
	var logs []string
	w.cfg.Logf = func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
	l := w.loop()
	l.state.Promoted = []int64{2, 3, 4}
	w.f.standsIn = "DELETE /versions/2"
	w.step(l)
	w.step(l)
	w.wantWrites("DELETE /versions/2 (stands in)", "DELETE /versions/2 (stands in)")
	if p := l.State().Promoted; !slices.Equal(p, []int64{2, 3, 4}) {
		t.Fatalf("promoted %v after the refusals; want [2 3 4]: version 2 is tried again", p)
	}
	if n := countContaining(logs, "version 2 is not retired yet"); n != 1 {
		t.Errorf("%d lines saying version 2 waits; want 1 (a note, not one a step):\n%s", n, strings.Join(logs, "\n"))
	}
	w.f.mu.Lock()
	w.f.standsIn = "" // production is ready on that node now
	w.f.mu.Unlock()
	w.step(l)
	w.wantWrites("DELETE /versions/2")
	w.wantLast("retire", 2, "keeps 2 of the versions it promoted")
	if p := l.State().Promoted; !slices.Equal(p, []int64{3, 4}) {
		t.Fatalf("promoted %v; want [3 4]", p)
	}
}

func countContaining(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}
