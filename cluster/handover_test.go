package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// TestHandOverInTheLoadThatRetires: production moves to a version that is
// not loaded yet and the old production is retired, both before the
// reconciler's pass that loads the new one. That load swaps the new
// version in and the old one out in one step; an unversioned request
// right after it must get the new version, not "not ready" until the
// reconciler's route call after the load (held here on routeMu).
func TestHandOverInTheLoadThatRetires(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "handover one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		v, err := repo.Acquire("m", 0)
		if err != nil {
			return err
		}
		defer v.Release()
		if v.Number != 1 {
			return fmt.Errorf("unversioned requests get version %d; want 1", v.Number)
		}
		return nil
	})

	// Hold the reconciler in another model's load, so that the three
	// commands below land in one pass of it.
	const busy = "handover: a model that holds the reconciler"
	busyGate := make(chan struct{})
	loadGates.Store(busy, busyGate)
	defer loadGates.Delete(busy)
	const two = "handover two"
	twoGate := make(chan struct{})
	twoStarted := make(chan struct{}, 1)
	loadGates.Store(two, twoGate)
	loadStarts.Store(two, twoStarted)
	defer loadGates.Delete(two)
	defer loadStarts.Delete(two)
	busyOpen, twoOpen := false, false
	defer func() {
		if !busyOpen {
			close(busyGate)
		}
		if !twoOpen {
			close(twoGate)
		}
	}()
	if _, err := c.register(n, "a", busy); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["a"]["1"]; s.State != VersionLoading {
			return fmt.Errorf("a: %+v; want loading", s)
		}
		return nil
	})
	if _, err := c.register(n, "m", two); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	close(busyGate)
	busyOpen = true

	// Version 2's load has begun, so the route call before it is over;
	// then hold route, and let the load finish.
	select {
	case <-twoStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("version 2's load did not begin")
	}
	n.routeMu.Lock()
	locked := true
	defer func() {
		if locked {
			n.routeMu.Unlock()
		}
	}()
	close(twoGate)
	twoOpen = true
	testenv.CheckFor(t, 5*time.Second, func() error {
		lm := repo.Model("m")
		if lm == nil || lm.Version(2) == nil || lm.Version(1) != nil {
			return fmt.Errorf("the load has not swapped version 2 in for version 1 yet")
		}
		return nil
	})
	v, err := repo.Acquire("m", 0)
	if err != nil {
		t.Fatalf("an unversioned request after the load, before route: %v; want version 2", err)
	}
	got := v.Number
	v.Release()
	if got != 2 {
		t.Fatalf("an unversioned request after the load got version %d; want 2", got)
	}
	n.routeMu.Unlock()
	locked = false
	testenv.CheckFor(t, 5*time.Second, func() error {
		if d := repo.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("default %d; want 2", d)
		}
		return nil
	})
}
