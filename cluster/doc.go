// Package cluster runs the control plane of a gateway node: a raft group
// (hashicorp/raft, raft-boltdb, file snapshots, TCP transport) whose state
// machine (package cluster/fsm) holds which model versions exist, which
// stage each is in and which aliases point where, plus the members' HTTP
// addresses.
//
// A lone node bootstraps a one-voter group in its data directory on first
// start, so the embedded default runs the same code as a cluster. Further
// nodes join through any member's HTTP API; the leader adds them as voters
// up to Config.MaxVoters and as non-voters beyond. A seat that a removed
// voter frees goes to a non-voter (voters.go).
//
// Writes go through Node.Apply on any node: the leader applies them, a
// follower forwards them to the leader over HTTP, and with no leader the
// call holds for Config.HoldTimeout before failing with ErrNoLeader.
// Reads come from the local state machine and say how stale they may be
// (Node.Staleness); ReadIndex gives linearizable reads.
//
// Model bytes never enter the raft log: it carries each version's sha256
// and size. The reconciler (reconcile.go) makes the local registry match
// the replicated state: it pulls missing blobs from peers (GET
// /v1/blobs/sha256:<hex>, verified while streaming), links them into the
// model repository and loads, warms and routes them. The data plane never
// waits on raft: it serves whatever the registry has loaded.
//
// Peer traffic (forwarded writes, joins, blob pulls) uses net/http: it is
// low-rate and streams large bodies, which fasthttp's client buffers.
// This package never imports gateway; the gateway's admin API calls it.
package cluster
