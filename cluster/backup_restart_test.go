package cluster

import (
	"context"
	"testing"
	"time"
)

// TestBackupSnapshotAfterRestartWithoutWrites takes a backup, restarts
// the node and has it snapshot for a backup again with no write in
// between, as a follower does (only a leader's ReadIndex goes through
// the state machine, with a barrier). The first backup made raft
// snapshot at the last entry, so after the restart nothing reaches the
// state machine and raft answers "nothing new to snapshot": the backup
// must come from the snapshot the node restored, which is its state (or
// from a newer one, when the restarted leader's own first write, its
// address, reached the state machine before the call).
func TestBackupSnapshotAfterRestartWithoutWrites(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	if _, err := c.register(n, "m", "model one"); err != nil {
		t.Fatal(err)
	}
	first, _, _ := readArchive(t, takeBackup(t, n))
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	again := startLeading(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	meta, state, err := again.snapshotForBackup(ctx)
	if err != nil {
		t.Fatalf("snapshot for a backup after a restart: %v", err)
	}
	if meta.Index < first.Index || len(meta.Configuration.Servers) != 1 ||
		meta.Index == first.Index && (meta.Term != first.Term || int64(len(state)) != first.StateSize) {
		t.Fatalf("after restart: snapshot at %d/%d of %d bytes with %d servers; want %d/%d of %d bytes with 1, or a newer one", meta.Index, meta.Term, len(state), len(meta.Configuration.Servers), first.Index, first.Term, first.StateSize)
	}
	// And the whole backup, which on this leader passes a barrier first.
	second, st, blobs := readArchive(t, takeBackup(t, again))
	if second.Index < first.Index || second.Versions != 1 || len(blobs) != 1 || st.Models["m"] == nil {
		t.Fatalf("after restart: backup at index %d with %d versions and %d blobs; want index >= %d with 1 version and 1 blob", second.Index, second.Versions, len(blobs), first.Index)
	}
}
