package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
)

// Node is one member of the control plane. Its methods are safe for
// concurrent use.
type Node struct {
	cfg   Config
	logf  func(format string, args ...any)
	fsm   *fsm.FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	peers *peerClient
	rec   *reconciler
	// heldMu protects held, the blobs kept from sweeps (holdBlob).
	heldMu sync.Mutex
	held   map[string]int
	// trialLoads holds a token for each trial load running (trialLoad).
	trialLoads chan struct{}
	// bootstrapped is set by open when this start created the group;
	// existing when it found raft state on disk; lone when that state
	// makes this node its group's only server (a restore, a recovery, or
	// a group of its own that never grew).
	bootstrapped, existing, lone bool
	// grew is set once this node, leading, adds a member (JoinLocal):
	// only then may a group this start bootstrapped have another leader
	// (see watchTakeover).
	grew atomic.Bool
	// takeoverLooks counts watchTakeover's looks while another node led,
	// for tests to wait on.
	takeoverLooks atomic.Uint64
	// announced is set once announce has made sure the group holds this
	// node (see watchRemoval).
	announced atomic.Bool
	// caughtUp and settled are set by settle, for a node started fresh
	// with Config.Join (see Settling); settled is set at Start for any
	// other.
	caughtUp, settled atomic.Bool
	// seeding is true while a node that bootstraps a group with
	// Config.RegisterLocal registers its local models (see Settling).
	seeding atomic.Bool
	// dropped is set once the group refused this node because a recovery
	// dropped it (droppedBy).
	dropped atomic.Bool
	// dropOnce makes droppedBy and takeOver act once.
	dropOnce sync.Once
	// dropWhy, when set, says why a dropped node's raft is off other than
	// a recovery (takeOver, or a mark on disk that says so).
	dropWhy atomic.Pointer[string]
	// replayTo and replayTerm are the index and term of the last command
	// in the log this start found on disk (0 for none), and logs that
	// log; set by open, read-only after. The reconciler waits for the
	// state machine to reach it (catchUp).
	replayTo, replayTerm uint64
	// restored names the replicated models served.json lists, which the
	// node loaded from disk before the control plane started (its state
	// machine may not list them until raft has replayed its log); set by
	// open, read-only after.
	restored []string
	// replayed is closed once the state machine has caught up with the
	// log on disk (reconciler.catchUp).
	replayed chan struct{}
	logs     raft.LogStore
	// snaps is raft's snapshot store, which a backup reads when raft has
	// nothing new to snapshot (see snapshotForBackup).
	snaps raft.SnapshotStore
	// savedPeers is what savePeers wrote last; only the reconciler's
	// goroutine uses it.
	savedPeers []string
	// savedProduction is what saveProduction wrote last; only the
	// reconciler's goroutine uses it.
	savedProduction map[string]int64
	// savedStandIns is what saveProduction wrote last to standInsFile
	// (nil: nothing yet); only the reconciler's goroutine uses it.
	savedStandIns map[string]standInRecord
	// savedSplits is what saveSplits wrote last; only the reconciler's
	// goroutine uses it.
	savedSplits map[string]split
	// savedServed is what saveServed wrote last; only the reconciler's
	// goroutine uses it.
	savedServed map[string]servedModel
	// savedCounts is what saveCounts wrote last; only saveCountsLoop's
	// goroutine uses it.
	savedCounts []byte
	// countsFailing is whether saveCounts' last write failed (logged
	// once); only saveCountsLoop's goroutine uses it.
	countsFailing bool
	m             nodeMetrics
	// routeMu serializes route.
	routeMu sync.Mutex
	// backingUp is set while a Backup is open (one at a time).
	backingUp atomic.Bool
	// joinMu serializes JoinLocal and removeRecords, so that a record a
	// recovery left to remove is never one a join has just written.
	joinMu sync.Mutex

	// beats wraps the raft transport and says how long each member has
	// not answered this node's heartbeats while it leads; nil only if
	// the transport lacks what it wraps (none here does).
	beats *heartbeats
	// health is the node's view of unreachable members (watchPeers,
	// probePeers).
	health peerHealth
	// leaderView caches what the leader last said of the members'
	// reachability (leaderUnreachable).
	leaderView leaderView

	// votersMu serializes fillVoters and guards unanswered and lostLog.
	votersMu sync.Mutex
	// lostLog holds, on the leader, the voters that asked to join on
	// empty raft state (they lost their log) while the group could not
	// commit their removal, by their raft address: fillVoters removes
	// each once it can (see JoinLocal).
	lostLog map[raft.ServerID]raft.ServerAddress
	// unanswered holds the non-voters that fillVoters found unreachable
	// last time, so that it logs each once until it answers again.
	unanswered map[raft.ServerID]bool

	// stop is closed, and ctx canceled, when Stop begins: background work
	// and calls in progress give up.
	stop     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Start opens the raft state in cfg.DataDir and starts the node (call
// RestoreProduction first, before the repository loads): on a first
// start it bootstraps a one-voter group, or joins cfg.Join; on later
// starts it rejoins the group recorded there. It returns once raft runs;
// the reconciler and the join (retried until it succeeds or Stop) go on in
// the background.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		logf:       cfg.Logf,
		fsm:        fsm.New(),
		peers:      newPeerClient(cfg.Token, cfg.TLS),
		held:       make(map[string]int),
		trialLoads: make(chan struct{}, maxTrialLoads),
		stop:       make(chan struct{}),
		replayed:   make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.logf == nil {
		n.logf = log.Printf
	}
	if err := n.open(); err != nil {
		if n.raft != nil {
			n.raft.Shutdown().Error()
		}
		n.cancel()
		n.closeStores()
		return nil, err
	}
	n.rec = newReconciler(n)
	n.m = newNodeMetrics(n)
	n.goFunc(n.announce)
	n.goFunc(n.voterLoop)
	n.goFunc(n.watchPeers)
	n.goFunc(n.logSilence)
	n.goFunc(n.refreshLeaderView)
	n.goFunc(n.probePeers)
	n.goFunc(n.watchRemoval)
	n.goFunc(n.saveCountsLoop)
	if n.joining() {
		n.goFunc(n.settle)
	} else {
		n.settled.Store(true)
	}
	if n.bootstrapped || n.lone || !n.existing && cfg.Join != "" {
		n.goFunc(n.watchTakeover)
	}
	if n.bootstrapped && cfg.RegisterLocal {
		// The reconciler starts once the local models are registered, so
		// that it never sees a model half registered (and unloads the
		// versions not registered yet).
		n.seeding.Store(true)
		n.goFunc(func() {
			n.seed()
			n.seeding.Store(false)
			n.rec.loop()
		})
	} else {
		if cfg.RegisterLocal && n.existing {
			n.logf(logging.Warning+"cluster: --register-local-models acts only when a node bootstraps a new cluster; %s holds one already, so the models in the repository are not registered now (upload them with \"infergate models upload\", or start on a new --data)", cfg.DataDir)
		}
		n.goFunc(n.rec.loop)
	}
	return n, nil
}

// open creates the stores, the transport and raft, and bootstraps when
// this is a fresh lone node.
func (n *Node) open() error {
	dir := n.cfg.DataDir
	// Durably: raft state written into a directory whose own entry a
	// crash lost would make this node bootstrap afresh.
	if err := durable.MakeDirs(dir); err != nil {
		return fmt.Errorf("cluster: cannot create %s: %w", dir, err)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Info,
		Output: newLogWriter(n.logf),
		// n.logf stamps the time; a second stamp in another format
		// would only make the line longer.
		DisableTime: true,
	})
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
		trans  raft.Transport
	)
	// A node its group refused as dropped (droppedBy) takes no part in
	// raft on this state again: it never listens, votes or campaigns, so
	// that it cannot lead other dropped nodes, nor a recovered group that
	// would follow a higher term.
	mark, err := os.ReadFile(filepath.Join(dir, droppedFile))
	dropped := err == nil
	if why := strings.TrimSpace(string(mark)); why != "" {
		n.dropWhy.Store(&why)
	}
	if n.cfg.inmem != nil {
		mem := raft.NewInmemStore()
		logs, stable, snaps, trans = mem, mem, raft.NewInmemSnapshotStore(), n.cfg.inmem
	} else {
		path := filepath.Join(dir, "raft.db")
		if err := checkRaftDB(path); err != nil {
			return n.damagedError(path, dir, err)
		}
		store, err := raftboltdb.New(raftboltdb.Options{Path: path})
		if err != nil {
			return fmt.Errorf("cluster: cannot open the raft log %s: %w", path, err)
		}
		n.store = store
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
		if err != nil {
			return fmt.Errorf("cluster: cannot open the snapshot store in %s: %w", dir, err)
		}
		// The entries of raft.db and of the snapshot directory, which a
		// first start creates: a crash that lost them would lose the log
		// and what it acknowledged.
		if err := durable.SyncDir(dir); err != nil {
			return fmt.Errorf("cluster: cannot sync %s: %w", dir, err)
		}
		addr, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAddr)
		if err != nil {
			return fmt.Errorf("cluster: raft address %q: %w", n.cfg.RaftAddr, err)
		}
		if err := checkSnapshots(dir, fss, store); err != nil {
			return n.snapshotsError(dir, err)
		}
		logs, stable, snaps = store, store, fss
		var nt *raft.NetworkTransport
		switch {
		case dropped:
			// Connected to nothing: no listener, no peer.
			_, trans = raft.NewInmemTransport(raft.ServerAddress(n.cfg.RaftAddr))
		case n.cfg.TLS != nil:
			var layer *tlsStreamLayer
			layer, err = newTLSStreamLayer(n.cfg.RaftAddr, addr, n.cfg.TLS)
			if err == nil {
				nt = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: layer, MaxPool: 3, Timeout: 5 * time.Second, Logger: logger})
			}
		default:
			nt, err = raft.NewTCPTransportWithLogger(n.cfg.RaftAddr, addr, 3, 5*time.Second, logger)
		}
		if err != nil {
			return fmt.Errorf("cluster: cannot listen for raft on %s: %w", n.cfg.RaftAddr, err)
		}
		if nt != nil {
			n.trans, trans = nt, nt
		}
	}
	if rt, ok := trans.(raftTransport); ok {
		n.beats = newHeartbeats(rt)
		trans = n.beats
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	if n.cfg.trailingLogs > 0 {
		rc.TrailingLogs = n.cfg.trailingLogs
	}
	rc.Logger = logger

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("cluster: cannot read the raft state in %s: %w", dir, err)
	}
	n.logs, n.snaps, n.existing = logs, snaps, existing
	if existing {
		n.replayTo, n.replayTerm = lastCommand(logs)
		// serve logged what is wrong with the file, if anything.
		restored, _ := RestoredLoads(n.cfg.DataDir)
		n.restored = slices.Sorted(maps.Keys(restored))
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, trans)
	if err != nil {
		return fmt.Errorf("cluster: cannot start raft: %w", err)
	}
	n.raft = r
	switch {
	case dropped:
		n.dropped.Store(true)
		if err := r.Shutdown().Error(); err != nil {
			return fmt.Errorf("cluster: cannot stop raft on a dropped node: %w", err)
		}
		if why := n.dropWhy.Load(); why != nil {
			n.logf(logging.Warning+"cluster: raft stays off on this state (%s says so): %s", filepath.Join(dir, droppedFile), *why)
			break
		}
		n.logf(logging.Error+"cluster: node %s was dropped from its group when the group was recovered (%s says so); raft stays off on this state, and the node serves what it had and reports not ready: stop it, move %s aside, and start it again with --join", n.cfg.NodeID, filepath.Join(dir, droppedFile), dir)
	case existing:
		n.logf("cluster: node %s rejoining its group from %s", n.cfg.NodeID, dir)
		if f := r.GetConfiguration(); f.Error() == nil {
			servers := f.Configuration().Servers
			n.lone = len(servers) == 1 && servers[0].ID == rc.LocalID
		}
	case n.cfg.Join == "":
		n.logf("cluster: node %s bootstrapping a new one-voter group in %s", n.cfg.NodeID, dir)
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter,
		}}})
		if err := f.Error(); errors.Is(err, raft.ErrCantBootstrap) {
			// Raft took entries from a leader between listening and
			// bootstrapping: a group replicates to this raft address,
			// which watchTakeover says once the entries show whose.
			n.logf(logging.Warning+"cluster: node %s received another group's raft entries before it could bootstrap", n.cfg.NodeID)
		} else if err != nil {
			return fmt.Errorf("cluster: cannot bootstrap: %w", err)
		}
		n.bootstrapped = true
	default:
		n.logf("cluster: node %s joining through %s", n.cfg.NodeID, n.cfg.Join)
	}
	return nil
}

// lastCommand returns the index and term of the last command in logs, or
// 0 when the entries after the last snapshot hold none: what the state
// machine has to apply again before its state is as new as when the node
// stopped.
func lastCommand(logs raft.LogStore) (index, term uint64) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, 0
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, 0
	}
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, 0
		}
		if l.Type == raft.LogCommand {
			return i, l.Term
		}
	}
	return 0, 0
}

// replayDropped reports whether the log no longer holds the command
// catchUp waits for: a leader replaced it with its own entries (it was
// never committed), or a snapshot took it in.
func (n *Node) replayDropped() bool {
	var l raft.Log
	return n.logs.GetLog(n.replayTo, &l) != nil || l.Term != n.replayTerm
}

// Stop stops the reconciler and raft and closes the stores. It is
// idempotent. A stopped node's data directory can be started again.
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() {
		close(n.stop)
		n.cancel()
		n.wg.Wait()
		if n.raft != nil {
			n.HandOver()
			err = n.raft.Shutdown().Error()
		}
		n.closeStores()
		n.peers.http.CloseIdleConnections()
		n.m.unregister()
	})
	return err
}

// HandOver transfers leadership to another voter if this node leads, so
// that writes pause for one round trip instead of an election timeout.
// Call it when shutdown begins, while the node still serves peers; Stop
// calls it too. Failing is harmless: the others elect a leader on their
// own.
func (n *Node) HandOver() {
	if n.raft.State() != raft.Leader {
		return
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return
	}
	if err := n.transferLeadership(); err != nil {
		n.logf(logging.Warning+"cluster: could not hand leadership over before stopping: %v", err)
		return
	}
	n.logf("cluster: handed leadership over before stopping")
}

// transferLeadership hands this leader's leadership to another voter that
// answers, trying each in turn. Raft's own pick is the voter furthest
// along, the first in the configuration on a tie, and that may be one
// that is down: the transfer to it fails whatever the others could do.
func (n *Node) transferLeadership() error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var errs []error
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) || s.Suffrage != raft.Voter {
			continue
		}
		if n.unreachable(s.ID) {
			errs = append(errs, fmt.Errorf("voter %s does not answer", s.ID))
			continue
		}
		err := n.raft.LeadershipTransferToServer(s.ID, s.Address).Error()
		if err == nil {
			return nil
		}
		if n.raft.State() != raft.Leader {
			// It went elsewhere all the same (a transfer that timed
			// out after the target won): the callers' retry goes
			// through whoever leads now.
			return nil
		}
		errs = append(errs, fmt.Errorf("to %s: %w", s.ID, err))
	}
	if len(errs) == 0 {
		return errors.New("there is no other voter")
	}
	return errors.Join(errs...)
}

func (n *Node) closeStores() {
	if n.trans != nil {
		n.trans.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// goFunc runs f on a goroutine that Stop waits for.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// FSM returns the node's state machine: State for local reads, Changed
// to follow it.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's id and HTTP base URL as this node knows
// them; empty when none is known (or its member record has not arrived).
func (n *Node) Leader() (id, httpAddr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	st, _ := n.fsm.State()
	if m := st.Members[string(lid)]; m != nil {
		return string(lid), m.HTTPAddr
	}
	return string(lid), ""
}

// Staleness says how current this node's state is: the last applied log
// index, whether a leader is known, and how long since the leader was
// last heard from (0 on the leader itself).
type Staleness struct {
	Index       uint64
	KnownLeader bool
	LastContact time.Duration
}

// Staleness returns the node's current Staleness.
func (n *Node) Staleness() Staleness {
	s := Staleness{Index: n.fsm.Applied()}
	_, lid := n.raft.LeaderWithID()
	s.KnownLeader = lid != ""
	if n.raft.State() != raft.Leader {
		if t := n.raft.LastContact(); !t.IsZero() {
			s.LastContact = time.Since(t)
		} else {
			s.LastContact = -1
		}
	}
	return s
}

// Apply applies c through raft from any node: on the leader directly,
// elsewhere by forwarding it to the leader. With no leader it holds for
// Config.HoldTimeout, then fails with ErrNoLeader. Errors of the command
// itself wrap fsm.ErrInvalid, fsm.ErrNotFound or fsm.ErrConflict.
func (n *Node) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var res *fsm.Result
	forwarded := false
	err := n.withLeader(ctx, func(ctx context.Context, leaderURL string) error {
		var err error
		if leaderURL == "" {
			res, err = n.ApplyLocal(c)
		} else {
			if want := needsProtocol(&c); want > 0 {
				// The leader checks again; asked here too, a leader of
				// an earlier release, which refuses the op as unknown,
				// is named as the member to upgrade.
				if err := n.checkReleases(ctx, &c, want); err != nil {
					return err
				}
			}
			forwarded = true
			res, err = n.peers.apply(ctx, leaderURL, c)
		}
		return err
	})
	if err != nil {
		return res, err
	}
	if forwarded {
		if res.Index == 0 {
			return res, nil // a leader of an earlier release
		}
		// A client that writes through this node and then asks it sees
		// its write: wait (briefly; the write is done either way) for
		// this node's state machine to apply it.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.waitApplied(wctx, res.Index)
		cancel()
		if err != nil {
			return res, nil
		}
	}
	// Its state machine holds every write up to this one: route by it
	// now, without waiting for routeLoop.
	n.route()
	return res, nil
}

// ApplyLocal applies c if this node leads, else fails with ErrNotLeader.
// The admin API calls it for writes forwarded by other nodes.
func (n *Node) ApplyLocal(c fsm.Command) (*fsm.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := c.Encode()
	if err != nil {
		return nil, err
	}
	if want := needsProtocol(&c); want > 0 {
		// Under joinMu: no member of an earlier release joins between
		// the check and the write.
		n.joinMu.Lock()
		defer n.joinMu.Unlock()
		if err := n.checkReleases(context.Background(), &c, want); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		err = raftError(err)
		n.m.applied(start, err)
		return nil, err
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		panic(fmt.Sprintf("BUG: the FSM answered %T", f.Response()))
	}
	n.m.applied(start, res.Err)
	if res.Err != nil {
		return nil, res.Err
	}
	res.Index = f.Index()
	return res, nil
}

// raftError maps raft's errors on the write path to ours: ErrNotLeader
// when nothing was applied, ErrUnknownOutcome when the entry may have
// committed.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore), errors.Is(err, raft.ErrRaftShutdown):
		// Shutdown too: raft answers it for entries that may have
		// committed already.
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return err
}

// withLeader calls do with the leader's URL ("" when this node leads),
// retrying while there is none or while do fails with ErrNotLeader or a
// connection that never reached the leader, until Config.HoldTimeout.
func (n *Node) withLeader(ctx context.Context, do func(ctx context.Context, leaderURL string) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HoldTimeout)
	defer cancel()
	var last error
	for {
		id, url := n.Leader()
		tried := true
		// Each try has its own deadline: a write sent late in the hold
		// must not be cut short (and its outcome made unknown) by it.
		try, cancelTry := context.WithTimeout(parent, n.cfg.ApplyTimeout+time.Second)
		switch {
		case id == n.cfg.NodeID:
			last = do(try, "")
		case url != "":
			last = do(try, url)
		default:
			tried = false // no leader known (or not its address yet)
		}
		cancelTry()
		if tried && (last == nil || !errors.Is(last, ErrNotLeader) && !errors.Is(last, errUnreached)) {
			return last
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w within %s (last try: %v)%s", ErrNoLeader, n.cfg.HoldTimeout, last, noLeaderHint)
			}
			return fmt.Errorf("%w within %s%s", ErrNoLeader, n.cfg.HoldTimeout, noLeaderHint)
		case <-n.stop:
			return ErrStopped
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ReadIndex waits until this node has applied every write the leader had
// committed when ReadIndex was called, so that a read of the local state
// that follows is linearizable. The leader confirms it still leads first.
func (n *Node) ReadIndex(ctx context.Context) error {
	var index uint64
	err := n.withLeader(ctx, func(ctx context.Context, leaderURL string) error {
		var err error
		if leaderURL == "" {
			index, err = n.LeaderIndex()
		} else {
			index, err = n.peers.readIndex(ctx, leaderURL)
		}
		if errors.Is(err, ErrUnknownOutcome) {
			// A read changes nothing: whatever broke, try again.
			err = fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return err
	})
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, index)
}

// WaitReplayed waits until this node's state is the group's present as
// far as it can tell: it has replayed the raft log it held when it
// started, registered its local models (Config.RegisterLocal, on the
// start that bootstraps), and, on a node that joined on a fresh data
// directory, caught up with the leader's state once (Settling). Before,
// its state is the group's past (a model not registered yet, an old
// production, nothing at all), which a read must not report as the
// present. ErrBehind, saying what it waits for, once ctx ends first;
// ErrDropped at once on a node its group dropped, whose raft stays off.
func (n *Node) WaitReplayed(ctx context.Context) error {
	var tick <-chan time.Time
	for {
		if n.dropped.Load() {
			return fmt.Errorf("%w: %s; its view of the cluster is what it had then: ask a member of the group", ErrDropped, n.droppedReason())
		}
		replayed := n.replayed
		select {
		case <-n.replayed:
			if n.settled.Load() || n.caughtUp.Load() {
				return nil
			}
			// Joining: settle says when it has caught up.
			replayed = nil
			if tick == nil {
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				tick = t.C
			}
		default:
		}
		select {
		case <-replayed:
		case <-tick:
		case <-n.stop:
			return ErrStopped
		case <-ctx.Done():
			return n.notCurrent()
		}
	}
}

// notCurrent is WaitReplayed's ErrBehind: what the node waits for.
func (n *Node) notCurrent() error {
	const then = "until then its view of the cluster is out of date: ask again in a moment, or ask another member"
	select {
	case <-n.replayed:
		if !n.announced.Load() {
			return fmt.Errorf("%w: it has not joined its cluster yet, through %s (the log says what holds it up); %s", ErrBehind, n.cfg.Join, then)
		}
		return fmt.Errorf("%w: it joined its cluster and is catching up with its state (at index %d); %s", ErrBehind, n.fsm.Applied(), then)
	default:
	}
	if n.seeding.Load() {
		return fmt.Errorf("%w: it is registering the models of its --models directory in the cluster it started (--register-local-models); %s", ErrBehind, then)
	}
	return fmt.Errorf("%w: it restarted and is replaying its raft log (at index %d of the %d it held); %s", ErrBehind, n.fsm.Applied(), n.replayTo, then)
}

// waitApplied waits until this node's state machine has applied index:
// ErrBehind once ctx ends first.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for n.fsm.Applied() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: it had applied index %d of the leader's %d when the wait ended (%w)", ErrBehind, n.fsm.Applied(), index, ctx.Err())
		case <-n.stop:
			return ErrStopped
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// LeaderIndex confirms this node leads (a round of heartbeats), waits
// until its state machine has processed every committed entry (a raft
// barrier, one log write), and returns the index of the last command
// processed: a node whose state machine has reached it holds every write
// acknowledged before the call. ErrNotLeader when it does not lead.
func (n *Node) LeaderIndex() (uint64, error) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, readError(err)
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		return 0, readError(err)
	}
	return n.fsm.Applied(), nil
}

// readError maps raft's errors on the read path: a read changes nothing,
// so whatever failed can be retried.
func readError(err error) error {
	if errors.Is(err, raft.ErrRaftShutdown) {
		return ErrStopped
	}
	return fmt.Errorf("%w: %w", ErrNotLeader, err)
}

// noLeaderHint ends the error of a write that found no leader: an
// election takes about a second, so a longer wait means most voters are
// gone.
const noLeaderHint = "; an election takes about a second, so if this lasts, most voters are down: bring them back, or, if they are gone for good, see \"infergate cluster recover --help\""

// logWriter feeds hclog's lines to the node's logger, each distinct line
// (but for its numbers, see loglimit.Shape) at most once a minute: a group without a quorum repeats the same few
// lines of its election several times a second for as long as it lasts.
// A line let through again says how many times it was held back. hclog's
// level ("[WARN]  raft: ...") becomes the line's (logging.Warning).
type logWriter struct {
	logf  func(format string, args ...any)
	limit *loglimit.Limiter[string]
}

func newLogWriter(logf func(format string, args ...any)) logWriter {
	return logWriter{logf: logf, limit: loglimit.New[string](time.Minute, 256)}
}

func (w logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	if more, ok := w.limit.Allow(loglimit.Shape(line)); ok {
		format := "%s%s"
		for tag, level := range hclogLevels {
			if rest, ok := strings.CutPrefix(line, tag); ok {
				line, format = strings.TrimLeft(rest, " "), level+format
				break
			}
		}
		switch {
		case strings.HasPrefix(format, logging.Error) && peerTrouble(line):
			format = logging.Warning + strings.TrimPrefix(format, logging.Error)
		case strings.HasPrefix(format, logging.Warning) && firstElection(line):
			format = strings.TrimPrefix(format, logging.Warning)
		}
		w.logf(format, line, more)
	}
	return len(p), nil
}

var _ io.Writer = logWriter{}

// peerTrouble reports whether line, an hclog ERROR line of raft's, is
// about reaching a peer (appendEntries, heartbeats, votes, snapshots sent
// to it): a member restarting or down, which a rolling restart brings
// every time, is a WARNING here, not an ERROR of this node's own that an
// alert on ERROR lines would page for. raft's other errors (its log,
// its snapshots on this node) stay ERROR.
func peerTrouble(line string) bool {
	for _, s := range [...]string{"failed to appendEntries to", "failed to heartbeat to", "failed to make requestVote RPC",
		"failed to pipeline appendEntries", "failed to send snapshot to", "failed to start pipeline replication to",
		"peer has newer term",
		// Sending a snapshot to a peer (replication.go), not this
		// node's install of one it received ("... snapshot: error=").
		"failed to install snapshot: peer="} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// firstElection reports whether line, an hclog WARN line of raft's, is
// the election a node starts when it has heard from no leader since it
// started: every start of a lone node, and of a node whose group has no
// leader yet, begins with it, so it is INFO here. The same line naming
// the leader that went quiet stays WARNING.
func firstElection(line string) bool {
	return strings.Contains(line, "heartbeat timeout reached, starting election") &&
		strings.HasSuffix(line, "last-leader-addr= last-leader-id=")
}

// hclogLevels are hclog's level tags at the start of its lines, and the
// format prefix of each for the node's logger (logging.Warning, ...).
var hclogLevels = map[string]string{
	"[ERROR]": logging.Error,
	"[WARN]":  logging.Warning,
	"[INFO]":  "",
	"[DEBUG]": "",
	"[TRACE]": "",
}

// errUnreached marks a peer call that failed before the peer could have
// acted on it (connection refused, unknown host), so it is safe to retry.
var errUnreached = errors.New("peer not reached")
