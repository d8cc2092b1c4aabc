package registry

import (
	"errors"
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway/route"
)

// Experiment is a model's running A/B experiment as the data plane uses
// it: the split, and the counters of its arms. It is immutable; a change
// replaces it (Repository.SetExperiment).
type Experiment struct {
	route.Experiment
	// Model is the model it splits.
	Model string
	// requests counts, per arm, the requests routed to the arm's version.
	requests []*metrics.Counter
	// fallbacks counts, per arm, the requests of the arm that went to the
	// model's default version because the arm's was not ready here.
	fallbacks []*metrics.Counter
	// outcomes holds, per arm, the feedback its predictions got.
	outcomes []armOutcomes
	// series names every series above, to unregister them.
	series []string
	// base holds, per arm, what the series above held when x was made:
	// they count on across changes that keep an arm, and x's counts are
	// its phase's. carried holds, per arm, what the node counted in x's
	// phase before it restarted (CarryExperimentCounts). Neither changes
	// once x is made.
	base, carried []ArmStats
}

// armOutcomes counts one arm's feedback: how many labels and rewards, and
// their sums (gauges: rewards may be negative), so that a mean is a ratio
// of two series.
type armOutcomes struct {
	labels, rewards             *metrics.Counter
	labelSum, rewardSum         *metrics.Gauge
	labelSquares, rewardSquares *metrics.Gauge // sums of squares: with the sums, the variances
}

// newExperiment makes model's experiment e, carrying on the counts of c
// (nil for none) if they are e's phase's.
func newExperiment(set *metrics.Set, model string, e *route.Experiment, c *ExperimentCounts) *Experiment {
	x := &Experiment{Experiment: *e.Clone(), Model: model}
	for _, a := range e.Arms {
		labels := fmt.Sprintf(`{model=%q,experiment=%q,arm=%q,version="%d"}`, model, e.Name, a.Name, a.Version)
		req := "infergate_experiment_requests_total" + labels
		fb := "infergate_experiment_fallback_total" + labels
		x.requests = append(x.requests, set.GetOrCreateCounter(req))
		x.fallbacks = append(x.fallbacks, set.GetOrCreateCounter(fb))
		names := []string{
			"infergate_experiment_labels_total" + labels, "infergate_experiment_label_sum" + labels,
			"infergate_experiment_rewards_total" + labels, "infergate_experiment_reward_sum" + labels,
			"infergate_experiment_label_square_sum" + labels, "infergate_experiment_reward_square_sum" + labels,
		}
		x.outcomes = append(x.outcomes, armOutcomes{
			labels: set.GetOrCreateCounter(names[0]), labelSum: set.GetOrCreateGauge(names[1], nil),
			rewards: set.GetOrCreateCounter(names[2]), rewardSum: set.GetOrCreateGauge(names[3], nil),
			labelSquares: set.GetOrCreateGauge(names[4], nil), rewardSquares: set.GetOrCreateGauge(names[5], nil),
		})
		x.series = append(append(x.series, req, fb), names...)
	}
	x.base = make([]ArmStats, len(e.Arms))
	for i := range x.base {
		x.base[i] = x.counted(i)
	}
	x.carried = make([]ArmStats, len(e.Arms))
	if c.Of(e) {
		for i := range x.carried {
			x.carried[i] = c.Arms[i].ArmStats
		}
	}
	return x
}

// ArmIndex returns the index of the arm called name, or -1.
func (x *Experiment) ArmIndex(name string) int {
	for i, a := range x.Arms {
		if a.Name == name {
			return i
		}
	}
	return -1
}

// Outcome counts feedback for a prediction that arm answered: a label, a
// reward, or both (nil for neither). It reports whether the experiment has
// that arm.
func (x *Experiment) Outcome(arm string, label, reward *float64) bool {
	i := x.ArmIndex(arm)
	if i < 0 {
		return false
	}
	o := &x.outcomes[i]
	if label != nil {
		o.labels.Inc()
		o.labelSum.Add(*label)
		o.labelSquares.Add(*label * *label)
	}
	if reward != nil {
		o.rewards.Inc()
		o.rewardSum.Add(*reward)
		o.rewardSquares.Add(*reward * *reward)
	}
	return true
}

// ArmStats is what an experiment's arm has counted on this node in the
// experiment's phase (route.Experiment.Phase), or, summed, on several
// nodes.
type ArmStats struct {
	Requests  uint64  `json:"requests"`
	Fallbacks uint64  `json:"fallbacks"`
	Labels    uint64  `json:"labels"`
	LabelSum  float64 `json:"label_sum"`
	// LabelSquares and RewardSquares are the sums of the values' squares.
	LabelSquares  float64 `json:"label_square_sum"`
	Rewards       uint64  `json:"rewards"`
	RewardSum     float64 `json:"reward_sum"`
	RewardSquares float64 `json:"reward_square_sum"`
}

// Add adds o's counts to s's: several nodes' counts of one arm summed.
func (s *ArmStats) Add(o ArmStats) {
	s.Requests += o.Requests
	s.Fallbacks += o.Fallbacks
	s.Labels += o.Labels
	s.LabelSum += o.LabelSum
	s.LabelSquares += o.LabelSquares
	s.Rewards += o.Rewards
	s.RewardSum += o.RewardSum
	s.RewardSquares += o.RewardSquares
}

// sub takes o's counts from s's.
func (s *ArmStats) sub(o ArmStats) {
	s.Requests -= o.Requests
	s.Fallbacks -= o.Fallbacks
	s.Labels -= o.Labels
	s.LabelSum -= o.LabelSum
	s.LabelSquares -= o.LabelSquares
	s.Rewards -= o.Rewards
	s.RewardSum -= o.RewardSum
	s.RewardSquares -= o.RewardSquares
}

// counted returns what arm i's series hold.
func (x *Experiment) counted(i int) ArmStats {
	o := &x.outcomes[i]
	return ArmStats{
		Requests: x.requests[i].Get(), Fallbacks: x.fallbacks[i].Get(),
		Labels: o.labels.Get(), LabelSum: o.labelSum.Get(),
		Rewards: o.rewards.Get(), RewardSum: o.rewardSum.Get(),
		LabelSquares: o.labelSquares.Get(), RewardSquares: o.rewardSquares.Get(),
	}
}

// Stats returns arm i's counts in the experiment's phase: what its series
// counted since x was made, and what the node counted in the phase before
// it restarted.
func (x *Experiment) Stats(i int) ArmStats {
	s := x.counted(i)
	s.sub(x.base[i])
	s.Add(x.carried[i])
	return s
}

// Counts returns the counts of x's arms, as a node reports them.
func (x *Experiment) Counts() *ExperimentCounts {
	c := &ExperimentCounts{Experiment: x.Name, Phase: x.Phase, Arms: make([]ArmCounts, len(x.Arms))}
	for i, a := range x.Arms {
		c.Arms[i] = ArmCounts{Arm: a.Name, Version: a.Version, ArmStats: x.Stats(i)}
	}
	return c
}

// ArmCounts is what one node counted for one arm of a model's A/B
// experiment in its phase, or those counts summed over several nodes:
// the requests routed to the arm, those that went to the default version
// because the arm's was not ready there, and the feedback attributed to
// it, labels and rewards, with their sums and sums of squares (enough for
// each arm's mean and variance).
type ArmCounts struct {
	Arm     string `json:"arm"`
	Version int64  `json:"version"`
	ArmStats
}

// ExperimentCounts is one node's counts for the experiment a model runs
// there, arm by arm in the experiment's order, in the phase Phase.
type ExperimentCounts struct {
	Experiment string      `json:"experiment"`
	Phase      uint64      `json:"phase,omitempty"`
	Arms       []ArmCounts `json:"arms"`
}

// Of reports whether c counts e's arms, in their order, in e's name and
// phase. c may be nil.
func (c *ExperimentCounts) Of(e *route.Experiment) bool {
	if c == nil || c.Experiment != e.Name || c.Phase != e.Phase || len(c.Arms) != len(e.Arms) {
		return false
	}
	for i, a := range e.Arms {
		if c.Arms[i].Arm != a.Name || c.Arms[i].Version != a.Version {
			return false
		}
	}
	return true
}

// CarryExperimentCounts gives model name's experiment the counts c that
// this node had when it stopped, so that a restart does not start its
// phase's counts over. They are taken by the experiment SetExperiment
// sets next for the model if it is c's (same name, phase and arms), and
// dropped if it is of a later phase or the model's experiment ends
// (SetExperiment with nil): call it before the first SetExperiment
// (cluster.RestoreProduction does), and never set nil before the node
// has caught up with its group.
func (r *Repository) CarryExperimentCounts(name string, c *ExperimentCounts) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	r.carried[name] = c
}

// ExperimentCounts returns what this node would carry over a restart for
// each model (see CarryExperimentCounts): the counts of the experiment
// SetExperiment set, or the counts carried from before the restart that
// no experiment took yet, where they are of a later phase than the
// experiment set (one restored from a record older than the counts) or
// the model has none yet. Nil when there are none.
func (r *Repository) ExperimentCounts() map[string]*ExperimentCounts {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	var out map[string]*ExperimentCounts
	add := func(name string, c *ExperimentCounts) {
		if out == nil {
			out = make(map[string]*ExperimentCounts)
		}
		out[name] = c
	}
	for name, x := range r.experiments {
		add(name, x.Counts())
	}
	for name, c := range r.carried {
		if c != nil && (out[name] == nil || c.Phase > out[name].Phase) {
			add(name, c)
		}
	}
	return out
}

// SetExperiment makes model name's unversioned requests split among e's
// arms, or, with e nil, go to the default version again (see
// AcquireUnversioned). It may be called before the model loads, and
// outlives its loads and unloads. Setting the experiment it runs does
// nothing; the series of arms that a change drops leave /metrics, and
// those it keeps count on. e must be valid (route.Experiment.Validate).
func (r *Repository) SetExperiment(name string, e *route.Experiment) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	old := r.experiments[name]
	if e == nil {
		// Ended: counts carried for a phase of it are of no use now.
		delete(r.carried, name)
	}
	if old == nil && e == nil || old != nil && old.Equal(e) {
		return
	}
	var x *Experiment
	if e != nil {
		c := r.carried[name]
		x = newExperiment(r.cfg.Metrics, name, e, c)
		if c != nil && c.Phase <= e.Phase {
			delete(r.carried, name) // taken, or of an earlier phase
		}
		r.experiments[name] = x
	} else {
		delete(r.experiments, name)
	}
	if m := r.table.load()[name]; m != nil {
		m.exp.Store(x)
	}
	if old != nil {
		for _, s := range old.series {
			if x == nil || !slices.Contains(x.series, s) {
				r.cfg.Metrics.UnregisterMetric(s)
			}
		}
	}
}

// ExperimentOf returns what SetExperiment last set for model name, loaded
// or not, or nil.
func (r *Repository) ExperimentOf(name string) *Experiment {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	return r.experiments[name]
}

// Experiment returns the experiment model m runs, or nil.
func (m *Model) Experiment() *Experiment { return m.exp.Load() }

// AcquireUnversioned is Acquire for a request that names no version. When
// model name runs an experiment, it acquires the version of the arm unit
// belongs to (any arm, in proportion to the weights, for an empty unit)
// and returns the arm's name; an arm whose version is not ready on this
// node falls back to the default version, counted, with arm "". Without
// an experiment it is Acquire(name, 0).
func (r *Repository) AcquireUnversioned(name string, unit []byte) (v *Version, arm string, err error) {
	m := r.table.load()[name]
	if m == nil {
		return nil, "", ErrModelNotFound
	}
	x := m.Experiment()
	if x == nil {
		v, err = r.Acquire(name, 0)
		return v, "", err
	}
	i := x.Assign(unit)
	a := &x.Arms[i]
	v, err = r.Acquire(name, a.Version)
	if errors.Is(err, ErrVersionNotFound) {
		x.fallbacks[i].Inc()
		v, err = r.Acquire(name, 0)
		return v, "", err
	}
	if err != nil {
		return nil, "", err
	}
	x.requests[i].Inc()
	return v, a.Name, nil
}
