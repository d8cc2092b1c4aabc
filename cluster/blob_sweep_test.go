package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A retired version's blob is removed from the store, as is one no
// version ever held, once its grace is over; a live version's stays, and
// so does one an upload holds until it is registered.
func TestRetiredBlobsAreSwept(t *testing.T) {
	_, tr := raft.NewInmemTransport("127.0.0.1:7000")
	cfg := testConfig(t, "n0", tr, "")
	cfg.blobSweep = 50 * time.Millisecond
	n := startLeading(t, cfg)
	c := &testCluster{t: t, nodes: []*Node{n}, trans: []*raft.InmemTransport{tr}}
	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	for _, content := range []string{"version one", "version two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	store := cfg.Blobs
	for _, s := range []string{"an orphan", "an upload on its way"} {
		if _, _, err := store.Put(bytes.NewReader([]byte(s)), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	release := n.holdBlob(digest("an upload on its way"))
	// Version 2 becomes production, so that version 1 may retire.
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "production", Version: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	// The reconciler sweeps when a change wakes it (or at its next tick,
	// seconds away): one more, once the orphan's grace is over.
	poke := func() {
		time.Sleep(100 * time.Millisecond)
		if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: "stable", Version: 2}); err != nil {
			t.Fatal(err)
		}
	}
	poke()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if store.Has(digest("version one")) || store.Has(digest("an orphan")) {
			return fmt.Errorf("the retired version's blob or the orphan is still stored")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // a few more sweeps
	if !store.Has(digest("version two")) || !store.Has(digest("an upload on its way")) {
		t.Fatalf("a live version's blob or a held one was removed")
	}
	release()
	poke()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if store.Has(digest("an upload on its way")) {
			return fmt.Errorf("the released blob is still stored")
		}
		return nil
	})
	testenv.CheckFor(t, 5*time.Second, func() error { // counted after the removal
		if got := n.m.blobsRemoved.Get(); got != 3 {
			return fmt.Errorf("blobs removed %d; want 3", got)
		}
		return nil
	})
}

// A sweep checks each blob it would remove against the state of the
// moment: the state its reconciler pass began with may be minutes old,
// without a version registered since. Before, such a version's blob, old
// and no longer held, was removed (seen in a -race run of
// TestRetiredBlobsAreSwept: production version 2's blob went, and a lone
// node could never serve it again).
func TestSweepChecksTheStateOfTheMoment(t *testing.T) {
	_, tr := raft.NewInmemTransport("127.0.0.1:7000")
	cfg := testConfig(t, "n0", tr, "")
	cfg.blobSweep = time.Hour // the loop's sweeps remove nothing new
	n := startLeading(t, cfg)
	c := &testCluster{t: t, nodes: []*Node{n}, trans: []*raft.InmemTransport{tr}}
	if _, err := c.register(n, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	before, _ := n.FSM().State()
	// Version 2's bytes were a retired version's, stored long ago.
	if _, err := c.register(n, "m", "version two"); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("version two"))
	hex := hex.EncodeToString(sum[:])
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(cfg.Blobs.Path(hex), old, old); err != nil {
		t.Fatal(err)
	}
	// A pass that began before the registration sweeps now.
	newReconciler(n).sweepBlobs(before)
	if !cfg.Blobs.Has(hex) {
		t.Fatalf("the sweep removed the blob of version 2, registered after its pass began")
	}
	// A blob no version holds goes.
	orphan, _, err := cfg.Blobs.Put(bytes.NewReader([]byte("an orphan")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cfg.Blobs.Path(orphan), old, old); err != nil {
		t.Fatal(err)
	}
	newReconciler(n).sweepBlobs(before)
	if cfg.Blobs.Has(orphan) {
		t.Fatalf("the sweep kept a blob no version holds")
	}
}
