package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// During --shutdown-delay the server answers /v2/health/ready with 503
// saying it is shutting down, and the status page says so too (before,
// the reason given was that the initial models were still loading).
func TestShutdownDelayReadySaysShuttingDown(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--shutdown-delay", "3s")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, body, _ := s.get(t, "/v2/health/ready")
		if code == 503 {
			if !strings.Contains(string(body), "shutting down") {
				t.Fatalf("during --shutdown-delay after SIGTERM, GET /v2/health/ready answers %d %s; want it to say the server is shutting down", code, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %s 2 s after SIGTERM", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	page := func() string { _, b, _ := s.get(t, "/"); return string(b) }()
	if !strings.Contains(page, "shutting down") {
		i := strings.Index(page, "<h1>")
		t.Errorf("the status page during --shutdown-delay does not say the server is shutting down; its head: %q", page[i:min(len(page), i+200)])
	}
}

// A model serves version 1; version 2 is copied in broken and the load
// API refuses it: version 1 keeps serving. After a restart (a pod
// rescheduled) version 1 still serves, standing in for version 2 (before,
// the latest policy picked version 2 alone, which failed, and the model
// served nothing while the node reported ready).
func TestRestartAfterFailedSwapKeepsModelServing(t *testing.T) {
	models := demoRepo(t)
	data := t.TempDir()
	s := startServer(t, "--models", models, "--data", data)
	v2 := filepath.Join(models, "ctr", "2", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(v2), 0o755); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(models, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, good[:1000], 0o644); err != nil { // a truncated copy
		t.Fatal(err)
	}
	if code, body, _ := s.post(t, "/v2/repository/models/ctr/load", nil); code != 400 {
		t.Fatalf("load of a truncated version 2: %d %s; want 400", code, body)
	}
	if code, body, _ := s.get(t, "/v2/models/ctr/ready"); code != 200 {
		t.Fatalf("before the restart ctr is not ready: %d %s", code, body)
	}
	_, idx, _ := s.post(t, "/v2/repository/index", nil)
	_, before, _ := s.get(t, "/")
	s.stop(t)

	s2 := startServer(t, "--models", models, "--data", data)
	code, body, _ := s2.get(t, "/v2/models/ctr/ready")
	if code != 200 {
		rc, rb, _ := s2.get(t, "/v2/health/ready")
		_, idx2, _ := s2.post(t, "/v2/repository/index", nil)
		warned := strings.Contains(string(before), "restart")
		t.Fatalf("after a restart ctr serves nothing (GET /v2/models/ctr/ready: %d %s) while the node reports ready (%d %s).\n"+
			"before the restart the index was %s\nand the status page warned of the restart: %v\nafter it the index is %s",
			code, body, rc, rb, idx, warned, idx2)
	}
}
