package trainer

import (
	"strings"
	"testing"
)

// TestShadowGivesWayToANewProduction: someone makes version 3 production
// (a hotfix, or "infergate models rollback") while candidate 2's shadow
// runs against version 1. The trainer must end its shadow and abandon the
// candidate, as it does in the canary stage, not go on to judge the
// candidate against whatever production is now and start a canary
// against a version it was never trained or held out against.
func TestShadowGivesWayToANewProduction(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.f.mu.Lock()
	w.f.versions = append(w.f.versions, 3)
	w.f.production = 3
	w.f.mu.Unlock()
	w.traffic(60, 3, "", coin, knows, 2)
	w.step(l)
	if got := strings.Join(w.f.takeWrites(), "; "); got != "DELETE /shadow" {
		t.Fatalf("production became 3 during the shadow of 2 against 1; the loop made the writes %q; want %q (last decision %+v)",
			got, "DELETE /shadow", lastDecision(l))
	}
	w.wantLast("abandon", 2, "someone made version 3 production during its shadow stage against version 1")
	if st := l.State(); st.Stage != Watching || st.Candidate != 0 {
		t.Fatalf("state %+v; want watching, no candidate", st)
	}
}

// TestShadowWaitGivesWayToANewProduction: the same while the candidate
// still waits to be ready on every node: its shadow never starts.
func TestShadowWaitGivesWayToANewProduction(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.traffic(400, 1, "", coin, nil, 0)
	w.step(l)
	w.drifted = true
	w.traffic(300, 1, "", coin, nil, 0)
	w.f.mu.Lock()
	w.f.unreachable = map[int64]bool{2: true}
	w.f.mu.Unlock()
	w.step(l)
	w.wantWrites("POST /versions")
	w.step(l)
	w.wantWrites() // waits for the node
	w.f.mu.Lock()
	w.f.versions = append(w.f.versions, 3)
	w.f.production = 3
	w.f.unreachable = nil
	w.f.mu.Unlock()
	w.step(l)
	w.wantWrites()
	w.wantLast("abandon", 2, "someone made version 3 production")
}
