package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// usableCPUs returns the CPUs this process may run on, in order.
func usableCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("cannot read this process's CPU affinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinProcess moves every thread of this process onto cpus (threads made
// later inherit it from the thread that makes them) and sets GOMAXPROCS
// to their number.
func pinProcess(cpus []int) error {
	set := cpuSet(cpus)
	// Twice: a thread started while the first pass ran is caught by the
	// second.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("cannot list this process's threads: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// A thread that has exited meanwhile answers ESRCH.
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("cannot move thread %d onto CPUs %s: %w", tid, formatCPUs(cpus), err)
			}
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// startPinned starts cmd with its CPU affinity set to cpus: the child
// inherits the affinity of the thread that forks it, so this thread takes
// cpus for the fork and home afterwards. A Go child sizes GOMAXPROCS from
// it.
func startPinned(cmd *exec.Cmd, cpus, home []int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return fmt.Errorf("cannot move onto CPUs %s to start %s: %w", formatCPUs(cpus), cmd.Path, err)
	}
	if err := cmd.Start(); err != nil {
		unix.SchedSetaffinity(0, cpuSet(home))
		return err
	}
	if err := unix.SchedSetaffinity(0, cpuSet(home)); err != nil {
		// This thread would stay on the servers' CPUs.
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("cannot move back onto CPUs %s after starting %s: %w", formatCPUs(home), cmd.Path, err)
	}
	return nil
}
