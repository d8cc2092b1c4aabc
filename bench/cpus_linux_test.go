package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/affinity"
	"golang.org/x/sys/unix"
)

// TestStartPinned starts a child on one CPU, which it reports, and checks
// that the forking thread went back to the others.
func TestStartPinned(t *testing.T) {
	usable := twoCPUs(t, "a split")
	split, err := newCPUSplit(usable, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Locked here, the thread that forks is this test's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer affinity.PinThread(usable)
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

// TestPinnedLoop checks that a loop's work runs on a thread bound to its
// CPU alone, that its rate counts the rows work returns, and that a
// failing work ends the measurement with its error.
func TestPinnedLoop(t *testing.T) {
	usable, err := usableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpu := usable[len(usable)-1]
	var affinity unix.CPUSet
	seen := make(chan struct{})
	first := true
	l := startLoop(cpu, func() (int, error) {
		if first {
			first = false
			if err := unix.SchedGetaffinity(0, &affinity); err != nil {
				return 0, err
			}
			close(seen)
		}
		time.Sleep(100 * time.Microsecond)
		return 3, nil
	})
	<-seen
	if affinity.Count() != 1 || !affinity.IsSet(cpu) {
		t.Fatalf("the loop's thread may run on %d CPUs; want CPU %d only", affinity.Count(), cpu)
	}
	rate, err := l.rate(context.Background(), 0, 50*time.Millisecond)
	if err != nil || rate <= 0 || rate > 3/100e-6 {
		t.Fatalf("rate %g rows/s, %v; want above 0 and at most 30,000 (3 rows a 100µs sleep)", rate, err)
	}
	if err := l.halt(); err != nil {
		t.Fatal(err)
	}
	if err := l.halt(); err != nil {
		t.Fatalf("second halt: %v", err)
	}

	boom := errors.New("boom")
	l = startLoop(cpu, func() (int, error) { return 0, boom })
	start := time.Now()
	if _, err := l.rate(context.Background(), 0, time.Minute); !errors.Is(err, boom) {
		t.Fatalf("rate of a failing loop: %v; want boom", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("a failing loop took %s to end the measurement", time.Since(start))
	}
	if err := l.halt(); !errors.Is(err, boom) {
		t.Fatalf("halt after failure: %v; want boom", err)
	}

	// A CPU this process may not use fails the loop at once.
	l = startLoop(1023, func() (int, error) { return 1, nil })
	if err := l.halt(); err == nil || !strings.Contains(err.Error(), "cannot move a thread onto CPUs") {
		t.Fatalf("loop on a CPU out of reach: %v", err)
	}
}

// TestOnServerCPUs checks that the ort-floor's helper runs its function
// with the whole process on the servers' CPUs and moves it back.
func TestOnServerCPUs(t *testing.T) {
	usable := twoCPUs(t, "a split")
	split, err := newCPUSplit(usable, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		if err := pinProcess(usable); err != nil {
			t.Errorf("cannot give the test process its CPUs back: %v", err)
		}
		runtime.GOMAXPROCS(procs)
	})
	if err := pinProcess(split.client); err != nil {
		t.Fatal(err)
	}
	affinity := func() string {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			t.Fatal(err)
		}
		var cpus []int
		for c := range len(set) * 64 {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		return formatCPUs(cpus)
	}
	s := &session{cpus: split}
	var inside string
	var insideProcs int
	err = s.onServerCPUs(func(pinErr error) {
		if pinErr != nil {
			t.Errorf("pin: %v", pinErr)
		}
		inside, insideProcs = affinity(), runtime.GOMAXPROCS(0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != formatCPUs(split.server) || insideProcs != len(split.server) {
		t.Errorf("inside: CPUs %s, GOMAXPROCS %d; want the servers' %s and %d", inside, insideProcs, formatCPUs(split.server), len(split.server))
	}
	if after := affinity(); after != formatCPUs(split.client) || runtime.GOMAXPROCS(0) != len(split.client) {
		t.Errorf("after: CPUs %s, GOMAXPROCS %d; want the client's %s and %d", after, runtime.GOMAXPROCS(0), formatCPUs(split.client), len(split.client))
	}
}
