package trainer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// TestJoinerKeepsTheLatestAcrossNodes: NodeLogs reads the nodes' logs one
// after the other, so a trainer that starts (or restarts) with a backlog
// gets node A's predictions, then node B's, all of the same hours. The
// Joiner dropped the first it was given, not the oldest: once B's log
// held a window of predictions, every one of A's was gone, however
// recent. The window (training, the drift reference, a canary's
// evidence after a restart) then held one node's traffic alone, and no
// node was missing to hold a stage back.
func TestJoinerKeepsTheLatestAcrossNodes(t *testing.T) {
	const limit = 100
	j := NewJoiner("ctr", "features", 1, limit)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	node := func(name string, offset int) {
		for i := range limit {
			at := t0.Add(time.Duration(2*i+offset) * time.Second)
			j.Add(&trafficlog.Event{Kind: trafficlog.Prediction, Time: at, ID: fmt.Sprint(name, i), Model: "ctr", Version: 1,
				Inputs: []oip.Tensor{fp32Row("features", float32(i))}, Outputs: []oip.Tensor{fp32Row("score", 0.5)}})
		}
	}
	node("a-", 0) // A's log, read first
	node("b-", 1) // B's, of the same time
	kept := map[byte]int{}
	cut := t0.Add(limit * time.Second) // the latest 100 of the 200 by time
	for _, ex := range j.All() {
		kept[ex.ID[0]]++
		if ex.Time.Before(cut) {
			t.Errorf("kept %s of %s, older than the latest %d predictions (from %s)", ex.ID, ex.Time.Format(time.TimeOnly), limit, cut.Format(time.TimeOnly))
		}
	}
	if kept['a'] != limit/2 || kept['b'] != limit/2 {
		t.Fatalf("kept %d of node A's predictions and %d of node B's; want the latest %d by time, %d of each", kept['a'], kept['b'], limit, limit/2)
	}
}

// TestJoinerIDsGivenAgain: predictions given again (a log read again, an
// id a client reused, at another time) are kept once each, within the
// limit, and the oldest by time go first.
func TestJoinerIDsGivenAgain(t *testing.T) {
	const limit = 50
	j := NewJoiner("ctr", "features", 1, limit)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		id := fmt.Sprint("p-", rng.IntN(200))
		at := t0.Add(time.Duration(i/4+rng.IntN(40)) * time.Second)
		j.Add(&trafficlog.Event{Kind: trafficlog.Prediction, Time: at, ID: id, Model: "ctr", Version: 1,
			Inputs: []oip.Tensor{fp32Row("features", 1)}, Outputs: []oip.Tensor{fp32Row("score", 0.5)}})
		all := j.All()
		if len(all) > limit {
			t.Fatalf("after %d predictions: %d kept; want at most %d", i+1, len(all), limit)
		}
		seen := map[string]bool{}
		for _, ex := range all {
			if seen[ex.ID] {
				t.Fatalf("after %d predictions: %s listed twice", i+1, ex.ID)
			}
			seen[ex.ID] = true
		}
		if !seen[id] {
			// Dropped at once only when older than every one kept.
			for _, ex := range all {
				if ex.Time.Before(at) {
					t.Fatalf("after %d predictions: %s of %s dropped, %s of %s kept", i+1, id, at, ex.ID, ex.Time)
				}
			}
		}
	}
	if len(j.order) > 2*limit+1024 || len(j.oldest) > 2*limit+1024 {
		t.Fatalf("%d entries in order and %d in the heap for %d predictions kept", len(j.order), len(j.oldest), len(j.preds))
	}
}
