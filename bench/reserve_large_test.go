package bench

import "testing"

// A reservation too large to leave the HTTP a whole core (4 of 5 server
// CPUs on two-thread cores) is kept as asked, not dropped: Validate accepts
// up to one below the servers' CPUs.
func TestReserveLargeOfOddSplit(t *testing.T) {
	var cpus []hwThread
	for id := range 10 {
		cpus = append(cpus, hwThread{id: id, pkg: 0, core: id % 5})
	}
	usable, perCore := coreOrder(cpus)
	const server, runtimeCPUs = 5, 4
	s, err := newCPUSplit(usable, server, perCore)
	if err != nil {
		t.Fatal(err)
	}
	// The check SuiteConfig.Validate makes.
	if runtimeCPUs >= server {
		t.Fatal("Validate would refuse this; the test is wrong")
	}
	s.reserve(runtimeCPUs)
	if len(s.runtime) != runtimeCPUs {
		t.Fatalf("servers %v (%d threads per core): reserve(%d), which Validate accepts, reserved %v; want %d CPUs, or an error from Validate", s.server, perCore, runtimeCPUs, s.runtime, runtimeCPUs)
	}
}
