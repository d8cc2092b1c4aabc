package bench

import (
	"cmp"
	"fmt"
	"os/exec"
	"slices"

	"github.com/infergate/infergate/internal/affinity"
)

// cpuSplit gives the servers the suite starts (the gateway and the http
// floor) some of the CPUs this process may use, and the load generator
// the others (the ort floor runs on the servers' CPUs while they idle), so
// that neither takes cores from the other: a gateway that shares its cores with
// the client that loads it measures the client as much as itself.
type cpuSplit struct {
	server, client []int
	// serverCores is server in core order (see usableCPUs): the hardware
	// threads of one core next to each other.
	serverCores []int
	// runtime, when set, are the servers' CPUs that the gateway reserves
	// for ONNX Runtime (serve --runtime-cpus).
	runtime []int
	// perCore is the most hardware threads of a core (1 when unknown).
	perCore int
}

// reserve sets runtime to the last n of the servers' CPUs in core order,
// so that with n a multiple of the threads per core the reservation is
// whole cores, none of whose hardware threads runs the gateway's HTTP.
// With the servers' share ending in part of a core (its other threads the
// load generator's), that part is left out of it.
func (s *cpuSplit) reserve(n int) {
	whole := len(s.serverCores) - len(s.serverCores)%max(s.perCore, 1)
	switch {
	case n > 0 && n < whole:
		s.runtime = slices.Sorted(slices.Values(s.serverCores[whole-n : whole]))
	case n > 0 && n < len(s.serverCores):
		// Too many to leave the HTTP a whole core: the last n, as asked.
		s.runtime = slices.Sorted(slices.Values(s.serverCores[len(s.serverCores)-n:]))
	}
}

// floor returns the CPUs the ort floor runs on: where the gateway runs
// ONNX Runtime.
func (s *cpuSplit) floor() []int {
	if len(s.runtime) > 0 {
		return s.runtime
	}
	return s.server
}

// newCPUSplit gives the first n of usable (in core order, see
// usableCPUs, with cores of perCore threads) to the servers and the rest to
// the client.
func newCPUSplit(usable []int, n, perCore int) (*cpuSplit, error) {
	if n < 1 || n >= len(usable) {
		return nil, fmt.Errorf("%d CPUs for the servers out of the %d this process may use leaves none for the load generator; give 1 to %d, or 0 to share them all", n, len(usable), len(usable)-1)
	}
	s := &cpuSplit{server: slices.Clone(usable[:n]), client: slices.Clone(usable[n:]), serverCores: slices.Clone(usable[:n]), perCore: perCore}
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
func formatCPUs(cpus []int) string { return affinity.Format(cpus) }

// hwThread is a CPU as the kernel numbers it, with the package and core
// it belongs to.
type hwThread struct{ id, pkg, core int }

// coreOrder returns the ids of cpus with the threads of one core next to
// each other, cores in package and core order, those with fewer of their
// threads among cpus (a sibling outside this process's cpuset) after the
// others, and the most threads any one core has among them. So the first
// N, with N a multiple of that most, are whole cores when there are so
// many.
func coreOrder(cpus []hwThread) (ids []int, perCore int) {
	cpus = slices.Clone(cpus)
	type coreKey struct{ pkg, core int }
	threads := map[coreKey]int{}
	for _, c := range cpus {
		threads[coreKey{c.pkg, c.core}]++
	}
	slices.SortStableFunc(cpus, func(a, b hwThread) int {
		return cmp.Or(cmp.Compare(threads[coreKey{b.pkg, b.core}], threads[coreKey{a.pkg, a.core}]),
			cmp.Compare(a.pkg, b.pkg), cmp.Compare(a.core, b.core), cmp.Compare(a.id, b.id))
	})
	ids = make([]int, len(cpus))
	run := 0
	for i, c := range cpus {
		ids[i] = c.id
		if i > 0 && c.pkg == cpus[i-1].pkg && c.core == cpus[i-1].core {
			run++
		} else {
			run = 1
		}
		perCore = max(perCore, run)
	}
	return ids, perCore
}
