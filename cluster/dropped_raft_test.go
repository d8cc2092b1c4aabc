package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// TestDroppedNodeTakesNoPartInRaft: a node its recovered group refuses as
// dropped stops its raft at once and, restarted on that raft state,
// starts none: it listens on no raft address, so it can neither vote a
// fellow dropped node into leading nor lead one, and a recovered group,
// which follows any leader of a higher term, never takes a log from it
// (a README walk let a dropped node and another old voter elect each
// other, and the recovered leader followed them).
func TestDroppedNodeTakesNoPartInRaft(t *testing.T) {
	_, cfg1, cfg2 := forkedHistory(t)
	n2 := startTCP(t, cfg2)
	waitLeads(t, n2)
	n1 := startTCP(t, cfg1)
	err := refusedJoin(t, n2, n1.self())
	if !errors.Is(err, ErrDropped) {
		t.Fatalf("n1 on its old raft state: %v; want ErrDropped", err)
	}
	n1.droppedBy(err) // as its announce or its removal watch does
	if s := n1.raft.State(); s != raft.Shutdown {
		t.Fatalf("the dropped node's raft: %v; want shut down", s)
	}
	if _, err := os.Stat(filepath.Join(cfg1.DataDir, droppedFile)); err != nil {
		t.Fatalf("the dropped mark: %v", err)
	}
	if _, _, err := n1.Members(); !errors.Is(err, ErrDropped) {
		t.Fatalf("Members on the dropped node: %v; want ErrDropped saying to ask the recovered group", err)
	}
	n1.Stop()

	n1 = startTCP(t, cfg1)
	if s := n1.raft.State(); s != raft.Shutdown {
		t.Fatalf("restarted on its raft state, the dropped node's raft: %v; want shut down", s)
	}
	if settling, why := n1.Settling(); !settling || !strings.Contains(why, "dropped") {
		t.Fatalf("Settling: %v %q; want not ready, saying it was dropped", settling, why)
	}
	if c, err := net.DialTimeout("tcp", cfg1.RaftAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the dropped node listens for raft on %s", cfg1.RaftAddr)
	}
}

// TestRecoveredDroppedNodeIsReady: n1 was refused as dropped
// after n0's recovery, and left its mark. Then n0's machine is lost for
// good, and the operator recovers n1 (the only survivor left): it is now
// its group's only member and leader, serves and takes writes. It must
// report ready: Recover removes the mark (found by a reviewing helper:
// it stayed, keeping the node "dropped" for good, telling the operator to
// move --data/raft aside, which would throw away the group it now is).
func TestRecoveredDroppedNodeIsReady(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	cfg1 := tcpConfig(t, "n1", "http://127.0.0.1:1")
	n1 := startTCP(t, cfg1)
	if err := joinOn(t, n0, n1.self()); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if addr, _ := n1.raft.LeaderWithID(); addr == "" || !n1.inConfiguration() {
			return fmt.Errorf("n1 has not joined yet")
		}
		return nil
	})
	n1.Stop()
	n0.Stop()
	if _, err := Recover(cfg0.DataDir, "n0", "", true); err != nil {
		t.Fatal(err)
	}
	n0 = startTCP(t, cfg0)
	waitLeads(t, n0)
	n1 = startTCP(t, cfg1)
	err := refusedJoin(t, n0, n1.self())
	if !errors.Is(err, ErrDropped) {
		t.Fatalf("n1 on its old raft state: %v; want ErrDropped", err)
	}
	n1.droppedBy(err) // what announce does with that answer
	if _, err := os.Stat(filepath.Join(cfg1.DataDir, droppedFile)); err != nil {
		t.Fatalf("the mark: %v", err)
	}
	// n0 is lost for good; n1 is recovered as the only member.
	n0.Stop()
	n1.Stop()
	if _, err := Recover(cfg1.DataDir, "n1", "", true); err != nil {
		t.Fatal(err)
	}
	n1 = startTCP(t, cfg1)
	waitLeads(t, n1)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if settling, why := n1.Settling(); settling {
			return fmt.Errorf("n1, recovered as its group's only member and leading it, reports not ready: %s", why)
		}
		return nil
	})
}
