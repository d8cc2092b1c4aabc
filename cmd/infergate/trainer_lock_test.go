package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// TestTrainerStateFileIsLocked: a second trainer given a state file that a
// running one uses (a scheduler's --once started while the daemon, or the
// previous --once, still runs) refuses to start, naming the file; two
// trainers on one state file overwrite each other's state with their own
// (seen: the state of one that had just promoted a version was replaced
// by the other's, losing the promotion and its history).
func TestTrainerStateFileIsLocked(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--register-local-models", "--traffic-percent", "100")
	testenv.CheckFor(t, 10*time.Second, func() error {
		if code, body, _ := s.get(t, "/v1/models/ctr"); code != 200 {
			return fmt.Errorf("ctr not registered yet: %d %s", code, body)
		}
		return nil
	})
	state := filepath.Join(t.TempDir(), "trainer.json")
	args := []string{"trainer", "ctr", "--addr", "http://" + s.addr, "--state", state, "--interval", "100ms", "--ort-lib", testenv.ORTLib(t)}
	first := exec.Command(binPath, args...)
	out := &syncBuffer{}
	first.Stdout, first.Stderr = out, out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	defer func() {
		first.Process.Kill()
		<-exited
	}()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "looking after ctr") {
			return fmt.Errorf("the first trainer has not started: %s", out.String())
		}
		return nil
	})
	second, err := exec.Command(binPath, append(args, "--once")...).CombinedOutput()
	if want := "is in use by another trainer"; err == nil || !strings.Contains(string(second), want) {
		t.Fatalf("a second trainer on the state file of a running one: %v\n%s\nwant an error saying %q", err, second, want)
	}

	// Once the first is gone (killed: the lock goes with the process),
	// the state file is free again.
	first.Process.Kill()
	<-exited
	exited <- nil
	if b, err := exec.Command(binPath, append(args, "--once")...).CombinedOutput(); err != nil {
		t.Fatalf("a trainer after the first was killed: %v\n%s", err, b)
	}
}
