package bench

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStartPinned starts a child on one CPU, which it reports, and checks
// that the forking thread went back to the others.
func TestStartPinned(t *testing.T) {
	usable, err := usableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(usable) < 2 {
		t.Skipf("this machine lets the test use %d CPU; a split needs 2", len(usable))
	}
	split, err := newCPUSplit(usable, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Locked here, the thread that forks is this test's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.SchedSetaffinity(0, cpuSet(usable))
	cmd := exec.Command("grep", "Cpus_allowed_list", "/proc/self/status")
	var out strings.Builder
	cmd.Stdout = &out
	if err := split.start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(strings.TrimPrefix(out.String(), "Cpus_allowed_list:")), formatCPUs(split.server); got != want {
		t.Fatalf("the child ran on CPUs %q; want %q", got, want)
	}
	// The thread that forked went home, to the client's CPUs.
	now, err := usableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := formatCPUs(now), formatCPUs(split.client); got != want {
		t.Fatalf("the thread that started the child is on CPUs %s; want %s", got, want)
	}
}

// TestProcessCPU reads this process's CPU time, burns some, and reads it
// again.
func TestProcessCPU(t *testing.T) {
	before, ok := processCPU(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process's CPU time")
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, ok := processCPU(os.Getpid())
	if !ok || after <= before {
		t.Fatalf("CPU time %v then %v after 200ms of work (%d loops); want it to grow", before, after, x)
	}
}
