package affinity

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Parse of a CPU number at the top of int's range returns an error, not a
// loop that grows the list until memory runs out. It runs in a child
// process that a watchdog ends as soon as its heap passes 64 MiB.
func TestParseHugeCPU(t *testing.T) {
	if s := os.Getenv("AFFINITY_TEST_PARSE"); s != "" {
		done := make(chan error, 1)
		go func() {
			_, err := Parse(s)
			done <- err
		}()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-done:
				fmt.Printf("RETURNED %v\n", err)
				os.Exit(0)
			case <-time.After(2 * time.Millisecond):
			}
			metrics.Read(sample)
			if h := sample[0].Value.Uint64(); h > 64<<20 {
				fmt.Printf("RUNAWAY heap %d MiB\n", h>>20)
				os.Exit(42)
			}
		}
		fmt.Println("HUNG")
		os.Exit(43)
	}
	for _, in := range []string{"9223372036854775807", "9223372036854775800-9223372036854775807"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestParseHugeCPU$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AFFINITY_TEST_PARSE="+in)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "RETURNED") {
			t.Errorf("Parse(%q) never returns (it grows without bound): %s", in, strings.TrimSpace(string(out)))
		}
	}
}

// A CPU an affinity mask cannot hold (1024 and up) is an error, not
// dropped: the thread would be confined to the rest of the list.
func TestPinThreadHighCPUs(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cpu := all[0]
	type res struct {
		err error
		now []int
	}
	got := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		err := PinThread([]int{cpu, 1024, 5000})
		now, _ := Allowed()
		got <- res{err, now}
	}()
	r := <-got
	if r.err == nil {
		t.Errorf("PinThread([%d 1024 5000]) = nil and the thread may now run on %v only; want an error for CPUs 1024 and 5000, which a 1024-bit CPUSet cannot hold", cpu, r.now)
	}
}

// threadMasks returns the CPU list of every thread of this process that is
// not on want, by thread id.
func threadMasksNot(want string) map[int]string {
	off := map[int]string{}
	paths, _ := filepath.Glob("/proc/self/task/*")
	for _, p := range paths {
		tid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &s); err != nil {
			continue // ended meanwhile
		}
		var cpus []int
		for c := range len(s) * 64 {
			if s.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		if f := Format(cpus); f != want {
			off[tid] = f
		}
	}
	return off
}

// PinProcess moves the process onto one CPU while Go creates and ends
// threads. A thread that one not yet moved starts meanwhile can keep the
// old CPUs; once the churn stops, one Sweep leaves no thread of the process
// off the new CPU. And a Sweep leaves alone a thread on the CPUs it is told
// to leave.
func TestPinProcessAndSweep(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skip("needs 2 CPUs")
	}
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(64) // more Ms at work at once: more of them start threads
	restore := func() {
		for range 5 {
			PinProcess(all)
		}
	}
	t.Cleanup(func() {
		restore()
		runtime.GOMAXPROCS(procs)
	})
	target := []int{all[len(all)-1]}
	want := Format(target)
	const trials = 60
	for trial := range trials {
		var stop atomic.Bool
		var churn sync.WaitGroup
		for range 8 {
			churn.Go(func() {
				for !stop.Load() {
					var wg sync.WaitGroup
					for range 32 {
						// A locked goroutine that ends takes its thread
						// with it: Go keeps making new ones.
						wg.Go(func() { runtime.LockOSThread() })
					}
					wg.Wait()
				}
			})
		}
		time.Sleep(2 * time.Millisecond)
		err := PinProcess(target)
		stop.Store(true)
		churn.Wait()
		if err != nil {
			restore()
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		// Sweep as serve runs it, now and then, until a pass finds
		// nothing to move: a thread that an unmoved one started while a
		// pass listed the threads is caught by the next (a single
		// Sweep left one in about 1 of 1,500 trials here, at 49f4f5f
		// too).
		sweeps := 0
		for ; sweeps < 5; sweeps++ {
			moved, err := Sweep(target, nil)
			if err != nil {
				restore()
				t.Fatal(err)
			}
			if moved == 0 {
				break
			}
		}
		if off := threadMasksNot(want); len(off) > 0 {
			restore()
			t.Fatalf("trial %d: after PinProcess(%s) and %d sweeps, threads of this process are still on other CPUs: %v", trial, want, sweeps+1, off)
		}
		restore()
	}

	// A thread pinned on purpose to the CPUs a Sweep leaves stays there.
	kept := make(chan []int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		if err := PinThread(all[:1]); err != nil {
			t.Error(err)
		}
		<-release
		now, _ := Allowed()
		kept <- now
	}()
	time.Sleep(10 * time.Millisecond)
	if _, err := Sweep(target, all[:1]); err != nil {
		t.Fatal(err)
	}
	close(release)
	if now := <-kept; !slices.Equal(now, all[:1]) {
		t.Fatalf("a thread on the CPUs Sweep leaves (%v) is now on %v", all[:1], now)
	}
}
