package trainer

// These tests come from a review of the sidecar loop: each comment tells
// the defect it found (in the present tense of the code it ran against),
// which the test now shows fixed.

import (
	"strings"
	"testing"
)

// TestLostEndShadowStillStartsTheCanary: the shadow passes; the loop
// starts its experiment and ends the shadow, but the DELETE /shadow answer
// is lost (a timeout; or the trainer dies before saving). The state file
// still says "shadow" with Since set, so the next step finds no shadow and
// abandons the candidate as if "someone else" ended it. The loop's own
// experiment trainer-v2 keeps sending 10% of the traffic to version 2,
// which nobody judges any more, and the watching stage then waits forever
// for "experiment trainer-v2, which the trainer did not start" to end.
func TestLostEndShadowStillStartsTheCanary(t *testing.T) {
	w := newLoopWorld(t)
	n := w.frontWith(false)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, knows, 2)
	n.loseNext("DELETE /shadow")
	if err := l.Step(t.Context()); err == nil {
		t.Fatal("step: no error; want the lost DELETE /shadow")
	}
	w.f.takeWrites()
	w.step(l)
	if st := l.State(); st.Stage != Canary {
		t.Fatalf("after a lost DELETE /shadow answer the loop is in %q (last decision %+v) while its experiment %+v runs unjudged",
			st.Stage, lastDecision(l), w.f.experiment)
	}
}

// TestLostEndExperimentStillPromotes: the canary passes; the loop
// promotes version 2 and ends its experiment, but the DELETE /experiment
// answer is lost. The next step finds no experiment and records "abandon
// ... its experiment was ended or replaced by someone else; the trainer
// leaves version 2 as it is" although it promoted 2 itself: the history
// has no "promote" and ReferenceSince is not reset to the promotion.
func TestLostEndExperimentStillPromotes(t *testing.T) {
	w := newLoopWorld(t)
	n := w.frontWith(false)
	l := w.loop()
	w.toCanary(l)
	for range 3 {
		w.traffic(20, 1, "control", coin, nil, 0)
		w.traffic(20, 2, "candidate", knows, nil, 0)
	}
	n.loseNext("DELETE /experiment")
	if err := l.Step(t.Context()); err == nil {
		t.Fatal("step: no error; want the lost DELETE /experiment")
	}
	w.step(l)
	if w.f.production != 2 {
		t.Fatalf("production %d; want 2 (promoted)", w.f.production)
	}
	if d := lastDecision(l); d.Action != "promote" {
		t.Fatalf("the loop promoted version 2, but its last decision is %q: %s", d.Action, d.Reason)
	}
}

// TestPendingRollBackIgnoresNodeLogs: a roll back is under way
// (its DELETE /shadow refused: no leader, say) when one node's traffic log
// becomes unreadable (404: started without --traffic-percent; the same
// happens while a node is down). Step reads every log before anything
// else, so the pending roll back, which needs no traffic at all, is never
// retried: the failing candidate keeps its shadow (or canary arm) for as
// long as the node stays unreadable.
func TestPendingRollBackIgnoresNodeLogs(t *testing.T) {
	w := newLoopWorld(t)
	n2 := w.frontWith(true) // a second node
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(60, 1, "", coin, wrongs, 2)
	w.f.refuse = "DELETE /shadow"
	if err := l.Step(t.Context()); err == nil || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("step: %v; want the refused DELETE /shadow", err)
	}
	if l.State().Pending != "roll back" {
		t.Fatal("no roll back pending")
	}
	w.f.takeWrites()
	n2.setTrafficOff(true)
	for range 3 {
		l.Step(t.Context())
	}
	if w.f.shadow != nil || !w.f.retired[2] {
		t.Fatalf("the pending roll back of version 2 was never retried: shadow %+v, retired %v, writes %q",
			w.f.shadow, w.f.retired[2], w.f.takeWrites())
	}
}

// TestNodeLogStartingOverIsReadAgain: a node's traffic log starts over
// (the node was replaced, or its log directory wiped), so the trainer's
// position for it is past the log's end; a node answers that with 400
// ("beyond the log's end"). read() recovers from 410 only, so every step
// fails from then on, until the trainer itself is restarted: no drift is
// seen, nothing is judged or rolled back.
func TestNodeLogStartingOverIsReadAgain(t *testing.T) {
	w := newLoopWorld(t)
	w.frontWith(false)
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
	w.f.mu.Lock()
	w.f.log = nil // the node's log starts over
	w.f.mu.Unlock()
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0)
	var err error
	for range 3 {
		err = l.Step(t.Context())
	}
	if err != nil {
		t.Fatalf("the loop does not get past a node whose log started over: %v", err)
	}
}

// TestRollBackOfProductionEnds: an operator promotes the
// candidate (version 2) by hand during its canary; the canary then fails
// (worse log loss). rollBack ends the experiment and retires version 2,
// which the cluster refuses (409: the production alias points to it).
// Only 404 is forgiven, so the roll back stays pending: every step from
// then on retries the refused retire and fails, and the loop never watches
// (nor trains) again until someone edits its state file.
func TestRollBackOfProductionEnds(t *testing.T) {
	w := newLoopWorld(t)
	n := w.frontWith(false)
	n.guardRetire = true
	l := w.loop()
	w.toCanary(l)
	w.f.mu.Lock()
	w.f.production = 2 // the operator liked it
	w.f.mu.Unlock()
	for range 3 {
		w.traffic(20, 1, "control", knows, nil, 0)
		w.traffic(20, 2, "candidate", coin, nil, 0)
	}
	var err error
	for range 4 {
		err = l.Step(t.Context())
	}
	if st := l.State(); st.PendingReason != "" || err != nil {
		t.Fatalf("after 4 steps the loop is still rolling back (%q): %v; writes %q", st.PendingReason, err, w.f.takeWrites())
	}
}

// TestLostUploadIsFound: the candidate's upload takes
// effect but its answer is lost (a timeout; or the trainer dies before it
// saves the "upload" state). The loop does not know version 2 exists: it
// trains again 10 intervals later and uploads version 3, and version 2
// stays staged (loaded on every node) for good, never shadowed, judged or
// retired; each such hiccup leaves one more.
func TestLostUploadIsFound(t *testing.T) {
	w := newLoopWorld(t)
	n := w.frontWith(false)
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0)
	n.loseNext("POST /versions")
	if err := l.Step(t.Context()); err == nil {
		t.Fatal("step: no error; want the lost upload")
	}
	w.now = w.now.Add(10 * w.cfg.Interval)
	w.traffic(10, 1, "", coin, nil, 0)
	w.step(l)
	w.step(l)
	st := l.State()
	for _, v := range w.f.versions {
		if v != w.f.production && v != st.Candidate && !w.f.retired[v] {
			t.Fatalf("version %d was uploaded by the loop but is neither production, its candidate (%d), nor retired: versions %v, writes %q",
				v, st.Candidate, w.f.versions, w.f.takeWrites())
		}
	}
}
