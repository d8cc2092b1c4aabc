package bench

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/testenv"
)

func TestNeighborCPUs(t *testing.T) {
	usable := []int{4, 0, 2, 1}
	cpu, ns, err := neighborCPUs(usable, -1, nil)
	if err != nil || cpu != 0 || !slices.Equal(ns, []int{1, 2, 4}) {
		t.Fatalf("defaults: got CPU %d, neighbors %v, %v; want 0, [1 2 4]", cpu, ns, err)
	}
	cpu, ns, err = neighborCPUs(usable, 2, []int{4, 0})
	if err != nil || cpu != 2 || !slices.Equal(ns, []int{4, 0}) {
		t.Fatalf("given: got CPU %d, neighbors %v, %v; want 2, [4 0]", cpu, ns, err)
	}
	f := func(cpu int, ns []int, usable []int, want string) {
		t.Helper()
		_, _, err := neighborCPUs(usable, cpu, ns)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("CPU %d, neighbors %v of %v: got %v; want an ErrBadConfig with %q", cpu, ns, usable, err, want)
		}
	}
	f(3, nil, usable, "CPU 3 is not one this process may use (0-2,4)")
	f(0, []int{0}, usable, "neighbor CPU 0 is the CPU measured")
	f(0, []int{7}, usable, "neighbor CPU 7 is not one")
	f(0, []int{1, 2, 1}, usable, "neighbor CPU 1 is listed twice")
	f(-1, nil, []int{5}, "may use CPU 5 only")
}

func TestNeighborConfigValidate(t *testing.T) {
	c := DefaultNeighborConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	f := func(change func(*NeighborConfig), want string) {
		t.Helper()
		c := DefaultNeighborConfig()
		change(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v; want an ErrBadConfig with %q", err, want)
		}
	}
	f(func(c *NeighborConfig) { c.Model = "resnet" }, "--model-file")
	f(func(c *NeighborConfig) { c.Batch = 0 }, "batch 0")
	f(func(c *NeighborConfig) { c.Load = "io" }, `neighbor load "io"`)
	f(func(c *NeighborConfig) { c.Duration = time.Millisecond }, "too short")
	f(func(c *NeighborConfig) { c.Warmup = -time.Second }, "negative")
	f(func(c *NeighborConfig) { c.CPU = -2 }, "CPU -2")
}

// TestWriteNeighbors checks that each step is compared with the steps
// alone just around it, and that only single CPUs are named as slowing.
func TestWriteNeighbors(t *testing.T) {
	r := &NeighborReport{Model: "ranker", Batch: 32, CPU: 0, Load: NeighborORT, DurationSecs: 10, ORTVersion: "1.30.0",
		Steps: []NeighborStep{
			{Busy: []int{1}, RowsPerSec: 990},
			{Busy: []int{2}, RowsPerSec: 600},  // alone 1,200 and 1,000 around it: 0.55
			{Busy: []int{3}, RowsPerSec: 1000}, // alone 1,000 and 1,000: 1.00
			{Busy: []int{3, 1, 2}, RowsPerSec: 800},
		},
		Alone: []float64{1000, 1200, 1000, 1000, 1000},
	}
	if got := r.ratio(0); got != 990.0/1100 {
		t.Fatalf("ratio(0) = %g; want %g", got, 990.0/1100)
	}
	var b strings.Builder
	if err := WriteNeighbors(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"ranker in batches of 32 rows on CPU 0",
		"CPU 1  ", "0.90\n",
		"CPU 2", "1,200, 1,000", "0.55  slowed",
		"1.00\n",
		"CPUs 1-3 at once", "0.80  slowed",
		"1,000 to 1,200 rows/s over the run (17% apart)",
		"slowed below 0.85 by CPU 2: each shares something with CPU 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "few as") {
		t.Errorf("190 runs or more a step, and a caution about few runs:\n%s", out)
	}
	r.Steps = r.Steps[2:3]
	r.Alone = r.Alone[2:4]
	r.DurationSecs = 0.32 // 10 runs of 32 rows a step at 1,000 rows/s
	b.Reset()
	WriteNeighbors(&b, r)
	if out := b.String(); !strings.Contains(out, "no single busy CPU slowed CPU 0 below 0.85") || strings.Contains(out, "slowed below") ||
		!strings.Contains(out, "as few as 10 runs: a run cut by the window's edge moves its ratio by up to 10%") {
		t.Errorf("no slowed CPU, few runs:\n%s", out)
	}
}

// TestMeasureNeighbors runs the real thing briefly: ctr on the first CPU,
// the others busy in turn.
func TestMeasureNeighbors(t *testing.T) {
	usable := twoCPUs(t, "a neighbor")
	neighbors := slices.Sorted(slices.Values(usable))[1:min(len(usable), 3)]
	procs := runtime.GOMAXPROCS(0)
	for _, load := range []string{NeighborORT, NeighborSpin, NeighborHTTP} {
		c := DefaultNeighborConfig()
		c.ORTLib = testenv.ORTLib(t)
		c.Model, c.Batch, c.Load = "ctr", 2, load
		c.Neighbors = neighbors
		// Long enough that a pinned thread on a busy 2-CPU machine
		// finishes runs in every window.
		c.Duration, c.Warmup = 150*time.Millisecond, 20*time.Millisecond
		r, err := MeasureNeighbors(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: %v", load, err)
		}
		wantSteps := len(neighbors)
		if wantSteps > 1 {
			wantSteps++ // all at once
		}
		if len(r.Steps) != wantSteps || len(r.Alone) != wantSteps+1 {
			t.Fatalf("%s: %d steps and %d alone; want %d and %d", load, len(r.Steps), len(r.Alone), wantSteps, wantSteps+1)
		}
		for i, s := range r.Steps {
			if s.RowsPerSec <= 0 || r.Alone[i] <= 0 || r.Alone[i+1] <= 0 {
				t.Fatalf("%s: step %d %+v, alone %v: want rows on every step", load, i, s, r.Alone)
			}
			if i < len(neighbors) && !slices.Equal(s.Busy, neighbors[i:i+1]) {
				t.Fatalf("%s: step %d busy %v; want [%d]", load, i, s.Busy, neighbors[i])
			}
		}
		if r.CPU != slices.Min(usable) || r.ORTVersion == "" || r.Load != load {
			t.Fatalf("%s: report %+v", load, r)
		}
		// The process had every CPU but the measured one meanwhile, and
		// has them all back.
		if a, err := affinity.Allowed(); err != nil || !slices.Equal(a, slices.Sorted(slices.Values(usable))) {
			t.Fatalf("%s: this thread may run on %v after the run (%v); want %v", load, a, err, usable)
		}
		if p := runtime.GOMAXPROCS(0); p != procs && os.Getenv("GOMAXPROCS") == "" {
			t.Fatalf("%s: GOMAXPROCS %d after the run; want %d as before", load, p, procs)
		}
		path := filepath.Join(t.TempDir(), "n.json")
		if err := SaveNeighborsJSON(path, r); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var back NeighborReport
		if err := json.Unmarshal(b, &back); err != nil || back.Steps[0].RowsPerSec != r.Steps[0].RowsPerSec || len(back.Alone) != len(r.Alone) {
			t.Fatalf("%s: JSON %s: %v", load, b, err)
		}
	}
}
