package cluster

import (
	"maps"
	"os"
	"path/filepath"

	"github.com/infergate/infergate/cluster/fsm"
)

// productionFile keeps, in the raft data directory, each replicated
// model's production version as this node last knew it. A node that
// restarts serves the versions on its disk before raft has given it the
// group's state back, with the repository's own rule for unversioned
// requests, the highest version, which may be a staged one: the file lets
// Start route them to production from the first request (or answer "not
// ready" until production loads) instead.
const productionFile = "production.json"

// saveProduction records st's production versions when they changed. Only
// the reconciler's goroutine calls it. An empty state before the first
// save writes nothing, so that a restarted node that has not caught up
// yet keeps the file it found.
func (n *Node) saveProduction(st *fsm.State) {
	prod := make(map[string]int64, len(st.Models))
	for name, m := range st.Models {
		if p := m.Production(); p != 0 {
			prod[name] = p
		}
	}
	if maps.Equal(prod, n.savedProduction) {
		return
	}
	if n.saveJSON(productionFile, "the models' production versions", prod) {
		n.savedProduction = prod
	}
}

// restoreProduction routes the unversioned requests of every model that
// saveProduction recorded to its production version, unless something
// set the model's default already. Start calls it before the reconciler
// starts.
func (n *Node) restoreProduction() {
	var prod map[string]int64
	if err := loadJSON(filepath.Join(n.cfg.DataDir, productionFile), &prod); err != nil {
		if !os.IsNotExist(err) {
			n.logf("cluster: cannot read the models' production versions from %s: %v", productionFile, err)
		}
		return
	}
	for name, v := range prod {
		if v > 0 && n.cfg.Registry.DefaultVersion(name) == 0 {
			n.cfg.Registry.SetDefault(name, v)
		}
	}
}
