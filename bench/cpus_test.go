package bench

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/affinity"
)

func TestNewCPUSplit(t *testing.T) {
	s, err := newCPUSplit([]int{0, 1, 2, 3, 4, 5, 6, 7}, 3, 1)
	if err != nil || formatCPUs(s.server) != "0-2" || formatCPUs(s.client) != "3-7" {
		t.Fatalf("got %v, %v; want servers 0-2, client 3-7", s, err)
	}
	for _, n := range []int{0, 8, 9} {
		if _, err := newCPUSplit([]int{0, 1, 2, 3, 4, 5, 6, 7}, n, 1); err == nil || !strings.Contains(err.Error(), "give 1 to 7") {
			t.Errorf("split of 8 with %d for the servers: got %v; want an error naming 1 to 7", n, err)
		}
	}
}

func TestSuiteServerCPUsValidate(t *testing.T) {
	c := DefaultSuiteConfig()
	if c.ServerCPUs != AutoServerCPUs {
		t.Fatalf("default --server-cpus %d; want auto (%d)", c.ServerCPUs, AutoServerCPUs)
	}
	c.Executable = "/bin/true"
	c.ServerCPUs = -2
	if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("--server-cpus -2: got %v; want ErrBadConfig", err)
	}
	// More than this process may use is refused before anything runs
	// (so --dry-run says so).
	c.ServerCPUs = 1 << 16
	if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "leaves none for the load generator") {
		t.Fatalf("--server-cpus 65536: got %v; want ErrBadConfig saying it leaves none", err)
	}
	// With a target, the default (auto) is no split, and an explicit one
	// is refused.
	c.Target = "http://127.0.0.1:8080"
	c.ServerCPUs = AutoServerCPUs
	if err := c.Validate(); err != nil || c.serverCPUs() != 0 {
		t.Fatalf("auto with --target: got %v and %d CPUs; want valid and no split", err, c.serverCPUs())
	}
	c.ServerCPUs = 2
	if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "taskset") {
		t.Fatalf("--server-cpus with --target: got %v; want ErrBadConfig telling to pin it yourself", err)
	}

	// --runtime-cpus needs the gateway's own CPUs, and leaves it one.
	f := func(server, runtime int, target, want string) {
		t.Helper()
		c := DefaultSuiteConfig()
		c.Executable, c.Target, c.ServerCPUs, c.RuntimeCPUs = "/bin/true", target, server, runtime
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("--server-cpus %d --runtime-cpus %d --target %q: got %v; want ErrBadConfig with %q", server, runtime, target, err, want)
		}
	}
	f(0, -1, "", "must not be negative")
	f(0, 1, "", "has none of its own here")
	f(AutoServerCPUs, 1, "http://127.0.0.1:8080", "has none of its own here")
	if usable, err := usableCPUs(); err == nil && len(usable) >= 2 {
		f(1, 1, "", "leaves none for its HTTP; give at most 0")
	}
}

func TestCPUSplitReserve(t *testing.T) {
	s, err := newCPUSplit([]int{0, 1, 2, 3, 4, 5, 6, 7}, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := formatCPUs(s.floor()); got != "0-3" {
		t.Fatalf("floor without a reservation: %s; want the servers' 0-3", got)
	}
	s.reserve(0)
	s.reserve(4) // all of them: refused by Validate, ignored here
	if s.runtime != nil {
		t.Fatalf("reserve(0), reserve(4) of 4: runtime %v; want none", s.runtime)
	}
	s.reserve(1)
	if got := formatCPUs(s.runtime) + " " + formatCPUs(s.floor()); got != "3 3" {
		t.Fatalf("reserve(1): runtime and floor %s; want 3 3", got)
	}
	// Two threads per core, siblings numbered apart (0 and 4 share a
	// core): the reservation takes a whole core, not the siblings of the
	// HTTP CPUs.
	smt, err := newCPUSplit([]int{0, 4, 1, 5, 2, 6, 3, 7}, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	smt.reserve(2)
	if got := formatCPUs(smt.server) + " " + formatCPUs(smt.runtime); got != "0-1,4-5 1,5" {
		t.Fatalf("SMT split of 4, reserve(2): servers and runtime %s; want 0-1,4-5 1,5", got)
	}

	cfg := DefaultSuiteConfig()
	cfg.ServerArgs = []string{"--max-queue=9"}
	args := strings.Join(gatewayArgs(&cfg, s, "/d", "/lib.so"), " ")
	if !strings.HasSuffix(args, " --runtime-cpus 3 --max-queue=9") {
		t.Fatalf("gateway command line %q; want --runtime-cpus 3 before the server args", args)
	}
	if args := strings.Join(gatewayArgs(&cfg, nil, "/d", "/lib.so"), " "); strings.Contains(args, "--runtime-cpus") {
		t.Fatalf("gateway command line without a split: %q", args)
	}
}

func TestCoreOrder(t *testing.T) {
	f := func(cpus []hwThread, wantIDs string, wantPerCore int) {
		t.Helper()
		ids, perCore := coreOrder(cpus)
		if got := fmt.Sprint(ids); got != wantIDs || perCore != wantPerCore {
			t.Fatalf("coreOrder(%v) = %s, %d; want %s, %d", cpus, got, perCore, wantIDs, wantPerCore)
		}
	}
	f(nil, "[]", 0)
	// One thread per core.
	f([]hwThread{{0, 0, 0}, {1, 0, 1}, {2, 0, 2}}, "[0 1 2]", 1)
	// Two per core, siblings numbered apart (0 and 4 share core 0).
	f([]hwThread{{0, 0, 0}, {1, 0, 1}, {2, 0, 2}, {3, 0, 3}, {4, 0, 0}, {5, 0, 1}, {6, 0, 2}, {7, 0, 3}}, "[0 4 1 5 2 6 3 7]", 2)
	// Two packages reusing core ids; the whole core (package 1's core 0)
	// first, then the cores with a sibling not usable.
	f([]hwThread{{0, 0, 0}, {1, 1, 0}, {2, 0, 1}, {3, 1, 0}}, "[1 3 0 2]", 2)
}

// twoCPUs returns the CPUs this test may use, in core order, and skips it
// when there are fewer than two, which what needs names.
func twoCPUs(t *testing.T, what string) []int {
	t.Helper()
	usable, err := usableCPUs()
	if errors.Is(err, affinity.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(usable) < 2 {
		t.Skipf("this machine lets the test use %d CPU; %s needs 2", len(usable), what)
	}
	return usable
}
