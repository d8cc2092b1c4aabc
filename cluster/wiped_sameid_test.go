package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// wipedAt starts a node on an empty data directory under id, at the raft
// address of c's node i (stopped by the caller), with join; connect says
// whether the group's members reach it from the start.
func (c *testCluster) wipedAt(i int, id, join string, connect bool) (*Node, *raft.InmemTransport) {
	c.t.Helper()
	addr := c.trans[i].LocalAddr()
	_, tr := raft.NewInmemTransport(addr)
	for j, other := range c.trans {
		if j == i {
			continue
		}
		tr.Connect(other.LocalAddr(), other)
		if connect {
			other.Connect(addr, tr)
		}
	}
	n, err := Start(testConfig(c.t, id, tr, join))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { n.Stop() })
	return n, tr
}

// configurations returns the configurations the log of n holds after
// index from.
func configurations(t *testing.T, n *Node, from uint64) []raft.Configuration {
	t.Helper()
	var out []raft.Configuration
	for i := from + 1; i <= n.raft.LastIndex(); i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil || l.Type != raft.LogConfiguration {
			continue
		}
		out = append(out, raft.DecodeConfiguration(l.Data))
	}
	return out
}

func lists(cfg raft.Configuration, id string) (listed, voter bool) {
	for _, s := range cfg.Servers {
		if s.ID == raft.ServerID(id) {
			return true, s.Suffrage == raft.Voter
		}
	}
	return false, false
}

// A wiped member started again with --join under its old --node-id (as
// on a Kubernetes StatefulSet) asks to join on empty raft state at the
// address the group holds its voter at. Taken for that voter, it would
// vote as if it held what the voter acknowledged. The leader removes it
// first (a removal the other voters commit), then adds it again, and it
// catches up as a new server, with a write made while it was down. The
// leader's entries may reach the node before its join does (then it
// receives the entry that removes it, as a follower: raft's
// ShutdownOnRemove stops only a leader that removes itself): it ends the
// same.
func TestWipedVoterJoiningUnderItsIDIsRemovedAndAddedAgain(t *testing.T) {
	for _, entriesFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("entriesFirst=%v", entriesFirst), func(t *testing.T) {
			testWipedVoterJoining(t, entriesFirst)
		})
	}
}

func testWipedVoterJoining(t *testing.T, entriesFirst bool) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	if err := c.nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	leader := c.waitLeader(c.nodes[1:]...)
	if _, err := c.register(leader, "m", "while-down"); err != nil {
		t.Fatal(err)
	}
	from := leader.raft.LastIndex()

	wiped, _ := c.wipedAt(0, "n0", "http://127.0.0.1:1", true)
	if entriesFirst {
		testenv.CheckFor(t, 10*time.Second, func() error {
			if stateOf(wiped).Models["m"] == nil {
				return errors.New("the leader's entries have not reached the wiped n0")
			}
			return nil
		})
	}
	// The join request the node sends at its start (its log empty then).
	c.joinFresh(wiped, c.nodes[1:]...)
	leader = c.waitLeader(c.nodes[1:]...)
	removed := false
	for _, cfg := range configurations(t, leader, from) {
		if listed, _ := lists(cfg, "n0"); !listed {
			removed = true
		}
	}
	if !removed {
		t.Fatalf("the leader's log after the wiped n0's join holds no configuration without n0: %v", configurations(t, leader, from))
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if st := wiped.raft.State(); st == raft.Shutdown {
			return fmt.Errorf("raft on the wiped n0: got %s", st)
		}
		f := leader.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		if _, voter := lists(f.Configuration(), "n0"); !voter {
			return fmt.Errorf("n0 in the leader's configuration: not a voter: %v", f.Configuration().Servers)
		}
		if stateOf(wiped).Models["m"] == nil {
			return errors.New("the wiped n0 lacks the write made while it was down")
		}
		return nil
	})
	if entriesFirst {
		gotRemoval := false
		for _, cfg := range configurations(t, wiped, 0) {
			if listed, _ := lists(cfg, "n0"); !listed {
				gotRemoval = true
			}
		}
		t.Logf("the wiped n0's log holds the configuration that removed it: %v", gotRemoval)
	}
	// A write now commits with it as a voter again, and reaches it.
	if _, err := c.register(c.waitLeader(c.nodes[1:]...), "m", "after"); err != nil {
		t.Fatal(err)
	}
	c.nodes[0] = wiped
	c.waitConverged(c.nodes...)
}

// A new node whose join answer was lost asks again with its log still
// empty: it is removed and added again, once more, and ends a voter
// that has caught up.
func TestFreshJoinRetriedConverges(t *testing.T) {
	c := newTestCluster(t, 2)
	c.waitConverged(c.nodes...)
	addr := raft.ServerAddress("127.0.0.3:7000")
	_, tr := raft.NewInmemTransport(addr)
	for _, other := range c.trans {
		tr.Connect(other.LocalAddr(), other)
		other.Connect(addr, tr)
	}
	c.trans = append(c.trans, tr)
	n2, err := Start(testConfig(t, "n2", tr, "http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Stop() })
	c.nodes = append(c.nodes, n2)
	m := fsm.Member{ID: "n2", RaftAddr: string(addr), HTTPAddr: n2.cfg.HTTPAddr, Fresh: true, KnowsDropped: true, Protocol: Protocol}
	for range 2 {
		testenv.CheckFor(t, 10*time.Second, func() error {
			err := c.waitLeader(c.nodes[:2]...).JoinLocal(m)
			if errors.Is(err, ErrNotLeader) {
				return err
			}
			if err != nil {
				t.Fatalf("join of n2: %v", err)
			}
			return nil
		})
	}
	if _, err := c.register(c.waitLeader(c.nodes...), "m", "after"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(c.nodes...)
	f := c.waitLeader(c.nodes...).raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if _, voter := lists(f.Configuration(), "n2"); !voter {
		t.Fatalf("n2 after its retried join: not a voter: %v", f.Configuration().Servers)
	}
}

// A wiped member started again under its old --node-id without --join
// bootstraps a one-voter group at its old raft address; the group's
// leader takes it over, and it would count as the voter it was. It must
// stop raft and say what to do, whether the old leader reaches it before
// it leads its own group or after.
func TestWipedMemberBootstrappedUnderItsIDIsTakenOver(t *testing.T) {
	for _, ledFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("ledFirst=%v", ledFirst), func(t *testing.T) {
			c := newTestCluster(t, 3)
			c.waitConverged(c.nodes...)
			if err := c.nodes[0].Stop(); err != nil {
				t.Fatal(err)
			}
			c.waitLeader(c.nodes[1:]...)
			wiped, tr := c.wipedAt(0, "n0", "", !ledFirst)
			if ledFirst {
				c.waitLeader(wiped)
				for _, other := range c.trans[1:] {
					other.Connect(tr.LocalAddr(), tr)
				}
			}
			waitTakenOver(t, wiped, "as its member n0", "replaces the member n0 was")
			if _, why := wiped.Settling(); strings.Contains(why, "cluster remove") {
				t.Fatalf("taken over under its own id, it is told to remove itself first: %s", why)
			}
			if _, err := c.register(c.waitLeader(c.nodes[1:]...), "after", "after-wipe"); err != nil {
				t.Fatalf("write after the wiped n0 stopped: %v", err)
			}
		})
	}
}

// A founder whose group grew, and whose leadership then moved away (a
// handover, then a partition), is not taken for a wiped member.
func TestFounderFollowingAnotherLeaderIsNotTakenOver(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	founder := c.nodes[0]
	if !founder.bootstrapped {
		t.Fatal("n0 did not bootstrap")
	}
	// checked waits until founder's watchTakeover has looked twice more
	// while another node led.
	checked := func() {
		t.Helper()
		at := founder.takeoverLooks.Load()
		testenv.CheckFor(t, 10*time.Second, func() error {
			if got := founder.takeoverLooks.Load(); got < at+2 {
				return fmt.Errorf("watchTakeover looked %d times; want %d", got-at, 2)
			}
			return nil
		})
		if busy, why := founder.Settling(); busy || founder.dropped.Load() || founder.raft.State() == raft.Shutdown {
			t.Fatalf("the founder: settling %v (%s), dropped %v, raft %s; want ready, raft on", busy, why, founder.dropped.Load(), founder.raft.State())
		}
	}
	if c.waitLeader(c.nodes...) == founder {
		if err := founder.transferLeadership(); err != nil {
			t.Fatal(err)
		}
	}
	if c.waitLeader(c.nodes...) == founder {
		t.Fatal("the founder still leads after the handover")
	}
	checked()
	// Leading again, then cut off: the others elect another.
	for c.waitLeader(c.nodes...) != founder {
		if err := c.waitLeader(c.nodes...).transferLeadership(); err != nil {
			t.Fatal(err)
		}
	}
	rest := c.isolate(founder)
	c.waitLeader(rest...)
	c.heal()
	c.waitLeader(c.nodes...)
	if _, err := c.register(c.waitLeader(c.nodes...), "m", "after"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(c.nodes...)
	checked()
}

// A wiped voter that asks to join on empty raft state while another
// voter is down is left a voter: removed, it would leave a group of two
// voters, one silent, that commits nothing until that one is back.
func TestWipedVoterJoiningWithAnotherVoterDownStaysVoter(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	for _, i := range []int{0, 2} {
		if err := c.nodes[i].Stop(); err != nil {
			t.Fatal(err)
		}
	}
	wiped, _ := c.wipedAt(0, "n0", "http://127.0.0.1:1", true)
	// n1 leads again with the wiped n0's vote.
	leader := c.waitLeader(c.nodes[1], wiped)
	if leader != c.nodes[1] {
		t.Fatalf("leader: got %s; want n1", leader.ID())
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !leader.unreachable("n2") {
			return errors.New("n1 does not list n2 unreachable yet")
		}
		return nil
	})
	from := leader.raft.LastIndex()
	c.joinFresh(wiped, c.nodes[1], wiped)
	c.wantStillVoter(leader, from, "n0")
}

// A voter that stops a moment before a wiped voter's join has answered
// the leader's heartbeats lately, but answers no more: counted, it let
// the leader remove the wiped voter, a removal the stopped voter had to
// commit, and the leader lost its lead ("leadership lost while
// committing log") and the group its quorum until that voter was back.
// Only voters that answer after the join arrived count.
func TestWipedVoterJoiningJustAfterAnotherVoterStoppedStaysVoter(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	if err := c.nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	leader := c.waitLeader(c.nodes[1:]...)
	if _, err := c.register(leader, "m", "while-down"); err != nil {
		t.Fatal(err)
	}
	wiped, _ := c.wipedAt(0, "n0", "http://127.0.0.1:1", true)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if stateOf(wiped).Models["m"] == nil {
			return errors.New("the leader's entries have not reached the wiped n0")
		}
		return nil
	})
	other := c.nodes[1]
	if other == leader {
		other = c.nodes[2]
	}
	from := leader.raft.LastIndex()
	if err := other.Stop(); err != nil {
		t.Fatal(err)
	}
	m := fsm.Member{ID: "n0", RaftAddr: wiped.cfg.RaftAddr, HTTPAddr: wiped.cfg.HTTPAddr, Fresh: true, KnowsDropped: true, Protocol: Protocol}
	if err := leader.JoinLocal(m); err != nil {
		t.Fatalf("join of the wiped n0 just after %s stopped: %v", other.ID(), err)
	}
	c.wantStillVoter(leader, from, "n0")
}

// A wiped voter the leader kept as a voter, since the group could not
// commit its removal (another voter cut off), is removed once that voter
// answers again: it stayed a voter that had lost its log until a person
// removed it by hand, and never asked to join again.
func TestWipedVoterKeptIsRemovedOnceTheGroupCanCommit(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitConverged(c.nodes...)
	if err := c.nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	wiped, tr := c.wipedAt(0, "n0", "http://127.0.0.1:1", true)
	c.trans[0], c.nodes[0] = tr, wiped
	c.partition(2)
	leader := c.waitLeader(c.nodes[1], wiped)
	if leader != c.nodes[1] {
		t.Fatalf("leader: got %s; want n1", leader.ID())
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !leader.unreachable("n2") {
			return errors.New("n1 does not list n2 unreachable yet")
		}
		return nil
	})
	from := leader.raft.LastIndex()
	c.joinFresh(wiped, c.nodes[1], wiped)
	for _, cfg := range configurations(t, leader, from) {
		if _, voter := lists(cfg, "n0"); !voter {
			t.Fatalf("n0 removed while n2 was cut off: %v", cfg.Servers)
		}
	}
	c.heal()
	testenv.CheckFor(t, 15*time.Second, func() error {
		for _, cfg := range configurations(t, leader, from) {
			if listed, _ := lists(cfg, "n0"); !listed {
				return nil
			}
		}
		return errors.New("no configuration without the wiped n0 since n2 answers again")
	})
	if _, err := c.register(c.waitLeader(c.nodes[1:]...), "m", "after"); err != nil {
		t.Fatalf("write after the removal: %v", err)
	}
}

// joinFresh sends wiped's join as it sends it at its start, on empty raft
// state, to the leader among the nodes given, again while a leader that
// lost its lease under load answers ErrNotLeader.
func (c *testCluster) joinFresh(wiped *Node, among ...*Node) {
	c.t.Helper()
	m := fsm.Member{ID: wiped.ID(), RaftAddr: wiped.cfg.RaftAddr, HTTPAddr: wiped.cfg.HTTPAddr, Fresh: true, KnowsDropped: true, Protocol: Protocol}
	testenv.CheckFor(c.t, 10*time.Second, func() error {
		err := c.waitLeader(among...).JoinLocal(m)
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		if err != nil {
			c.t.Fatalf("join of the wiped %s: %v", wiped.ID(), err)
		}
		return nil
	})
}

// wantStillVoter fails the test unless every configuration leader's log
// holds after index from keeps id a voter, and a write still commits.
func (c *testCluster) wantStillVoter(leader *Node, from uint64, id string) {
	c.t.Helper()
	for _, cfg := range configurations(c.t, leader, from) {
		if listed, voter := lists(cfg, id); !listed || !voter {
			c.t.Fatalf("a configuration after the join does not hold %s as a voter: %v", id, cfg.Servers)
		}
	}
	if _, err := c.register(leader, "m", "after"); err != nil {
		c.t.Fatalf("write after the join: %v", err)
	}
}
