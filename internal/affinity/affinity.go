// Package affinity reads and sets which CPUs threads may run on: the bench
// suite's split between the servers and the load generator, and the CPUs
// a gateway reserves for ONNX Runtime. Setting affinity works on Linux
// only; elsewhere every call that would set or read it returns
// ErrUnsupported.
package affinity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnsupported is returned where this platform cannot set CPU affinity.
var ErrUnsupported = errors.New("setting CPU affinity is supported on Linux only")

// Format writes a CPU list in the kernel's notation, "0-7,12", for cpus
// in increasing order.
func Format(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// MaxCPUs bounds the CPU numbers this package handles: those of an
// affinity mask of the usual size (the kernel's default for most builds).
const MaxCPUs = 1024

// Parse reads a CPU list in the kernel's notation ("0-7,12"), as Format
// writes it; the CPUs come back in the order given.
func Parse(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q is not a CPU number or range (as in 0-7,12)", part)
		}
		if b >= MaxCPUs {
			return nil, fmt.Errorf("%q: CPU numbers go up to %d", part, MaxCPUs-1)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
