package cluster

import (
	"slices"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// ArmCounts is what one node counted for one arm of a model's A/B
// experiment since the experiment started there (or its arms last
// changed; a restart starts it over), or those counts summed over the
// cluster's nodes: the requests routed to the arm, those that went to
// production because the arm's version was not ready there, and the
// feedback attributed to it, labels and rewards, with their sums and sums
// of squares (enough for each arm's mean and variance).
type ArmCounts struct {
	Arm     string `json:"arm"`
	Version int64  `json:"version"`
	registry.ArmStats
}

// ExperimentCounts is one node's counts for the experiment a model runs
// there, arm by arm in the experiment's order.
type ExperimentCounts struct {
	Experiment string      `json:"experiment"`
	Arms       []ArmCounts `json:"arms"`
}

// ExperimentResults is a model's running experiment as the cluster
// counted it: Arms sums the counts of the members named in Nodes, those
// that run the experiment with the arms the replicated state gives it.
// Missing names the others: members that did not answer, or have not
// applied the experiment, or its latest arms, yet.
type ExperimentResults struct {
	Experiment string      `json:"experiment"`
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
		ec := &ExperimentCounts{Experiment: x.Name}
		for i, a := range x.Arms {
			ec.Arms = append(ec.Arms, ArmCounts{Arm: a.Name, Version: a.Version, ArmStats: x.Stats(i)})
		}
		if out == nil {
			out = make(map[string]*ExperimentCounts)
		}
		out[name] = ec
	}
	return out
}

// experimentResults sums the members' counts (statuses, nil for one that
// did not answer) for model name's experiment e.
func experimentResults(name string, e *route.Experiment, statuses map[string]*LocalStatus) *ExperimentResults {
	res := &ExperimentResults{Experiment: e.Name, Nodes: []string{}}
	for _, a := range e.Arms {
		res.Arms = append(res.Arms, ArmCounts{Arm: a.Name, Version: a.Version})
	}
	for id, ls := range statuses {
		var ec *ExperimentCounts
		if ls != nil {
			ec = ls.Experiments[name]
		}
		if ec == nil || ec.Experiment != e.Name || !sameArms(ec.Arms, e.Arms) {
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

// sameArms reports whether counts are of arms, in their order.
func sameArms(counts []ArmCounts, arms []route.Arm) bool {
	if len(counts) != len(arms) {
		return false
	}
	for i, a := range arms {
		if counts[i].Arm != a.Name || counts[i].Version != a.Version {
			return false
		}
	}
	return true
}
