package cluster

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/logging"
)

// voterCheckInterval is how often the leader looks for a free voter seat
// that a non-voter could take (see fillVoters).
const voterCheckInterval = 5 * time.Second

// voterLoop runs fillVoters now and then until the node stops, so that a
// seat freed while no leader could act (a removal whose promotion failed,
// a leader that changed in between) is filled all the same.
func (n *Node) voterLoop() {
	every := voterCheckInterval
	if n.cfg.voterCheck > 0 {
		every = n.cfg.voterCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.fillVoters()
		}
	}
}

// fillVoters, on the leader, promotes non-voters while the group has
// fewer voters than Config.MaxVoters: a removed voter's seat goes to a
// node that already replicates the log, so that a group of three keeps
// surviving one failure. Candidates go in id order, skipping any whose
// raft address does not answer a dial; a lagging one catches up as a
// voter the way it did as a non-voter. It does nothing on a follower, and
// a failure is logged and left to the next call.
func (n *Node) fillVoters() {
	if n.raft.State() != raft.Leader {
		return
	}
	n.votersMu.Lock()
	defer n.votersMu.Unlock()
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	if n.removeLostLog(f.Configuration(), f.Index()) {
		return // the configuration changed: the next call goes on
	}
	voters := 0
	var candidates []raft.Server
	for _, s := range f.Configuration().Servers {
		switch s.Suffrage {
		case raft.Voter:
			voters++
		case raft.Nonvoter:
			candidates = append(candidates, s)
		}
	}
	slices.SortFunc(candidates, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	prev := f.Index()
	for _, s := range candidates {
		if voters >= n.cfg.MaxVoters {
			return
		}
		err := n.reachable(string(s.Address))
		if err == nil && n.unreachable(s.ID) {
			err = errors.New("the leader's heartbeats do not reach it")
		}
		if err != nil {
			if !n.unanswered[s.ID] {
				n.logf(logging.Warning+"cluster: not promoting non-voter %s to a free voter seat while its raft address %s does not answer (%v)", s.ID, s.Address, err)
				if n.unanswered == nil {
					n.unanswered = make(map[raft.ServerID]bool)
				}
				n.unanswered[s.ID] = true
			}
			continue
		}
		delete(n.unanswered, s.ID)
		// prev makes a membership change that came first fail this one
		// rather than both count the same seats.
		af := n.raft.AddVoter(s.ID, s.Address, prev, n.cfg.ApplyTimeout)
		if err := af.Error(); err != nil {
			n.logf(logging.Warning+"cluster: cannot promote non-voter %s to a voter: %v; trying again in %s", s.ID, err, voterCheckInterval)
			return
		}
		prev = af.Index()
		voters++
		n.logf("cluster: promoted non-voter %s to a voter (%d of %d voters)", s.ID, voters, n.cfg.MaxVoters)
		st, _ := n.fsm.State()
		if rec := st.Members[string(s.ID)]; rec != nil && !rec.Voter {
			m := *rec
			m.Voter = true
			if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &m}); err != nil {
				n.logf(logging.Error+"cluster: cannot record %s as a voter: %v", s.ID, err)
			}
		}
	}
}

// removeLostLog removes from cfg, at index prev, a voter that lost its log
// and that JoinLocal kept because the group could not commit its removal,
// once the other voters that answered this leader's heartbeats within the
// last half heartbeat timeout are a majority without it; the voter then
// finds itself removed and joins again as a new server (watchRemoval).
// It reports whether it changed the configuration. n.votersMu is held.
func (n *Node) removeLostLog(cfg raft.Configuration, prev uint64) bool {
	for id, addr := range n.lostLog {
		if !slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool {
			return s.ID == id && s.Address == addr && s.Suffrage == raft.Voter
		}) {
			delete(n.lostLog, id) // removed, moved or demoted since
			continue
		}
		if !n.answeringMajorityWithout(cfg, id, time.Now().Add(-n.cfg.HeartbeatTimeout/2)) {
			continue
		}
		if err := n.raft.RemoveServer(id, prev, n.cfg.ApplyTimeout).Error(); err != nil {
			n.logf(logging.Warning+"cluster: cannot remove voter %s, which lost its log, yet: %v", id, err)
			return true
		}
		delete(n.lostLog, id)
		n.logf("cluster: removed voter %s (raft %s), which had lost its log, now that the other voters commit without it; it joins again by itself as a new server", id, addr)
		return true
	}
	return false
}
