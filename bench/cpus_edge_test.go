package bench

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/testenv"
)

// siblingsOf maps each CPU to the CPUs sharing its core.
func siblingsOf(cpus []hwThread) map[int][]int {
	m := map[int][]int{}
	for _, a := range cpus {
		for _, b := range cpus {
			if a.id != b.id && a.pkg == b.pkg && a.core == b.core {
				m[a.id] = append(m[a.id], b.id)
			}
		}
	}
	return m
}

// The first N CPUs in core order are whole cores when N is a multiple of
// the threads per core, also with a core short of a sibling (CPU 5 outside
// this process's cpuset, as a container's --cpuset-cpus leaves it): that
// core comes last.
func TestCoreOrderWholeCoresFirst(t *testing.T) {
	// 0-7, siblings 4 apart (0 and 4 share core 0); 5 not usable.
	var cpus []hwThread
	for _, id := range []int{0, 1, 2, 3, 4, 6, 7} {
		cpus = append(cpus, hwThread{id: id, pkg: 0, core: id % 4})
	}
	sib := siblingsOf(cpus)
	ids, perCore := coreOrder(cpus)
	if perCore != 2 {
		t.Fatalf("perCore %d; want 2", perCore)
	}
	n := 2 * perCore
	first := ids[:n]
	for _, c := range first {
		for _, s := range sib[c] {
			if !slices.Contains(first, s) {
				t.Errorf("core order %v: the first %d (a multiple of %d threads per core) are %v, which hold CPU %d but not its sibling %d; want whole cores", ids, n, perCore, first, c, s)
			}
		}
	}
}

// With the servers' share ending in part of a core (5 CPUs of 5
// two-thread cores), reserve(2) takes a whole core none of whose threads
// runs the gateway's HTTP.
func TestReserveOddServerSplit(t *testing.T) {
	var cpus []hwThread
	for id := range 10 {
		cpus = append(cpus, hwThread{id: id, pkg: 0, core: id % 5})
	}
	sib := siblingsOf(cpus)
	usable, perCore := coreOrder(cpus)
	s, err := newCPUSplit(usable, len(usable)/2, perCore) // half, as the default split was before it kept to whole cores
	if err != nil {
		t.Fatal(err)
	}
	s.reserve(perCore)
	http := slices.DeleteFunc(slices.Clone(s.server), func(c int) bool { return slices.Contains(s.runtime, c) })
	for _, c := range s.runtime {
		for _, o := range sib[c] {
			if slices.Contains(http, o) {
				t.Errorf("servers %v, reserve(%d) = %v: reserved CPU %d shares its core with CPU %d, which runs the gateway's HTTP; want whole cores apart from the HTTP CPUs %v", s.server, perCore, s.runtime, c, o, http)
			}
		}
	}
}

// MeasureNeighbors gives back the GOMAXPROCS its caller had set.
func TestMeasureNeighborsGOMAXPROCS(t *testing.T) {
	usable := twoCPUs(t, "a neighbor")
	sorted := slices.Sorted(slices.Values(usable))
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		runtime.SetDefaultGOMAXPROCS()
		if os.Getenv("GOMAXPROCS") != "" {
			runtime.GOMAXPROCS(before)
		}
	})
	const fixed = 1
	runtime.GOMAXPROCS(fixed)
	c := DefaultNeighborConfig()
	c.ORTLib = testenv.ORTLib(t)
	c.Model, c.Batch, c.Load = "ctr", 1, NeighborSpin
	c.Neighbors = sorted[1:2]
	c.Duration, c.Warmup = 30*time.Millisecond, 5*time.Millisecond
	if _, err := MeasureNeighbors(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if a, err := affinity.Allowed(); err != nil || !slices.Equal(a, sorted) {
		t.Fatalf("CPUs after the run: %v, %v; want %v", a, err, sorted)
	}
	if p := runtime.GOMAXPROCS(0); p != fixed {
		t.Fatalf("GOMAXPROCS %d after MeasureNeighbors; want %d, as the caller had set it", p, fixed)
	}
}
