package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
)

// errSnapshots marks raft state that no snapshot and log restore whole.
var errSnapshots = errors.New("unusable snapshots")

// checkSnapshots picks the snapshot raft will restore at start as
// raft.NewRaft does (newest first, the first that opens, passes its
// checksum and restores) and returns errSnapshots when that start would
// fail with nothing for the operator to act on: when snapshots exist but
// none can be read (raft: "failed to load any existing snapshots"), or
// when the one that can be read is older than the start of the log, so
// that the entries between are gone (raft.NewRaft panics, "log not
// found"). The second happens when the newest snapshot is damaged and
// more than TrailingLogs entries were written between it and the one
// before. It costs one more read and decode of the snapshot raft then
// restores, which the state machine keeps small. A store or log it
// cannot list it leaves to raft to report.
func checkSnapshots(dir string, snaps raft.SnapshotStore, logs raft.LogStore) error {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return nil
	}
	var skipped []string
	for _, meta := range list {
		_, rc, err := snaps.Open(meta.ID)
		if err == nil {
			err = fsm.New().Restore(rc)
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", meta.ID, err))
			continue
		}
		first, err := logs.FirstIndex()
		if err != nil {
			return nil
		}
		last, err := logs.LastIndex()
		if err != nil {
			return nil
		}
		if last > meta.Index && first > meta.Index+1 {
			return fmt.Errorf("%w: the newest readable snapshot in %s, %s, ends at raft index %d, but the log starts at %d, so entries %d to %d are gone (unreadable: %s)",
				errSnapshots, filepath.Join(dir, "snapshots"), meta.ID, meta.Index, first, meta.Index+1, first-1, strings.Join(skipped, "; "))
		}
		return nil
	}
	return fmt.Errorf("%w: no snapshot in %s can be read (%s)", errSnapshots, filepath.Join(dir, "snapshots"), strings.Join(skipped, "; "))
}

// snapshotsError says how to rebuild a node whose raft state in dir
// checkSnapshots refused.
func (n *Node) snapshotsError(dir string, err error) error {
	return fmt.Errorf("cluster: cannot start from the raft state in %s: %s. If this node has a group, the others hold the state: remove it there (\"infergate cluster remove %s\" on another member), move %s aside, and start it again with --join, which fetches everything back. A lone node's cluster state (its uploaded versions, aliases and experiments) is lost: move %s aside and start again, then upload the models again",
		dir, strings.TrimPrefix(err.Error(), errSnapshots.Error()+": "), n.cfg.NodeID, dir, dir)
}
