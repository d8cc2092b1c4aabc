//go:build !linux

package bench

import (
	"os/exec"

	"github.com/infergate/infergate/internal/affinity"
)

func usableCPUs() ([]int, error)                { return nil, affinity.ErrUnsupported }
func pinProcess([]int) error                    { return affinity.ErrUnsupported }
func startPinned(*exec.Cmd, []int, []int) error { return affinity.ErrUnsupported }
func pinThread(int) error                       { return affinity.ErrUnsupported }
func threadsPerCore() int                       { return 0 }
