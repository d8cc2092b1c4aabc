package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// tcpNode starts node id over TCP and on-disk raft state, joining nobody
// (the test adds it on the leader).
func tcpNode(t *testing.T, id, join string) (Config, *Node) {
	t.Helper()
	cfg := tcpConfig(t, id, join)
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return cfg, n
}

// tcpConfig is tcpNode's configuration, for a test that changes it
// before the start.
func tcpConfig(t *testing.T, id, join string) Config {
	t.Helper()
	_, tr := raft.NewInmemTransport("unused-" + raft.ServerAddress(id))
	cfg := testConfig(t, id, tr, join)
	cfg.inmem = nil
	cfg.RaftAddr = testenv.FreeAddr(t)
	return cfg
}

// newTCPCluster starts three nodes over real raft TCP on loopback, n0
// the founder and n1, n2 added by it, and waits for a leader; it returns
// them with their configurations, for tests that stop and restart them.
func newTCPCluster(t *testing.T) (*testCluster, []Config) {
	t.Helper()
	cfg0, n0 := tcpNode(t, "n0", "")
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !n0.IsLeader() {
			return fmt.Errorf("n0 not leader")
		}
		return nil
	})
	cfg1, n1 := tcpNode(t, "n1", "http://127.0.0.1:1")
	cfg2, n2 := tcpNode(t, "n2", "http://127.0.0.1:1")
	for _, n := range []*Node{n1, n2} {
		if err := n0.JoinLocal(fsm.Member{ID: n.ID(), RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr}); err != nil {
			t.Fatal(err)
		}
	}
	c := &testCluster{t: t, nodes: []*Node{n0, n1, n2}}
	c.waitLeader(c.nodes...)
	return c, []Config{cfg0, cfg1, cfg2}
}

// A follower restarts after it was down a while. The leader's replication
// to it backs off exponentially while it is down (up to 10 s), but its
// heartbeats, which carry no commit index, reach it at once: the follower
// knows a leader, and its commit index, 0 after a restart, is "applied".
// catchUp must go on waiting for the log's last command (a fallback on
// heartbeats once ended it at the snapshot, the group's past, and the
// reconciler routed unversioned requests to the old production).
func TestCatchUpWaitsForReplayNotHeartbeats(t *testing.T) {
	c, cfgs := newTCPCluster(t)
	n0, n2, cfg2 := c.nodes[0], c.nodes[2], cfgs[2]
	for _, content := range []string{"good one", "good two"} { // v1 production, v2 staged
		if _, err := c.register(n0, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		st := n2.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("n2: statuses %+v", st)
		}
		return nil
	})
	// n2 snapshots here (production 1); production then becomes 2.
	if err := n2.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if d := n2.cfg.Registry.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("n2 default %d; want 2", d)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // production.json
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second) // down a while: the leader's replication to it backs off

	repo, again := restartAsServe(t, cfg2, n2, nil)
	var wrong atomic.Int64
	var appliedThen atomic.Uint64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if d := repo.DefaultVersion("m"); d != 2 && d != 0 && wrong.Load() == 0 {
			wrong.Store(d)
			appliedThen.Store(again.FSM().Applied())
		}
		if again.FSM().Applied() >= again.replayTo && repo.DefaultVersion("m") == 2 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if w := wrong.Load(); w != 0 {
		t.Fatalf("after the restart, before raft replayed the log (state machine at index %d, log's last command %d), unversioned requests were routed to version %d, the snapshot's production; production is 2",
			appliedThen.Load(), again.replayTo, w)
	}
}
