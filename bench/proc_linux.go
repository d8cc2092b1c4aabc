package bench

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill cmd's process when this one dies, so
// that an interrupted suite leaves no gateway behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
