package cluster

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// hangingTransport answers AppendEntries at once, fails it, or holds it
// until released, as a member that runs, is gone, or hangs would.
type hangingTransport struct {
	raftTransport // nil: only AppendEntries is called

	mu   sync.Mutex
	fail bool
	hang chan struct{} // when set, a call waits for it to close
}

func (t *hangingTransport) set(fail bool, hang chan struct{}) {
	t.mu.Lock()
	t.fail, t.hang = fail, hang
	t.mu.Unlock()
}

func (t *hangingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	t.mu.Lock()
	fail, hang := t.fail, t.hang
	t.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if fail {
		return errors.New("connection refused")
	}
	return nil
}

// A member that stops answering heartbeats is silent from its last
// answer on, while the call to it still waits (a stopped process, a
// network that drops packets), not only once the call fails; an answer
// ends it, a failed call does not, and a reset forgets it, as does
// forget (a member removed).
func TestHeartbeatsSilentFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &hangingTransport{}
		h := newHeartbeats(inner)
		done := make(chan error, 1)
		beat := func() {
			done <- h.AppendEntries("b", "b:7000", &raft.AppendEntriesRequest{}, &raft.AppendEntriesResponse{})
		}
		silent := func(want time.Duration) {
			t.Helper()
			if got := h.silentFor("b", time.Now()); got != want {
				t.Fatalf("silentFor = %s; want %s", got, want)
			}
		}
		silent(0) // sent nothing yet
		beat()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		silent(300 * time.Millisecond)

		// The member hangs: the next heartbeat waits, and the silence
		// grows from its last answer meanwhile.
		hang := make(chan struct{})
		inner.set(false, hang)
		go beat()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		silent(2300 * time.Millisecond)

		// It answers again.
		inner.set(false, nil)
		close(hang)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		silent(0)

		// A failed call is no answer.
		inner.set(true, nil)
		time.Sleep(time.Second)
		beat()
		if err := <-done; err == nil {
			t.Fatal("a failing transport's call succeeded")
		}
		silent(time.Second)

		// After a reset (a new term), a member whose first heartbeat
		// never comes back is silent from when it was sent.
		h.reset()
		silent(0)
		hang = make(chan struct{})
		inner.set(false, hang)
		go beat()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		silent(1500 * time.Millisecond)
		close(hang)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		silent(0)

		// A removed member is forgotten: were it to join again under its
		// id, hours later, it would not read as silent all that while.
		time.Sleep(time.Hour)
		if got := h.silentFor("b", time.Now()); got != time.Hour {
			t.Fatalf("before forget: silent %s; want 1h", got)
		}
		h.forget("b")
		silent(0)

		// A heartbeat in flight when the member is removed, answered after:
		// no record comes back (it did, and a rejoin under the id, much
		// later, read as silent since then until its first answer).
		beat()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		hang = make(chan struct{})
		inner.set(false, hang)
		go beat()
		synctest.Wait()
		h.forget("b")
		close(hang)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		silent(0)
	})
}

// An answer to a call made before a reset (a new term) does not count for
// the record a call of the new term made: a member that hangs in the new
// term is silent (found by a reviewing helper: the old call's answer set
// the new record's lastOK, and the hung member read as answering).
func TestHeartbeatsStaleAnswerAfterReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &hangingTransport{}
		h := newHeartbeats(inner)
		done := make(chan error, 2)
		beat := func() {
			done <- h.AppendEntries("b", "b:7000", &raft.AppendEntriesRequest{}, &raft.AppendEntriesResponse{})
		}
		old := make(chan struct{})
		inner.set(false, old)
		go beat() // the old term's call, slow
		synctest.Wait()
		h.reset()
		hung := make(chan struct{})
		inner.set(false, hung)
		go beat() // the new term's call: the member hangs
		synctest.Wait()
		time.Sleep(10 * time.Second)
		close(old) // the old call's answer comes
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := h.silentFor("b", time.Now()); got != 10*time.Second {
			t.Errorf("silentFor = %s; want 10s: no call of this term was answered", got)
		}
		close(hung)
		<-done
	})
}
