package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	c, cfgs := newTCPCluster(t)
	n0, n1, n2, cfg2 := c.nodes[0], c.nodes[1], c.nodes[2], cfgs[2]
	leader := c.waitLeader(c.nodes...)
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
