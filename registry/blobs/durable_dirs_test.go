package blobs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// recordSyncs makes syncDir record the directories it syncs.
func recordSyncs(t *testing.T) *[]string {
	t.Helper()
	var synced []string
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return syncDirectory(dir)
	}
	t.Cleanup(func() { syncDir = syncDirectory })
	return &synced
}

// A Link that creates a model's and a version's directories syncs the
// parent of each, so that a crash cannot lose a placed model with the
// directory entries that lead to it; one into existing directories syncs
// only the directory it renamed in.
func TestLinkSyncsNewDirectories(t *testing.T) {
	s := openStore(t)
	h := mustPut(t, s, []byte("model v1"))
	repo := t.TempDir()
	synced := recordSyncs(t)

	path := filepath.Join(repo, "m", "1", "model.onnx")
	if err := s.Link(h, path); err != nil {
		t.Fatalf("Link: %v", err)
	}
	version, model := filepath.Dir(path), filepath.Join(repo, "m")
	for _, dir := range []string{repo, model, version} {
		if !slices.Contains(*synced, dir) {
			t.Errorf("Link into new directories synced %q; want %q among them", *synced, dir)
		}
	}

	*synced = nil
	if err := s.Link(h, filepath.Join(repo, "m", "1", "copy.onnx")); err != nil {
		t.Fatalf("Link: %v", err)
	}
	if want := []string{version}; !slices.Equal(*synced, want) {
		t.Errorf("Link into existing directories synced %q; want %q", *synced, want)
	}
}

func TestMakeDirs(t *testing.T) {
	root := t.TempDir()
	synced := recordSyncs(t)
	dir := filepath.Join(root, "a", "b", "c")
	if err := MakeDirs(dir); err != nil {
		t.Fatalf("MakeDirs: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("after MakeDirs, Stat(%q) = %v, %v; want a directory", dir, fi, err)
	}
	want := []string{filepath.Join(root, "a", "b"), filepath.Join(root, "a"), root}
	if !slices.Equal(*synced, want) {
		t.Errorf("MakeDirs synced %q; want %q (deepest first)", *synced, want)
	}

	*synced = nil
	if err := MakeDirs(dir); err != nil {
		t.Fatalf("MakeDirs of an existing directory: %v", err)
	}
	if len(*synced) != 0 {
		t.Errorf("MakeDirs of an existing directory synced %q; want nothing", *synced)
	}

	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MakeDirs(filepath.Join(file, "x")); err == nil {
		t.Errorf("MakeDirs under a regular file succeeded; want an error")
	}
}
