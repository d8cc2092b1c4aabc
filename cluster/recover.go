package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/durable"
)

// Recovery is what Recover found in a stopped node's raft state and what
// it makes of it.
type Recovery struct {
	// NodeID is the node whose state it is.
	NodeID string
	// LastIndex and LastTerm are of the newest entry the node holds, in
	// its log or its latest snapshot. Of several survivors, recover the
	// one with the highest term, then the highest index: the others
	// start again on fresh raft state and get the recovered node's.
	LastIndex, LastTerm uint64
	// Before is raft's latest configuration as the node has it; After is
	// the one the recovery writes: the node alone, a voter.
	Before, After raft.Configuration
	// Dropped lists, sorted, every other member: the servers of Before
	// and the nodes the state machine holds records of.
	Dropped []string
	// Written is set when Recover wrote the new configuration.
	Written bool
}

// Needed reports whether the recovery changes raft's configuration:
// false when the node is its group's only voter, at that address,
// already (records left over from an earlier recovery go once the node
// leads).
func (r *Recovery) Needed() bool {
	return !slices.Equal(r.Before.Servers, r.After.Servers)
}

// Recover makes node nodeID the only member of its group, in the raft
// state the node keeps in dir (Config.DataDir), for a group that lost
// most of its voters for good: with no majority it elects no leader and
// takes no writes, and raft offers no way out while it runs. The node
// must be stopped. raftAddr, when set, is the address the node will
// listen on from now (its --cluster); else it keeps the configured one.
// When write is set and there is something to change, Recover writes the
// new configuration with raft's RecoverCluster: a snapshot holding every
// entry the node has, committed or not, under it, and an emptied log.
//
// Every other member is dropped, non-voters too: their logs and state
// machines may hold entries the recovered node never had (a term it will
// use again, commands it never applied), which raft cannot reconcile. So
// once the node leads, it marks them dropped in the replicated state
// (forgetDropped), and the leader refuses a dropped node that asks to
// join with the raft state it had (ErrDropped). Each joins again on fresh
// raft state: its --data/raft moved aside, started with --join, it gets
// the recovered node's state and serves again. Two lost voters that come
// back together with their data may still elect each other under the old
// configuration: recover only when the others cannot come back, or keep
// them down until they start on fresh raft state.
func Recover(dir, nodeID, raftAddr string, write bool) (*Recovery, error) {
	path := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cluster: %s holds no raft state (no raft.db): there is nothing to recover there", dir)
		}
		return nil, fmt.Errorf("cluster: cannot read %s: %w", path, err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("cluster: %s is in use: stop the node before recovering it", path)
		}
		return nil, fmt.Errorf("cluster: cannot open the raft log %s: %w", path, err)
	}
	defer store.Close()
	logger := hclog.NewNullLogger()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot open the snapshot store in %s: %w", dir, err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	rc := func() *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(nodeID)
		c.Logger = logger
		return c
	}

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read the raft state in %s: %w", dir, err)
	}
	if !has {
		return nil, fmt.Errorf("cluster: %s holds no raft state: there is nothing to recover there", dir)
	}
	before, err := raft.GetConfiguration(rc(), fsm.New(), store, store, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read the raft configuration in %s: %w", dir, err)
	}
	r := &Recovery{NodeID: nodeID, Before: before}
	st, err := replayState(store, snaps, r)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot replay the raft state in %s: %w", dir, err)
	}
	self := slices.IndexFunc(before.Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(nodeID) })
	if self < 0 {
		return nil, fmt.Errorf("cluster: node %s is not in the group's configuration as this node last knew it (it was removed, or never joined): recover another survivor, or start this one on a fresh --data with --join", nodeID)
	}
	me := before.Servers[self]
	me.Suffrage = raft.Voter
	if raftAddr != "" {
		me.Address = raft.ServerAddress(raftAddr)
	}
	r.After.Servers = []raft.Server{me}
	for _, s := range before.Servers {
		if s.ID != me.ID {
			r.Dropped = append(r.Dropped, string(s.ID))
		}
	}
	for id := range st.Members {
		if id != nodeID && !slices.Contains(r.Dropped, id) {
			r.Dropped = append(r.Dropped, id)
		}
	}
	slices.Sort(r.Dropped)
	if !write || !r.Needed() {
		return r, nil
	}
	// The marks go through the log once the node leads again (see
	// forgetDropped), so that every node taken in later has them with
	// the rest of the state.
	if err := durable.WriteFile(filepath.Join(dir, droppedFile), mustJSON(r.Dropped), 0o644); err != nil {
		return nil, fmt.Errorf("cluster: cannot record the dropped members: %w", err)
	}
	if err := raft.RecoverCluster(rc(), fsm.New(), store, store, snaps, trans, r.After); err != nil {
		return nil, fmt.Errorf("cluster: cannot write the recovered configuration in %s: %w", dir, err)
	}
	if err := store.Sync(); err != nil {
		return nil, fmt.Errorf("cluster: cannot sync %s: %w", path, err)
	}
	r.Written = true
	return r, nil
}

// replayState restores the newest snapshot in snaps and applies the
// commands logs holds after it, as raft does at a start, and sets
// r.LastIndex and r.LastTerm to the newest entry it saw.
func replayState(logs raft.LogStore, snaps raft.SnapshotStore, r *Recovery) (*fsm.State, error) {
	f := fsm.New()
	list, err := snaps.List()
	if err != nil {
		return nil, err
	}
	for _, meta := range list {
		_, rc, err := snaps.Open(meta.ID)
		if err != nil {
			continue
		}
		err = f.Restore(rc)
		if err != nil {
			// The next snapshot back, as raft does: Restore starts over.
			continue
		}
		r.LastIndex, r.LastTerm = meta.Index, meta.Term
		break
	}
	if len(list) > 0 && r.LastIndex == 0 {
		return nil, errors.New("no snapshot could be restored")
	}
	last, err := logs.LastIndex()
	if err != nil {
		return nil, err
	}
	for i := r.LastIndex + 1; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return nil, fmt.Errorf("log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			f.Apply(&l)
		}
		r.LastIndex, r.LastTerm = l.Index, l.Term
	}
	st, _ := f.State()
	return st, nil
}

// droppedFile, in the raft data directory, lists the members a recovery
// dropped, for the node to mark dropped once it leads.
const droppedFile = "recovered-dropped.json"

// mustJSON encodes ids, which cannot fail.
func mustJSON(ids []string) []byte {
	b, err := json.Marshal(ids)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return b
}

// forgetDropped, on a node Recover left a droppedFile for, waits until
// the node leads and marks the dropped members dropped in the replicated
// state (their records go), then deletes the file. A member in the
// configuration again by then (taken in on fresh raft state) is left
// alone. It gives up only when the node stops; the next start tries
// again.
func (n *Node) forgetDropped() {
	path := filepath.Join(n.cfg.DataDir, droppedFile)
	var ids []string
	if err := loadJSON(path, &ids); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.logf("cluster: cannot read %s, the members the recovery dropped: %v; until they are marked dropped, one that comes back with its old raft state could join again", path, err)
		}
		return
	}
	t := time.NewTicker(n.cfg.ElectionTimeout)
	defer t.Stop()
	for {
		if n.IsLeader() && n.dropMembers(ids) == nil {
			break
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
	if err := os.Remove(path); err != nil {
		n.logf("cluster: cannot remove %s: %v", path, err)
	}
}

// dropMembers marks, on the leader, the members ids that raft's
// configuration does not hold dropped (fsm.OpDropMember).
func (n *Node) dropMembers(ids []string) error {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	st, _ := n.fsm.State()
	for _, id := range ids {
		inConfig := slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
		if inConfig || st.Dropped[id] && st.Members[id] == nil {
			continue
		}
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpDropMember, Member: &fsm.Member{ID: id}}); err != nil {
			return err
		}
		n.logf("cluster: marked member %s dropped by the recovery: it joins again only on fresh raft state", id)
	}
	return nil
}
