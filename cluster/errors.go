package cluster

import "errors"

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
	// ErrStopped means the node has been stopped.
	ErrStopped = errors.New("cluster node stopped")
)
