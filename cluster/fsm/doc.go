// Package fsm is the replicated control-plane state of an infergate
// cluster: which models exist, their versions and aliases, and which nodes
// are members. It is a raft.FSM for github.com/hashicorp/raft.
//
// Every change is a Command, JSON-encoded into one raft log entry. The
// leader validates a command with Command.Validate before proposing it;
// every node validates it again in Apply, so a bad entry in the log fails
// the same way everywhere and never changes the state. Apply is
// deterministic: it reads no clock and no randomness, and the only
// timestamp in the state, Version.Created, comes from the command.
//
// A failing command returns a Result whose Err wraps ErrInvalid,
// ErrNotFound or ErrConflict; an HTTP server maps them to 400, 404 and 409.
//
// Readers call FSM.State for a deep copy and wait on FSM.Changed for the
// next change; they never see the live state.
package fsm
