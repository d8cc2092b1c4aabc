package bench

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// cpuSplit gives the servers the suite starts (the gateway and the http
// floor) some of the CPUs this process may use, and the load generator
// (with the ort floor, which runs in this process) the others, so that
// neither takes cores from the other: a gateway that shares its cores with
// the client that loads it measures the client as much as itself.
type cpuSplit struct {
	server, client []int
}

// newCPUSplit gives the first n of usable (in core order, see
// usableCPUs) to the servers and the rest to the client.
func newCPUSplit(usable []int, n int) (*cpuSplit, error) {
	if n < 1 || n >= len(usable) {
		return nil, fmt.Errorf("%d CPUs for the servers out of the %d this process may use leaves none for the load generator; give 1 to %d, or 0 to share them all", n, len(usable), len(usable)-1)
	}
	s := &cpuSplit{server: slices.Clone(usable[:n]), client: slices.Clone(usable[n:])}
	slices.Sort(s.server)
	slices.Sort(s.client)
	return s, nil
}

// start starts cmd on the servers' CPUs; a nil split starts it anywhere.
func (s *cpuSplit) start(cmd *exec.Cmd) error {
	if s == nil {
		return cmd.Start()
	}
	return startPinned(cmd, s.server, s.client)
}

// formatCPUs writes a CPU list in the kernel's notation: "0-7,12".
func formatCPUs(cpus []int) string {
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
