package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestRetiredStandInStaysUntilProductionIsReady: production moves to a
// version that cannot load on this node, and the version that serves in
// its place is retired. It stays loaded, taking the unversioned
// requests (only those), instead of leaving the model not served here; once a
// production that loads comes, it goes, file and all.
func TestRetiredStandInStaysUntilProductionIsReady(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "stand-in one"); err != nil {
		t.Fatal(err)
	}
	unversioned := func(want int64) error {
		v, err := repo.Acquire("m", 0)
		if err != nil {
			return fmt.Errorf("unversioned request: %v; want version %d", err, want)
		}
		defer v.Release()
		if v.Number != want {
			return fmt.Errorf("unversioned requests get version %d; want %d", v.Number, want)
		}
		return nil
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversioned(1) })
	if _, err := c.register(n, "m", "broken stand-in two"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		s := n.LocalStatus().Models["m"]
		if s["2"].State != VersionFailed {
			return fmt.Errorf("version 2: %+v; want failed", s["2"])
		}
		if s["1"].State != VersionReady || !strings.Contains(s["1"].Reason, "retired") {
			return fmt.Errorf("version 1: %+v; want ready, saying it is retired", s["1"])
		}
		return nil
	})
	if v, err := repo.Acquire("m", 1); err == nil {
		v.Release()
		t.Fatal("a request naming the retired version 1 got it")
	}
	// Several passes (a write wakes one), and it stays.
	for range 3 {
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "latest", Version: 2}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := unversioned(1); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(repo.Dir(), "m", "1", "model.onnx")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stand-in's file: %v", err)
	}

	if _, err := c.register(n, "m", "stand-in three"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 3}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if err := unversioned(3); err != nil {
			return err
		}
		if repo.Model("m").Version(1) != nil {
			return fmt.Errorf("the retired version 1 is still loaded")
		}
		if _, ok := n.LocalStatus().Models["m"]["1"]; ok {
			return fmt.Errorf("version 1 still has a status")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			return fmt.Errorf("the retired version's file: %v; want it removed", err)
		}
		return nil
	})
}
