package blobs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Linking a blob to a path that is already a hard link to it (placing it
// again, or again after the placed file rotted with its blob) leaves no
// temp name beside path: rename(2) of two names of one file does nothing
// and succeeds, and a stray name would keep the blob's bytes on disk after
// the blob goes.
func TestLinkSameBlobAgain(t *testing.T) {
	s := openStore(t)
	v1, v2 := []byte("model v1"), []byte("model v2")
	h1, h2 := mustPut(t, s, v1), mustPut(t, s, v2)
	dir := filepath.Join(t.TempDir(), "m", "1")
	path := filepath.Join(dir, "model.onnx")
	for range 3 {
		if err := s.Link(h1, path); err != nil {
			t.Fatalf("Link: %v", err)
		}
	}
	if err := s.Link(h2, path); err != nil {
		t.Fatalf("Link: %v", err)
	}
	if err := s.Remove(h1); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 {
		t.Fatalf("%s after linking h1 three times, then h2, then removing h1: got %v; want [model.onnx] (the extra names are temp links still holding h1's bytes)", dir, names)
	}
}

// A Link cut short by a crash leaves a temp file beside path (a hard link
// holding the blob's bytes, or part of a copy). The next Link to that path
// removes it, and nothing else.
func TestLinkRemovesStaleTemps(t *testing.T) {
	f := func(t *testing.T) {
		s := openStore(t)
		h := mustPut(t, s, []byte("model v1"))
		dir := filepath.Join(t.TempDir(), "m", "1")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "model.onnx")
		stale := []string{".model.onnx.tmp-ABCDEF", ".model.onnx.tmp-1234567"}
		if err := os.Link(s.Path(h), filepath.Join(dir, stale[0])); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, stale[1]), []byte("half a co"), 0o644); err != nil {
			t.Fatal(err)
		}
		kept := []string{".config.json.tmp-ABCDEF", "model.onnx.tmp-ABCDEF", "notes.txt"}
		for _, name := range kept {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Link(h, path); err != nil {
			t.Fatalf("Link: %v", err)
		}
		checkDir(t, dir, []string{".config.json.tmp-ABCDEF", "model.onnx", "model.onnx.tmp-ABCDEF", "notes.txt"})
	}
	t.Run("hard link", f)
	t.Run("copy", func(t *testing.T) {
		linkFile = func(oldname, newname string) error {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
		}
		t.Cleanup(func() { linkFile = os.Link })
		f(t)
	})
}
