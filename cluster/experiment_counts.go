package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
func (n *Node) saveCounts() {
	st, _ := n.fsm.State()
	names := make([]string, 0, len(st.Models))
	for name, m := range st.Models {
		if m.Experiment != nil {
			names = append(names, name)
		}
	}
	counts := experimentCounts(n.cfg.Registry, names)
	if counts == nil && n.savedCounts == nil {
		return // no experiment ran here yet: no file
	}
	b, err := json.Marshal(counts)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot encode experiment counts: %v", err))
	}
	if bytes.Equal(b, n.savedCounts) {
		return
	}
	if n.saveJSON(countsFile, "what this node counted for the models' experiments", json.RawMessage(b)) {
		n.savedCounts = b
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
