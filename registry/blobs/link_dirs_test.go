package blobs

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/infergate/infergate/internal/durable"
)

// Link creates a model's and a version's directories with
// durable.MakeDirs, so that a crash cannot lose a placed model with the
// directory entries that lead to it.
func TestLinkMakesDirsDurably(t *testing.T) {
	s := openStore(t)
	h := mustPut(t, s, []byte("model v1"))
	var made []string
	makeDirs = func(dir string) error {
		made = append(made, dir)
		return durable.MakeDirs(dir)
	}
	t.Cleanup(func() { makeDirs = durable.MakeDirs })
	path := filepath.Join(t.TempDir(), "m", "1", "model.onnx")
	if err := s.Link(h, path); err != nil {
		t.Fatalf("Link: %v", err)
	}
	if want := []string{filepath.Dir(path)}; !slices.Equal(made, want) {
		t.Fatalf("Link made %q durably; want %q", made, want)
	}
}
