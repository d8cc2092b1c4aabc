package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// A version's model.onnx replaced by another file (renamed into place, as
// deploy tools and mv do) of the same size and modification time, as cp
// -p, rsync -a or an archive with fixed timestamps leave a retrained
// model of the same architecture, is loaded anew: before, the registry
// went by size and modification time alone and kept serving the old bytes
// while reporting READY.
func TestReplacedFileSameSizeAndTimeReloads(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "weights-A")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m", "1", "model.onnx")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "m", "1", "incoming")
	if err := os.WriteFile(tmp, []byte("weights-B"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil { // cp -p
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	defer v.Release()
	sum := sha256.Sum256([]byte("weights-B"))
	if want := hex.EncodeToString(sum[:]); v.SHA256 != want {
		idx, _ := r.Index()
		t.Errorf("after %s was replaced and Load returned success: serving %q (sha256:%.12s), not the file on disk (sha256:%.12s); index %+v",
			path, backendOf(v).tag, v.SHA256, want, idx)
	}
}
