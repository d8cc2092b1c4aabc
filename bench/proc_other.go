//go:build !linux

package bench

import "os/exec"

// setDeathSignal does nothing where the kernel cannot kill a child with
// its parent; the suite still stops its gateway on a normal exit.
func setDeathSignal(*exec.Cmd) {}

// processCPU cannot read another process's CPU time here.
func processCPU(int) (float64, bool) { return 0, false }
