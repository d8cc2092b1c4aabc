package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// peerHealth is the leader's view of which members its heartbeats do not
// reach, from raft's heartbeat observations: raft's configuration alone
// lists a member that is gone as a follower. Followers know nothing of
// it; their view is empty.
type peerHealth struct {
	// mu guards lost.
	mu sync.Mutex
	// lost maps a member the leader's heartbeats fail to reach to the
	// last time one did.
	lost map[raft.ServerID]time.Time
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
				if d.Removed {
					delete(h.lost, d.Peer.ID)
				}
			case raft.LeaderObservation:
				// A new term: heartbeats start over, from another leader
				// perhaps.
				clear(h.lost)
			}
			h.mu.Unlock()
		}
	}
}

// unreachable reports whether this node leads and its heartbeats have not
// reached member id for longer than the heartbeat timeout.
func (n *Node) unreachable(id raft.ServerID) bool {
	if n.raft.State() != raft.Leader {
		return false
	}
	h := &n.health
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
