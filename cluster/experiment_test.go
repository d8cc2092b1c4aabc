package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
)

// TestExperimentRoutesUnitsAlikeOnEveryNode starts an experiment on one
// node of three: every node sends each unit to the same arm, and after
// the end every node sends everything to production again.
func TestExperimentRoutesUnitsAlikeOnEveryNode(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	for _, content := range []string{"model one", "model two"} {
		if _, err := c.register(leader, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 3},
		{Name: "treatment", Version: 2, Weight: 1},
	}}
	if res, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e}); err != nil || res.Err != nil {
		t.Fatalf("set the experiment: %v, %v", err, res)
	}
	c.waitConverged(c.nodes...)
	pick := func(n *Node, unit string) (int64, string, error) {
		v, arm, err := n.cfg.Registry.AcquireUnversioned("m", []byte(unit))
		if err != nil {
			return 0, "", err
		}
		v.Release()
		return v.Number, arm, nil
	}
	for _, n := range c.nodes {
		testenv.CheckFor(t, 5*time.Second, func() error {
			for i := range 50 {
				unit := fmt.Sprint("user-", i)
				want := e.Arms[e.Assign([]byte(unit))]
				got, arm, err := pick(n, unit)
				if err != nil || got != want.Version || arm != want.Name {
					return fmt.Errorf("%s, unit %s: version %d, arm %q, %v; want %d, %q", n.ID(), unit, got, arm, err, want.Version, want.Name)
				}
			}
			return nil
		})
	}
	if res, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpEndExperiment, Model: "m"}); err != nil || res.Err != nil {
		t.Fatalf("end the experiment: %v, %v", err, res)
	}
	for _, n := range c.nodes {
		testenv.CheckFor(t, 5*time.Second, func() error {
			for i := range 20 {
				got, arm, err := pick(n, fmt.Sprint("user-", i))
				if err != nil || got != 1 || arm != "" {
					return fmt.Errorf("%s after the end: version %d, arm %q, %v; want production 1 without an arm", n.ID(), got, arm, err)
				}
			}
			return nil
		})
	}
}
