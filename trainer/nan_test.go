package trainer

// These tests come from a review of the sidecar loop: each comment tells
// the defect it found (in the present tense of the code it ran against),
// which the test now shows fixed.

import (
	"context"
	"math"
	"testing"
	"time"
)

func nanScore(float64) float32 { return float32(math.NaN()) }

// TestNaNScoreCountsAsWrong: bce clamps with the builtin
// min/max, which return NaN for a NaN score, so a single NaN that
// production answered one shadowed request (an odd input, an overflow)
// makes the paired test NaN: the stage can neither pass nor fail on the
// evidence, and a candidate that is better on every other request is
// rolled back after MaxShadow ("no better after 1h0m0s: log loss ... NaN").
func TestNaNScoreCountsAsWrong(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.traffic(1, 1, "", nanScore, knows, 2)
	w.traffic(200, 1, "", coin, knows, 2)
	w.step(l)
	if st := l.State(); st.Stage != Canary {
		t.Logf("log: %s", w.logs[len(w.logs)-1])
		w.now = w.now.Add(w.cfg.Policy.MaxShadow)
		w.step(l)
		t.Fatalf("a candidate better on 200 of 201 shadowed requests did not pass; an hour later: %+v", lastDecision(l))
	}
}

// TestNaNLiveScoresDoNotHangTheLoop: a few NaN scores that production
// answered (an odd input, an overflow) among the window's labeled examples
// reach Compare -> Score on the holdout, whose AUC tie loop
// (eval.go:73, `for j < len(pairs) && pairs[j].s == pairs[i].s`) never
// advances past a NaN, since NaN != NaN: Step never returns, and the
// trainer hangs for good (no judging, no roll back, no log line).
// (Were it not for the hang, the NaN live log loss would make Better()
// false at every cool-down for as long as the example stays in the
// window.)
func TestNaNLiveScoresDoNotHangTheLoop(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.wantWrites()
	w.drifted = true
	w.traffic(20, 1, "", nanScore, nil, 0) // a few land in the holdout
	w.traffic(280, 1, "", coin, nil, 0)
	done := make(chan error, 1)
	go func() { done <- l.Step(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("step: %v", err)
		}
		if d := lastDecision(l); d.Action != "upload" {
			t.Fatalf("drifted, with 700 labeled examples of which 20 have a NaN live score, the loop decided %q: %s", d.Action, d.Reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Step has not returned after 10s: it hangs in Score (eval.go) on the NaN live scores of the holdout")
	}
}

// TestScoreNaNTerminates: the same hang, in Score alone.
func TestScoreNaNTerminates(t *testing.T) {
	done := make(chan Metrics, 1)
	go func() {
		done <- Score([]float32{0.2, float32(math.NaN()), 0.7}, []float32{0, 1, 1})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Score([0.2 NaN 0.7], [0 1 1]) has not returned after 5s")
	}
}
