package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
)

// TestRouteFlipsSettleOnNewest: while
// another model's load is held, a burst of promotions, rollbacks,
// experiment and shadow changes of model m lands; routeLoop and the
// reconciler's route calls must leave the registry on the newest state,
// still during the load, and again after it.
func TestRouteFlipsSettleOnNewest(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	repo := n.cfg.Registry
	for _, content := range []string{"flips one", "flips two", "flips three"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		lm := repo.Model("m")
		if lm == nil || lm.Version(1) == nil || lm.Version(2) == nil || lm.Version(3) == nil {
			return fmt.Errorf("m's versions not all loaded yet")
		}
		return nil
	})
	const slow = "flips: a model that loads slowly"
	gate := make(chan struct{})
	loadGates.Store(slow, gate)
	defer loadGates.Delete(slow)
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()
	if _, err := c.register(n, "big", slow); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionLoading {
			return fmt.Errorf("big: %+v; want loading", s)
		}
		return nil
	})
	exp := func(name string, w int) *route.Experiment {
		return &route.Experiment{Name: name, Arms: []route.Arm{
			{Name: "control", Version: 1, Weight: 1},
			{Name: "treatment", Version: 3, Weight: w},
		}}
	}
	var lastProd int64
	var lastExp string
	var lastShadow int64
	for i := range 60 {
		var cmd fsm.Command
		switch i % 4 {
		case 0:
			lastProd = int64(1 + i%3)
			cmd = fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: lastProd}
		case 1:
			lastExp = fmt.Sprint("e", i)
			cmd = fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: exp(lastExp, i)}
		case 2:
			lastShadow = int64(2 + i%2)
			cmd = fsm.Command{Op: fsm.OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: lastShadow, Percent: 5}}
		case 3:
			if i%8 == 3 {
				lastExp = ""
				cmd = fsm.Command{Op: fsm.OpEndExperiment, Model: "m"}
			} else {
				lastShadow = 0
				cmd = fsm.Command{Op: fsm.OpEndShadow, Model: "m"}
			}
		}
		if res, err := n.ApplyLocal(cmd); err != nil || res.Err != nil {
			t.Fatalf("%d %s: %v %v", i, cmd.Op, err, res)
		}
	}
	check := func() error {
		lm := repo.Model("m")
		if d := repo.DefaultVersion("m"); d != lastProd {
			return fmt.Errorf("default %d; want %d", d, lastProd)
		}
		if v := lm.Default(); v == nil || v.Number != lastProd {
			return fmt.Errorf("model default %v; want %d", v, lastProd)
		}
		x := lm.Experiment()
		if lastExp == "" && x != nil || lastExp != "" && (x == nil || x.Name != lastExp) {
			return fmt.Errorf("experiment %v; want %q", x, lastExp)
		}
		sh := lm.Shadow()
		if lastShadow == 0 && sh != nil || lastShadow != 0 && (sh == nil || sh.Version != lastShadow) {
			return fmt.Errorf("shadow %v; want %d", sh, lastShadow)
		}
		return nil
	}
	testenv.CheckFor(t, 3*time.Second, check)
	if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionLoading {
		t.Fatalf("big: %+v; the test needs it loading throughout", s)
	}
	released = true
	close(gate)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["big"]["1"]; s.State != VersionReady {
			return fmt.Errorf("big: %+v", s)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if err := check(); err != nil {
		t.Fatalf("after the load: %v", err)
	}
}
