//go:build !linux

package bench

import (
	"errors"
	"os/exec"
)

var errNoAffinity = errors.New("setting CPU affinity is supported on Linux only")

func usableCPUs() ([]int, error)                { return nil, errNoAffinity }
func pinProcess([]int) error                    { return errNoAffinity }
func startPinned(*exec.Cmd, []int, []int) error { return errNoAffinity }
func pinThread(int) error                       { return errNoAffinity }
func threadsPerCore() int                       { return 0 }
