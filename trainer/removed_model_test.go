package trainer

import (
	"strings"
	"testing"
)

// TestLoopStopsForARemovedModel: a person removed the model from the
// cluster (models remove) while its candidate shadowed. The loop drops
// the candidate without a write and, though the inputs drifted and
// labeled examples keep coming, uploads nothing: an upload would serve
// the removed model again, as production. It says why at each step,
// until a version is uploaded again, when it watches that one.
func TestLoopStopsForARemovedModel(t *testing.T) {
	w := newLoopWorld(t)
	l := w.loop()
	w.uploadCandidate(l)
	w.f.mu.Lock()
	w.f.removed = true
	w.f.mu.Unlock()
	for i := range 3 {
		w.traffic(300, 1, "", coin, nil, 0)
		err := l.Step(t.Context())
		if err == nil || !strings.Contains(err.Error(), `model ctr was removed from the cluster`) {
			t.Fatalf("step %d after the removal: got %v; want an error saying the model was removed\nlog:\n%s", i, err, strings.Join(w.logs, "\n"))
		}
		w.wantWrites()
	}
	if st := l.State(); st.Stage != Watching || st.Candidate != 0 {
		t.Fatalf("after the removal: stage %s with candidate %d; want watching, none", st.Stage, st.Candidate)
	}
	w.wantLast("abandon", 2, "someone removed the model from the cluster")

	// Uploaded again: version 3 serves, and the loop watches it.
	w.f.mu.Lock()
	w.f.removed, w.f.production, w.f.versions = false, 3, append(w.f.versions, 3)
	w.f.mu.Unlock()
	w.traffic(10, 3, "", coin, nil, 0)
	w.step(l)
}
