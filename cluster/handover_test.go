package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
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
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(repo, 1) })

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

// holdPull registers content as production of model on n, promoted, with
// its blob only on a peer that answers the pull once release is called:
// until then the version is being pulled here.
func holdPull(t *testing.T, n *Node, model, content string) (release func()) {
	t.Helper()
	peer := newGatedPeer(t, n, content)
	registerPulled(t, n, model, content, true)
	return func() { peer.open(content) }
}

// unversionedGets fails unless an unversioned request for model m gets
// version want.
func unversionedGets(repo *registry.Repository, want int64) error {
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

// TestRetiredStandInStaysWhileProductionIsPulled: production moves to a
// version this node is still pulling, and the version that serves in its
// place is retired. It stays loaded, answering the unversioned requests
// (only those), instead of leaving the model not served here; a
// repository API unload meanwhile loads it again, as it does the live
// versions; once production is ready, it goes, file and all.
func TestRetiredStandInStaysWhileProductionIsPulled(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "stand-in one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(repo, 1) })
	release := holdPull(t, n, "m", "stand-in two")
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		s := n.LocalStatus().Models["m"]
		if s["2"].State != VersionFetching {
			return fmt.Errorf("version 2: %+v; want fetching", s["2"])
		}
		if s["1"].State != VersionReady || !strings.Contains(s["1"].Reason, "retired") {
			return fmt.Errorf("version 1: %+v; want ready, saying it is retired", s["1"])
		}
		return nil
	})
	if err := unversionedGets(repo, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := repo.Acquire("m", 1); err == nil {
		v.Release()
		t.Fatal("a request naming the retired version 1 got it")
	}
	path := filepath.Join(repo.Dir(), "m", "1", "model.onnx")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stand-in's file: %v", err)
	}

	// Unloaded through the repository API, it is loaded again.
	if err := repo.Unload("m"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "poke", Version: 2}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error { return unversionedGets(repo, 1) })

	release()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if err := unversionedGets(repo, 2); err != nil {
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
	// What a restart loads first is what serves now: version 2 alone
	// (found by a README walk: the record held a version 0).
	testenv.CheckFor(t, 5*time.Second, func() error {
		restored, err := RestoredLoads(n.cfg.DataDir)
		if err != nil {
			return err
		}
		if got := restored["m"].VersionPolicy.Specific; got == nil || fmt.Sprint(got.Versions) != "[2]" {
			return fmt.Errorf("served.json restores %+v; want versions [2]", got)
		}
		return nil
	})
}

// TestRetiredStandInGoesWhenProductionFails: production fails to load on
// this node, so nothing is on its way for the retired version to stand in
// for: retired means gone, and the model is not served here (as a node
// that cannot pull production, TestRetiredVersionStopsServing).
func TestRetiredStandInGoesWhenProductionFails(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	if _, err := c.register(n, "m", "failing one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(repo, 1) })
	if _, err := c.register(n, "m", "broken failing two"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repo.Dir(), "m", "1", "model.onnx")
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["2"]; s.State != VersionFailed || s.Retrying {
			return fmt.Errorf("version 2: %+v; want failed, and not tried again: its load failed", s)
		}
		if lm := repo.Model("m"); lm != nil && lm.Version(1) != nil {
			return fmt.Errorf("the retired version 1 is still loaded")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			return fmt.Errorf("the retired version's file: %v; want it removed", err)
		}
		return nil
	})
	if v, err := repo.Acquire("m", 0); err == nil {
		v.Release()
		t.Fatalf("unversioned requests get version %d; want none", v.Number)
	}
}

// TestRetiredVersionFreesDiskWhenProductionCannotBePulled: a node low on
// disk cannot pull the new production, and the version that served in
// its place is retired. Retiring is how space comes back: the version
// goes, and its file with it, so that the blob sweep frees its bytes (a
// stand-in kept for a pull that waits for that very space would wait for
// good; found by a reviewing helper).
func TestRetiredVersionFreesDiskWhenProductionCannotBePulled(t *testing.T) {
	_, tr := raft.NewInmemTransport("127.0.0.1:7000")
	cfg := testConfig(t, "n0", tr, "")
	cfg.blobSweep = 50 * time.Millisecond
	cfg.Disk = diskfree.New(cfg.DataDir, 1<<62) // every pull is refused
	n := startLeading(t, cfg)
	c := &testCluster{t: t, nodes: []*Node{n}, trans: []*raft.InmemTransport{tr}}
	if _, err := c.register(n, "m", "disk one"); err != nil { // its blob is here: no pull
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(cfg.Registry, 1) })
	holdPull(t, n, "m", "disk two, only on the peer")
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["2"]; s.State != VersionFailed || !strings.Contains(s.Reason, "--min-free-disk") {
			return fmt.Errorf("version 2: %+v; want failed for disk space", s)
		}
		return nil
	})
	one := sha256.Sum256([]byte("disk one"))
	blob := hex.EncodeToString(one[:])
	path := filepath.Join(cfg.Registry.Dir(), "m", "1", "model.onnx")
	testenv.CheckFor(t, 10*time.Second, func() error {
		// Sweeps run on the reconciler's passes; a write wakes one.
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "poke", Version: 2}); err != nil {
			return err
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			return fmt.Errorf("the retired version's file: %v; want it removed", err)
		}
		if cfg.Blobs.Has(blob) {
			return fmt.Errorf("the retired version's blob is not swept yet")
		}
		return nil
	})
	if lm := cfg.Registry.Model("m"); lm != nil && lm.Version(1) != nil {
		t.Fatal("the retired version 1 is still loaded")
	}
}

// TestRetiredStandInAfterRestart: a node restarts (as serve does) while
// it keeps a retired stand-in for a production it is pulling. From the
// first request, before raft has caught up, the stand-in answers the
// unversioned requests and not those that name it, as before the
// restart (found by a reviewing helper: production.json alone restored
// it as a plain default).
func TestRetiredStandInAfterRestart(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	if _, err := c.register(n, "m", "restart one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { return unversionedGets(n.cfg.Registry, 1) })
	holdPull(t, n, "m", "restart two")
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; !strings.Contains(s.Reason, "retired") {
			return fmt.Errorf("version 1: %+v; want the stand-in", s)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, standInsFile)); err != nil {
			return err
		}
		return nil
	})
	var before error
	restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		if v, err := repo.Acquire("m", 1); err == nil {
			v.Release()
			before = fmt.Errorf("after the restart, before raft caught up, a request naming the retired version 1 got it")
		} else if !errors.Is(err, registry.ErrVersionNotFound) {
			before = fmt.Errorf("a request naming version 1: %v; want ErrVersionNotFound", err)
		} else {
			before = unversionedGets(repo, 1)
		}
	})
	if before != nil {
		t.Fatal(before)
	}
}
