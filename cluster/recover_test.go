package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// waitLeads waits until n leads.
func waitLeads(t *testing.T, n *Node) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !n.IsLeader() {
			return fmt.Errorf("%s does not lead", n.ID())
		}
		return nil
	})
}

// joinOn has leader take m in, retrying while leadership settles: a
// join refused for not leading, or whose outcome a lost leadership left
// unknown (a loaded machine can cost a young group its leader), is tried
// again, as a joining node tries again.
func joinOn(t *testing.T, leader *Node, m fsm.Member) error {
	t.Helper()
	var err error
	testenv.CheckFor(t, 10*time.Second, func() error {
		err = leader.JoinLocal(m)
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome) {
			return err
		}
		return nil
	})
	return err
}

// refusedJoin has leader answer a join that a test expects refused,
// retrying only while leadership settles: a join whose outcome a lost
// leadership left unknown may have got past the check under test, and is
// returned as it is, not tried again (which could find the refusal only
// because the first try's write had landed).
func refusedJoin(t *testing.T, leader *Node, m fsm.Member) error {
	t.Helper()
	var err error
	testenv.CheckFor(t, 10*time.Second, func() error {
		err = leader.JoinLocal(m)
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		return nil
	})
	return err
}

// A group of two voters and a non-voter loses a voter for good: with no
// majority it elects no leader and takes no writes. Recover, on the
// stopped survivor, makes it the group's only member; started again, it
// leads, takes writes, and marks the others dropped. The non-voter, on
// the raft state it had, is refused; on fresh raft state it is taken in,
// gets the recovered state and takes the free voter seat.
func TestRecoverMakesSurvivorOnlyMember(t *testing.T) {
	c, cfgs := threeTCPNodes(t, 2) // n2 a non-voter
	n0, n1, n2 := c.nodes[0], c.nodes[1], c.nodes[2]
	cfg0, cfg2 := cfgs[0], cfgs[2]

	n1.Stop() // its machine is gone for good
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n0.IsLeader() {
			return errors.New("n0 still leads without a majority")
		}
		return nil
	})
	if _, err := Recover(cfg0.DataDir, "n0", "", true); err == nil || !strings.Contains(err.Error(), "stop the node") {
		t.Fatalf("Recover of a running node: %v; want it refused as in use", err)
	}
	want, _ := n0.FSM().State()
	n0.Stop()
	n2.Stop()

	if _, err := Recover(cfg0.DataDir, "stranger", "", false); err == nil || !strings.Contains(err.Error(), "not in the group's configuration") {
		t.Fatalf("Recover as a node the configuration does not hold: %v", err)
	}
	if _, err := Recover(t.TempDir(), "n0", "", false); err == nil || !strings.Contains(err.Error(), "no raft state") {
		t.Fatalf("Recover of an empty directory: %v", err)
	}
	wantAfter := []raft.Server{{Suffrage: raft.Voter, ID: "n0", Address: raft.ServerAddress(cfg0.RaftAddr)}}
	for range 2 { // a dry run writes nothing: the second finds the same
		r, err := Recover(cfg0.DataDir, "n0", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Written || !r.Needed() || len(r.Before.Servers) != 3 {
			t.Fatalf("dry run: written %v, needed %v, before %v", r.Written, r.Needed(), r.Before.Servers)
		}
		if !reflect.DeepEqual(r.After.Servers, wantAfter) || !reflect.DeepEqual(r.Dropped, []string{"n1", "n2"}) {
			t.Fatalf("dry run: after %v dropping %v; want %v dropping [n1 n2]", r.After.Servers, r.Dropped, wantAfter)
		}
		if r.LastIndex == 0 || r.LastTerm == 0 {
			t.Fatalf("dry run: newest entry %d term %d", r.LastIndex, r.LastTerm)
		}
	}
	if r, err := Recover(cfg0.DataDir, "n0", "", true); err != nil || !r.Written {
		t.Fatalf("Recover: %+v, %v", r, err)
	}
	if again, err := Recover(cfg0.DataDir, "n0", "", false); err != nil || again.Needed() || !reflect.DeepEqual(again.Before.Servers, wantAfter) {
		t.Fatalf("after the recovery: %+v, %v; want nothing left to do", again, err)
	}

	n0 = startTCP(t, cfg0)
	// The marks are in the recovered snapshot: there before it leads.
	if st := stateOf(n0); !st.Dropped["n1"] || !st.Dropped["n2"] || st.Members["n1"] != nil || st.Members["n2"] != nil {
		t.Fatalf("at the recovered node's start: members %v, dropped %v; want n1 and n2 dropped", st.Members, st.Dropped)
	}
	waitLeads(t, n0)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if st := stateOf(n0); len(st.Members) != 1 || st.Members["n0"] == nil {
			return fmt.Errorf("members %v; want n0 alone", st.Members)
		}
		return nil
	})
	if got := stateOf(n0); !reflect.DeepEqual(got.Models, want.Models) {
		t.Fatalf("the recovered state's models differ from the group's:\n%+v\nwant\n%+v", got.Models, want.Models)
	}
	c.nodes = []*Node{n0}
	if _, err := c.register(n0, "m", "version two"); err != nil {
		t.Fatalf("a write after the recovery: %v", err)
	}
	_, members, err := n0.Members()
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]bool{}
	for _, m := range members {
		if m.State == "dropped" && m.RaftAddr == "" && m.HTTPAddr == "" && !m.Voter {
			dropped[m.ID] = true
		}
	}
	if !dropped["n1"] || !dropped["n2"] {
		t.Fatalf("members %+v; want n1 and n2 listed dropped, without addresses", members)
	}

	// n2 comes back on the raft state it had: refused.
	n2 = startTCP(t, cfg2)
	if self := n2.self(); self.Fresh {
		t.Fatal("a node with raft state calls itself fresh")
	}
	if err := refusedJoin(t, n0, n2.self()); !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "move its --data/raft aside") {
		t.Fatalf("the dropped n2 on its old raft state: %v; want ErrDropped saying what to do", err)
	}
	n2.Stop()
	// On fresh raft state it is taken in, gets the group's state and a seat.
	cfg2.DataDir = t.TempDir()
	n2 = startTCP(t, cfg2)
	if err := joinOn(t, n0, n2.self()); err != nil {
		t.Fatalf("n2 on fresh raft state: %v", err)
	}
	c.nodes = []*Node{n0, n2}
	c.waitConverged(n0, n2)
	st := stateOf(n2)
	if st.Dropped["n2"] || !st.Dropped["n1"] {
		t.Fatalf("dropped after n2 joined again: %v; want n1 only", st.Dropped)
	}
	if st.Members["n2"].Fresh {
		t.Fatal("the join's fresh flag was stored in the record")
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !n2.isVoter() {
			return errors.New("n2 is not promoted to the free seat")
		}
		return nil
	})
}

// n2 goes down first; leadership moves to n1 in a term n2 never sees, and
// n0 and n1 commit a write. Then n0 is lost and n1 goes down; n2, the
// survivor up, is recovered. It elects itself in the term n1 already led:
// had n1 been taken back on its old log, raft would have counted its
// entries of that term as n2's, and the two states would differ for
// good. n1 is refused on its old raft state, and on fresh raft state
// gets exactly the recovered group's state.
func TestRecoverNeverMergesADroppedLog(t *testing.T) {
	c, cfg1, cfg2 := forkedHistory(t)
	n2 := startTCP(t, cfg2)
	waitLeads(t, n2)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if st := stateOf(n2); !st.Dropped["n1"] {
			return fmt.Errorf("n1 not marked dropped yet: %v", st.Dropped)
		}
		return nil
	})
	n1 := startTCP(t, cfg1)
	if err := refusedJoin(t, n2, n1.self()); !errors.Is(err, ErrDropped) {
		t.Fatalf("n1 on its old raft state: %v; want ErrDropped", err)
	}
	n1.Stop()
	cfg1.DataDir = t.TempDir()
	n1 = startTCP(t, cfg1)
	if err := joinOn(t, n2, n1.self()); err != nil {
		t.Fatal(err)
	}
	c.nodes = []*Node{n2, n1}
	if _, err := c.register(n2, "after-recovery", "written after the recovery"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(n2, n1)
	if st := stateOf(n1); st.Models["only-the-pair"] != nil || st.Models["after-recovery"] == nil {
		t.Fatalf("n1's models %v; want the recovered group's", slices.Sorted(mapKeys(st.Models)))
	}
}

// mapKeys returns m's keys.
func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// A survivor recovered onto another raft address (its machine replaced)
// leads there; a join of itself at that address, which a restarted node
// sends through its peers, must not make the leader remove its own old
// entry: raft would shut down on it ("removed ourself"). It hands
// leadership over instead, and the new leader moves it.
func TestRecoveredLeaderMovedDoesNotRemoveItself(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	cfg1 := tcpConfig(t, "n1", "http://127.0.0.1:1")
	n1 := startTCP(t, cfg1)
	if err := n0.JoinLocal(fsm.Member{ID: "n1", RaftAddr: cfg1.RaftAddr, HTTPAddr: cfg1.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, nodes: []*Node{n0, n1}}
	if _, err := c.register(n0, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(n0, n1)
	n1.Stop() // lost for good
	n0.Stop()
	old := cfg0.RaftAddr
	// Recovered without --cluster: the configuration keeps the old
	// address, and the node comes back on another.
	if _, err := Recover(cfg0.DataDir, "n0", "", true); err != nil {
		t.Fatal(err)
	}
	cfg0.RaftAddr = testenv.FreeAddr(t)
	n0 = startTCP(t, cfg0)
	waitLeads(t, n0)
	cfg2 := tcpConfig(t, "n2", "http://127.0.0.1:1")
	startTCP(t, cfg2)
	if err := n0.JoinLocal(fsm.Member{ID: "n2", RaftAddr: cfg2.RaftAddr, HTTPAddr: cfg2.HTTPAddr, Fresh: true, KnowsDropped: true}); err != nil {
		t.Fatal(err)
	}
	err := n0.JoinLocal(fsm.Member{ID: "n0", RaftAddr: cfg0.RaftAddr, HTTPAddr: cfg0.HTTPAddr, KnowsDropped: true})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the leader asked to move itself from %s to %s: %v; want it to hand leadership over (ErrNotLeader)", old, cfg0.RaftAddr, err)
	}
	time.Sleep(300 * time.Millisecond)
	if st := n0.raft.State(); st == raft.Shutdown {
		t.Fatal("the leader removed itself and its raft shut down")
	}
}

// With --cluster, the recovered configuration names the node's new raft
// address.
func TestRecoverAtNewAddress(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	n0.Stop()
	moved := testenv.FreeAddr(t)
	r, err := Recover(cfg0.DataDir, "n0", moved, true)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Written || len(r.After.Servers) != 1 || string(r.After.Servers[0].Address) != moved {
		t.Fatalf("recovered at %s: %+v", moved, r)
	}
	cfg0.RaftAddr = moved
	n0 = startTCP(t, cfg0)
	waitLeads(t, n0)
	if addr, ok := n0.configuredAddr(); !ok || addr != moved {
		t.Fatalf("configured address %q; want %s", addr, moved)
	}
}

// forkedHistory makes the history a recovery must not merge: n2 goes
// down; leadership moves to n1 in a term n2 never sees, and n0 and n1
// commit model only-the-pair; both stop, and n2 is recovered. It
// returns the cluster (stopped), n1's and n2's configurations.
func forkedHistory(t *testing.T) (*testCluster, Config, Config) {
	t.Helper()
	c, cfgs := threeTCPNodes(t, 3)
	n0, n1, n2 := c.nodes[0], c.nodes[1], c.nodes[2]
	n2.Stop()
	if err := n0.raft.LeadershipTransferToServer("n1", raft.ServerAddress(cfgs[1].RaftAddr)).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeads(t, n1)
	c.nodes = []*Node{n0, n1}
	if _, err := c.register(n1, "only-the-pair", "committed by n0 and n1"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(n0, n1)
	n0.Stop()
	n1.Stop()
	if _, err := Recover(cfgs[2].DataDir, "n2", "", true); err != nil {
		t.Fatal(err)
	}
	return c, cfgs[1], cfgs[2]
}

// threeTCPNodes starts n0, n1 and n2 over TCP with raft state on disk,
// admitting maxVoters voters, and registers model m on them.
func threeTCPNodes(t *testing.T, maxVoters int) (*testCluster, []Config) {
	t.Helper()
	cfgs := []Config{tcpConfig(t, "n0", ""), tcpConfig(t, "n1", "http://127.0.0.1:1"), tcpConfig(t, "n2", "http://127.0.0.1:1")}
	c := &testCluster{t: t}
	for i := range cfgs {
		cfgs[i].MaxVoters = maxVoters
		c.nodes = append(c.nodes, startTCP(t, cfgs[i]))
		if i == 0 {
			waitLeads(t, c.nodes[0])
			continue
		}
		n := c.nodes[i]
		if err := joinOn(t, c.nodes[0], fsm.Member{ID: n.ID(), RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.register(c.nodes[0], "m", "version one"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(c.nodes...)
	return c, cfgs
}

// startTCP starts a node on cfg and stops it when the test ends.
func startTCP(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}
