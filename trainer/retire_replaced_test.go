package trainer

import (
	"slices"
	"testing"
)

// TestPromotionKeepsTheVersionItReplaced: the trainer promoted 2, then
// 3; a person rolled production back to 2 ("infergate models rollback").
// The trainer's next candidate, 4, wins its canary against 2 and is
// promoted, saying that "the version it replaced (2) stays, staged, for
// infergate models rollback". retireOld kept the newest others by the
// order the trainer promoted them, in which 3 is newer than 2: the next
// step retired 2, the version it had just promised to keep (the
// cluster's rollback target), and kept 3, the one the person had rolled
// away from.
func TestPromotionKeepsTheVersionItReplaced(t *testing.T) {
	w := newLoopWorld(t)
	w.f.versions, w.f.production = []int64{1, 2, 3}, 2 // rolled back from 3
	l := w.loop()
	l.state.Promoted = []int64{2, 3}
	w.traffic(400, 2, "", coin, nil, 0)
	w.step(l)
	w.wantWrites() // production 2 and 3: nothing to retire
	w.drifted = true
	w.traffic(300, 2, "", coin, nil, 0)
	w.step(l)
	w.wantWrites("POST /versions")
	w.wantLast("upload", 4, "drift: ")
	w.step(l)
	w.wantWrites("PUT /shadow")
	w.traffic(60, 2, "", coin, knows, 4)
	w.step(l)
	w.wantWrites("PUT /experiment", "DELETE /shadow")
	w.wantLast("canary", 4, "against version 2")
	for range 3 {
		w.traffic(20, 2, "control", coin, nil, 0)
		w.traffic(20, 4, "candidate", knows, nil, 0)
	}
	w.step(l)
	w.wantWrites("PUT /aliases/production", "DELETE /experiment")
	w.wantLast("promote", 4, "the version it replaced (2) stays")
	w.step(l)
	w.wantWrites("DELETE /versions/3")
	if w.f.retired[2] {
		t.Fatal("version 2, which promotion said stays for \"infergate models rollback\", was retired")
	}
	if p := l.State().Promoted; !slices.Equal(p, []int64{2, 4}) {
		t.Fatalf("promoted %v; want [2 4]", p)
	}
}

// TestRetireKeepsTheRollbackTarget: a person rolled production back from
// 4 to 3, so "infergate models rollback" now goes to 2. The trainer keeps
// production and 2: 2 is older by the order it promoted them, but retiring
// it would take the cluster's rollback target (found by a reviewing
// helper); 4, the one rolled away from, is the third of KeepVersions 2.
func TestRetireKeepsTheRollbackTarget(t *testing.T) {
	w := newLoopWorld(t)
	w.f.versions, w.f.production, w.f.rollbackTo = []int64{1, 2, 3, 4}, 3, 2
	l := w.loop()
	l.state.Promoted = []int64{2, 3, 4}
	w.traffic(400, 3, "", coin, nil, 0)
	w.step(l)
	w.wantWrites("DELETE /versions/4")
	if w.f.retired[2] {
		t.Fatal("version 2, where a rollback goes, was retired")
	}
}
