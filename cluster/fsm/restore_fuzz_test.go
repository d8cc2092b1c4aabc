package fsm

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzRestore restores mutated snapshots (bytes a peer sends or a disk
// holds) into a seeded FSM. A refused one leaves the state as it was; an
// accepted one keeps every invariant, persists and restores to the same
// bytes, and takes further commands without breaking an invariant.
func FuzzRestore(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"index":3,"state":null}`))
	f.Add(snapshotBytes(f, seeded(f)))
	rng := rand.New(rand.NewPCG(7, 8))
	for range 10 {
		fsm := seeded(f)
		for i, c := range randomCommands(rng, 12) {
			fsm.ApplyCommand(c, uint64(10+i))
		}
		f.Add(snapshotBytes(f, fsm))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := seeded(t)
		before := snapshotBytes(t, fsm)
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if got := snapshotBytes(t, fsm); !bytes.Equal(got, before) {
				t.Fatalf("a refused Restore (%v) changed the state:\ngot  %s\nwant %s", err, got, before)
			}
			return
		}
		checkState(t, fsm)
		_, index := fsm.State()
		if fsm.Applied() < index {
			t.Fatalf("after Restore: Applied %d < index %d", fsm.Applied(), index)
		}
		b := snapshotBytes(t, fsm)
		if b2 := snapshotBytes(t, restore(t, b)); !bytes.Equal(b2, b) {
			t.Fatalf("snapshot after restore:\ngot  %s\nwant %s", b2, b)
		}
		// The restored state takes commands like one Apply built.
		cmds := append(seedCommands(), randomCommands(rand.New(rand.NewPCG(uint64(len(data)), 1)), 16)...)
		for i, c := range cmds {
			line, err := c.Encode()
			if err != nil {
				t.Fatalf("Encode(%+v): %v", c, err)
			}
			if res, ok := fsm.Apply(&raft.Log{Index: fsm.Applied() + 1 + uint64(i), Data: line}).(*Result); !ok || res == nil {
				t.Fatalf("Apply(%s): got %#v; want a *Result", line, res)
			}
		}
		checkState(t, fsm)
	})
}
