package registry

import (
	"testing"
)

// TestLoadRestoredDoesNotReloadBrokenFiles: LoadRestored falls back to
// the directory's own rule only when the restored versions' files are
// gone; one whose file is there and fails to load is not loaded a second
// time (found by a reviewing helper: any failure fell back, doubling the
// time to ready of a model that fails late).
func TestLoadRestoredDoesNotReloadBrokenFiles(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "fail: broken model")
	err := r.LoadRestored(map[string]*ModelConfig{"m": {VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1}}}}})
	if err == nil {
		t.Fatal("LoadRestored of a broken model: no error")
	}
	if n := l.count(); n != 1 {
		t.Fatalf("the loader ran %d times on version 1, whose file is there and broken; want 1 (loads: %q)", n, l.loads)
	}
}
