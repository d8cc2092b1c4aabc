package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
)

// Member is a member as GET /v1/cluster reports it: its record in the
// state machine and its place in raft's configuration.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Voter    bool   `json:"voter"`
	// State is "leader", "follower" (a voter), "nonvoter", "unreachable"
	// (Node.unreachable: on the leader, it has answered none of its
	// heartbeats for a while; on a node that knows no leader, it did not
	// answer the last probe), "unknown" for a record raft's
	// configuration does not hold (yet), or "dropped" for a node a
	// recovery dropped, which may join again only on fresh raft state.
	State string `json:"state"`
	// SilentMS is, for an unreachable member on the leader, how long it
	// has answered none of the leader's heartbeats, in milliseconds;
	// absent otherwise.
	SilentMS int64 `json:"silent_ms,omitempty"`
}

// Members returns the leader's id and the members, sorted by id, as this
// node knows them.
func (n *Node) Members() (leader string, members []Member, err error) {
	if n.dropped.Load() {
		return "", nil, fmt.Errorf("%w: %s: ask a member of the group", ErrDropped, n.droppedReason())
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", nil, raftError(err)
	}
	_, lid := n.raft.LeaderWithID()
	st, _ := n.fsm.State()
	seen := make(map[string]bool)
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		seen[id] = true
		m := Member{ID: id, RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if rec := st.Members[id]; rec != nil {
			m.HTTPAddr = rec.HTTPAddr
		}
		switch {
		case s.ID == lid:
			m.State = "leader"
		case n.unreachable(s.ID):
			m.State = "unreachable"
			if n.beats != nil && n.raft.State() == raft.Leader {
				m.SilentMS = n.beats.silentFor(s.ID, time.Now()).Milliseconds()
			}
		case m.Voter:
			m.State = "follower"
		default:
			m.State = "nonvoter"
		}
		members = append(members, m)
	}
	for id, rec := range st.Members {
		if !seen[id] {
			members = append(members, Member{ID: id, RaftAddr: rec.RaftAddr, HTTPAddr: rec.HTTPAddr, State: "unknown"})
			seen[id] = true
		}
	}
	for id := range st.Dropped {
		if !seen[id] {
			members = append(members, Member{ID: id, State: "dropped"})
		}
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return string(lid), members, nil
}

// MembersFromLeader is Members, but on a follower of a leader each
// member's reachability is the leader's (leaderUnreachable): a member
// the leader lists unreachable is listed so, with its silent_ms. Only the
// leader hears from every member, so a follower's own view lists a hung
// member as a follower. Where the leader does not answer within
// leaderViewTimeout it is this node's own view, as Members.
func (n *Node) MembersFromLeader(ctx context.Context) (leader string, members []Member, err error) {
	leader, members, err = n.Members()
	if err != nil || leader == n.cfg.NodeID || ctx.Err() != nil {
		return leader, members, err
	}
	silent, ok := n.leaderUnreachable()
	if !ok {
		return leader, members, nil
	}
	for i := range members {
		m := &members[i]
		if ms, ok := silent[m.ID]; ok && (m.State == "follower" || m.State == "nonvoter") {
			m.State, m.SilentMS = "unreachable", ms
		}
	}
	return leader, members, nil
}

// Join adds m to the group from any node (forwarded to the leader). The
// leader adds it as a voter while the group has fewer than
// Config.MaxVoters, else as a non-voter, then records its addresses. A
// node that is already a member with the same address is left as it is,
// so a retried join is harmless.
func (n *Node) Join(ctx context.Context, m fsm.Member) error {
	if m.ID == "" || m.RaftAddr == "" {
		return fmt.Errorf("%w: a join needs the node's id and raft address", fsm.ErrInvalid)
	}
	if err := checkBaseURL(m.HTTPAddr); err != nil {
		return fmt.Errorf("%w: the joining node's http address: %w", fsm.ErrInvalid, err)
	}
	return n.withLeader(ctx, func(ctx context.Context, leaderURL string) error {
		if leaderURL != "" {
			return n.peers.join(ctx, leaderURL, m)
		}
		return n.JoinLocal(m)
	})
}

// JoinLocal does Join's work on the leader; ErrNotLeader elsewhere.
func (n *Node) JoinLocal(m fsm.Member) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftError(err)
	}
	st, _ := n.fsm.State()
	if len(st.Dropped) > 0 && !m.KnowsDropped {
		return fmt.Errorf("%w: node %q runs an earlier release, which cannot read this group's state since a recovery (its snapshots hold the members the recovery dropped); upgrade it, then start it again", fsm.ErrConflict, m.ID)
	}
	if m.Protocol < Protocol {
		// The state shows a removal until the model is uploaded again;
		// the log holds it until a snapshot takes it in, and a joining
		// node may replay it from there.
		at, err := logRemoval(n.logs)
		if err != nil {
			return fmt.Errorf("cannot tell whether node %q of an earlier release may join: %w", m.ID, err)
		}
		if at > 0 || anyRemoved(st) {
			return fmt.Errorf("%w: node %q runs an earlier release, which cannot apply this cluster's model removals (its raft log or a later write holds one, and it would go on serving the model); upgrade it, then start it again", fsm.ErrConflict, m.ID)
		}
	}
	if st.Dropped[m.ID] && !m.Fresh {
		return fmt.Errorf("%w: node %q was dropped when its group was recovered, and its raft log may hold entries the group does not have; stop it, move its --data/raft aside, and start it again with --join (a node of an earlier release cannot tell the leader its raft state is fresh: upgrade it)", ErrDropped, m.ID)
	}
	// A voter the others cannot reach would cost the group its quorum (a
	// one-voter group could never commit again): check the address first,
	// and that it speaks raft as this node does (a plain TCP dial passes
	// a TLS port).
	if ours := n.cfg.TLS != nil; m.RaftTLS != ours {
		how := map[bool]string{true: "over mutual TLS (--cluster-ca)", false: "over plain TCP (no --cluster-ca)"}
		return fmt.Errorf("%w: node %q speaks raft %s, this cluster %s; start it as the members are", fsm.ErrInvalid, m.ID, how[m.RaftTLS], how[ours])
	}
	if err := n.reachable(m.RaftAddr); err != nil {
		return fmt.Errorf("%w: the leader cannot reach raft address %s of node %q (%v); give --cluster an address the other nodes can reach", fsm.ErrInvalid, m.RaftAddr, m.ID, err)
	}
	// Raft refuses two servers at one address (it would count one
	// machine's answers twice): say whose it is and what to do, before
	// the loop below changes anything.
	for _, s := range f.Configuration().Servers {
		if s.ID != raft.ServerID(m.ID) && s.Address == raft.ServerAddress(m.RaftAddr) {
			return fmt.Errorf("%w: raft address %s is member %q's; give node %q its own --cluster address, or, if %q is gone for good and node %q takes its place, remove it first (infergate cluster remove %s)", fsm.ErrConflict, m.RaftAddr, s.ID, m.ID, s.ID, m.ID, s.ID)
		}
	}
	voters := 0
	m.Voter = false
	// prevIndex makes a concurrent membership change fail this one (the
	// joiner retries) instead of both counting the same voters.
	prev := f.Index()
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(m.ID) {
			if s.Address == raft.ServerAddress(m.RaftAddr) {
				wiped := m.Fresh && s.Suffrage == raft.Voter && s.ID != raft.ServerID(n.cfg.NodeID)
				if wiped && !n.waitAnsweringMajorityWithout(f.Configuration(), s.ID) {
					// Removed, it would leave a group that cannot commit
					// (the removal itself included) until a silent voter
					// answers again: it goes on as the voter it was.
					n.logf(logging.Warning+"cluster: voter %s (raft %s) asks to join on empty raft state: it lost the log it acknowledged (its --data wiped?), but without it too few voters answer to commit its removal; it stays a voter until they do, which is unsafe should this leader fail before the silent voters are back: bring them back, and this leader removes it then (it joins again by itself)", m.ID, m.RaftAddr)
					n.votersMu.Lock()
					if n.lostLog == nil {
						n.lostLog = make(map[raft.ServerID]raft.ServerAddress)
					}
					n.lostLog[s.ID] = s.Address
					n.votersMu.Unlock()
					wiped = false
				}
				if !wiped {
					m.Voter = s.Suffrage == raft.Voter
					_, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &m})
					return err
				}
				// A voter that asks to join on empty raft state lost its
				// log (its --data wiped, started again under its id):
				// counted as the voter it was, it would vote as if it
				// held what it acknowledged. Removing it first commits on
				// the other voters, and then it is added again below and
				// catches up as a new server. (A non-voter's answers
				// never counted: it stays as it is. A new node whose
				// join answer was lost and that asks again with its log
				// still empty goes through here too: one needless
				// removal.)
				rf := n.raft.RemoveServer(s.ID, prev, n.cfg.ApplyTimeout)
				if err := rf.Error(); err != nil {
					if strings.Contains(err.Error(), "configuration changed since") {
						return fmt.Errorf("%w: another membership change came first: %w", ErrNotLeader, err)
					}
					return fmt.Errorf("removing voter %q, which asks to join on empty raft state, before adding it again: %w", m.ID, raftError(err))
				}
				n.logf(logging.Warning+"cluster: voter %s (raft %s) asks to join on empty raft state: it lost the log it acknowledged (its --data wiped?); removed it from the configuration, to add it again as a new server", m.ID, m.RaftAddr)
				prev = rf.Index()
				continue
			}
			// Same id at a new address: a restarted node moved, unless the
			// old address still answers (two nodes given one id).
			if s.ID == raft.ServerID(n.cfg.NodeID) {
				// This leader itself: removing its old address, it would
				// remove itself and its raft would shut down. It hands
				// leadership over; the retry moves it through the new
				// leader.
				if err := n.transferLeadership(); err != nil {
					return fmt.Errorf("%w: this node leads at raft address %s, but the configuration names %s, and it cannot hand leadership over to move (%v): restart it on %s, or, if it is the only voter, stop it and run \"infergate cluster recover --cluster %s\" on its --data", fsm.ErrConflict, m.RaftAddr, s.Address, err, s.Address, m.RaftAddr)
				}
				return fmt.Errorf("%w: handed leadership over to move this node to raft address %s", ErrNotLeader, m.RaftAddr)
			}
			if n.reachable(string(s.Address)) == nil {
				return fmt.Errorf("%w: node id %q is already a member at %s, which answers; give the new node another --node-id", fsm.ErrConflict, m.ID, s.Address)
			}
			if err := n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout).Error(); err != nil {
				return raftError(err)
			}
			continue
		}
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	// This group has more than this node now: another may lead it (see
	// watchTakeover).
	n.grew.Store(true)
	var af raft.IndexFuture
	if voters < n.cfg.MaxVoters {
		m.Voter = true
		af = n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), prev, n.cfg.ApplyTimeout)
	} else {
		af = n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), prev, n.cfg.ApplyTimeout)
	}
	if err := af.Error(); err != nil {
		if strings.Contains(err.Error(), "configuration changed since") {
			return fmt.Errorf("%w: another membership change came first: %w", ErrNotLeader, err)
		}
		return raftError(err)
	}
	n.logf("cluster: node %s (raft %s, http %s) joined as a %s", m.ID, m.RaftAddr, m.HTTPAddr, map[bool]string{true: "voter", false: "non-voter"}[m.Voter])
	_, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &m})
	return err
}

// waitAnsweringMajorityWithout is answeringMajorityWithout for the
// answers to heartbeats sent from now on, asked again for up to
// silentAfter heartbeat timeouts while it is false. The leader sends
// each member one every tenth of a heartbeat timeout, so a voter that
// is up answers one well within that. A voter that answered before now
// only (lately, but stopped a moment ago) does not count: counted, it
// could let the removal through, which it then had to commit.
func (n *Node) waitAnsweringMajorityWithout(cfg raft.Configuration, id raft.ServerID) bool {
	since := time.Now()
	deadline := since.Add(silentAfter * n.cfg.HeartbeatTimeout)
	for !n.answeringMajorityWithout(cfg, id, since) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-n.stop:
			return false
		case <-time.After(n.cfg.HeartbeatTimeout / 10):
		}
	}
	return true
}

// answeringMajorityWithout reports whether, on the leader, the voters of
// cfg other than id that answered a heartbeat sent at or after since
// (this leader included) are a majority of those voters: whether the
// group could commit without id. A voter not heard from since does not
// count.
func (n *Node) answeringMajorityWithout(cfg raft.Configuration, id raft.ServerID, since time.Time) bool {
	voters, answering := 0, 0
	for _, s := range cfg.Servers {
		if s.ID == id || s.Suffrage != raft.Voter {
			continue
		}
		voters++
		switch {
		case s.ID == raft.ServerID(n.cfg.NodeID):
			answering++
		case n.beats != nil:
			if n.beats.answeredSince(s.ID, since) {
				answering++
			}
		case !n.unreachable(s.ID):
			answering++
		}
	}
	return 2*answering > voters
}

// Remove takes node id out of the group and forgets its record, from any
// node. Removing the last voter is refused.
func (n *Node) Remove(ctx context.Context, id string) error {
	return n.withLeader(ctx, func(ctx context.Context, leaderURL string) error {
		if leaderURL != "" {
			return n.peers.remove(ctx, leaderURL, id)
		}
		return n.RemoveLocal(id)
	})
}

// RemoveLocal does Remove's work on the leader; ErrNotLeader elsewhere.
func (n *Node) RemoveLocal(id string) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftError(err)
	}
	servers := f.Configuration().Servers
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
	st, _ := n.fsm.State()
	if i < 0 && st.Members[id] == nil {
		if st.Dropped[id] {
			return fmt.Errorf("%w: node %q is not a member: a recovery dropped it, and the mark stays, so that it can come back only on fresh raft state (its old log could hold entries the group does not)", fsm.ErrConflict, id)
		}
		return fmt.Errorf("%w: node %q is not a member", fsm.ErrNotFound, id)
	}
	if i >= 0 {
		voters := 0
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		if voters == 1 && servers[i].Suffrage == raft.Voter {
			return fmt.Errorf("%w: node %q is the only voter; a group cannot remove its last voter", fsm.ErrConflict, id)
		}
		if id == n.cfg.NodeID {
			// Removing itself, the leader would step down before it
			// could forget the node's record: it hands leadership over
			// instead, and the caller's retry (Remove's withLeader, or
			// the forwarding node's) removes it through the new leader.
			if err := n.transferLeadership(); err != nil {
				if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
					return raftError(err)
				}
				return fmt.Errorf("%w: node %q leads, and cannot hand leadership over to another voter, which its removal needs (%v); bring a voter back, or stop node %q and remove it once another leads", fsm.ErrConflict, id, err, id)
			}
			return fmt.Errorf("%w: handed leadership over to remove this node", ErrNotLeader)
		}
		if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
			return raftError(err)
		}
	}
	_, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRemoveMember, Member: &fsm.Member{ID: id}})
	if i >= 0 && servers[i].Suffrage == raft.Voter {
		// Its seat goes to a non-voter, if there is one.
		n.fillVoters()
	}
	return err
}

// announce makes sure the group holds this node's current addresses: it
// joins through Config.Join when raft does not know this node yet, and
// records a changed HTTP address after a restart. It retries until it
// succeeds or the node stops.
func (n *Node) announce() {
	delay := 100 * time.Millisecond
	for {
		err := n.announceOnce(n.self())
		if err == nil {
			n.announced.Store(true)
			return
		}
		if errors.Is(err, ErrStopped) {
			return
		}
		if errors.Is(err, ErrDropped) {
			n.droppedBy(err)
		}
		if n.dropped.Load() {
			// Said once already; nothing the retries find will mend it.
			return
		}
		n.logf(logging.Warning+"cluster: cannot announce node %s yet: %v; retrying in %s", n.cfg.NodeID, err, delay)
		select {
		case <-n.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (n *Node) announceOnce(self fsm.Member) error {
	if n.dropped.Load() {
		// Raft is off on this state for good: a group that took this
		// node in would count a member that never answers.
		return fmt.Errorf("%w: %s", ErrDropped, n.droppedReason())
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HoldTimeout+time.Second)
	defer cancel()
	if addr, ok := n.configuredAddr(); ok && addr != self.RaftAddr {
		// Restarted on another raft address: the leader must replace the
		// old one in raft's configuration, or peers keep dialing it. A
		// leader cannot replace itself; it says so and goes on.
		if n.IsLeader() {
			n.logf(logging.Warning+"cluster: this node leads at raft address %s, but the configuration still names %s; nodes that join later cannot reach it there. Restart it on %s, or let another node lead first", self.RaftAddr, addr, addr)
		} else if err := n.rejoin(ctx, self); err != nil {
			return fmt.Errorf("moving this node from raft address %s to %s: %w", addr, self.RaftAddr, err)
		}
	}
	if n.inConfiguration() {
		st, _ := n.fsm.State()
		if rec := st.Members[self.ID]; rec != nil && rec.HTTPAddr == self.HTTPAddr && rec.RaftAddr == self.RaftAddr && rec.RaftTLS == self.RaftTLS {
			return nil
		}
		// Wait until this node has caught up before deciding the record
		// is missing: a fresh follower starts with an empty state.
		if err := n.ReadIndex(ctx); err != nil {
			return err
		}
		st, _ = n.fsm.State()
		if rec := st.Members[self.ID]; rec != nil && rec.HTTPAddr == self.HTTPAddr && rec.RaftAddr == self.RaftAddr && rec.RaftTLS == self.RaftTLS {
			return nil
		}
		self.Voter = n.isVoter()
		_, err := n.Apply(ctx, fsm.Command{Op: fsm.OpSetMember, Member: &self})
		return err
	}
	if n.cfg.Join == "" {
		return errors.New("this node is not in the raft configuration of its data directory and has no --join address")
	}
	return n.peers.askJoin(ctx, n.cfg.Join, self)
}

// self is this node as it asks to join: Fresh while its raft state is
// empty.
func (n *Node) self() fsm.Member {
	return fsm.Member{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr, RaftTLS: n.cfg.TLS != nil, Fresh: n.raft.LastIndex() == 0, KnowsDropped: true, Protocol: Protocol}
}

// droppedBy records that the group refused this node for a recovery that
// dropped it (err, ErrDropped), and logs what to do the first time: the
// node then reports not ready (Settling).
func (n *Node) droppedBy(err error) {
	n.dropOnce.Do(func() {
		if n.dropped.Load() {
			return // started on a marked state
		}
		n.logf(logging.Error+"cluster: node %s cannot join its group again: %v. It goes on serving what it had, and reports not ready", n.cfg.NodeID, err)
		// A restart on the same raft state reports not ready from its
		// start, not only once it has asked again, and starts no raft.
		// The mark is on disk before the node reports not ready, so
		// that one killed once it said so comes back marked.
		if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, droppedFile), nil, 0o644); err != nil {
			n.logf(logging.Error+"cluster: cannot mark this node as dropped (%v): a restart would take part in raft on this state until it asks its group again", err)
		}
		n.dropped.Store(true)
		// Nor does this run: with raft on, it could lead other dropped
		// nodes, and a recovered group follows a leader of a higher
		// term, taking its log.
		if err := n.raft.Shutdown().Error(); err != nil {
			n.logf(logging.Error+"cluster: cannot stop raft on this dropped node: %v", err)
		}
	})
}

// droppedFile, in the raft data directory, marks a node its group
// refused as dropped by a recovery; the mark goes with the raft state
// that is moved aside.
const droppedFile = "dropped"

// reachable dials a raft address; in-memory test transports always are.
func (n *Node) reachable(addr string) error {
	if n.cfg.inmem != nil {
		return nil
	}
	if n.cfg.TLS != nil {
		// A handshake: the address answers as a member would, and takes
		// this node's certificate. In TLS 1.3 the server judges the
		// client's certificate after the client's side is done, so the
		// probe speaks TLS 1.2, where the handshake ends only after it.
		l := tlsStreamLayer{client: func() *tls.Config {
			cfg := n.cfg.TLS.clientConfig()
			cfg.MaxVersion = tls.VersionTLS12
			return cfg
		}}
		c, err := l.Dial(raft.ServerAddress(addr), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// rejoin asks the group to take self at its new raft address. The leader
// does not know the new address, so it sends this node nothing and this
// node knows no leader: it asks the members it knows of (and --join)
// over HTTP, any of which forwards to the leader.
func (n *Node) rejoin(ctx context.Context, self fsm.Member) error {
	urls, perr := n.knownPeers()
	var errs []error
	if perr != nil {
		// Without it this node may know no member to ask: say so, and how
		// to go on.
		errs = append(errs, fmt.Errorf("%w; give --join a member's URL", perr))
	}
	for _, u := range urls {
		err := n.peers.askJoin(ctx, u, self)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("through %s: %w", u, err))
	}
	if len(errs) == 0 {
		return errors.New("no other member is known to ask")
	}
	return errors.Join(errs...)
}

// knownPeers returns the HTTP addresses of the members this node knows
// of: --join, then the last run's record (a restarted node's state
// machine is empty until a leader tells it what has committed), then its
// state's members. The error says why the record could not be read.
func (n *Node) knownPeers() ([]string, error) {
	urls, err := n.loadPeers()
	if n.cfg.Join != "" {
		urls = append([]string{n.cfg.Join}, urls...)
	}
	st, _ := n.fsm.State()
	for id, m := range st.Members {
		if id != n.cfg.NodeID && m.HTTPAddr != "" && !slices.Contains(urls, m.HTTPAddr) {
			urls = append(urls, m.HTTPAddr)
		}
	}
	return urls, err
}

// watchRemoval notices that the group removed this node while it ran or
// while it was away (cut off, stopped, its machine asleep). Such a node
// knows no leader for good (nobody sends it anything; it may not even have
// received the entry that removed it, and count itself a voter), and would
// go on serving what the group has retired since. Once it has known no
// leader for removalCheckAfter election timeouts, it asks the members it
// knows for theirs; when one that knows a leader no longer lists it, it
// asks to join again, as a node that restarts with --join after a removal
// does: it comes back (a voter where a seat is free, else a non-voter)
// and catches up. A member that still lists it is cut off from it, not rid
// of it: it waits. To take a node out for good, stop it, then remove it.
func (n *Node) watchRemoval() {
	t := time.NewTicker(n.cfg.ElectionTimeout)
	defer t.Stop()
	var since time.Time // when this node, a member, last knew a leader
	// A restarted node asks at once, after its first spell without a
	// leader: one a recovery dropped must say so (not ready) before a
	// load balancer has sent it much.
	wait := time.Duration(1)
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if addr, _ := n.raft.LeaderWithID(); addr != "" || !n.announced.Load() && !n.existing || n.raft.State() == raft.Shutdown {
			// With a leader, nothing to do; a new node joins through
			// announce. (A restarted one that the group removed while
			// it was down announces in vain: it waits for a leader.)
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) < wait*n.cfg.ElectionTimeout {
			continue
		}
		wait = removalCheckAfter
		if err := n.rejoinIfRemoved(); errors.Is(err, ErrDropped) {
			n.droppedBy(err)
		} else if err != nil {
			n.logf(logging.Warning+"cluster: node %s was removed from the group while it was away, and cannot join again yet: %v", n.cfg.NodeID, err)
		}
		since = time.Now() // ask again after another spell
	}
}

// removalCheckAfter is how many election timeouts a member knows no
// leader before it asks whether the group still lists it.
const removalCheckAfter = 6

// rejoinIfRemoved asks the members this node knows of whether the group
// still lists it, and joins again when a member that knows a leader says
// it does not.
func (n *Node) rejoinIfRemoved() error {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HoldTimeout+time.Second)
	defer cancel()
	urls, _ := n.knownPeers()
	for _, u := range urls {
		var v groupView
		if err := n.peers.do(ctx, http.MethodGet, u, "/v1/cluster", nil, &v); err != nil || v.Leader == "" {
			continue
		}
		if v.lists(n.cfg.NodeID) {
			return nil
		}
		if !n.dropped.Load() {
			n.logf(logging.Warning+"cluster: the group (member %s, leader %s) no longer lists node %s: it was removed, or dropped by a recovery, while this node was away; asking to join again", u, v.Leader, n.cfg.NodeID)
		}
		if err := n.peers.askJoin(ctx, u, n.self()); err != nil {
			return fmt.Errorf("through %s: %w", u, err)
		}
		return nil
	}
	return nil
}

// groupView is what rejoinIfRemoved reads of a member's GET /v1/cluster.
type groupView struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"members"`
}

// lists reports whether v lists member id, other than as dropped.
func (v *groupView) lists(id string) bool {
	for _, m := range v.Members {
		if m.ID == id && m.State != "dropped" {
			return true
		}
	}
	return false
}

// peersFile keeps the other members' HTTP addresses in the raft data
// directory, for a restart that must find the group before raft can.
const peersFile = "peers.json"

// savePeers records the other members' HTTP addresses when they changed.
func (n *Node) savePeers(st *fsm.State) {
	var urls []string
	for id, m := range st.Members {
		if id != n.cfg.NodeID && m.HTTPAddr != "" {
			urls = append(urls, m.HTTPAddr)
		}
	}
	if len(urls) == 0 {
		return
	}
	slices.Sort(urls)
	if slices.Equal(urls, n.savedPeers) {
		return
	}
	if n.saveJSON(peersFile, "the members' addresses", urls) {
		n.savedPeers = urls
	}
}

// loadPeers returns what savePeers recorded last: nothing, with no error,
// before the first save.
func (n *Node) loadPeers() ([]string, error) {
	path := filepath.Join(n.cfg.DataDir, peersFile)
	var urls []string
	if err := loadJSON(path, &urls); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read the members' addresses from %s: %v", path, err)
	}
	return urls, nil
}

// saveJSON writes v as JSON to file in the raft data directory, durably,
// and reports whether it did; a failure is logged as recording what.
func (n *Node) saveJSON(file, what string, v any) bool {
	b, _ := json.Marshal(v)
	if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, file), b, 0o644); err != nil {
		n.logf(logging.Error+"cluster: cannot record %s: %v", what, err)
		return false
	}
	return true
}

// loadJSON reads the JSON file at path into v.
func loadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// configuredAddr returns this node's address in raft's latest
// configuration, if it is there.
func (n *Node) configuredAddr() (string, bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return "", false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			return string(s.Address), true
		}
	}
	return "", false
}

// inConfiguration reports whether raft's latest configuration holds this
// node.
func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool {
		return s.ID == raft.ServerID(n.cfg.NodeID)
	})
}

func (n *Node) isVoter() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
