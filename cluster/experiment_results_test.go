package cluster

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// experimentResults sums the members that run the experiment with its
// replicated arms, and names the others: a member that did not answer,
// one that runs no experiment or another, and one whose arms lag a
// change.
func TestExperimentResultsSumTheMembers(t *testing.T) {
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "control", Version: 1, Weight: 9}, {Name: "treatment", Version: 2, Weight: 1}}}
	counts := func(name string, arms ...ArmCounts) *LocalStatus {
		return &LocalStatus{Experiments: map[string]*ExperimentCounts{"m": {Experiment: name, Arms: arms}}}
	}
	ctl := func(req uint64, labels uint64, sum, sq float64) ArmCounts {
		return ArmCounts{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Requests: req, Labels: labels, LabelSum: sum, LabelSquares: sq}}
	}
	trt := func(req uint64, rewards uint64, sum, sq float64) ArmCounts {
		return ArmCounts{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Requests: req, Fallbacks: 1, Rewards: rewards, RewardSum: sum, RewardSquares: sq}}
	}
	statuses := map[string]*LocalStatus{
		"a":    counts("exp", ctl(90, 40, 10, 10), trt(10, 5, -2.5, 4.25)),
		"b":    counts("exp", ctl(900, 400, 50, 50), trt(100, 50, 7, 20)),
		"down": nil,
		"none": {},
		"old":  counts("earlier", ctl(5, 5, 5, 5), trt(5, 5, 5, 5)),
		"lags": counts("exp", ctl(5, 5, 5, 5), ArmCounts{Arm: "treatment", Version: 3}),
	}
	got := experimentResults("m", e, statuses)
	want := &ExperimentResults{
		Experiment: "exp",
		Arms: []ArmCounts{
			{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Requests: 990, Labels: 440, LabelSum: 60, LabelSquares: 60}},
			{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Requests: 110, Fallbacks: 2, Rewards: 55, RewardSum: 4.5, RewardSquares: 24.25}},
		},
		Nodes:   []string{"a", "b"},
		Missing: []string{"down", "lags", "none", "old"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// A model's view (Models, GET /v1/models/{m}) carries what the node
// counted for its experiment's arms: requests, and the labels and
// rewards of their feedback with sums and sums of squares.
func TestModelViewCarriesExperimentCounts(t *testing.T) {
	_, n := soloWithTwoVersions(t)
	repo := n.cfg.Registry
	x := runExperiment(t, n, nil)
	for _, l := range []float64{1, 0, 1} {
		x.Outcome("treatment", &l, nil)
	}
	r := -2.0
	x.Outcome("control", nil, &r)
	views, err := n.Models(context.Background(), "m")
	if err != nil {
		t.Fatal(err)
	}
	got := views[0].ExperimentResults
	if x.Phase == 0 {
		t.Fatalf("the experiment has no phase: %+v", x.Experiment)
	}
	want := &ExperimentResults{Experiment: "exp", Phase: x.Phase, Started: x.Started, Nodes: []string{n.ID()}, Arms: []ArmCounts{
		{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Rewards: 1, RewardSum: -2, RewardSquares: 4}},
		{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Labels: 3, LabelSum: 2, LabelSquares: 2}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the model's view gives %+v\nwant %+v", got, want)
	}

	// A ramp moves units between arms: a new phase, counted afresh.
	ramp := x.Experiment.Clone()
	ramp.Arms[1].Weight = 3
	x = runExperiment(t, n, ramp)
	l := 1.0
	x.Outcome("treatment", &l, nil)
	// Setting the split it runs again keeps the phase and its counts.
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: ramp, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if views, err = n.Models(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	got = views[0].ExperimentResults
	want = &ExperimentResults{Experiment: "exp", Phase: x.Phase, Started: x.Started, Nodes: []string{n.ID()}, Arms: []ArmCounts{
		{Arm: "control", Version: 1},
		{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Labels: 1, LabelSum: 1, LabelSquares: 1}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the ramp, the model's view gives %+v\nwant %+v", got, want)
	}
	if st, _ := n.fsm.State(); st.Models["m"].Experiment.Phase != x.Phase {
		t.Fatalf("setting the split the model runs again began phase %d", st.Models["m"].Experiment.Phase)
	}
	if repo.ExperimentOf("m") != x {
		t.Fatalf("setting the split the model runs again replaced its experiment")
	}
}
