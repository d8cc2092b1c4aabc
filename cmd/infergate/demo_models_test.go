package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// demo-models never replaces a file of other bytes at a path it writes: a
// repository of one's own (make run MODELS=dir writes the demo models into
// it) may hold a model called ctr. It refuses, naming the file and what to
// do, and leaves the file as it was; --force replaces it.
func TestDemoModelsKeepsOtherFiles(t *testing.T) {
	repo := t.TempDir()
	mine := filepath.Join(repo, "ctr", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	own := []byte("the user's own ctr model")
	if err := os.WriteFile(mine, own, 0o644); err != nil {
		t.Fatal(err)
	}
	checkExit(t, 1, mine+" exists and holds another model", "demo-models", "--out", repo)
	if got, _ := os.ReadFile(mine); !bytes.Equal(got, own) {
		t.Fatalf("demo-models replaced %s: got %d bytes; want the user's %d", mine, len(got), len(own))
	}
	if _, err := os.Stat(filepath.Join(repo, "ranker")); err == nil {
		t.Errorf("demo-models wrote ranker though it refused ctr; want nothing written")
	}
	checkExit(t, 0, "wrote "+mine, "demo-models", "--out", repo, "--force")
	if got, _ := os.ReadFile(mine); bytes.Equal(got, own) {
		t.Fatalf("demo-models --force left %s as it was", mine)
	}
	// The same bytes again are left alone, and said so.
	checkExit(t, 0, mine+" is up to date", "demo-models", "--out", repo)
	// Another seed is another model: refused without --force too.
	checkExit(t, 1, mine+" exists and holds another model", "demo-models", "--out", repo, "--seed", "7")
}

// An empty --out is refused rather than taken for the current directory.
func TestDemoModelsEmptyOut(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binPath, "demo-models", "--out", "")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--out is empty") {
		t.Fatalf("demo-models --out '': %v, output:\n%s\nwant a failure saying --out is empty", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("demo-models --out '' wrote %d entries into the current directory; want none", len(entries))
	}
}

// demo-models --remove (make clean) removes only the demo models' own
// files: a ctr of the user's own, and a config.json beside a demo model,
// stay; make clean ran rm -rf on DIR/ctr and DIR/ranker.
func TestDemoModelsRemoveKeepsOtherFiles(t *testing.T) {
	repo := t.TempDir()
	checkExit(t, 0, "wrote", "demo-models", "--out", repo)
	cfg := filepath.Join(repo, "ranker", "config.json")
	if err := os.WriteFile(cfg, []byte(`{"max_batch_size": 8}`), 0o644); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(repo, "ctr", "1", "model.onnx")
	own := []byte("the user's own ctr model")
	if err := os.WriteFile(mine, own, 0o644); err != nil {
		t.Fatal(err)
	}
	checkExit(t, 0, mine+" holds another model (24 bytes, not this demo model): left alone", "demo-models", "--out", repo, "--remove")
	if got, _ := os.ReadFile(mine); !bytes.Equal(got, own) {
		t.Fatalf("--remove changed %s", mine)
	}
	if _, err := os.Stat(filepath.Join(repo, "ranker", "1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ranker/1 after --remove: %v; want it gone", err)
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("--remove took %s: %v", cfg, err)
	}
}
