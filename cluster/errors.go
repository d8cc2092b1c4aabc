package cluster

import (
	"errors"
	"fmt"

	"github.com/infergate/infergate/cluster/fsm"
)

var (
	// ErrNoLeader means no leader was known for the whole hold time; the
	// write was not applied. Retry later (HTTP 503 with Retry-After).
	ErrNoLeader = errors.New("no raft leader")
	// ErrNotLeader means a write forwarded to this node found it no longer
	// leads; the forwarding node retries with the new leader.
	ErrNotLeader = errors.New("this node is not the raft leader")
	// ErrUnknownOutcome means a write reached raft but leadership was lost
	// before it was known to commit: it may or may not have been applied.
	// Read the state back before retrying.
	ErrUnknownOutcome = errors.New("the write may or may not have been applied")
	// ErrUnauthorized means a peer refused this node's admin token.
	ErrUnauthorized = errors.New("the peer refused the admin token")
	// ErrBehind means a linearizable read gave up waiting for this node to
	// apply what the leader had committed (a follower cut off from the
	// leader's log, or slow to apply it). Nothing changed: retry, or read
	// from another node (HTTP 503 with Retry-After).
	ErrBehind = errors.New("this node has not caught up with the leader's log")
	// ErrStopped means the node has been stopped.
	ErrStopped = errors.New("cluster node stopped")
	// ErrBackupBusy means a backup was asked of a node that is taking
	// one already; retry once it is done (HTTP 429 with Retry-After).
	ErrBackupBusy = errors.New("this node is taking a backup already")
	// ErrTrialLoadsBusy means an upload or a promotion waited
	// Config.TrialLoadWait for one of the node's maxTrialLoads trial loads,
	// which other uploads and promotions held; nothing changed. Retry
	// once they are done (HTTP 429 with Retry-After).
	ErrTrialLoadsBusy = errors.New("the node's trial loads are all taken")
	// ErrBackupBlobMissing means a version's blob is not on the node
	// taking a backup and no peer gave it (HTTP 503): the archive would
	// lack it.
	ErrBackupBlobMissing = errors.New("a blob of the backup is missing")
	// ErrBadBackup means an archive is not a backup this release can
	// restore: truncated, damaged, or of another format.
	ErrBadBackup = errors.New("the archive is not a usable backup")
	// ErrDropped means the node takes no part in its group's raft: a
	// recovery dropped it (see Recover) and it asks with the raft state
	// it had, which may hold entries the group does not, or the group
	// took it over as the member it was before its --data was wiped
	// (takeover.go). It joins again once started on fresh raft state.
	// Its text names neither cause: the message it wraps says which. It
	// wraps fsm.ErrConflict (HTTP 409).
	ErrDropped = fmt.Errorf("%w: the node is out of its group's raft", fsm.ErrConflict)
)
