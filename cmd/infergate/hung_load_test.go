package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// SIGTERM must end serve whatever the initial load is doing. Here the
// load of a model hangs (its config.json is a FIFO nobody writes: a stalled
// network filesystem, say): the wait for it is bounded by
// --shutdown-timeout, as every wait of the main shutdown path is, and a
// second SIGTERM ends the process at once.
func TestSIGTERMDuringHungInitialLoad(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "hang", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "hang", "1", "model.onnx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(repo, "hang", "config.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cmd := exec.Command(binPath, "serve", "--ort-lib", testenv.ORTLib(t), "--models", repo, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--shutdown-timeout", "2s")
	pr, pw := io.Pipe()
	var log syncBuffer
	cmd.Stderr = io.MultiWriter(pw, &log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	t.Cleanup(func() { cmd.Process.Kill() })
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "serving on") {
				close(serving)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-serving:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start; log:\n%s", log.String())
	}
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
