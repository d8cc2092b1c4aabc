//go:build !linux

package affinity

// Allowed returns ErrUnsupported.
func Allowed() ([]int, error) { return nil, ErrUnsupported }

// PinThread returns ErrUnsupported.
func PinThread([]int) error { return ErrUnsupported }

// PinProcess returns ErrUnsupported.
func PinProcess([]int) error { return ErrUnsupported }

// Sweep returns ErrUnsupported.
func Sweep([]int, []int) (int, error) { return 0, ErrUnsupported }
