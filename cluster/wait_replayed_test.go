package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/durable"
)

// A node restarted on the raft state its group dropped never replays its
// log (its raft stays off): WaitReplayed says so at once, as Members
// does. Before, every read of the models waited its whole time, then
// said the node was replaying its log and to ask again in a moment.
func TestWaitReplayedOnADroppedNode(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteFile(filepath.Join(cfg.DataDir, droppedFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	again := startTCP(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := again.WaitReplayed(ctx)
	if !errors.Is(err, ErrDropped) {
		t.Fatalf("WaitReplayed on a dropped node: %v; want ErrDropped", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("WaitReplayed on a dropped node took %s; want an answer at once", took)
	}
}

// A node that joins a cluster on a fresh data directory has nothing to
// replay, but its state is empty until it has caught up with the
// leader's: the models read from it wait for that, as a restarted
// node's wait for its replay. Before, a model registered long before
// read as not registered there.
func TestWaitReplayedOnAJoiningNode(t *testing.T) {
	_, tr0 := raft.NewInmemTransport("127.0.0.1:7000")
	cfg0 := testConfig(t, "n0", tr0, "")
	n0 := startLeading(t, cfg0)
	c := &testCluster{t: t, nodes: []*Node{n0}, trans: []*raft.InmemTransport{tr0}}
	if _, err := c.register(n0, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	// n1 joins through an address that never answers, and nobody
	// admits it: it never catches up.
	_, tr1 := raft.NewInmemTransport("127.0.0.2:7000")
	n1 := startTCP(t, testConfig(t, "n1", tr1, "http://127.0.0.1:1"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := n1.WaitReplayed(ctx); !errors.Is(err, ErrBehind) {
		views, merr := n1.Models(context.Background(), "m")
		t.Fatalf("WaitReplayed on a node that has not caught up with its cluster: %v; want ErrBehind (its models: %+v, %v)", err, views, merr)
	}
}
