package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
)

// TestRoutingChangesDoNotWaitForLoads holds one model's load running and
// checks that another model's new experiment, shadow and promotion take
// effect meanwhile: the reconciler may spend minutes on a load, and the
// unversioned requests of that time would go to the old version and be
// counted in no arm.
func TestRoutingChangesDoNotWaitForLoads(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	for _, content := range []string{"routes one", "routes two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if lm := repo.Model("m"); lm == nil || lm.Version(1) == nil || lm.Version(2) == nil {
			return fmt.Errorf("m's versions not both loaded yet")
		}
		return nil
	})

	const slow = "routes: a model that loads slowly"
	gate := make(chan struct{})
	loadGates.Store(slow, gate)
	defer loadGates.Delete(slow)
	defer close(gate)
	if _, err := c.register(n, "big", slow); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionLoading {
			return fmt.Errorf("big: %+v; want loading", s)
		}
		return nil
	})

	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 1},
		{Name: "treatment", Version: 2, Weight: 1},
	}}
	for _, cmd := range []fsm.Command{
		{Op: fsm.OpSetExperiment, Model: "m", Experiment: e},
		{Op: fsm.OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: 1, Percent: 5}},
		{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2},
	} {
		if res, err := n.ApplyLocal(cmd); err != nil || res.Err != nil {
			t.Fatalf("%s: %v, %v", cmd.Op, err, res)
		}
	}
	testenv.CheckFor(t, 2*time.Second, func() error {
		lm := repo.Model("m")
		if x := lm.Experiment(); x == nil || x.Name != "exp" {
			return fmt.Errorf("experiment %v; want exp while big loads", x)
		}
		if sh := lm.Shadow(); sh == nil || sh.Version != 1 {
			return fmt.Errorf("shadow %v; want version 1 while big loads", sh)
		}
		if d := repo.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("default version %d; want 2, promoted while big loads", d)
		}
		return nil
	})
	if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionLoading {
		t.Fatalf("big: %+v; the test needs it loading throughout", s)
	}
}
