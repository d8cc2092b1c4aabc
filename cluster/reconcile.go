package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
)

// Version states of LocalStatus.
const (
	VersionFetching = "fetching" // its blob is being pulled from a peer
	VersionLoading  = "loading"  // linked into the repository, loading
	VersionReady    = "ready"    // loaded, warmed and routable here
	VersionFailed   = "failed"   // see Reason; retried on the next change or tick
)

// VersionStatus is one version's state on one node.
type VersionStatus struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Retrying says a failed version is a pull this node tries again
	// (every 5 s) from members that hold it: it may still come, and a
	// retired version answering the unversioned requests in production's
	// place waits for it. Nodes of earlier releases never say so.
	Retrying bool `json:"retrying,omitempty"`
	// Unversioned says this version answers the model's unversioned
	// requests on the node (outside an experiment's split); nodes of
	// earlier releases never say so.
	Unversioned bool `json:"unversioned,omitempty"`
}

// LocalStatus is what one node reports about the replicated versions
// (GET /v1/local/models): model -> version -> status.
type LocalStatus struct {
	Node   string                              `json:"node"`
	Index  uint64                              `json:"index"`
	Models map[string]map[string]VersionStatus `json:"models"`
	// Experiments is what this node counted for the A/B experiments its
	// models run, by model.
	Experiments map[string]*ExperimentCounts `json:"experiments,omitempty"`
	// Pending, until the reconciler's first pass since the start has
	// ended, says why this node has not begun on the replicated versions
	// yet (it replays its raft log, say); members' views give it as the
	// reason of the versions they list "pending" there. Meanwhile the
	// versions the node loaded from disk are listed ready, with it as
	// their reason. Nodes of earlier releases never say so.
	Pending string `json:"pending,omitempty"`
	// Protocol is the node's release's Protocol; nodes of earlier
	// releases never say it (0).
	Protocol int `json:"protocol,omitempty"`
}

// retryInterval is how often the reconciler retries failed work when the
// replicated state does not change.
const retryInterval = 5 * time.Second

// fullCheckTicks is how many retry intervals pass between full checks of
// models that are ready and unchanged.
const fullCheckTicks = 12

// reconciler makes the local registry match the replicated state. Only
// its loop goroutine runs reconcile; LocalStatus may be called from any.
type reconciler struct {
	n    *Node
	repo *registry.Repository

	// mu protects status.
	mu     sync.Mutex
	status map[string]map[int64]VersionStatus
	// passed is set once the first reconcile pass since the start has
	// ended: until then status is not yet what the node serves.
	passed atomic.Bool

	// hashes caches the sha256 of repository files by path, so that an
	// unchanged file is hashed once; only the loop goroutine uses it.
	hashes map[string]fileHash
	// placed holds the repository files this node has put in place since
	// it started, which it may replace or remove (so may it those that are
	// hard links to its blobs, from earlier runs); only the loop goroutine
	// uses it.
	placed map[string]bool
	// loadErrs is the last load error per model, logged once, and
	// placeErrs the last error placing each version's file ("model/N");
	// only the loop goroutine uses them.
	loadErrs  map[string]string
	placeErrs map[string]string
	// done holds the signature of each model last brought fully ready,
	// failed the last attempt that did not; only the loop goroutine uses
	// them.
	done   map[string]string
	failed map[string]attempt
	// served holds, per model, the versions and configuration the last
	// load was asked for, which saveServed records; only the loop
	// goroutine uses it.
	served map[string]servedModel
	// standing holds, per model, the retired version that stays loaded
	// as the stand-in of a production on its way here (see standIn), whose
	// file removeRetired leaves; only the loop goroutine uses it.
	standing map[string]int64

	// pullMu protects pulls, the blob pulls by digest; a pull that ends
	// sends on kick (capacity 1).
	pullMu sync.Mutex
	pulls  map[string]*pull
	kick   chan struct{}

	// swept is when sweepBlobs last ran; only the loop goroutine uses it.
	swept time.Time
}

type fileHash struct {
	size    int64
	modTime time.Time
	hex     string
}

func newReconciler(n *Node) *reconciler {
	return &reconciler{
		n:         n,
		repo:      n.cfg.Registry,
		status:    make(map[string]map[int64]VersionStatus),
		hashes:    make(map[string]fileHash),
		placed:    make(map[string]bool),
		loadErrs:  make(map[string]string),
		placeErrs: make(map[string]string),
		done:      make(map[string]string),
		failed:    make(map[string]attempt),
		served:    make(map[string]servedModel),
		standing:  make(map[string]int64),
		pulls:     make(map[string]*pull),
		kick:      make(chan struct{}, 1),
	}
}

func (r *reconciler) loop() {
	if !r.catchUp() {
		return
	}
	r.n.goFunc(r.n.routeLoop)
	t := time.NewTicker(retryInterval)
	defer t.Stop()
	for ticks := 0; ; {
		r.reconcile()
		select {
		case <-r.n.stop:
			return
		case <-r.n.fsm.Changed():
		case <-r.kick:
			// A pull ended: what waited for it goes again now, and what
			// fails now (the pull, say) is tried again a retry interval
			// on, not at a tick that comes sooner and finds its wait not
			// over (then the retries came 10 s apart where Retry-After
			// and the README say 5; found by a reviewing helper).
			clear(r.failed)
			t.Reset(retryInterval)
		case <-t.C:
			// Now and then check everything again: a file or blob
			// removed behind the node's back is put back.
			if ticks++; ticks%fullCheckTicks == 0 {
				clear(r.done)
			}
		}
	}
}

// catchUp waits until this node's state machine is as new as when the
// node last stopped: it has applied the last command of the log on disk
// (Node.replayTo). Until then the states it applies are the group's past,
// replayed from the log after a restart: a version not registered yet,
// an old production. Acting on them would unload versions that serve and
// route unversioned requests to a staged one. Meanwhile the node serves
// what it loaded from disk, with the production it recorded last
// (RestoreProduction). A command at the log's end that was never
// committed is dropped by the leader, which writes its own entries there:
// once the log no longer holds it, the wait is for what the leader has
// committed. It returns false when the node stops first, and closes
// Node.replayed when it returns true.
func (r *reconciler) catchUp() bool {
	n := r.n
	if n.replayTo == 0 {
		close(n.replayed)
		return true
	}
	start := time.Now()
	logged := false
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if n.fsm.Applied() >= n.replayTo {
			break
		}
		// The leader's entries replaced it: they came with its commit
		// index, which is what to wait for now.
		if n.replayDropped() && n.raft.CommitIndex() > 0 && n.raft.AppliedIndex() >= n.raft.CommitIndex() {
			break
		}
		if !logged && time.Since(start) > time.Second {
			n.logf("cluster: replaying the raft log up to index %d (at %d now) before changing what this node serves, which stays what it loaded from disk", n.replayTo, n.fsm.Applied())
			logged = true
		}
		select {
		case <-n.stop:
			return false
		case <-t.C:
		}
	}
	// Logged however quick: at 3 a.m. the log of a restart says when the
	// node's view of the cluster became current again.
	n.logf("cluster: caught up with the raft log after %s (index %d); reconciling the models", time.Since(start).Round(time.Millisecond), n.fsm.Applied())
	close(n.replayed)
	return true
}

// LocalStatus returns this node's view of every replicated version.
func (n *Node) LocalStatus() *LocalStatus {
	r := n.rec
	out := &LocalStatus{Node: n.cfg.NodeID, Index: n.fsm.Applied(), Protocol: Protocol, Models: make(map[string]map[string]VersionStatus)}
	r.mu.Lock()
	for name, vs := range r.status {
		var d int64
		if lm := r.repo.Model(name); lm != nil {
			if dv := lm.Default(); dv != nil {
				d = dv.Number
			}
		}
		m := make(map[string]VersionStatus, len(vs))
		for v, s := range vs {
			s.Unversioned = v == d
			m[strconv.FormatInt(v, 10)] = s
		}
		out.Models[name] = m
	}
	r.mu.Unlock()
	// The replicated models, not those the reconciler has a status for:
	// an experiment may be set before the reconciler's first pass over
	// its model.
	st, _ := n.fsm.State()
	if out.Pending = n.notReconciled(); out.Pending != "" {
		// What the node loaded from disk serves already: the replicated
		// models' versions it has loaded are ready, not "pending".
		// The state machine may not list them yet: raft may replay the
		// log from its start.
		for _, name := range append(slices.Collect(maps.Keys(st.Models)), n.restored...) {
			lm := r.repo.Model(name)
			if lm == nil {
				continue
			}
			m := out.Models[name]
			if m == nil {
				m = make(map[string]VersionStatus)
				out.Models[name] = m
			}
			d := lm.Default()
			for _, v := range lm.Versions() {
				num := strconv.FormatInt(v.Number, 10)
				if _, ok := m[num]; !ok {
					m[num] = VersionStatus{State: VersionReady, Reason: "loaded from disk at start; " + out.Pending, Unversioned: v == d}
				}
			}
		}
	}
	out.Experiments = experimentCounts(r.repo, slices.Collect(maps.Keys(st.Models)))
	return out
}

// notReconciled says why the reconciler has not been over the replicated
// versions yet since the node started, or "" once it has.
func (n *Node) notReconciled() string {
	// A dropped node never catches up, whether or not the reconciler
	// has been over what it had: its reason stands first.
	if n.dropped.Load() {
		if why := n.dropWhy.Load(); why != nil {
			return *why // taken over after its --data was wiped (takeover.go), say
		}
		return "this node was dropped from its group when the group was recovered, and serves what it had"
	}
	if n.rec.passed.Load() {
		return ""
	}
	select {
	case <-n.replayed:
	default:
		return fmt.Sprintf("this node restarted and is replaying its raft log (index %d of the %d it held) before it changes what it serves", n.fsm.Applied(), n.replayTo)
	}
	return fmt.Sprintf("this node is going over the cluster's models for the first time since it started (raft index %d)", n.fsm.Applied())
}

// pendingStatus is the state of a version member ls has not begun on.
func pendingStatus(ls *LocalStatus) VersionStatus {
	return VersionStatus{State: "pending", Reason: ls.Pending}
}

// Absence is why a replicated version serves no requests on this node
// (Node.Absence).
type Absence struct {
	// Version is the version asked about: the one named, or the one an
	// unversioned request gets.
	Version int64
	// Stage is its stage in the replicated state: fsm.StageStaged,
	// fsm.StageProduction or fsm.StageRetired.
	Stage string
	// Status is its state on this node (LocalStatus); State is "" when
	// this node has not begun on it.
	Status VersionStatus
}

// Absence says what the replicated state, as this node has applied it,
// holds of version v of model name, which this node does not serve, and
// how far this node has got with it. With v 0 it is production, which
// unversioned requests get (fsm.FSM.Stage). ok is false when the state
// holds no such version. It copies nothing of the state, so an error
// path may call it at the rate requests come.
func (n *Node) Absence(name string, v int64) (a Absence, ok bool) {
	num, stage, ok := n.fsm.Stage(name, v)
	if !ok {
		return a, false
	}
	a = Absence{Version: num, Stage: stage}
	n.rec.mu.Lock()
	a.Status = n.rec.status[name][num]
	n.rec.mu.Unlock()
	return a, true
}

func (r *reconciler) setStatus(model string, v int64, state, reason string) {
	r.setStatusOf(model, v, VersionStatus{State: state, Reason: reason})
}

// setStatusOf records version v of model's state on this node.
func (r *reconciler) setStatusOf(model string, v int64, s VersionStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status[model] == nil {
		r.status[model] = make(map[int64]VersionStatus)
	}
	r.status[model][v] = s
}

// reconcile brings every replicated model to the registry.
func (r *reconciler) reconcile() {
	st, _ := r.n.fsm.State()
	r.n.savePeers(st)
	r.n.saveSplits(st)
	names := make([]string, 0, len(st.Models))
	for name := range st.Models {
		names = append(names, name)
	}
	slices.Sort(names)
models:
	for _, name := range names {
		select {
		case <-r.n.stop:
			// What this pass loaded is recorded still: a load that
			// finished as the node stops served, and the restart
			// serves it.
			break models
		default:
		}
		r.reconcileModel(st, st.Models[name])
	}
	for name := range r.served {
		if st.Models[name] == nil {
			delete(r.served, name)
		}
	}
	for name := range r.standing {
		if st.Models[name] == nil {
			delete(r.standing, name)
		}
	}
	r.n.saveServed(st, r.served)
	// What the loads above made of the routing, as route decides it.
	r.n.route()
	r.n.saveProduction(st)
	r.sweepBlobs(st)
	r.passed.Store(true)
}

func (r *reconciler) reconcileModel(st *fsm.State, m *fsm.Model) {
	// Most changes (other aliases, members, other models) leave a model
	// as it was: skip it while what this node serves of it is unchanged
	// and ready, so that a burst of admin writes costs no file checks.
	sig := signature(m)
	if r.done[m.Name] == sig && r.loadedAsRecorded(m.Name) {
		return
	}
	delete(r.done, m.Name)
	// What failed is retried on the retry interval, not on every change:
	// a broken version must not be loaded again for each alias write. A
	// change of the model or of the members (a new peer to fetch from)
	// retries at once.
	retry := sig + "|" + memberKey(st)
	// An attempt is stamped when it begins, which is some time after the
	// tick that began it: the next tick, a retry interval on, must find
	// the wait over, hence the slack (else the retries came every other
	// tick, 10 s apart, where Retry-After and the README say 5; found by a
	// reviewing helper).
	if a, ok := r.failed[m.Name]; ok && a.key == retry && time.Since(a.at) < retryInterval*4/5 {
		return
	}
	delete(r.failed, m.Name)
	began := time.Now()
	var present []int64
	live := make(map[int64]bool)
	stand := r.standIn(m)
	var prodFailed error
	for _, v := range m.Versions {
		if v.Stage == fsm.StageRetired {
			continue
		}
		live[v.Number] = true
		if err := r.ensureVersion(st, m.Name, v); err != nil {
			if errors.Is(err, errFetching) {
				r.setStatus(m.Name, v.Number, VersionFetching, strings.TrimPrefix(err.Error(), errFetching.Error()))
			} else {
				if v.Number == m.Production() {
					prodFailed = err
				}
				r.setStatusOf(m.Name, v.Number, VersionStatus{State: VersionFailed, Reason: err.Error(), Retrying: comesAgain(err)})
				key := m.Name + "/" + strconv.FormatInt(v.Number, 10)
				if r.placeErrs[key] != err.Error() {
					r.n.logf(logging.Error+"cluster: model %q version %d cannot serve on this node: %s", m.Name, v.Number, err)
					r.placeErrs[key] = err.Error()
				}
			}
			continue
		}
		delete(r.placeErrs, m.Name+"/"+strconv.FormatInt(v.Number, 10))
		present = append(present, v.Number)
	}
	if stand != 0 && prodFailed != nil && !comesAgain(prodFailed) {
		// Production cannot come here (no room for it, or its file
		// cannot be placed): nothing is on its way for a stand-in to
		// wait for, and retired means gone. A pull that failed is tried
		// again, and the stand-in waits for it.
		if r.standing[m.Name] == stand {
			r.n.logf(logging.Warning+"cluster: model %q production version %d cannot come to this node (%v), so retired version %d goes too", m.Name, m.Production(), prodFailed, stand)
		}
		stand = 0
	}
	if stand != 0 {
		if r.standing[m.Name] != stand {
			r.n.logf("cluster: model %q version %d is retired, but it answers this node's unversioned requests (only those) until production version %d, on its way here, is ready", m.Name, stand, m.Production())
		}
		r.standing[m.Name] = stand
		live[stand] = true
		present = append(present, stand)
	} else {
		delete(r.standing, m.Name)
	}
	r.mu.Lock()
	for v := range r.status[m.Name] {
		if !live[v] {
			delete(r.status[m.Name], v)
		}
	}
	r.mu.Unlock()
	if len(present) == 0 {
		if len(live) > 0 {
			r.failed[m.Name] = attempt{key: retry, at: began}
		}
		delete(r.served, m.Name)
		r.dropNotLive(m, live)
		return
	}

	cfg, raw, err := r.modelConfig(m)
	if err != nil {
		for _, v := range present {
			r.setStatus(m.Name, v, VersionFailed, err.Error())
		}
		delete(r.served, m.Name)
		if stand != 0 {
			// Production cannot load here with the configuration it has:
			// nothing to wait for.
			r.n.logf(logging.Warning+"cluster: model %q production version %d cannot load here (%v), so retired version %d goes too", m.Name, m.Production(), err, stand)
			r.forgetStandIn(m.Name, live, stand)
		}
		r.dropNotLive(m, live)
		return
	}
	cfg.VersionPolicy = registry.VersionPolicy{Specific: &registry.SpecificPolicy{Versions: present}}
	for _, v := range present {
		if lm := r.repo.Model(m.Name); lm == nil || lm.Version(v) == nil {
			r.setStatus(m.Name, v, VersionLoading, "")
		}
	}
	// A model new to this node answers "not ready" until production is
	// loaded, never from a staged version that loaded first (routeLoop
	// has most likely seen to it already).
	r.n.route()
	// Load is cheap when nothing changed: the registry keeps versions
	// whose file and config are the same.
	msg := ""
	err = r.repo.Load(m.Name, &cfg)
	if err == nil {
		// What serves now, for a restart to load first. A load that
		// failed leaves the record of what served before it.
		sums := make(map[string]string, len(present))
		for _, v := range present {
			if fv := m.Version(v); fv != nil {
				sums[strconv.FormatInt(v, 10)] = fv.SHA256
			}
		}
		r.served[m.Name] = servedModel{Versions: present, Config: raw, SHA256: sums}
	}
	if err != nil {
		msg = err.Error()
		// A load that fails keeps what served before it, and that may
		// include a version the cluster has retired since.
		r.dropNotLive(m, live)
	}
	// A file that rotted in place (same size and time, which the hash
	// cache trusts) is seen only in what was loaded from it.
	rotten := r.dropRotten(m, live)
	if p := m.Production(); stand != 0 && slices.Contains(present, p) {
		// Production was loaded in this pass. Ready, it took the
		// requests over in the load (route's HandOver); failed, there is
		// nothing to wait for. Either way the stand-in goes, unless what
		// was loaded had rotted: it is placed and loaded again.
		if _, rot := rotten[p]; !rot {
			if lm := r.repo.Model(m.Name); lm != nil && lm.Version(p) != nil {
				r.n.logf("cluster: model %q production version %d is ready here, and takes the unversioned requests over from retired version %d, which goes", m.Name, p, stand)
			} else {
				r.n.logf(logging.Warning+"cluster: model %q production version %d failed to load here, so retired version %d goes too", m.Name, p, stand)
			}
			r.forgetStandIn(m.Name, live, stand)
			// A copy: r.served holds present's array, which DeleteFunc
			// would shift and zero in place.
			present = slices.DeleteFunc(slices.Clone(present), func(v int64) bool { return v == stand })
			r.dropNotLive(m, live)
			if s, ok := r.served[m.Name]; ok {
				s.Versions = slices.DeleteFunc(slices.Clone(s.Versions), func(v int64) bool { return v == stand })
				r.served[m.Name] = s
			}
			stand = 0
		}
	}
	r.removeRetired(m)
	if msg != r.loadErrs[m.Name] {
		if msg != "" {
			r.n.logf(logging.Error+"cluster: loading model %q versions %v: %s", m.Name, present, msg)
		}
		r.loadErrs[m.Name] = msg
	}
	loaded := r.repo.Model(m.Name)
	reasons := r.loadReasons(m.Name)
	for _, v := range present {
		if reason, ok := rotten[v]; ok {
			r.setStatus(m.Name, v, VersionFailed, reason)
			continue
		}
		if v == stand && loaded != nil && loaded.Version(v) != nil {
			r.setStatus(m.Name, v, VersionReady, fmt.Sprintf("retired; serves this node's unversioned requests until production version %d is ready here", m.Production()))
			continue
		}
		if loaded != nil && loaded.Version(v) != nil {
			r.setStatus(m.Name, v, VersionReady, "")
		} else {
			reason := reasons[v]
			if reason == "" {
				// No reason of its own in the registry's index, as when the
				// load failed before any version was tried (the
				// configuration, say): the load's error says why.
				reason = msg
			}
			r.setStatus(m.Name, v, VersionFailed, reason)
		}
	}
	// Route unversioned traffic to production now that it may be ready.
	r.n.route()
	if len(present) == len(live) && len(rotten) == 0 && r.loadedAsRecorded(m.Name) {
		r.done[m.Name] = sig
	} else {
		r.failed[m.Name] = attempt{key: retry, at: began}
	}
}

// forgetStandIn takes model's retired stand-in out of live, its record
// and its status, for dropNotLive to unload it and removeRetired to
// remove its file.
func (r *reconciler) forgetStandIn(model string, live map[int64]bool, stand int64) {
	delete(live, stand)
	delete(r.standing, model)
	r.mu.Lock()
	delete(r.status[model], stand)
	r.mu.Unlock()
}

// standIn returns the retired version of m that stays on this node, or
// 0: the version its unversioned requests go to in place of a production
// that is on its way here (being pulled or loaded), when the cluster
// retires it. Dropped at once, it would leave the model not served on
// this node until production is ready, as after "promote 2; retire 1" on
// a node still pulling version 2. It stays, for the unversioned requests
// only (route's HandOver), until production is ready here, or fails here
// (reconcileModel): then retired means gone. A version loaded from other
// bytes than the registered ones never stays; one a repository API call
// unloaded meanwhile is loaded again, as the live versions are.
func (r *reconciler) standIn(m *fsm.Model) int64 {
	p := m.Production()
	d := r.repo.DefaultVersion(m.Name)
	if p == 0 || d == 0 || d == p {
		return 0
	}
	if v := m.Version(d); v == nil || v.Stage != fsm.StageRetired {
		return 0
	}
	lm := r.repo.Model(m.Name)
	if lm != nil && lm.Version(p) != nil {
		return 0
	}
	if lm != nil {
		if lv := lm.Version(d); lv != nil {
			if !registeredBytes(m, lv) {
				return 0
			}
			return d
		}
	}
	// Not loaded: only the stand-in this node kept, whose file it spared.
	path := filepath.Join(r.repo.Dir(), m.Name, strconv.FormatInt(d, 10), "model.onnx")
	if _, err := os.Stat(path); r.standing[m.Name] != d || err != nil {
		return 0
	}
	return d
}

// dropNotLive unloads the versions of m this node serves that are not
// live (retired) or whose loaded bytes are not the ones the cluster
// registered, when it cannot load m as the cluster has it (no live
// version here yet, or a configuration it cannot read): a retired or
// corrupt version must not go on serving meanwhile. The other live ones
// it serves stay, with the configuration they run with; with none, the
// model is unloaded.
func (r *reconciler) dropNotLive(m *fsm.Model, live map[int64]bool) {
	defer r.removeRetired(m)
	lm := r.repo.Model(m.Name)
	if lm == nil {
		return
	}
	var keep []int64
	var cfg registry.ModelConfig
	stale, foreign := false, false
	for _, v := range lm.Versions() {
		switch {
		case !registeredBytes(m, v):
			stale, foreign = true, true
		case live[v.Number]:
			keep = append(keep, v.Number)
			cfg = v.Config
		default:
			stale = true
		}
	}
	if !stale {
		return
	}
	if len(keep) == 0 {
		why := "" // retired by the cluster: on purpose
		if foreign {
			// A local model of the cluster's name, or a file changed by
			// hand: the index row says so, not only "unloaded".
			why = "the cluster registered other bytes for this model; GET /v1/models/" + m.Name + " (infergate models show " + m.Name + ") says why and what to do"
		}
		if err := r.repo.UnloadBecause(m.Name, why); err != nil {
			r.n.logf(logging.Warning+"cluster: cannot unload model %q, none of whose live versions is ready here: %v", m.Name, err)
		}
		return
	}
	cfg.VersionPolicy = registry.VersionPolicy{Specific: &registry.SpecificPolicy{Versions: keep}}
	if err := r.repo.Load(m.Name, &cfg); err != nil {
		r.n.logf(logging.Warning+"cluster: cannot drop the retired versions of model %q: %v", m.Name, err)
	}
}

// registeredBytes reports whether loaded version lv was loaded from the
// bytes the cluster registered for its number (a number the cluster does
// not hold counts as matching: liveness decides about it).
func registeredBytes(m *fsm.Model, lv *registry.Version) bool {
	for _, v := range m.Versions {
		if v.Number == lv.Number {
			return v.SHA256 == lv.SHA256
		}
	}
	return true
}

// dropRotten unloads the versions of m that were loaded from bytes other
// than the ones the cluster registered, which a file that rotted in place
// gives, removes their files and checks their blobs (Verify removes a
// rotten one), so that the next reconcile fetches them again. It returns
// each such version's reason.
func (r *reconciler) dropRotten(m *fsm.Model, live map[int64]bool) map[int64]string {
	lm := r.repo.Model(m.Name)
	if lm == nil {
		return nil
	}
	var rotten map[int64]string
	for _, lv := range lm.Versions() {
		if registeredBytes(m, lv) {
			continue
		}
		v := m.Version(lv.Number)
		path := filepath.Join(r.repo.Dir(), m.Name, strconv.FormatInt(v.Number, 10), "model.onnx")
		delete(r.hashes, path)
		// Only a file this node placed: one it did not is a local
		// model's, which ensureVersion reports and never touches.
		if st, err := os.Stat(path); err == nil && (r.placed[path] || sameAsBlob(st, r.n.cfg.Blobs.Path(v.SHA256))) {
			os.Remove(path)
		}
		next := "placing it again from the stored blob, which is sound"
		if err := r.n.cfg.Blobs.Verify(v.SHA256, v.Size); err != nil {
			next = "the stored blob failed too (" + err.Error() + "); fetching it from a peer again"
		}
		reason := fmt.Sprintf("the bytes loaded from %s had sha256:%s, not the registered sha256:%s (the file changed on disk); unloaded it, and %s", path, lv.SHA256, v.SHA256, next)
		r.n.logf(logging.Warning+"cluster: model %q version %d: %s", m.Name, v.Number, reason)
		if rotten == nil {
			rotten = make(map[int64]string)
		}
		rotten[v.Number] = reason
	}
	if rotten != nil {
		r.dropNotLive(m, live)
	}
	return rotten
}

// attempt is a reconcile of a model that left something not ready.
type attempt struct {
	key string    // the model's signature and the members'
	at  time.Time // when it began
}

// memberKey sums up the members' addresses.
func memberKey(st *fsm.State) string {
	ids := make([]string, 0, len(st.Members))
	for id, m := range st.Members {
		ids = append(ids, id+"="+m.HTTPAddr)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// signature sums up what of m decides what a node serves: its live
// versions, their digests and the production version with its config.
func signature(m *fsm.Model) string {
	var b strings.Builder
	p := m.Production()
	fmt.Fprintf(&b, "p%d", p)
	for _, v := range m.Versions {
		if v.Stage != fsm.StageRetired {
			fmt.Fprintf(&b, " %d:%s", v.Number, v.SHA256)
		}
	}
	if pv := m.Version(p); pv != nil {
		b.Write(pv.Config)
	}
	return b.String()
}

// loadedAsRecorded reports whether every version this node recorded for
// model is ready in the registry, as it was when recorded (a repository
// API call may have unloaded it since).
func (r *reconciler) loadedAsRecorded(model string) bool {
	loaded := r.repo.Model(model)
	r.mu.Lock()
	defer r.mu.Unlock()
	for v, s := range r.status[model] {
		if s.State != VersionReady || loaded == nil || loaded.Version(v) == nil {
			return false
		}
	}
	return true
}

// loadReasons returns why versions of model failed to load, from the
// registry's index.
func (r *reconciler) loadReasons(model string) map[int64]string {
	out := make(map[int64]string)
	idx, err := r.repo.Index()
	if err != nil {
		return out
	}
	for _, e := range idx {
		if e.Name == model && e.Reason != "" {
			if n, err := strconv.ParseInt(e.Version, 10, 64); err == nil {
				out[n] = e.Reason
			}
		}
	}
	return out
}

// modelConfig is the config.json of m's production version (else its
// newest), which applies to every version of m served here, parsed and as
// registered (nil for none).
func (r *reconciler) modelConfig(m *fsm.Model) (registry.ModelConfig, json.RawMessage, error) {
	var src *fsm.Version
	if p := m.Production(); p != 0 {
		src = m.Version(p)
	}
	for i := len(m.Versions) - 1; src == nil && i >= 0; i-- {
		if m.Versions[i].Stage != fsm.StageRetired {
			src = m.Versions[i]
		}
	}
	if src == nil || len(src.Config) == 0 {
		return registry.ModelConfig{}, nil, nil
	}
	cfg, err := registry.ParseModelConfig(src.Config)
	if err != nil {
		return cfg, nil, fmt.Errorf("model %q version %d: its config: %w", m.Name, src.Number, err)
	}
	return cfg, src.Config, nil
}

// ensureVersion makes DIR/<model>/<version>/model.onnx hold v's bytes:
// from the local blob store, from a file already there with the right
// digest, or pulled from a peer.
func (r *reconciler) ensureVersion(st *fsm.State, model string, v *fsm.Version) error {
	path := filepath.Join(r.repo.Dir(), model, strconv.FormatInt(v.Number, 10), "model.onnx")
	blobs := r.n.cfg.Blobs
	if !blobs.Has(v.SHA256) {
		if !r.fileHolds(path, v) {
			return r.startFetch(st, model, v)
		}
		// Seeded or copied in by hand: adopt it, so peers can pull it.
		if err := r.importFile(path, v); errors.Is(err, diskfree.ErrLow) {
			// Too little disk for a copy: serve the file as it is, and
			// let peers pull from the others.
			return nil
		} else if err != nil {
			return err
		}
	}
	if r.fileHolds(path, v) {
		return nil
	}
	if st, err := os.Stat(path); err == nil && !r.placed[path] && !sameAsBlob(st, blobs.Path(v.SHA256)) {
		// Not this version's bytes, and not put there by this node: a
		// local model of the same name (served from --models outside the
		// cluster), or a file changed by hand. Never overwrite it.
		return fmt.Errorf("%s holds other bytes than the cluster's model %q version %d (sha256:%s), and this node did not put them there: a model of that name is served from this node's --models directory outside the cluster, or the file was changed by hand. Move it out of the repository, and the node places the cluster's version",
			path, model, v.Number, v.SHA256)
	}
	if err := blobs.Link(v.SHA256, path); err != nil {
		return fmt.Errorf("cannot place model %q version %d in the repository: %w", model, v.Number, err)
	}
	r.placed[path] = true
	if r.fileHolds(path, v) {
		return nil
	}
	// The stored blob has rotted: drop it, fetch it again, check again.
	os.Remove(path)
	if err := blobs.Verify(v.SHA256, v.Size); err == nil {
		return fmt.Errorf("model %q version %d: %s does not match sha256:%s although the stored blob does", model, v.Number, path, v.SHA256)
	}
	r.n.logf(logging.Warning+"cluster: the stored blob sha256:%s of model %q version %d failed verification; fetching it again", v.SHA256, model, v.Number)
	return r.startFetch(st, model, v)
}

// sameAsBlob reports whether the file of st is the blob at blobPath (the
// hard link blobs.Link makes): a file this node placed, in this run or an
// earlier one, which it may replace when it rots.
func sameAsBlob(st os.FileInfo, blobPath string) bool {
	b, err := os.Stat(blobPath)
	return err == nil && os.SameFile(st, b)
}

// errFetching means a version's blob is being pulled; the reconciler is
// kicked when the pull ends.
var errFetching = errors.New("fetching its blob from a peer")

// pullError is a pull of a version's blob that failed; the reconciler
// starts another after retryInterval.
type pullError struct {
	msg string
	err error
}

func (e *pullError) Error() string { return e.msg }
func (e *pullError) Unwrap() error { return e.err }

// errNoSource is a pull with no other member to pull from.
var errNoSource = errors.New("no other member to fetch it from")

// comesAgain reports whether production's failure err to come to this
// node is one it may get over by itself: a pull from members that failed
// and is tried again; not one with no member to pull from, nor one for
// want of disk space, which a retired stand-in's bytes may be holding.
func comesAgain(err error) bool {
	var pe *pullError
	return errors.As(err, &pe) && !errors.Is(err, errNoSource) && !errors.Is(err, diskfree.ErrLow) && !diskfree.IsFull(err)
}

// maxFetches bounds the blob pulls a node runs at once.
const maxFetches = 2

// pull is a blob pull, running or ended in failure.
type pull struct {
	running bool
	err     error
	ended   time.Time
	members string // memberKey when it started: new members retry at once
}

// startFetch starts pulling v's blob in the background, unless a pull of
// it runs already, failed less than a retry interval ago (that error is
// returned), or maxFetches run (it waits for a later pass). It returns
// errFetching while the blob is on its way, so that the other versions
// and models are not held up by a large pull.
func (r *reconciler) startFetch(st *fsm.State, model string, v *fsm.Version) error {
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	p := r.pulls[v.SHA256]
	members := memberKey(st)
	switch {
	case p != nil && p.running:
		return errFetching
	case p != nil && time.Since(p.ended) < retryInterval*4/5 && p.members == members:
		// The slack of reconcileModel's own wait: a pull ends between
		// two ticks, and the next tick comes less than retryInterval after.
		return &pullError{msg: fmt.Sprintf("cannot fetch model %q version %d (sha256:%s): %v", model, v.Number, v.SHA256, p.err), err: p.err}
	}
	running := 0
	for _, p := range r.pulls {
		if p.running {
			running++
		}
	}
	if running >= maxFetches {
		return fmt.Errorf("%w (waiting: %d pulls run already)", errFetching, running)
	}
	p = &pull{running: true, members: members}
	r.pulls[v.SHA256] = p
	r.n.goFunc(func() {
		err := r.fetch(r.n.ctx, st, v)
		r.n.m.fetched(err)
		r.pullMu.Lock()
		p.running, p.err, p.ended = false, err, time.Now()
		if err == nil {
			delete(r.pulls, v.SHA256)
		}
		r.pullMu.Unlock()
		select {
		case r.kick <- struct{}{}:
		default:
		}
	})
	return errFetching
}

// removeRetired deletes the repository files of m's retired versions, so
// that a poll of the repository cannot load them again. Only versions the
// cluster holds are touched.
func (r *reconciler) removeRetired(m *fsm.Model) {
	for _, v := range m.Versions {
		if v.Stage != fsm.StageRetired || r.standing[m.Name] == v.Number {
			continue
		}
		dir := filepath.Join(r.repo.Dir(), m.Name, strconv.FormatInt(v.Number, 10))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if path := filepath.Join(dir, "model.onnx"); !r.placed[path] && !r.fileHolds(path, v) {
			// Not the retired version's file: another model's of the same
			// name (see ensureVersion). Leave it.
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			r.n.logf(logging.Warning+"cluster: cannot remove retired model %q version %d from the repository: %v", m.Name, v.Number, err)
		}
	}
}

// fileHolds reports whether path holds v's bytes (hashing it at most once
// per size and modification time).
func (r *reconciler) fileHolds(path string, v *fsm.Version) bool {
	st, err := os.Stat(path)
	if err != nil || st.Size() != v.Size {
		return false
	}
	if h, ok := r.hashes[path]; ok && h.size == st.Size() && h.modTime.Equal(st.ModTime()) {
		return h.hex == v.SHA256
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return false
	}
	h := fileHash{size: st.Size(), modTime: st.ModTime(), hex: hex.EncodeToString(sum.Sum(nil))}
	r.hashes[path] = h
	return h.hex == v.SHA256
}

func (r *reconciler) importFile(path string, v *fsm.Version) error {
	if err := r.n.cfg.Disk.Check(v.Size); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.n.cfg.Blobs.PutExpect(f, v.SHA256, v.Size)
}

// fetch pulls v's blob from the node that stored it first, then from the
// other members, verifying size and digest while streaming. It gives up
// once ctx ends (the reconciler's pulls pass the node's, which Stop
// cancels; a backup's, its caller's too): the pull in progress stops and
// its temp file goes, and no other member is tried.
func (r *reconciler) fetch(ctx context.Context, st *fsm.State, v *fsm.Version) error {
	var order []*fsm.Member
	if m := st.Members[v.Origin]; m != nil && m.ID != r.n.cfg.NodeID {
		order = append(order, m)
	}
	ids := make([]string, 0, len(st.Members))
	for id := range st.Members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id != v.Origin && id != r.n.cfg.NodeID {
			order = append(order, st.Members[id])
		}
	}
	if len(order) == 0 {
		return errNoSource
	}
	if err := r.n.cfg.Disk.Check(v.Size); err != nil {
		return err
	}
	var errs []error
	for _, m := range order {
		err := r.fetchFrom(ctx, m.HTTPAddr, v)
		if err == nil {
			if len(errs) == 0 {
				r.n.logf("cluster: fetched sha256:%s (%d bytes) from %s", v.SHA256, v.Size, m.ID)
			} else {
				// One that served other bytes holds a damaged copy,
				// which nothing else reports; a restart of that
				// member checks its blobs and fetches them again.
				r.n.logf(logging.Warning+"cluster: fetched sha256:%s (%d bytes) from %s, after %d other member(s) failed (%v); one that served other bytes holds a damaged copy: restart it to have it fetched again", v.SHA256, v.Size, m.ID, len(errs), errors.Join(errs...))
			}
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", m.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func (r *reconciler) fetchFrom(ctx context.Context, base string, v *fsm.Version) error {
	// Allow 1 MB/s at least, and never less than 30 s.
	timeout := 30*time.Second + time.Duration(v.Size/(1<<20))*time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, _, err := r.n.peers.openBlob(ctx, base, v.SHA256)
	if err != nil {
		return err
	}
	defer body.Close()
	return r.n.cfg.Blobs.PutExpect(body, v.SHA256, v.Size)
}
