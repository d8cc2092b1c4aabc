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
	// one with the highest term, then the highest index: the others lose
	// what only they held when they join it again.
	LastIndex, LastTerm uint64
	// Before is raft's latest configuration as the node has it; After is
	// the one the recovery writes: the node the only voter, the
	// non-voters kept.
	Before, After raft.Configuration
	// Dropped lists, sorted, the voters After leaves out and the member
	// records the state machine holds for nodes After does not list;
	// the recovery forgets both.
	Dropped []string
	// Written is set when Recover wrote the new configuration.
	Written bool
}

// Needed reports whether the recovery changes raft's configuration:
// false when the node is its group's only voter already (records left
// over from an earlier recovery go once the node leads).
func (r *Recovery) Needed() bool {
	return !slices.Equal(r.Before.Servers, r.After.Servers)
}

// Recover makes node nodeID the only voter of its group, in the raft state
// the node keeps in dir (Config.DataDir), for a group that lost most of
// its voters for good: with no majority left it elects no leader and takes
// no writes, and raft offers no way out while it runs. The node must be
// stopped. Recover reads the state, works out the new configuration: the
// node as the only voter, the non-voters kept (the leader promotes them
// to free seats once they answer), the other voters dropped; and, when
// write is set and there is something to change, writes it with raft's
// RecoverCluster: a snapshot holding every entry the node has, committed
// or not, under the new configuration, and an emptied log. The state
// machine's records of the dropped nodes go too, through the log, once
// the node leads again.
//
// Started again, the node elects itself and takes writes. A dropped voter
// that still runs, or comes back with its data, knows no leader: it asks
// the members it knows, finds itself no longer listed, and joins again,
// giving up whatever only it held. Two dropped voters that come back
// together before that may elect each other under the old configuration:
// recover only when the other voters' data is gone, or their processes
// will stay down until they start on a fresh --data.
func Recover(dir, nodeID string, write bool) (*Recovery, error) {
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
	kept := make(map[string]bool)
	for i, s := range before.Servers {
		switch {
		case i == self:
			s.Suffrage = raft.Voter
		case s.Suffrage != raft.Nonvoter:
			r.Dropped = append(r.Dropped, string(s.ID))
			continue
		}
		r.After.Servers = append(r.After.Servers, s)
		kept[string(s.ID)] = true
	}
	for id := range st.Members {
		if !kept[id] && !slices.Contains(r.Dropped, id) {
			r.Dropped = append(r.Dropped, id)
		}
	}
	slices.Sort(r.Dropped)
	if !write || !r.Needed() {
		return r, nil
	}
	// The records go through the log once the node leads again (see
	// forgetDropped): changed here, in the snapshot, they would differ
	// from the kept non-voters', whose logs go on from the same entry.
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
// dropped whose records the node has yet to remove.
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
// the node leads and removes the records of the dropped members that the
// configuration does not hold (a member that joined again since keeps
// its record), then deletes the file. It gives up only when the node
// stops; the next start tries again.
func (n *Node) forgetDropped() {
	path := filepath.Join(n.cfg.DataDir, droppedFile)
	var ids []string
	if err := loadJSON(path, &ids); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.logf("cluster: cannot read %s, the members the recovery dropped: %v; remove their records with \"infergate cluster remove\"", path, err)
		}
		return
	}
	t := time.NewTicker(n.cfg.ElectionTimeout)
	defer t.Stop()
	for {
		if n.IsLeader() && n.removeRecords(ids) == nil {
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

// removeRecords removes, on the leader, the member records of ids that
// raft's configuration does not hold.
func (n *Node) removeRecords(ids []string) error {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	st, _ := n.fsm.State()
	for _, id := range ids {
		inConfig := slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
		if inConfig || st.Members[id] == nil {
			continue
		}
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRemoveMember, Member: &fsm.Member{ID: id}}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return err
		}
		n.logf("cluster: forgot member %s, which the recovery dropped", id)
	}
	return nil
}
