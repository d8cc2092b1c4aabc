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
}

// armOutcomes counts one arm's feedback: how many labels and rewards, and
// their sums (gauges: rewards may be negative), so that a mean is a ratio
// of two series.
type armOutcomes struct {
	labels, rewards             *metrics.Counter
	labelSum, rewardSum         *metrics.Gauge
	labelSquares, rewardSquares *metrics.Gauge // sums of squares: with the sums, the variances
}

func newExperiment(set *metrics.Set, model string, e *route.Experiment) *Experiment {
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

// ArmStats is what an experiment's arm has counted on this node since the
// experiment started here (or last changed its arms).
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

// Stats returns arm i's counts.
func (x *Experiment) Stats(i int) ArmStats {
	o := &x.outcomes[i]
	return ArmStats{
		Requests: x.requests[i].Get(), Fallbacks: x.fallbacks[i].Get(),
		Labels: o.labels.Get(), LabelSum: o.labelSum.Get(),
		Rewards: o.rewards.Get(), RewardSum: o.rewardSum.Get(),
		LabelSquares: o.labelSquares.Get(), RewardSquares: o.rewardSquares.Get(),
	}
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
	if old == nil && e == nil || old != nil && old.Equal(e) {
		return
	}
	var x *Experiment
	if e != nil {
		x = newExperiment(r.cfg.Metrics, name, e)
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
