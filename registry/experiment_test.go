package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway/route"
)

// seriesLines returns set's lines that start with prefix, sorted as
// WritePrometheus writes them.
func seriesLines(set *metrics.Set, prefixes ...string) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// armSeries are the series of arms' requests, for seriesLines.
var armSeries = []string{"infergate_experiment_fallback_total", "infergate_experiment_requests_total"}

func TestExperimentOutcomes(t *testing.T) {
	r, set, _ := newRepoWithMetrics(t)
	r.SetExperiment("m", &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "a", Version: 1, Weight: 1},
		{Name: "b", Version: 2, Weight: 1},
	}})
	x := r.ExperimentOf("m")
	one, half, minus := 1.0, 2.5, -1.0
	if !x.Outcome("a", &one, &half) || !x.Outcome("a", nil, &half) || !x.Outcome("b", &one, &minus) {
		t.Fatal("Outcome of a known arm: false")
	}
	if x.Outcome("c", &one, nil) {
		t.Fatal("Outcome of an unknown arm: true")
	}
	if got, want := x.Stats(0), (ArmStats{Labels: 1, LabelSum: 1, LabelSquares: 1, Rewards: 2, RewardSum: 5, RewardSquares: 12.5}); got != want {
		t.Fatalf("arm a: %+v; want %+v", got, want)
	}
	want := `infergate_experiment_label_square_sum{model="m",experiment="exp",arm="a",version="1"} 1
infergate_experiment_label_square_sum{model="m",experiment="exp",arm="b",version="2"} 1
infergate_experiment_label_sum{model="m",experiment="exp",arm="a",version="1"} 1
infergate_experiment_label_sum{model="m",experiment="exp",arm="b",version="2"} 1
infergate_experiment_labels_total{model="m",experiment="exp",arm="a",version="1"} 1
infergate_experiment_labels_total{model="m",experiment="exp",arm="b",version="2"} 1
infergate_experiment_reward_square_sum{model="m",experiment="exp",arm="a",version="1"} 12.5
infergate_experiment_reward_square_sum{model="m",experiment="exp",arm="b",version="2"} 1
infergate_experiment_reward_sum{model="m",experiment="exp",arm="a",version="1"} 5
infergate_experiment_reward_sum{model="m",experiment="exp",arm="b",version="2"} -1
infergate_experiment_rewards_total{model="m",experiment="exp",arm="a",version="1"} 2
infergate_experiment_rewards_total{model="m",experiment="exp",arm="b",version="2"} 1`
	if got := seriesLines(set, "infergate_experiment_label", "infergate_experiment_reward"); got != want {
		t.Fatalf("series:\n%s\nwant\n%s", got, want)
	}
	r.SetExperiment("m", nil)
	if got := seriesLines(set, "infergate_experiment_"); got != "" {
		t.Fatalf("after the end: %s", got)
	}
}

// TestExperimentPhaseCounts: an experiment's counts are its phase's,
// while its series count on; and the counts a node carries over a restart
// are taken by the experiment of their phase only.
func TestExperimentPhaseCounts(t *testing.T) {
	r, set, _ := newRepoWithMetrics(t)
	exp := func(phase uint64, wb int) *route.Experiment {
		return &route.Experiment{Name: "exp", Phase: phase, Arms: []route.Arm{
			{Name: "a", Version: 1, Weight: 1},
			{Name: "b", Version: 2, Weight: wb},
		}}
	}
	one := 1.0
	carried := func(phase uint64, labels uint64) *ExperimentCounts {
		return &ExperimentCounts{Experiment: "exp", Phase: phase, Arms: []ArmCounts{
			{Arm: "a", Version: 1, ArmStats: ArmStats{Requests: 10, Labels: labels, LabelSum: float64(labels), LabelSquares: float64(labels)}},
			{Arm: "b", Version: 2, ArmStats: ArmStats{Requests: 20}},
		}}
	}
	stats := func(i int, want ArmStats) {
		t.Helper()
		if got := r.ExperimentOf("m").Stats(i); got != want {
			t.Fatalf("phase %d, arm %d: %+v; want %+v", r.ExperimentOf("m").Phase, i, got, want)
		}
	}

	// Counts of phase 7 wait for it: phase 5 does not take them.
	r.CarryExperimentCounts("m", carried(7, 4))
	r.SetExperiment("m", exp(5, 1))
	stats(0, ArmStats{})
	r.ExperimentOf("m").Outcome("a", &one, nil)
	stats(0, ArmStats{Labels: 1, LabelSum: 1, LabelSquares: 1})

	// Phase 7 takes them, and counts on from its own start.
	r.SetExperiment("m", exp(7, 3))
	stats(0, ArmStats{Requests: 10, Labels: 4, LabelSum: 4, LabelSquares: 4})
	stats(1, ArmStats{Requests: 20})
	r.ExperimentOf("m").Outcome("a", &one, nil)
	stats(0, ArmStats{Requests: 10, Labels: 5, LabelSum: 5, LabelSquares: 5})
	// /metrics counts on across phases, from the process's start.
	if got, want := seriesLines(set, "infergate_experiment_labels_total"), `infergate_experiment_labels_total{model="m",experiment="exp",arm="a",version="1"} 2
infergate_experiment_labels_total{model="m",experiment="exp",arm="b",version="2"} 0`; got != want {
		t.Fatalf("series:\n%s\nwant\n%s", got, want)
	}

	// Taken once: the next phase starts from 0.
	r.SetExperiment("m", exp(9, 1))
	stats(0, ArmStats{})

	// Counts of an earlier phase are dropped when a later one is set.
	r.CarryExperimentCounts("m", carried(8, 3))
	r.SetExperiment("m", exp(10, 2))
	r.SetExperiment("m", exp(8, 1))
	stats(0, ArmStats{})

	// Counts of other arms are not taken.
	c := carried(11, 2)
	c.Arms[1].Version = 3
	r.CarryExperimentCounts("m", c)
	r.SetExperiment("m", exp(11, 1))
	stats(0, ArmStats{})
}

func TestAcquireUnversionedFollowsTheExperiment(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "m3")
	// Set before the model loads: the load picks it up.
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "a", Version: 1, Weight: 1},
		{Name: "b", Version: 2, Weight: 1},
	}}
	r.SetExperiment("m", e)
	if err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2, 3}}}}); err != nil {
		t.Fatal(err)
	}
	acquire := func(unit string) (int64, string) {
		t.Helper()
		v, arm, err := r.AcquireUnversioned("m", []byte(unit))
		if err != nil {
			t.Fatalf("AcquireUnversioned(m, %q): %v", unit, err)
		}
		v.Release()
		return v.Number, arm
	}
	counts := map[string]int{}
	for i := range 100 {
		unit := fmt.Sprint("u", i)
		want := e.Arms[e.Assign([]byte(unit))]
		if n, arm := acquire(unit); n != want.Version || arm != want.Name {
			t.Fatalf("unit %s: version %d arm %q; want %d %q", unit, n, arm, want.Version, want.Name)
		}
		counts[want.Name]++
	}
	want := fmt.Sprintf("infergate_experiment_fallback_total{model=\"m\",experiment=\"exp\",arm=\"a\",version=\"1\"} 0\n"+
		"infergate_experiment_fallback_total{model=\"m\",experiment=\"exp\",arm=\"b\",version=\"2\"} 0\n"+
		"infergate_experiment_requests_total{model=\"m\",experiment=\"exp\",arm=\"a\",version=\"1\"} %d\n"+
		"infergate_experiment_requests_total{model=\"m\",experiment=\"exp\",arm=\"b\",version=\"2\"} %d", counts["a"], counts["b"])
	if got := seriesLines(set, armSeries...); got != want {
		t.Fatalf("series:\n%s\nwant\n%s", got, want)
	}

	// Replace it: arm b now serves version 4, which is not loaded here.
	// Its requests fall back to the default (the latest, 3), counted, and
	// arm a's series counts on.
	r.SetExperiment("m", &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "a", Version: 1, Weight: 1},
		{Name: "b", Version: 4, Weight: 1},
	}})
	fell := 0
	for i := range 100 {
		n, arm := acquire(fmt.Sprint("u", i))
		switch {
		case n == 1 && arm == "a":
		case n == 3 && arm == "":
			fell++
		default:
			t.Fatalf("unit u%d: version %d arm %q; want 1 \"a\", or the fallback 3 \"\"", i, n, arm)
		}
	}
	want = fmt.Sprintf("infergate_experiment_fallback_total{model=\"m\",experiment=\"exp\",arm=\"a\",version=\"1\"} 0\n"+
		"infergate_experiment_fallback_total{model=\"m\",experiment=\"exp\",arm=\"b\",version=\"4\"} %d\n"+
		"infergate_experiment_requests_total{model=\"m\",experiment=\"exp\",arm=\"a\",version=\"1\"} %d\n"+
		"infergate_experiment_requests_total{model=\"m\",experiment=\"exp\",arm=\"b\",version=\"4\"} 0", fell, 2*counts["a"])
	if got := seriesLines(set, armSeries...); got != want || fell != counts["b"] {
		t.Fatalf("after the change, %d fell back; series:\n%s\nwant\n%s", fell, got, want)
	}

	// The experiment outlives an unload and a load.
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 3}}}}); err != nil {
		t.Fatal(err)
	}
	if m := r.Model("m"); m == nil || m.Experiment() == nil || m.Experiment().Arms[1].Version != 4 {
		t.Fatalf("after a reload the model runs %+v; want the experiment", m.Experiment())
	}

	// Ended: the default again, and no series left.
	r.SetExperiment("m", nil)
	for i := range 20 {
		if n, arm := acquire(fmt.Sprint("u", i)); n != 3 || arm != "" {
			t.Fatalf("after the end, unit u%d: version %d arm %q; want 3 without an arm", i, n, arm)
		}
	}
	if got := seriesLines(set, "infergate_experiment_"); got != "" {
		t.Fatalf("series left after the end:\n%s", got)
	}
	if _, _, err := r.AcquireUnversioned("nope", nil); err != ErrModelNotFound {
		t.Fatalf("unknown model: %v; want ErrModelNotFound", err)
	}
}

// TestAcquireIdle: a background holder gets a version only while no client
// holds it, and then counts under its in-flight limit like a client.
func TestAcquireIdle(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1, MaxBatchSize: 1})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	if _, err := r.AcquireIdle("m", 1); !errors.Is(err, ErrVersionBusy) {
		t.Fatalf("AcquireIdle while a client holds the version: %v; want ErrVersionBusy", err)
	}
	v.Release()
	bg, err := r.AcquireIdle("m", 1)
	if err != nil {
		t.Fatalf("AcquireIdle of an idle version: %v", err)
	}
	// Background holders stack.
	bg2, err := r.AcquireIdle("m", 1)
	if err != nil {
		t.Fatalf("AcquireIdle beside another background holder: %v", err)
	}
	bg2.ReleaseIdle()
	// The background holder takes one of the places under the in-flight
	// limit (instances × max batch + max_queue), as a client does.
	limit := int(bg.limit) - 1
	var held []*Version
	for i := range limit {
		c, err := r.Acquire("m", 1)
		if err != nil {
			t.Fatalf("client %d of %d beside a background holder: %v", i+1, limit, err)
		}
		held = append(held, c)
	}
	var oe *OverloadError
	if _, err := r.Acquire("m", 1); !errors.As(err, &oe) {
		t.Fatalf("client %d: %v; want the overload", limit+1, err)
	}
	for _, c := range held {
		c.Release()
	}
	bg.ReleaseIdle()
	if n := bg.InFlight(); n != 0 {
		t.Fatalf("in flight after every release: %d", n)
	}
	if _, err := r.AcquireIdle("m", 9); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("AcquireIdle of a missing version: %v", err)
	}
}
