package durable

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
		return SyncDir(dir)
	}
	t.Cleanup(func() { syncDir = SyncDir })
	return &synced
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

// WriteFile replaces a file whole, with the permissions asked, syncs its
// directory, and leaves no temp file, also when it fails.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	synced := recordSyncs(t)
	path := filepath.Join(dir, "f.json")
	for _, data := range []string{"first", "second, longer"} {
		if err := WriteFile(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("after WriteFile(%q): %q, %v", data, got, err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v; want 0640", fi.Mode(), err)
	}
	if want := []string{dir, dir}; !slices.Equal(*synced, want) {
		t.Errorf("synced %q; want %q", *synced, want)
	}
	if err := WriteFile(filepath.Join(dir, "f.json", "x"), []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile under a regular file succeeded; want an error")
	}
	if err := WriteFile(filepath.Join(dir, "sub"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "sub"), []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile over a directory succeeded; want an error")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"f.json", "sub"}; !slices.Equal(names, want) {
		t.Fatalf("directory holds %q; want %q, no temp file", names, want)
	}
}
