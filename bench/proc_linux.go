package bench

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// setDeathSignal makes the kernel kill cmd's process when this one dies, so
// that an interrupted suite leaves no gateway behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processCPU returns the CPU time, user and system, that process pid has
// used so far, in seconds, from /proc; false when it cannot be read.
func processCPU(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseProcStatCPU(string(b))
}
