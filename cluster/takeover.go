package cluster

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
)

// watchTakeover runs on a node that started on empty raft state: one
// that bootstrapped a new group (no --join), or one that joins. Such a
// node may be a member of a live group whose --data was wiped or replaced
// and that was started again: the group's leader still replicates to its
// raft address, and raft takes those entries (over the bootstrap, or
// while the group refuses the join because the old member holds the
// address), so the new node would count as the member that was there, a
// voter that lost what it acknowledged, under a name that is not its
// own. Once raft's
// configuration, while another node leads, lists another member at this
// node's raft address and not this node, it takes no part in raft on this
// state again (as a dropped node: takeOver) and reports not ready. (A
// node the group removed is not listed at all, and watchRemoval brings it
// back.) A wiped member started again with its old --node-id is listed
// under its own id. Without --join it bootstrapped, and a group this
// start bootstrapped can have another leader only once this node, its
// only voter, has added a member (JoinLocal sets grew): a node that
// bootstrapped, added nobody, and finds another leader and a
// configuration with other members was taken over under its own id, and
// stops as above, whether or not it led its own group first. (With
// --join, the leader removes and adds again a voter that asks to join on
// empty raft state: JoinLocal.) A node that starts on raft state in
// which it is its group's only server (restored from a backup,
// recovered, or a lone node) is watched the same way: its group too can
// have another leader only once it has added a member, and another
// leader means that a group it was restored or recovered from still runs
// and replicates to its raft address. It returns then, or when the node
// stops.
func (n *Node) watchTakeover() {
	t := time.NewTicker(n.cfg.HeartbeatTimeout)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.raft.State() == raft.Shutdown {
			return
		}
		_, leader := n.raft.LeaderWithID()
		if leader == "" || leader == raft.ServerID(n.cfg.NodeID) {
			continue
		}
		n.takeoverLooks.Add(1)
		if other := n.otherAtRaftAddr(); other != "" {
			n.takeOver(string(leader), other)
			return
		}
		if n.bootstrapped && !n.grew.Load() && n.othersConfigured() {
			n.takeOver(string(leader), n.cfg.NodeID)
			return
		}
		if n.lone && !n.grew.Load() {
			// Its raft state names no other server, so the leader's
			// heartbeats alone say it: stopped before the leader's
			// entries come (replication to an address that was down
			// backs off for seconds), the restored state stays whole.
			n.takeOver(string(leader), "")
			return
		}
	}
}

// othersConfigured reports whether raft's configuration lists a server
// other than this node.
func (n *Node) othersConfigured() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool {
		return s.ID != raft.ServerID(n.cfg.NodeID)
	})
}

// otherAtRaftAddr returns the member that raft's configuration lists at
// this node's raft address when it does not list this node, or "".
func (n *Node) otherAtRaftAddr() string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	other := ""
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			return ""
		}
		if string(s.Address) == n.cfg.RaftAddr {
			other = string(s.ID)
		}
	}
	return other
}

// takeOver stops raft on a node that started on empty raft state and
// was then taken over by the group led by leader, which lists member
// other at its raft address (see watchTakeover), marks its raft state so
// that a restart on it starts no raft either, and logs what to do.
func (n *Node) takeOver(leader, other string) {
	n.dropOnce.Do(func() {
		started, probably := "bootstrapped a new group on an empty --data", "it was started again without --join"
		lost := "this node's --data was probably wiped or replaced, and " // why it came back empty
		if !n.bootstrapped {
			started, probably = "started on an empty --data to join a group", "it was started again before the group removed the member it was"
		}
		remedy := fmt.Sprintf("remove %s on the group (infergate cluster remove %s), stop this node, move %s aside, and start it again with --join and a member's URL", other, other, n.cfg.DataDir)
		switch {
		case n.lone:
			started, lost = "started as the only voter of its group (a group restored from a backup or recovered, or one of its own)", ""
			probably = "the group it was restored or recovered from still runs, with a member at this raft address"
			remedy = fmt.Sprintf("a group that still runs needs no restore: start this node with --join on a fresh --data instead. To replace that group, stop this node and every member of that group, remove %s, and start this node again (restore or recover it again first if that group's entries reached it: its log then names that group's members); or restore at a raft address (--cluster) that no member of that group has", filepath.Join(n.cfg.DataDir, droppedFile))
		case other == n.cfg.NodeID:
			// Under its own id, a join on fresh raft state makes the
			// leader replace the member it was (JoinLocal).
			remedy = fmt.Sprintf("stop this node, move %s aside, and start it again with --join and a member's URL: the group's leader then replaces the member %s was with it, a new server that catches up", n.cfg.DataDir, other)
		}
		as, count := "its member "+other, other
		if other == "" {
			as, count = "one of its members", "that member"
		}
		why := fmt.Sprintf("this node (%s) %s, but the group led by %s replicates to its raft address %s as %s: %s%s. It takes no part in raft on this state, for it would count as %s with none of what that member acknowledged, and it serves what it has. To bring it back: %s",
			n.cfg.NodeID, started, leader, n.cfg.RaftAddr, as, lost, probably, count, remedy)
		n.dropWhy.Store(&why)
		n.logf(logging.Error+"cluster: %s", why)
		if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, droppedFile), []byte(why+"\n"), 0o644); err != nil {
			n.logf(logging.Error+"cluster: cannot mark this node's raft state as taken over (%v): a restart would take part in raft on it", err)
		}
		n.dropped.Store(true)
		if err := n.raft.Shutdown().Error(); err != nil {
			n.logf(logging.Error+"cluster: cannot stop raft on this taken-over node: %v", err)
		}
	})
}

// droppedReason says why raft is off on a dropped node (n.dropped): a
// recovery dropped it, or, for a node that bootstrapped on a wiped
// --data, another group took it over (takeOver).
func (n *Node) droppedReason() string {
	if why := n.dropWhy.Load(); why != nil {
		return *why
	}
	return fmt.Sprintf("node %s was dropped from its group when the group was recovered, and takes no part in raft on its old state", n.cfg.NodeID)
}
