package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/internal/affinity"
)

// usableCPUs returns the CPUs this process may run on, in core order:
// the hardware threads of one core next to each other (by the kernel's
// topology, where /sys has it), so that the first N of them are whole
// cores when N is a multiple of the threads per core.
func usableCPUs() ([]int, error) {
	ids, _, err := cpuTopology()
	return ids, err
}

// threadsPerCore returns the most hardware threads of one core among the
// CPUs this process may run on, or 0 where that cannot be told.
func threadsPerCore() int {
	_, n, err := cpuTopology()
	if err != nil {
		return 0
	}
	return n
}

// cpuTopology returns usableCPUs' answer and the most of them that share a
// core, 0 when /sys does not say which core each is on.
func cpuTopology() (ids []int, perCore int, err error) {
	allowed, err := affinity.Allowed()
	if err != nil {
		return nil, 0, err
	}
	var cpus []hwThread
	known := true
	for _, c := range allowed {
		pkg, _ := topology(c, "physical_package_id")
		core, ok := topology(c, "core_id")
		known = known && ok
		cpus = append(cpus, hwThread{id: c, pkg: pkg, core: core})
	}
	ids, perCore = coreOrder(cpus)
	if !known {
		perCore = 0
	}
	return ids, perCore, nil
}

// topology returns CPU c's number of kind (core_id, physical_package_id)
// from /sys, or c itself and false where /sys does not say, which keeps
// the CPUs' own order.
func topology(c int, kind string) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/%s", c, kind))
	if err != nil {
		return c, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return c, false
	}
	return n, true
}

// pinProcess moves every thread of this process onto cpus (threads made
// later inherit it from the thread that makes them) and sets GOMAXPROCS
// to their number.
func pinProcess(cpus []int) error {
	if err := affinity.PinProcess(cpus); err != nil {
		return err
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
	if err := affinity.PinThread(cpus); err != nil {
		return fmt.Errorf("cannot start %s: %w", cmd.Path, err)
	}
	err := cmd.Start()
	if herr := affinity.PinThread(home); herr != nil {
		// Keep this thread locked, so that it serves no other goroutine
		// from the servers' CPUs; it ends with the calling goroutine, or,
		// the main goroutine's, with the command, which this error ends.
		runtime.LockOSThread()
		if err == nil {
			// Nobody reads its output yet: bound Wait's wait for it.
			cmd.Process.Kill()
			cmd.WaitDelay = time.Second
			cmd.Wait()
		}
		return errors.Join(err, fmt.Errorf("after starting %s: %w", cmd.Path, herr))
	}
	return err
}

// pinThread binds the calling thread to cpu. The caller has locked its
// goroutine to the thread and never unlocks it, so that the binding ends
// with the goroutine.
func pinThread(cpu int) error { return affinity.PinThread([]int{cpu}) }
