package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// A member whose data directory was wiped (a disk replaced) and that is
// started again with its old command line, without --join, bootstraps a
// new group on its raft address. The group's leader still sends that
// address the entries of the member that was there, and raft takes them:
// the new node would count as that member, a voter that lost its log, and
// report ready. It must stop taking part in raft and say what to do.
func TestWipedMemberBootstrappedIsTakenOverAndSaysSo(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	addr := c.trans[0].LocalAddr()
	if err := c.nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	c.waitLeader(c.nodes[1:]...)

	// The wiped node: a new id (none stored in the empty --data), the old
	// raft address, no --join.
	wiped, _ := c.wipedAt(0, "n0-wiped", "", true)
	cfg := wiped.cfg
	waitTakenOver(t, wiped, "its member n0", "--join")
	if _, _, err := wiped.Members(); !errors.Is(err, ErrDropped) {
		t.Fatalf("Members on the wiped node: got %v; want ErrDropped", err)
	}
	// Restarted on that state (its old command line again), it starts no
	// raft and says why from its start.
	if err := wiped.Stop(); err != nil {
		t.Fatal(err)
	}
	_, tr2 := raft.NewInmemTransport(addr)
	cfg2 := testConfig(t, "n0-wiped", tr2, "")
	cfg2.DataDir = cfg.DataDir
	again, err := Start(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Stop() })
	if busy, why := again.Settling(); !busy || !strings.Contains(why, "its member n0") {
		t.Fatalf("restarted on the taken-over state: Settling() = %v, %q; want not ready naming member n0", busy, why)
	}
	if st := again.raft.State(); st != raft.Shutdown {
		t.Fatalf("raft on the restarted node: got %s; want Shutdown", st)
	}
	// Why it has not gone over the cluster's models (the status page
	// shows it; members give it as their versions' reason) is the
	// takeover, not a recovery there was none of.
	if p := again.LocalStatus().Pending; !strings.Contains(p, "its member n0") {
		t.Fatalf("restarted on the taken-over state: LocalStatus().Pending = %q; want the takeover, naming member n0", p)
	}
	// The group goes on without it: a write commits on the other two.
	if _, err := c.register(c.waitLeader(c.nodes[1:]...), "after", "after-wipe"); err != nil {
		t.Fatalf("write after the wiped node stopped: %v", err)
	}
}

// A wiped member started again with --join under a new id, before the
// group removed the old member: the join is refused (the address is the
// old member's), but the group's leader still sends that address the old
// member's entries and raft takes them, so the node answered and voted as
// that member (a follower of the leader, the old member at its address in
// its configuration) while it reported that it had not joined yet. It
// must stop taking part in raft and say what to do, as a wiped member
// that bootstrapped does.
func TestWipedMemberJoiningIsTakenOverAndSaysSo(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	if err := c.nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	c.waitLeader(c.nodes[1:]...)

	// The join URL never answers: what matters is raft at the address.
	wiped, _ := c.wipedAt(0, "n0-wiped", "http://127.0.0.1:1", true)
	waitTakenOver(t, wiped, "its member n0", "cluster remove n0")
	// Nor does it ask to join any more: once the old member is removed,
	// the group would take it as a voter whose raft is off.
	if err := wiped.announceOnce(wiped.self()); !errors.Is(err, ErrDropped) {
		t.Fatalf("announcing the taken-over node: got %v; want ErrDropped", err)
	}
	// What reads on it answer (cluster status, models list) says what
	// happened to it, not a recovery there was none of.
	if _, _, err := wiped.Members(); !errors.Is(err, ErrDropped) || strings.Contains(err.Error(), "recover") {
		t.Fatalf("members on the taken-over node: got %v; want ErrDropped, naming no recovery", err)
	}
	if _, err := c.register(c.waitLeader(c.nodes[1:]...), "after", "after-wipe"); err != nil {
		t.Fatalf("write after the wiped node stopped: %v", err)
	}
}

// waitTakenOver waits until n, a wiped node the group took over, reports
// not ready for a reason holding each of want, with its raft shut down.
func waitTakenOver(t *testing.T, n *Node, want ...string) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, func() error {
		busy, why := n.Settling()
		if !busy {
			return fmt.Errorf("the wiped node %s reports ready", n.cfg.NodeID)
		}
		for _, w := range want {
			if !strings.Contains(why, w) {
				return fmt.Errorf("not ready for another reason (want %q in it): %s", w, why)
			}
		}
		if st := n.raft.State(); st != raft.Shutdown {
			return fmt.Errorf("raft on the wiped node %s: got %s; want Shutdown", n.cfg.NodeID, st)
		}
		return nil
	})
}
