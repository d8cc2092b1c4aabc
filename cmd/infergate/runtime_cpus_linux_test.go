package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/testenv"
)

// threadCPUs returns, per CPU list, how many threads of process pid may
// run on exactly that list.
func threadCPUs(t *testing.T, pid int) map[string]int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	lists := map[string]int{}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				lists[strings.TrimSpace(v)]++
			}
		}
	}
	return lists
}

// TestServeRuntimeCPUs serves the demo models with the last CPU reserved
// for ONNX Runtime and checks, after requests from many clients at once,
// that the batch workers' threads are the only ones on it and every other
// thread is on the rest; and that bad lists are refused.
func TestServeRuntimeCPUs(t *testing.T) {
	allowed, err := affinity.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	f := func(list, want string) {
		t.Helper()
		checkExit(t, 1, want, "serve", "--dry-run", "--ort-lib", "/nonexistent", "--runtime-cpus", list)
	}
	f("x", `"x" is not a CPU number or range`)
	f("100000", `"100000": CPU numbers go up to 1023`)
	f("1000", "CPU 1000 is not one this process may use")
	f(affinity.Format(allowed), "reserves every CPU this process may use")
	if len(allowed) < 2 {
		t.Skipf("this machine lets the test use %d CPU; a reservation needs 2", len(allowed))
	}

	reserved := []int{allowed[len(allowed)-1]}
	rest := affinity.Format(allowed[:len(allowed)-1])
	s := startServer(t, "--models", demoRepo(t), "--runtime-cpus", affinity.Format(reserved), "--instances", "2")
	if !strings.Contains(s.stderr.String(), "CPUs "+affinity.Format(reserved)+" reserved for ONNX Runtime") {
		t.Fatalf("no reservation in the log:\n%s", s.stderr.String())
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 10 {
				m, cols := "ctr", 64
				if j%2 == 1 {
					m, cols = "ranker", 256
				}
				body, _ := inferBody(1+i%3, cols, uint64(i*10+j))
				if code, out, _ := s.post(t, "/v2/models/"+m+"/infer", body); code != 200 {
					t.Errorf("%s: %d %s", m, code, out)
				}
			}
		})
	}
	wg.Wait()
	lists := threadCPUs(t, s.cmd.Process.Pid)
	// Two models with two instances each: four workers.
	if lists[affinity.Format(reserved)] != 4 || lists[rest] == 0 || len(lists) != 2 {
		t.Fatalf("threads per CPU list: %v; want 4 workers on %s and all others on %s", lists, affinity.Format(reserved), rest)
	}
	// The main thread, which taskset -p reads, is on the rest, even when
	// a load or a worker ran on it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil || !strings.Contains(string(b), "Cpus_allowed_list:\t"+rest+"\n") {
		t.Fatalf("the process's own CPUs: %v\n%s; want %s", err, b, rest)
	}
	if _, page, _ := s.get(t, "/"); !strings.Contains(string(page), "up to 64 rows, 2 instances, on the reserved CPUs") {
		t.Fatalf("the status page does not say the workers run on the reserved CPUs:\n%s", page)
	}

	// A reload with another configuration builds new sessions and workers
	// and drains the old: their threads end, none is left on the reserved
	// CPU beside the new ones.
	load := []byte(`{"parameters":{"config":"{\"max_batch_size\":64,\"instances\":2,\"max_queue\":300}"}}`)
	if code, out, _ := s.post(t, "/v2/repository/models/ctr/load", load); code != 200 {
		t.Fatalf("reload: %d %s", code, out)
	}
	body, _ := inferBody(2, 64, 99)
	if code, out, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("after the reload: %d %s", code, out)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(s.stderr.String(), `unloaded model "ctr" version 1 after draining`) {
			return fmt.Errorf("the old ctr sessions have not drained yet")
		}
		if lists := threadCPUs(t, s.cmd.Process.Pid); lists[affinity.Format(reserved)] != 4 {
			return fmt.Errorf("threads per CPU list after a reload: %v; want 4 on %s", lists, affinity.Format(reserved))
		}
		return nil
	})
	s.stop(t)
}

// A sweep never moves a thread that binds itself to the reserved CPUs
// meanwhile: it reads a thread's CPUs and then sets them, and a worker
// whose thread was off both sets (one a move missed) and bound itself in
// between would be moved onto the rest for its life. The reservation's
// pin and sweep take turns.
func TestSweepSparesWorkerPin(t *testing.T) {
	all, err := affinity.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skip("needs 2 CPUs")
	}
	r := &cpuReservation{reserved: all[len(all)-1:], rest: all[:len(all)-1]}
	t.Cleanup(func() {
		for range 3 {
			affinity.PinProcess(all)
		}
	})
	if err := affinity.PinProcess(r.rest); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if _, err := r.sweepOnce(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	got := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		for i := 0; i < 300; i++ {
			affinity.PinThread(all) // a thread a move missed
			if err := r.pin(); err != nil {
				got <- err.Error()
				return
			}
			for t0 := time.Now(); time.Since(t0) < 100*time.Microsecond; {
				// Let a sweep in flight finish.
			}
			if now, _ := affinity.Allowed(); !slices.Equal(now, r.reserved) {
				got <- fmt.Sprintf("iteration %d: a worker bound to %v is on %v after a sweep", i, r.reserved, now)
				return
			}
		}
		got <- ""
	}()
	if msg := <-got; msg != "" {
		t.Fatal(msg)
	}
}
