package cluster

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestServedFileSurvivesStopMidPass: a node stops while its reconciler
// loads a newly promoted version of model "a"; Stop waits for that load,
// which succeeds, so the node served "a" version 2 as production when it
// stopped. The pass records it though it stops before model "b", and the
// restart serves version 2 (found by a reviewing helper: the pass returned
// before it saved served.json, while production.json, saved first, named
// version 2, which the restart then did not load).
func TestServedFileSurvivesStopMidPass(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, mc := range [][2]string{{"a", "stop a one"}, {"b", "stop b one"}} {
		if _, err := c.register(n, mc[0], mc[1]); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		var served map[string]servedModel
		if err := loadJSON(filepath.Join(cfg.DataDir, servedFile), &served); err != nil {
			return err
		}
		if len(served["a"].Versions) != 1 || len(served["b"].Versions) != 1 {
			return fmt.Errorf("served.json %+v", served)
		}
		return nil
	})

	const slow = "stop a two, loads slowly"
	gate := make(chan struct{})
	loadGates.Store(slow, gate)
	defer loadGates.Delete(slow)
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()                                     // a failure before the stop must not leave Stop waiting on the load
	if _, err := c.register(n, "a", slow); err != nil { // version 2
		t.Fatal(err)
	}
	if res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "a", Alias: fsm.AliasProduction, Version: 2}); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["a"]["2"]; s.State != VersionLoading {
			return fmt.Errorf("a/2: %+v; want loading", s)
		}
		return nil
	})
	// SIGTERM: the node stops while the load runs; the load finishes.
	go n.Stop()
	<-n.stop
	release()

	_, _ = restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		var served map[string]servedModel
		_ = loadJSON(filepath.Join(cfg.DataDir, servedFile), &served)
		v, err := repo.Acquire("a", 0)
		if err != nil {
			t.Fatalf("after the restart, unversioned requests for a: %v; want production, version 2, which this node loaded and served before it stopped (served.json: %+v, loaded: %v)", err, served, loadedVersions(repo, "a"))
		}
		v.Release()
		if v.Number != 2 {
			t.Fatalf("unversioned requests for a go to version %d; want 2", v.Number)
		}
	})
}
