package trainer

import (
	"slices"
	"testing"
)

// TestKeepVersionsCountsTheRollbackTarget: with --keep-versions 2, the
// versions the trainer promoted that stay are production and the one
// "infergate models rollback" goes to. A real cluster names the version a
// promotion replaced as rollback_to, and the loop kept that one besides
// its KeepVersions-1 newest others: three versions stayed loaded on every
// node (seen end to end: production 6, rollback_to 2, and 4 kept).
func TestKeepVersionsCountsTheRollbackTarget(t *testing.T) {
	f := func(promoted []int64, production, rollbackTo int64, retired ...string) {
		t.Helper()
		w := newLoopWorld(t)
		w.f.versions, w.f.production, w.f.rollbackTo = []int64{1, 2, 3, 4, 5, 6}, production, rollbackTo
		l := w.loop()
		l.state.Promoted = slices.Clone(promoted)
		w.step(l)
		w.wantWrites(retired...)
	}
	// The trainer promoted 2, 3 and 4 in turn: 4 replaced 3.
	f([]int64{2, 3, 4}, 4, 3, "DELETE /versions/2")
	// A person promoted 6 of theirs, replacing the trainer's 5.
	f([]int64{4, 5}, 6, 5, "DELETE /versions/4")
	// A person rolled back from 6 to 2; the trainer's next, 6 here,
	// replaced 2 (seen end to end).
	f([]int64{4, 2, 6}, 6, 2, "DELETE /versions/4")
	// The rollback target is a person's version (the first one): the
	// trainer's own newest other stays.
	f([]int64{2, 3}, 3, 1)
}
