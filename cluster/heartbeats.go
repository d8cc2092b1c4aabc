package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftTransport is what raft needs of a transport to run with pre-vote and
// to close it: both the TCP and the in-memory transports are one.
type raftTransport interface {
	raft.Transport
	raft.WithPreVote
	raft.WithClose
}

// heartbeats wraps the node's raft transport to note when each member last
// answered an AppendEntries. A leader sends every member one at least
// every tenth of the heartbeat timeout (raft's heartbeats), so a member
// that answered none for longer than that has stopped answering, even
// while the call to it still waits for its reply. raft itself reports a
// heartbeat failure only once the call fails, after the transport's I/O
// timeout (5 s): a process that hangs (stopped, swapping, a VM paused) or
// a network that drops its packets keeps the connection open that long.
// The zero value is not usable; see newHeartbeats.
type heartbeats struct {
	raftTransport

	// mu guards peers.
	mu    sync.Mutex
	peers map[raft.ServerID]*contact
}

// contact is what heartbeats knows of one member since it last reset.
type contact struct {
	since  time.Time // when the first AppendEntries to it began
	lastOK time.Time // when one last answered; zero for none yet
	// askedOK is when the last answered AppendEntries began: an answer
	// to a call begun after t says the member was up after t.
	askedOK time.Time
}

func newHeartbeats(t raftTransport) *heartbeats {
	return &heartbeats{raftTransport: t, peers: make(map[raft.ServerID]*contact)}
}

// AppendEntries sends the call through the transport it wraps and notes
// whether the member answered.
func (h *heartbeats) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	h.mu.Lock()
	c := h.peers[id]
	if c == nil {
		c = &contact{since: time.Now()}
		h.peers[id] = c
	}
	h.mu.Unlock()
	asked := time.Now()
	err := h.raftTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		now := time.Now()
		h.mu.Lock()
		// Only for the record the call began with: one forgotten since
		// (the member removed) or reset (a new term) does not come back,
		// and one made since by a call of the new term does not take an
		// old call's answer for its own.
		if h.peers[id] == c {
			c.lastOK = now
			if asked.After(c.askedOK) {
				c.askedOK = asked
			}
		}
		h.mu.Unlock()
	}
	return err
}

// silentFor reports how long before now member id last answered an
// AppendEntries (or, when it answered none since the last reset, when
// the first was sent to it); 0 when none was sent to it.
func (h *heartbeats) silentFor(id raft.ServerID, now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.peers[id]
	if c == nil {
		return 0
	}
	last := c.lastOK
	if last.IsZero() {
		last = c.since
	}
	return now.Sub(last)
}

// answeredSince reports whether member id answered an AppendEntries
// that began at or after t, since the last reset: whether it was up
// after t, not only lately.
func (h *heartbeats) answeredSince(id raft.ServerID, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.peers[id]
	return c != nil && !c.askedOK.IsZero() && !c.askedOK.Before(t)
}

// reset forgets every member's record: a node that becomes leader starts
// over, so that answers from a term it led before do not count.
func (h *heartbeats) reset() {
	h.mu.Lock()
	clear(h.peers)
	h.mu.Unlock()
}

// forget drops member id's record: it was removed, and if it joins again
// under the same id its silence counts from its first AppendEntries then.
func (h *heartbeats) forget(id raft.ServerID) {
	h.mu.Lock()
	delete(h.peers, id)
	h.mu.Unlock()
}
