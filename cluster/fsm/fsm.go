package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM is the raft.FSM holding the State. Raft calls Apply, Snapshot and
// Restore from its FSM goroutine; State and Changed are safe from any
// goroutine. Use New; the zero value is not usable.
type FSM struct {
	// changed has capacity 1 and is never closed.
	changed chan struct{}
	// watchMu protects watches, the channels Watch returned, each like
	// changed.
	watchMu sync.Mutex
	watches []chan struct{}

	// mu protects state and index. Apply and Restore take it for writing;
	// Snapshot and State copy under it for reading.
	mu    sync.RWMutex
	state *State
	// index is the log index of the last command that succeeded, or of
	// the restored snapshot.
	index uint64
	// applied is the log index of the last command processed, whether it
	// succeeded or not (or of the restored snapshot): what a linearizable
	// read waits for. Raft's own AppliedIndex runs ahead of it, since raft
	// counts entries once they are queued for this FSM.
	applied uint64
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM with an empty State.
func New() *FSM {
	return &FSM{changed: make(chan struct{}, 1), state: newState()}
}

// Apply decodes and applies the command in l.Data and returns a *Result.
// Bytes that do not decode or a command that fails Validate give a Result
// whose Err wraps ErrInvalid; a failing command never changes the state.
func (f *FSM) Apply(l *raft.Log) any {
	c, err := Decode(l.Data)
	if err != nil {
		f.mu.Lock()
		f.applied = max(f.applied, l.Index)
		f.mu.Unlock()
		return &Result{Err: err}
	}
	return f.ApplyCommand(c, l.Index)
}

// Applied returns the log index of the last command this FSM has
// processed, applied or refused: once it reaches an index, the state holds
// every write committed up to there.
func (f *FSM) Applied() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// ApplyCommand applies c as the log entry at index, like Apply without the
// encoding. If c succeeds, index becomes the index State returns and
// Changed is signalled.
func (f *FSM) ApplyCommand(c Command, index uint64) *Result {
	if err := c.Validate(); err != nil {
		f.mu.Lock()
		f.applied = max(f.applied, index)
		f.mu.Unlock()
		return &Result{Err: err}
	}
	f.mu.Lock()
	res := f.state.apply(&c, index)
	if res.Err == nil {
		f.index = index
	}
	f.applied = max(f.applied, index)
	f.mu.Unlock()
	if res.Err == nil {
		f.signal()
	}
	return res
}

// State returns a deep copy of the state and the index of the last command
// that changed it (or of the restored snapshot).
func (f *FSM) State() (*State, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone(), f.index
}

// Stage returns the number and stage of version v of model name, or with
// v 0 of its production version, which unversioned requests get (a
// model's first version becomes production). ok is false when the state
// holds no such version. It copies nothing, so an error path may call it at
// the rate requests come.
func (f *FSM) Stage(name string, v int64) (number int64, stage string, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := f.state.Model(name)
	if m == nil {
		return 0, "", false
	}
	if v == 0 {
		v = m.Production()
	}
	fv := m.Version(v)
	if fv == nil {
		return 0, "", false
	}
	return fv.Number, fv.Stage, true
}

// Removed reports whether model name was removed from the cluster
// (Model.Removed). It copies nothing, so an error path may call it at the
// rate requests come.
func (f *FSM) Removed(name string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Model(name).Removed()
}

// Changed returns a channel that receives a value after every successful
// Apply and every Restore. Changes that come while nobody receives are
// coalesced into one value, so a reader loops: receive, then call State.
func (f *FSM) Changed() <-chan struct{} {
	return f.changed
}

// Watch returns a new channel that is signalled as Changed is, for a
// second reader: two readers of Changed would take each other's signals.
func (f *FSM) Watch() <-chan struct{} {
	c := make(chan struct{}, 1)
	f.watchMu.Lock()
	f.watches = append(f.watches, c)
	f.watchMu.Unlock()
	return c
}

func (f *FSM) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	for _, c := range f.watches {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Snapshot returns a deep copy of the state, so that Persist may run while
// Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &snapshot{Index: f.index, Applied: f.applied, State: f.state.Clone()}, nil
}

// Restore replaces the state with the snapshot in rc, which Persist wrote,
// and closes rc. It rejects a snapshot that does not decode or breaks an
// invariant of the State, leaving the state as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var snap snapshot
	if err := decodeStrict(rc, &snap); err != nil {
		return fmt.Errorf("cannot restore snapshot: %w", err)
	}
	if snap.State == nil {
		return errors.New("cannot restore snapshot: it has no state")
	}
	snap.State.normalize()
	if err := snap.State.check(); err != nil {
		return fmt.Errorf("cannot restore snapshot at index %d: %w", snap.Index, err)
	}
	f.mu.Lock()
	f.state, f.index, f.applied = snap.State, snap.Index, max(snap.Applied, snap.Index)
	f.mu.Unlock()
	f.signal()
	return nil
}

// snapshot is a raft.FSMSnapshot and the JSON that Persist writes.
type snapshot struct {
	Index   uint64 `json:"index"`
	Applied uint64 `json:"applied,omitempty"`
	State   *State `json:"state"`
}

// Persist writes s to sink as JSON.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("cannot persist snapshot at index %d: %w", s.Index, err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	enc := json.NewEncoder(w)
	// Keep Version.Config byte for byte as Apply stored it.
	enc.SetEscapeHTML(false)
	return enc.Encode(s)
}

// Release does nothing: s holds no resources.
func (s *snapshot) Release() {}
