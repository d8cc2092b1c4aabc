package affinity

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func set(cpus []int) *unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return &s
}

// Allowed returns, in increasing order, the CPUs the calling thread may
// run on; a thread the caller has not pinned has the process's.
func Allowed() ([]int, error) {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return nil, fmt.Errorf("cannot read the CPU affinity: %w", err)
	}
	var cpus []int
	for c := range len(s) * 64 {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// PinThread moves the calling thread onto cpus. The caller locks its
// goroutine to the thread first (runtime.LockOSThread), and either never
// unlocks it, so that the thread ends with the goroutine, or moves it back
// before unlocking.
func PinThread(cpus []int) error {
	if err := unix.SchedSetaffinity(0, set(cpus)); err != nil {
		return fmt.Errorf("cannot move a thread onto CPUs %s: %w", Format(cpus), err)
	}
	return nil
}

// PinProcess moves every thread of this process onto cpus; threads made
// later inherit the affinity of the thread that makes them. It does not
// set GOMAXPROCS, but Go lowers it to the CPUs now allowed within about a
// second unless it was set (by the environment or runtime.GOMAXPROCS).
func PinProcess(cpus []int) error {
	s := set(cpus)
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
			if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
				return fmt.Errorf("cannot move thread %d onto CPUs %s: %w", tid, Format(cpus), err)
			}
		}
	}
	return nil
}
