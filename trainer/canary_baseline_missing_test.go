package trainer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// metricsNode is a second gateway node of a loopWorld: an empty traffic
// log, and metrics that its test sets, whose scrape number failAt
// (counted from 1) answers 503 (a node that timed out once).
type metricsNode struct {
	mu      sync.Mutex
	metrics string
	scrapes int
	failAt  int
}

func (n *metricsNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traffic":
		w.Header().Set("X-Traffic-Next", "0")
		w.Header().Set("X-Traffic-End", "0")
	case "/metrics":
		n.scrapes++
		if n.scrapes == n.failAt {
			http.Error(w, `{"error":"timed out"}`, 503)
			return
		}
		io.WriteString(w, n.metrics)
	default:
		http.Error(w, `{"error":"no such call in the fake"}`, 404)
	}
}

func (n *metricsNode) set(metrics string, failAt int) {
	n.mu.Lock()
	n.metrics, n.failAt, n.scrapes = metrics, failAt, 0
	n.mu.Unlock()
}

// TestCanaryBaselineOfANodeMissedOnce: the shadow stage passes on both
// nodes' metrics, but the scrape that takes each node's shadow-stage
// failures (the canary's baseline) right after misses node B once. B's
// 90 failed shadow copies (0.9% of 10,000, allowed) were then counted as
// the canary's: 90 of the arm's 1,000 requests, and a candidate that
// failed nothing in its canary was rolled back. A baseline needs every
// node, as the stage's pass does.
func TestCanaryBaselineOfANodeMissedOnce(t *testing.T) {
	w := newLoopWorld(t)
	b := &metricsNode{}
	srvB := httptest.NewServer(b)
	t.Cleanup(srvB.Close)
	w.cfg.Gateway.Nodes = append(w.cfg.Gateway.Nodes, srvB.URL)
	l := w.loop()
	w.uploadCandidate(l)
	const shadowB = `process_start_time_seconds 1764331200
infergate_shadow_requests_total{model="ctr",version="2",result="compared"} 9910
infergate_shadow_requests_total{model="ctr",version="2",result="failed"} 90
infergate_inference_request_failure_total{model="ctr",version="2",reason="internal"} 90
`
	// The judge's scrape reads B; the baseline's, the next, misses it.
	b.set(shadowB, 2)
	w.traffic(60, 1, "", coin, knows, 2)
	for range 2 { // the canary starts at once, or at the next step
		w.step(l)
		if l.State().Stage == Canary {
			break
		}
	}
	if st := l.State(); st.Stage != Canary {
		t.Fatalf("stage %v after two steps; want the canary", st.Stage)
	}
	w.f.takeWrites()
	// The canary: B's process is the same, and the candidate failed
	// nothing more there.
	b.set(shadowB+`infergate_experiment_requests_total{model="ctr",experiment="trainer-v2",arm="candidate",version="2"} 1000
`, 0)
	for range 3 {
		w.traffic(20, 1, "control", coin, nil, 0)
		w.traffic(20, 2, "candidate", knows, nil, 0)
	}
	w.step(l)
	if d := lastDecision(l); d.Action != "promote" {
		t.Fatalf("the candidate failed none of the canary arm's 1000 requests, yet the loop decided %q: %s", d.Action, d.Reason)
	}
}
