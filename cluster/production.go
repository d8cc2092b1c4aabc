package cluster

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/registry"
)

// productionFile keeps, in the raft data directory, each replicated
// model's production version as this node last knew it. A node that
// restarts serves the versions on its disk before raft has given it the
// group's state back, with the repository's own rule for unversioned
// requests, the highest version, which may be a staged one: the file lets
// RestoreProduction, called before the repository loads, route them to
// production from the first request (or answer "not ready" until
// production loads) instead.
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

// RestoreProduction routes the unversioned requests of every model whose
// production version the node in raft data directory dir recorded to that
// version, unless something set the model's default already, so that a
// restarted node never sends them to a staged version while raft catches
// up. Call it before the repository loads: models load and serve before
// the control plane starts. A missing file (a new node) is no error; a
// damaged one is, saying what it means: the repository's own rule, the
// highest version, routes those requests until raft has caught up and
// the file is written again.
func RestoreProduction(dir string, repo *registry.Repository) error {
	path := filepath.Join(dir, productionFile)
	var prod map[string]int64
	if err := loadJSON(path, &prod); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("cannot read the models' production versions from %s (%v): until raft catches up with the group and writes it again, unversioned requests go to each model's highest version, which may be a staged one; remove the file to silence this", path, err)
	}
	for name, v := range prod {
		if v > 0 && repo.DefaultVersion(name) == 0 {
			repo.SetDefault(name, v)
		}
	}
	return nil
}
