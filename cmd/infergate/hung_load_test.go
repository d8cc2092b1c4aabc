package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// SIGTERM must end serve whatever the initial load is doing. Here the
// load of a model hangs (its config.json is a FIFO nobody writes: a stalled
// network filesystem, say): the wait for it is bounded by
// --shutdown-timeout, as every wait of the main shutdown path is, and a
// second SIGTERM ends the process at once.
func TestSIGTERMDuringHungInitialLoad(t *testing.T) {
	repo := t.TempDir()
	addHungModel(t, repo, "hang")
	cmd, done, log := startServeUntil(t, "serving on", "--models", repo, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--shutdown-timeout", "2s")
	time.Sleep(500 * time.Millisecond) // into the hung load
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(10 * time.Second):
	}
	cmd.Process.Signal(syscall.SIGTERM) // a second one
	select {
	case <-done:
		t.Errorf("serve ended only on a second SIGTERM, 10s after the first; log:\n%s", log.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("serve still running 20s after SIGTERM (twice) while a model load hangs; log:\n%s", log.String())
	}
}

// addHungModel puts model name in repo with a config.json that is a FIFO
// nobody writes, as a stalled network filesystem would be: whatever reads
// it waits for good.
func addHungModel(t *testing.T, repo, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(repo, name, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, name, "1", "model.onnx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(repo, name, "config.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}
