package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/infergate/infergate/cluster/fsm"
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
// already; Recover then writes nothing, and Dropped is empty.
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
// use again, commands it never applied), which raft cannot reconcile. The
// recovered snapshot marks them dropped in the replicated state, and the
// leader refuses a dropped node that asks to join with the raft state it
// had (ErrDropped). Each joins again on fresh
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
	if err := checkRaftDB(path); err != nil {
		return nil, fmt.Errorf("cluster: the raft log %s is damaged (%v): recover another survivor", path, strings.TrimPrefix(err.Error(), errDamaged.Error()+": "))
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
	if !write {
		if !r.Needed() {
			r.Dropped = nil
		}
		return r, nil
	}
	// This node leads a group of its own from now on: a mark its old
	// group left, when it refused it as dropped, no longer holds.
	if err := os.Remove(filepath.Join(dir, droppedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster: cannot remove the dropped mark in %s: %w", dir, err)
	}
	if !r.Needed() {
		r.Dropped = nil
		return r, nil
	}
	// The marks go into the snapshot the recovery writes, so that they
	// hold from the recovered node's first term, on it and on every node
	// taken in later (each gets the snapshot): no dropped node can join
	// on its old log in between. Every other member is dropped, so no
	// node goes on from an older snapshot of the same index.
	f := &recoveryFSM{FSM: fsm.New(), drop: r.Dropped}
	if err := raft.RecoverCluster(rc(), f, store, store, snaps, trans, r.After); err != nil {
		return nil, fmt.Errorf("cluster: cannot write the recovered configuration in %s: %w", dir, err)
	}
	if f.err != nil {
		return nil, fmt.Errorf("cluster: cannot mark the dropped members in %s: %w", dir, f.err)
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

// recoveryFSM is the state machine RecoverCluster replays the node's
// state into: before raft snapshots it, it marks the members drop names
// dropped (fsm.OpDropMember), so that the recovered snapshot holds the
// marks.
type recoveryFSM struct {
	*fsm.FSM
	drop []string
	err  error
}

// Snapshot marks the dropped members, then snapshots.
func (f *recoveryFSM) Snapshot() (raft.FSMSnapshot, error) {
	_, index := f.FSM.State()
	for _, id := range f.drop {
		if res := f.FSM.ApplyCommand(fsm.Command{Op: fsm.OpDropMember, Member: &fsm.Member{ID: id}}, index); res.Err != nil {
			f.err = fmt.Errorf("member %s: %w", id, res.Err)
			return nil, f.err
		}
	}
	return f.FSM.Snapshot()
}
