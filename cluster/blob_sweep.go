package cluster

import (
	"os"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/logging"
)

// Sweeping the blob store: a retired version's bytes stay in --data/blobs
// (its repository file goes at once, see removeRetired) until a sweep
// finds that no live version of any model holds them. Without it, every
// upload, a retraining trainer's too, would grow every node's disk for
// good.
const (
	// blobSweepEvery is how often the reconciler sweeps, at most.
	blobSweepEvery = 10 * time.Minute
	// blobGrace is how long a blob stays after it was written whoever
	// holds it: an upload stores its bytes before raft registers them
	// (held meanwhile, see holdBlob), and a blob put there by hand, or
	// by a write that failed, gets time to be registered.
	blobGrace = time.Hour
)

// holdBlob keeps blob hex from sweeps until the returned release is
// called: an upload's, between storing its bytes and the registration.
func (n *Node) holdBlob(hex string) (release func()) {
	n.heldMu.Lock()
	n.held[hex]++
	n.heldMu.Unlock()
	return func() {
		n.heldMu.Lock()
		if n.held[hex]--; n.held[hex] <= 0 {
			delete(n.held, hex)
		}
		n.heldMu.Unlock()
	}
}

func (n *Node) blobHeld(hex string) bool {
	n.heldMu.Lock()
	defer n.heldMu.Unlock()
	return n.held[hex] > 0
}

// sweepBlobs removes the blobs no live version holds, stored over
// blobGrace ago, at most once per blobSweepEvery. st, the state the
// reconciler's pass began with, picks the candidates; a pass may take
// minutes, so each is checked again against the state of the moment,
// holding heldMu: an upload holds its blob from before it stores the
// bytes until its version is registered here, so a blob not held then is
// either in that state or not being registered. Only the loop goroutine
// calls it, once the state machine has caught up with the log (a state of
// the past would take a blob registered since for unheld).
func (r *reconciler) sweepBlobs(st *fsm.State) {
	every, grace := blobSweepEvery, blobGrace
	if r.n.cfg.blobSweep > 0 {
		every, grace = r.n.cfg.blobSweep, r.n.cfg.blobSweep
	}
	if !r.swept.IsZero() && time.Since(r.swept) < every {
		return
	}
	r.swept = time.Now()
	live := liveBlobs(st)
	store := r.n.cfg.Blobs
	hexes, err := store.List()
	if err != nil {
		r.n.logf(logging.Error+"cluster: cannot list the blob store to sweep it: %v", err)
		return
	}
	var candidates []string
	for _, hex := range hexes {
		if !live[hex] && !r.n.blobHeld(hex) && !r.pulling(hex) {
			candidates = append(candidates, hex)
		}
	}
	if len(candidates) == 0 {
		return
	}
	n := r.n
	n.heldMu.Lock()
	defer n.heldMu.Unlock()
	now, _ := n.fsm.State()
	live = liveBlobs(now)
	for _, hex := range candidates {
		if live[hex] || n.held[hex] > 0 || r.pulling(hex) {
			continue
		}
		fi, err := os.Stat(store.Path(hex))
		if err != nil || time.Since(fi.ModTime()) < grace {
			continue
		}
		if err := store.Remove(hex); err != nil {
			r.n.logf(logging.Warning+"cluster: cannot remove blob %s, which no live version holds: %v", hex, err)
			continue
		}
		r.n.m.blobsRemoved.Inc()
		r.n.m.blobBytesRemoved.Add(int(fi.Size()))
		r.n.logf("cluster: removed blob %.12s (%d bytes): no live version holds it", hex, fi.Size())
	}
}

// liveBlobs returns the blobs of st's versions that are not retired.
func liveBlobs(st *fsm.State) map[string]bool {
	live := make(map[string]bool)
	for _, m := range st.Models {
		for _, v := range m.Versions {
			if v.Stage != fsm.StageRetired {
				live[v.SHA256] = true
			}
		}
	}
	return live
}

// pulling reports whether blob hex is being fetched.
func (r *reconciler) pulling(hex string) bool {
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	return r.pulls[hex] != nil
}
