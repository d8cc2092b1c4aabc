package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
)

// releaseCheckTimeout bounds the wait for every member's LocalStatus
// when a write needs them all on this release.
const releaseCheckTimeout = 2 * time.Second

// RemoveModel takes model name off the cluster (fsm.OpRemoveModel): every
// node unloads it, its versions stay listed as retired, and a later
// upload of the name continues its numbering. Only once every member
// runs a release that knows the op: else the error wraps fsm.ErrConflict
// and names the members to upgrade.
func (n *Node) RemoveModel(ctx context.Context, name string) error {
	_, err := n.Apply(ctx, fsm.Command{Op: fsm.OpRemoveModel, Model: name})
	return err
}

// needsProtocol returns the Protocol that every member must report before
// c is applied, or 0 for an op that every release applies.
func needsProtocol(c *fsm.Command) int {
	if c.Op == fsm.OpRemoveModel {
		return 1
	}
	return 0
}

// checkReleases asks every voter and non-voter of the raft configuration
// for its LocalStatus and fails, wrapping fsm.ErrConflict, when one
// reports a Protocol below want (an earlier release) or does not answer
// within releaseCheckTimeout: a member that refused a committed entry
// would serve a state of its own, silently.
func (n *Node) checkReleases(ctx context.Context, c *fsm.Command, want int) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raftError(err)
	}
	st, _ := n.fsm.State()
	ctx, cancel := context.WithTimeout(ctx, releaseCheckTimeout)
	defer cancel()
	var mu sync.Mutex // guards problems: the loop and its goroutines add to it
	var problems []string
	var wg sync.WaitGroup
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			continue // this release
		}
		m := st.Members[id]
		if m == nil {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("member %s has not announced its address yet, so its release is not known", id))
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls, err := n.peers.localStatus(ctx, m.HTTPAddr)
			var p string
			switch {
			case err != nil:
				p = fmt.Sprintf("member %s did not answer at %s (asked for %s at most): %v", id, m.HTTPAddr, releaseCheckTimeout, err)
			case ls.Node != id:
				// Another node's release says nothing of this member's.
				p = fmt.Sprintf("member %s's address %s answered as node %s, so its release is not known; start it so that it announces its own address", id, m.HTTPAddr, ls.Node)
			case ls.Protocol < want:
				p = fmt.Sprintf("member %s runs an earlier release (protocol %d; this op needs %d)", id, ls.Protocol, want)
			default:
				return
			}
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("%w: %s of model %q needs every member on a release that knows it (a member of an earlier release would refuse it and go on with a state of its own): %s; upgrade every member first (and start any that is down), then try again",
		fsm.ErrConflict, c.Op, c.Model, strings.Join(problems, "; "))
}

// anyRemoved reports whether st holds a removed model.
func anyRemoved(st *fsm.State) bool {
	for _, m := range st.Models {
		if m.Removed() {
			return true
		}
	}
	return false
}

// logRemoval returns the index of the newest fsm.OpRemoveModel entry in
// logs, or 0 when the log holds none. It reads every entry the log keeps
// (about TrailingLogs plus SnapshotThreshold of them, 11,264 by default),
// so only a join of an earlier release, which is rare, calls it.
func logRemoval(logs raft.LogStore) (uint64, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("cannot read the raft log's first index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("cannot read the raft log's last index: %w", err)
	}
	op := []byte(fsm.OpRemoveModel)
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // compacted meanwhile
			}
			return 0, fmt.Errorf("cannot read raft log entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand || !bytes.Contains(l.Data, op) {
			continue
		}
		if c, err := fsm.Decode(l.Data); err == nil && c.Op == fsm.OpRemoveModel {
			return i, nil
		}
	}
	return 0, nil
}
