package trainer

// These tests come from a review of the sidecar loop: each comment tells
// the defect it found (in the present tense of the code it ran against),
// which the test now shows fixed.

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// logNode is a node with a traffic log of its own (log); every other call
// goes to the world's fake.
type logNode struct {
	w   *loopWorld
	log []byte
}

func (n *logNode) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traffic" {
		n.w.f.ServeHTTP(rw, r)
		return
	}
	n.w.f.mu.Lock()
	defer n.w.f.mu.Unlock()
	from, _ := strconv.Atoi(r.URL.Query().Get("from"))
	rw.Header().Set("X-Traffic-Next", strconv.Itoa(len(n.log)))
	rw.Header().Set("X-Traffic-End", strconv.Itoa(len(n.log)))
	rw.Write(n.log[from:])
}

// TestDriftReferenceFollowsTime: drift() builds the
// reference from the first DriftRows production predictions in the
// Joiner's order, which is the order the nodes' logs were read in (node by
// node), not their time. Node A (first in --addr) keeps only its recent,
// already drifted traffic; node B still has the pre-drift history. The
// reference is then made of A's drifted rows, and is kept for as long as
// production does not change: the drift that B's history shows is never
// seen, and the loop never retrains.
func TestDriftReferenceFollowsTime(t *testing.T) {
	driftAcrossNodes(t, true)
}

// TestDriftAcrossNodesBFirst is the same world with B's log read
// first: the loop trains, as it should (it passes; kept to show that only
// the order of the nodes differs).
func TestDriftAcrossNodesBFirst(t *testing.T) {
	driftAcrossNodes(t, false)
}

func driftAcrossNodes(t *testing.T, aFirst bool) {
	w := newLoopWorld(t)
	a := &logNode{w: w}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	if aFirst {
		w.cfg.Gateway.Nodes = []string{srv.URL, w.cfg.Gateway.Nodes[0]} // A, then B (the fake's own log)
	} else {
		w.cfg.Gateway.Nodes = append(w.cfg.Gateway.Nodes, srv.URL)
	}
	t0 := w.now
	w.traffic(500, 1, "", coin, nil, 0) // B: before the drift
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0) // B: after
	// A (a node with a smaller log budget) kept only its latest 250, all
	// after the drift began.
	w.now = t0.Add(550 * time.Second)
	bLog := w.f.log
	w.f.log = nil
	w.traffic(250, 1, "", coin, nil, 0)
	a.log, w.f.log = w.f.log, bLog

	l := w.loop()
	for range 3 {
		w.step(l)
		w.traffic(300, 1, "", coin, nil, 0) // to B; still drifted
	}
	w.step(l)
	uploaded := false
	for _, d := range l.State().History {
		uploaded = uploaded || d.Action == "upload"
	}
	if d := lastDecision(l); !uploaded {
		t.Fatalf("feature 3 moved by 2 sd from B's first 500 predictions to the last 1,700, yet the loop did not train (last decision %+v; logs %q)",
			d, w.logs)
	}
}
