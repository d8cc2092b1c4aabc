package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry/blobs"
)

// A group restored from a backup (or recovered) on a raft address that a
// member of the old group still has, while that group runs: the old
// leader replicates to the address, raft takes its entries over the
// restored state, and the restored node followed the old group as its
// member, reporting ready, its own state and the old group's diverged
// (seen with real processes by a reviewer). Its only voter before, it
// must stop raft and say what happened, as a wiped member does.
func TestRestoredLoneVoterTakenOverByTheOldGroup(t *testing.T) {
	_, n0 := tcpNode(t, "n0", "")
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !n0.IsLeader() {
			return fmt.Errorf("n0 not leader")
		}
		return nil
	})
	_, n1 := tcpNode(t, "n1", "http://127.0.0.1:1")
	cfg2, n2 := tcpNode(t, "n2", "http://127.0.0.1:1")
	for _, n := range []*Node{n1, n2} {
		if err := n0.JoinLocal(fsm.Member{ID: n.ID(), RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr}); err != nil {
			t.Fatal(err)
		}
	}
	c := &testCluster{t: t, nodes: []*Node{n0, n1, n2}}
	leader := c.waitLeader(n0, n1, n2)
	if _, err := c.register(leader, "m", "model one"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(n0, n1, n2)
	path := filepath.Join(t.TempDir(), "b.tar")
	if err := os.WriteFile(path, takeBackup(t, leader), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}

	// Restored at n2's raft address while n0 and n1 run.
	data := t.TempDir()
	store, err := blobs.Open(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(path, filepath.Join(data, "raft"), store, "restored", cfg2.RaftAddr); err != nil {
		t.Fatal(err)
	}
	cfg := tcpConfig(t, "restored", "")
	cfg.RaftAddr, cfg.DataDir, cfg.Blobs = cfg2.RaftAddr, filepath.Join(data, "raft"), store
	restored, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restored.Stop() })
	waitTakenOver(t, restored, "only voter", "led by n0")
	if _, why := restored.Settling(); !strings.Contains(why, "raft address") {
		t.Fatalf("the taken-over restored node's reason does not say what to do about the address: %s", why)
	}
}
