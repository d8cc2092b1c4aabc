package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
)

// countsFile keeps, in the raft data directory, what this node counted
// for each model's experiment in the experiment's phase, so that a
// restart carries the counts on instead of starting them over
// (registry.Repository.CarryExperimentCounts). It is written every
// countsEvery while they change, and when the node stops: a crash loses
// at most the last countsEvery's.
const countsFile = "experiment_counts.json"

// countsEvery is how often saveCountsLoop looks at the counts; a variable
// for tests.
var countsEvery = 5 * time.Second

// saveCountsLoop writes countsFile every countsEvery, and once more when
// the node stops (after the HTTP server: serve stops it first).
func (n *Node) saveCountsLoop() {
	t := time.NewTicker(countsEvery)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			n.saveCounts()
			return
		case <-t.C:
			n.saveCounts()
		}
	}
}

// saveCounts writes countsFile if the counts changed since it last did.
// It writes what the repository would carry over a restart
// (registry.Repository.ExperimentCounts), not the counts of the models
// the state machine lists: before the node has caught up, that state is
// a snapshot or a past state, which may lack an experiment whose counts
// the node carries, or give an older phase than the counts it carries.
// The counts stay finite (feedback is bounded: gateway.MaxOutcome), so
// they encode; were one not, it would fail as a write does, logged.
func (n *Node) saveCounts() {
	counts := n.cfg.Registry.ExperimentCounts()
	if len(counts) == 0 && n.savedCounts == nil {
		return // no experiment ran here yet: no file
	}
	b, err := json.Marshal(counts)
	if err == nil && bytes.Equal(b, n.savedCounts) {
		return
	}
	// Written every few seconds while feedback flows: a failure (a full
	// disk) is logged when it begins and when it ends, not at each try.
	if err == nil {
		err = durable.WriteFile(filepath.Join(n.cfg.DataDir, countsFile), b, 0o644)
	}
	switch {
	case err == nil:
		if n.countsFailing {
			n.logf("cluster: recording what this node counted for the models' experiments again")
		}
		n.countsFailing = false
		n.savedCounts = b
	case !n.countsFailing:
		n.countsFailing = true
		n.logf(logging.Error+"cluster: cannot record what this node counted for the models' experiments (%v), which a restart would then start over; trying again every %s", err, countsEvery)
	}
}

// restoreCounts hands what the node in dir counted for each model's
// experiment to repo, for the experiment of the same phase to carry on.
// A missing file is no error; a damaged one is, and the counts of this
// node start over.
func restoreCounts(dir string, repo *registry.Repository) error {
	path := filepath.Join(dir, countsFile)
	var counts map[string]*ExperimentCounts
	if err := loadJSON(path, &counts); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("cannot read what this node counted for the models' experiments from %s (%v): the node counts each experiment's arms from 0 again, so the results leave out what it counted before; the file is written again within %s", path, err, countsEvery)
	}
	for name, c := range counts {
		if c != nil {
			repo.CarryExperimentCounts(name, c)
		}
	}
	return nil
}
