package registry

import (
	"fmt"
	"testing"
)

// TestUnloadedRowsAreBounded: the index keeps a row for each version this
// node unloaded on purpose (retired by the cluster, replaced, unloaded),
// but only the newest keptUnloaded of a model's, so that a model a
// trainer replaces every hour does not grow the index and the status
// table for as long as the node runs (a soak's index had a row per
// retired version, 16 after 10 minutes). Failed loads and serving
// versions are kept whatever their number.
func TestUnloadedRowsAreBounded(t *testing.T) {
	r := &Repository{status: map[string]map[int64]versionStatus{}}
	r.setStatusLocked("m", 1, versionStatus{state: StateUnavailable, reason: "broken", failed: true})
	r.setStatusLocked("m", 2, versionStatus{state: StateReady})
	const n = keptUnloaded + 40
	for v := int64(3); v < 3+n; v++ {
		r.setStatusLocked("m", v, versionStatus{state: StateUnavailable, reason: ReasonUnloaded})
	}
	m := r.status["m"]
	if len(m) != keptUnloaded+2 {
		t.Fatalf("%d rows after %d versions unloaded; want %d: the newest %d unloaded, the failed one and the serving one", len(m), n, keptUnloaded+2, keptUnloaded)
	}
	if _, ok := m[1]; !ok {
		t.Fatalf("the failed version's row was dropped")
	}
	if _, ok := m[2]; !ok {
		t.Fatalf("the serving version's row was dropped")
	}
	for v := int64(3 + n - keptUnloaded); v < 3+n; v++ {
		if _, ok := m[v]; !ok {
			t.Fatalf("unloaded version %d, one of the newest %d, has no row: %v", v, keptUnloaded, fmt.Sprint(len(m)))
		}
	}
}
