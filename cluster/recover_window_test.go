package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// A dropped node asking to join on its old raft state the moment the
// recovered node leads is refused: the marks are in the recovered
// snapshot, not applied later (they once went in one tick after the
// node led, and a node taken in meanwhile had its old log merged).
func TestRecoveredLeaderRefusesOldLogAtOnce(t *testing.T) {
	c, cfg1, cfg2 := forkedHistory(t)
	// The dropped n1 is up again on its old raft state, asking to join.
	n1 := startTCP(t, cfg1)
	if n1.self().Fresh {
		t.Fatal("n1 has raft state")
	}
	n2 := startTCP(t, cfg2)
	for !n2.IsLeader() {
		time.Sleep(time.Millisecond)
	}
	err := n2.JoinLocal(n1.self())
	if err == nil {
		c.nodes = []*Node{n2, n1}
		if _, err := c.register(n2, "after-recovery", "written after the recovery"); err != nil {
			t.Fatal(err)
		}
		var diff string
		testenv.CheckFor(t, 5*time.Second, func() error {
			a, b := slices.Sorted(mapKeys(stateOf(n2).Models)), slices.Sorted(mapKeys(stateOf(n1).Models))
			if !slices.Contains(b, "after-recovery") {
				return fmt.Errorf("n1 has not caught up: %v", b)
			}
			diff = fmt.Sprintf("n2 (recovered leader) models %v, n1 models %v", a, b)
			return nil
		})
		t.Fatalf("the recovered leader took the dropped n1 in on its old raft state (before forgetDropped marked it): %s", diff)
	}
}

// Leadership moves off the recovered node at once, to a replacement that
// just joined: the new leader has the marks too (they came with the
// recovered snapshot), and refuses a dropped node on its old raft state.
// Tried five times.
func TestDroppedMarksSurviveLeadershipMove(t *testing.T) {
	for try := range 5 {
		if msg := marksLostAttempt(t); msg != "" {
			t.Fatalf("try %d: %s", try+1, msg)
		}
	}
}

func marksLostAttempt(t *testing.T) string {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	cfg1 := tcpConfig(t, "n1", "http://127.0.0.1:1")
	n1 := startTCP(t, cfg1)
	if err := joinOn(t, n0, n1.self()); err != nil {
		t.Fatal(err)
	}
	n1.Stop()
	n0.Stop()
	if _, err := Recover(cfg0.DataDir, "n0", "", true); err != nil {
		t.Fatal(err)
	}
	cfg2 := tcpConfig(t, "n2", "http://127.0.0.1:1") // a replacement, fresh
	n2 := startTCP(t, cfg2)
	n0 = startTCP(t, cfg0)
	for !n0.IsLeader() {
		time.Sleep(time.Millisecond)
	}
	if err := joinOn(t, n0, n2.self()); err != nil {
		t.Fatal(err)
	}
	defer n2.Stop()
	defer n0.Stop()
	// Leadership moves to the replacement at once. (Stopping n0 would
	// move it too, but alone of two voters n2 cannot keep it.)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if err := n0.raft.LeadershipTransferToServer("n2", raft.ServerAddress(cfg2.RaftAddr)).Error(); err != nil && !n2.IsLeader() {
			return err
		}
		return nil
	})
	waitLeads(t, n2)
	st := stateOf(n2)
	n1 = startTCP(t, cfg1) // the dropped n1 on its old raft state
	defer n1.Stop()
	if err := refusedJoin(t, n2, n1.self()); err == nil {
		return fmt.Sprintf("leader n2 (dropped %v) took the dropped n1 in on its old raft state", st.Dropped)
	}
	return ""
}
