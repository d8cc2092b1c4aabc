package cluster

import (
	"slices"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/registry"
)

// route sets how the registry routes each replicated model's unversioned
// requests, from the newest replicated state: the experiment and the
// shadow as they are, and the default version as production once it is
// ready here. Until production is ready a previous default that is ready
// keeps serving, handing over to production in the load that brings it
// in (registry.Repository.HandOver). With none (nothing served its
// unversioned requests here yet), the model answers "not ready" rather
// than from a staged version that loaded first, unless production failed
// here: then the newest earlier production version loaded here serves
// (formerProduction).
//
// routeLoop calls it on every change of the state, so that a new
// experiment, shadow or promotion takes effect at once instead of after
// the reconciler's pass, which may be loading another version for
// minutes; the reconciler calls it around its loads, whose outcome
// decides the default. routeMu makes each call read the state and apply
// it as one step, so the last call applies the newest state.
func (n *Node) route() {
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	st, _ := n.fsm.State()
	repo := n.cfg.Registry
	for name, m := range st.Models {
		repo.SetExperiment(name, m.Experiment)
		repo.SetShadow(name, m.Shadow)
		p := m.Production()
		if p == 0 {
			continue
		}
		cur := repo.DefaultVersion(name)
		lm := repo.Model(name)
		if lm != nil && lm.Version(p) == nil && (cur == 0 || cur == p) && n.failedHere(name, p) {
			// Production has not served here, and failed here.
			if h := formerProduction(m, lm); h != 0 {
				cur = h
			}
		}
		cv := m.Version(cur)
		retired := cv != nil && cv.Stage == fsm.StageRetired
		// A model not loaded here now keeps a retired stand-in's
		// hand-over (a repository API call unloaded it, and the
		// reconciler loads it again), never another: a version that
		// was production once but never served here takes nothing.
		if cur == 0 || cur == p || lm == nil && !retired || lm != nil && (lm.Version(p) != nil || lm.Version(cur) == nil) {
			repo.SetDefault(name, p)
			continue
		}
		// cur serves until production is ready, and the load that makes
		// it ready hands the requests over in the same step, even a load
		// that also unloads cur (production moved and cur retired in one
		// pass): none of them falls in between, finding neither. A
		// retired cur stays only for them (the reconciler's standIn).
		repo.HandOver(name, cur, p, retired)
	}
}

// routeLoop calls route on every change of the replicated state until the
// node stops. The reconciler starts it once the node has caught up with
// its log (see catchUp): the states replayed before that are the group's
// past.
func (n *Node) routeLoop() {
	changed := n.fsm.Watch()
	for {
		n.route()
		select {
		case <-n.stop:
			return
		case <-changed:
		}
	}
}

// formerProduction returns, for a model whose production failed here
// (failedHere) and whose unversioned requests no other version serves
// here yet (a node that joined after the promotion, or restarted without
// production.json), the newest earlier production version that lm has
// loaded and that is not retired. It serves in production's place, as it
// does on the nodes where it served before, rather than the node
// answering "not ready" for as long as production fails here. 0 when
// there is none: a version that never was production never serves in its
// place. (While production is on its way the model answers "not ready":
// a node that joins is not ready until it comes, or fails.)
func formerProduction(m *fsm.Model, lm *registry.Model) int64 {
	for _, h := range slices.Backward(m.History) {
		if v := m.Version(h); v != nil && v.Stage != fsm.StageRetired && lm.Version(h) != nil {
			return h
		}
	}
	return 0
}

// failedHere reports whether version v of model name failed on this node
// in a way that a retry does not mend by itself: its load, its
// configuration, or other bytes in the repository, not a pull tried
// again.
func (n *Node) failedHere(name string, v int64) bool {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	s := n.rec.status[name][v]
	return s.State == VersionFailed && !s.Retrying
}
