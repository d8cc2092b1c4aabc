package affinity

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// set returns the mask of cpus, or an error for a CPU it cannot hold
// (unix.CPUSet would drop it silently, and confine a thread to the rest).
func set(cpus []int) (*unix.CPUSet, error) {
	var s unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= len(s)*64 {
			return nil, fmt.Errorf("CPU %d: CPU numbers go up to %d", c, len(s)*64-1)
		}
		s.Set(c)
	}
	return &s, nil
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
	s, err := set(cpus)
	if err != nil {
		return err
	}
	if err := unix.SchedSetaffinity(0, s); err != nil {
		return fmt.Errorf("cannot move a thread onto CPUs %s: %w", Format(cpus), err)
	}
	return nil
}

// PinProcess moves every thread of this process onto cpus; threads made
// later inherit the affinity of the thread that makes them. It does not
// set GOMAXPROCS, but Go lowers it to the CPUs now allowed within about a
// second unless it was set (by the environment or runtime.GOMAXPROCS).
//
// A thread that an unmoved thread starts while it runs may be missed by a
// pass over the threads, so it passes again until a pass finds every
// thread on cpus already (at most maxPinPasses). That narrows the race; a
// thread started in the instant after the last pass by one not yet moved
// is still possible, which only stopping the process's thread creation
// would close.
func PinProcess(cpus []int) error {
	s, err := set(cpus)
	if err != nil {
		return err
	}
	for range maxPinPasses {
		moved, err := pinPass(s, nil, cpus)
		if err != nil || moved == 0 {
			return err
		}
	}
	return nil
}

// Sweep moves onto cpus every thread of this process that is on neither
// cpus nor leave (CPUs some threads keep on purpose, as a reservation's
// workers do; nil for none), and returns how many it moved. Run now and
// then after PinProcess, it moves the threads PinProcess missed, and
// those they started since. It reads a thread's CPUs before it sets them:
// a thread that binds itself to leave in between is moved all the same,
// so callers keep such binding and Sweep from running at once.
func Sweep(cpus, leave []int) (moved int, err error) {
	s, err := set(cpus)
	if err != nil {
		return 0, err
	}
	var keep *unix.CPUSet
	if leave != nil {
		if keep, err = set(leave); err != nil {
			return 0, err
		}
	}
	return pinPass(s, keep, cpus)
}

// maxPinPasses bounds PinProcess's passes: threads that keep appearing
// off the mask mean something keeps making them from an unmoved thread.
const maxPinPasses = 8

// pinPass moves every thread of this process that is on neither s nor
// keep (when not nil) onto s, and returns how many it moved.
func pinPass(s, keep *unix.CPUSet, cpus []int) (moved int, err error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("cannot list this process's threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if unix.SchedGetaffinity(tid, &cur) == nil && (cur == *s || (keep != nil && cur == *keep)) {
			continue
		}
		// A thread that has exited meanwhile answers ESRCH.
		if err := unix.SchedSetaffinity(tid, s); err != nil {
			if err == unix.ESRCH {
				continue
			}
			return moved, fmt.Errorf("cannot move thread %d onto CPUs %s: %w", tid, Format(cpus), err)
		}
		moved++
	}
	return moved, nil
}
