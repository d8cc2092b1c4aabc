package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A repository of .onnx files (--models pointed at a directory of model
// files, not of model directories) is refused by serve --dry-run, naming
// the file and where it belongs, and the real start logs the same, where
// both passed over it and served nothing.
func TestServeRepositoryOfFiles(t *testing.T) {
	repo := t.TempDir()
	data, err := os.ReadFile(filepath.Join(demoRepo(t), "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "ctr.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "move it to " + filepath.Join(repo, "ctr", "1", "model.onnx")
	code, out := runServeFor(t, 30*time.Second, "--dry-run", "--models", repo, "--data", t.TempDir())
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("serve --dry-run on a repository of files: exit %d:\n%s\nwant exit 1 and %q", code, out, want)
	}
	s := startServer(t, "--models", repo)
	if !strings.Contains(s.stderr.String(), want) {
		t.Fatalf("serve on a repository of files logged:\n%s\nwant %q", s.stderr.String(), want)
	}
}
