package cluster

import (
	"slices"
	"time"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// ArmCounts is what one node counted for one arm of a model's A/B
// experiment in the experiment's phase, or those counts summed over the
// cluster's nodes (see registry.ArmCounts).
type ArmCounts = registry.ArmCounts

// ExperimentCounts is one node's counts for the experiment a model runs
// there (see registry.ExperimentCounts).
type ExperimentCounts = registry.ExperimentCounts

// ExperimentResults is a model's running experiment as the cluster
// counted it in its current phase, which began at Started (zero for an
// experiment a release before phases began): Arms sums the counts of the
// members named in Nodes, those that run the experiment in the phase the
// replicated state gives it. Missing names the others: members that did
// not answer, or have not applied the experiment, or its latest change,
// yet.
type ExperimentResults struct {
	Experiment string      `json:"experiment"`
	Phase      uint64      `json:"phase,omitempty"`
	Started    time.Time   `json:"started,omitzero"`
	Arms       []ArmCounts `json:"arms"`
	Nodes      []string    `json:"nodes"`
	Missing    []string    `json:"missing,omitempty"`
}

// experimentCounts returns what this node counted for the experiments its
// models run, by model.
func experimentCounts(repo *registry.Repository, names []string) map[string]*ExperimentCounts {
	var out map[string]*ExperimentCounts
	for _, name := range names {
		x := repo.ExperimentOf(name)
		if x == nil {
			continue
		}
		if out == nil {
			out = make(map[string]*ExperimentCounts)
		}
		out[name] = x.Counts()
	}
	return out
}

// experimentResults sums the members' counts (statuses, nil for one that
// did not answer) for model name's experiment e.
func experimentResults(name string, e *route.Experiment, statuses map[string]*LocalStatus) *ExperimentResults {
	res := &ExperimentResults{Experiment: e.Name, Phase: e.Phase, Started: e.Started, Nodes: []string{}}
	for _, a := range e.Arms {
		res.Arms = append(res.Arms, ArmCounts{Arm: a.Name, Version: a.Version})
	}
	for id, ls := range statuses {
		var ec *ExperimentCounts
		if ls != nil {
			ec = ls.Experiments[name]
		}
		if !ec.Of(e) {
			res.Missing = append(res.Missing, id)
			continue
		}
		res.Nodes = append(res.Nodes, id)
		for i := range res.Arms {
			res.Arms[i].Add(ec.Arms[i].ArmStats)
		}
	}
	slices.Sort(res.Nodes)
	slices.Sort(res.Missing)
	return res
}
