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
	// ErrBehind means a linearizable read gave up waiting for this node to
	// apply what the leader had committed (a follower cut off from the
	// leader's log, or slow to apply it). Nothing changed: retry, or read
	// from another node (HTTP 503 with Retry-After).
	ErrBehind = errors.New("this node has not caught up with the leader's log")
	// ErrStopped means the node has been stopped.
	ErrStopped = errors.New("cluster node stopped")
)
