package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/logging"
)

// peerHealth is a node's view of which members are gone: raft's
// configuration alone lists a member that is gone as a follower. A leader
// has it from its heartbeats (Node.beats, and raft's observations of
// heartbeats that failed); a node that knows no leader
// asks the members' HTTP addresses itself (probePeers), which is when an
// operator most needs to tell the survivors from the lost. A follower of
// a leader knows nothing of it; its view is empty.
type peerHealth struct {
	// mu guards lost and silent.
	mu sync.Mutex
	// lost maps a member the leader's heartbeats fail to reach to the
	// last time one did.
	lost map[raft.ServerID]time.Time
	// silent holds the members that did not answer this node's last
	// probe, made while it knew no leader; cleared once it knows one.
	silent map[raft.ServerID]bool
}

// probeInterval is how often a node that knows no leader asks its members
// whether they answer, and probeTimeout how long it waits for each.
const (
	probeInterval = time.Second
	probeTimeout  = 500 * time.Millisecond
)

// probePeers asks every other member's HTTP address whether it answers
// (GET /v2/health/live, which a process that runs answers, ready or not)
// every probeInterval while this node knows no leader, for unreachable.
// It runs until the node stops.
func (n *Node) probePeers() {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			n.health.mu.Lock()
			n.health.silent = nil
			n.health.mu.Unlock()
			continue
		}
		n.probeOnce()
	}
}

// probeOnce asks every other member in the raft configuration, in
// parallel, and records which did not answer within probeTimeout.
func (n *Node) probeOnce() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	st, _ := n.fsm.State()
	ctx, cancel := context.WithTimeout(n.ctx, probeTimeout)
	defer cancel()
	silent := make(map[raft.ServerID]bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.NodeID {
			continue
		}
		m := st.Members[string(s.ID)]
		if m == nil || m.HTTPAddr == "" {
			continue // no address to ask: nothing to say
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.peers.send(ctx, http.MethodGet, m.HTTPAddr, "/v2/health/live", nil, nil, false); err != nil {
				mu.Lock()
				silent[s.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n.health.mu.Lock()
	n.health.silent = silent
	n.health.mu.Unlock()
}

// watchPeers follows raft's heartbeat and leadership observations until
// the node stops. Only this goroutine writes n.health.
func (n *Node) watchPeers() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	h := &n.health
	for {
		select {
		case <-n.stop:
			return
		case o := <-ch:
			h.mu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if h.lost == nil {
					h.lost = make(map[raft.ServerID]time.Time)
				}
				h.lost[d.PeerID] = d.LastContact
			case raft.ResumedHeartbeatObservation:
				delete(h.lost, d.PeerID)
			case raft.PeerObservation:
				// Removed, or added (replication to it starts): either way
				// what was known of it before does not count.
				delete(h.lost, d.Peer.ID)
				if n.beats != nil {
					n.beats.forget(d.Peer.ID)
				}
			case raft.LeaderObservation:
				// A new term: heartbeats start over, from another leader
				// perhaps.
				clear(h.lost)
				if n.beats != nil {
					n.beats.reset()
				}
			}
			h.mu.Unlock()
		}
	}
}

// silentAfter is how long, in heartbeat timeouts, a member may leave a
// leader's heartbeats unanswered before the leader lists it unreachable.
// Heartbeats go out every tenth of the timeout; raft itself steps a
// leader down when a majority is silent for its lease (250 ms, half the
// timeout, by default), so twice the timeout says the member, not a busy moment, is
// the cause.
const silentAfter = 2

// unreachable reports whether this node leads and member id has answered
// none of its heartbeats for silentAfter heartbeat timeouts, or they fail
// and have for longer than one, or whether it knows no leader and member
// id did not answer its last probe (probePeers).
func (n *Node) unreachable(id raft.ServerID) bool {
	h := &n.health
	if n.raft.State() != raft.Leader {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			return false
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.silent[id]
	}
	if n.beats != nil && n.beats.silentFor(id, time.Now()) > silentAfter*n.cfg.HeartbeatTimeout {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.lost[id]
	return ok && time.Since(last) > n.cfg.HeartbeatTimeout
}

// unreachableCount returns how many members unreachable reports.
func (n *Node) unreachableCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if n.unreachable(s.ID) {
			c++
		}
	}
	return c
}

// membersUnreachable is infergate_cluster_members_unreachable: on a
// follower, the members its leader lists unreachable, as the leader last
// said within leaderViewStale (refreshLeaderView asks it every
// leaderViewPoll), else this node's own count. Every node that knows a
// live leader then gives one figure, where a follower used to give 0. A
// scrape never waits for the leader.
func (n *Node) membersUnreachable() int {
	id, _ := n.Leader()
	if s := n.leaderView.last.Load(); s != nil && id != n.cfg.NodeID && s.leader == id && s.ok && time.Since(s.at) < leaderViewStale {
		return len(s.silent)
	}
	return n.unreachableCount()
}

// refreshLeaderView asks the leader for its view every leaderViewPoll
// while this node follows one, so that membersUnreachable has a recent
// one however seldom it is scraped, until the node stops.
func (n *Node) refreshLeaderView() {
	t := time.NewTicker(leaderViewPoll)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if id, _ := n.Leader(); id != "" && id != n.cfg.NodeID {
			n.leaderUnreachable()
		}
	}
}

// logSilence logs, while this node leads, when a member stops answering
// (unreachable turns true) and when it answers again, with how long it
// was out: the line an operator looks for when a member hangs or its
// network drops. It looks every heartbeat timeout until the node stops.
func (n *Node) logSilence() {
	t := time.NewTicker(n.cfg.HeartbeatTimeout)
	defer t.Stop()
	out := make(map[raft.ServerID]time.Time) // member -> when it was logged unreachable
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.raft.State() != raft.Leader {
			clear(out) // a leader to come starts over
			continue
		}
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		now := time.Now()
		members := make(map[raft.ServerID]bool)
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == n.cfg.NodeID {
				continue
			}
			members[s.ID] = true
			since, was := out[s.ID]
			switch is := n.unreachable(s.ID); {
			case is && !was:
				out[s.ID] = now
				silent := ""
				if n.beats != nil {
					silent = fmt.Sprintf(" for %s", n.beats.silentFor(s.ID, now).Round(time.Millisecond))
				}
				n.logf(logging.Warning+"cluster: member %s (raft %s) has answered none of this leader's heartbeats%s: listed unreachable until it answers", s.ID, s.Address, silent)
			case !is && was:
				delete(out, s.ID)
				n.logf("cluster: member %s answers this leader's heartbeats again, %s after it was listed unreachable", s.ID, now.Sub(since).Round(time.Millisecond))
			}
		}
		for id := range out {
			if !members[id] {
				delete(out, id) // removed meanwhile
			}
		}
	}
}

// leaderViewTimeout bounds a follower's question to its leader about
// which members answer (leaderUnreachable): an admin read waits at most
// this long for it before it gives its own view. leaderViewTTL is how
// long the answer, or the lack of one, serves the reads that follow, so
// that a status page polled on every follower costs the leader one call
// a second each, and a hung leader holds reads up for half a second in
// each second at most (those that come during the call wait for it).
const (
	leaderViewTimeout = 500 * time.Millisecond
	leaderViewTTL     = time.Second
	// leaderViewPoll is how often a follower asks its leader for its
	// view, for infergate_cluster_members_unreachable (a GET a follower
	// every two seconds costs the leader nothing worth counting), and
	// leaderViewStale how old that view may be for the metric.
	leaderViewPoll  = 2 * time.Second
	leaderViewStale = 30 * time.Second
)

// leaderView is a follower's cache of leaderUnreachable's answer.
type leaderView struct {
	// mu is held while the leader is asked, so that reads at the same
	// moment share one call.
	mu sync.Mutex
	// last is the latest answer, or failed call; written holding mu, read
	// without it by those that must not wait (membersUnreachable).
	last atomic.Pointer[leaderAnswer]
}

// leaderUnreachable asks the leader (GET /v1/cluster, marked forwarded so
// that it answers from its own view) which members it lists unreachable,
// each with how long it has answered none of the leader's heartbeats in
// milliseconds (0 where the leader lists it so from failed heartbeats
// alone). A follower cannot tell a hung member from a live one: only the
// leader hears from every member. ok is false where this node leads,
// knows no leader, or the leader did not answer within
// leaderViewTimeout: the caller then has its own view only. An answer,
// or a failed call, serves the calls of the next leaderViewTTL.
func (n *Node) leaderUnreachable() (silent map[string]int64, ok bool) {
	id, url := n.Leader()
	if id == "" || id == n.cfg.NodeID || url == "" {
		return nil, false
	}
	v := &n.leaderView
	v.mu.Lock()
	defer v.mu.Unlock()
	if a := v.last.Load(); a != nil && a.leader == id && time.Since(a.at) < leaderViewTTL {
		return a.silent, a.ok
	}
	silent, ok = n.askLeaderUnreachable(url)
	v.last.Store(&leaderAnswer{at: time.Now(), leader: id, silent: silent, ok: ok})
	return silent, ok
}

// askLeaderUnreachable is leaderUnreachable's call to the leader at url.
func (n *Node) askLeaderUnreachable(url string) (silent map[string]int64, ok bool) {
	// The answer serves other reads too (leaderView): one that gives up
	// must not cut it short for them; Stop does.
	ctx, cancel := context.WithTimeout(n.ctx, leaderViewTimeout)
	defer cancel()
	var out struct {
		Members []Member `json:"members"`
	}
	if err := n.peers.do(ctx, http.MethodGet, url, "/v1/cluster", nil, &out); err != nil {
		return nil, false
	}
	silent = make(map[string]int64)
	for _, m := range out.Members {
		if m.State == "unreachable" {
			silent[m.ID] = m.SilentMS
		}
	}
	return silent, true
}

// leaderAnswer is one answer of the leader to leaderUnreachable, or a
// failed call (ok false).
type leaderAnswer struct {
	at     time.Time
	leader string
	silent map[string]int64
	ok     bool
}
