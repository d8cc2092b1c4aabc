package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A group of two voters and a non-voter loses a voter for good: with no
// majority it elects no leader and takes no writes. Recover, on the
// stopped survivor, makes it the only voter and keeps the non-voter;
// started again, it leads, takes writes, forgets the lost node, and
// promotes the non-voter to the free seat.
func TestRecoverMakesSurvivorOnlyVoter(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	cfg0.MaxVoters = 2
	n0 := startTCP(t, cfg0)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !n0.IsLeader() {
			return errors.New("n0 does not lead yet")
		}
		return nil
	})
	cfg1, cfg2 := tcpConfig(t, "n1", "http://127.0.0.1:1"), tcpConfig(t, "n2", "http://127.0.0.1:1")
	cfg1.MaxVoters, cfg2.MaxVoters = 2, 2
	n1, n2 := startTCP(t, cfg1), startTCP(t, cfg2)
	for _, n := range []*Node{n1, n2} {
		if err := n0.JoinLocal(fsm.Member{ID: n.ID(), RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr}); err != nil {
			t.Fatal(err)
		}
	}
	c := &testCluster{t: t, nodes: []*Node{n0, n1, n2}}
	if _, err := c.register(n0, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(n0, n1, n2)

	n1.Stop() // its machine is gone for good
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n0.IsLeader() {
			return errors.New("n0 still leads without a majority")
		}
		return nil
	})
	if _, err := Recover(cfg0.DataDir, "n0", true); err == nil || !strings.Contains(err.Error(), "stop the node") {
		t.Fatalf("Recover of a running node: %v; want it refused as in use", err)
	}
	want, _ := n0.FSM().State()
	n0.Stop()
	n2.Stop()

	if _, err := Recover(cfg0.DataDir, "stranger", false); err == nil || !strings.Contains(err.Error(), "not in the group's configuration") {
		t.Fatalf("Recover as a node the configuration does not hold: %v", err)
	}
	if _, err := Recover(t.TempDir(), "n0", false); err == nil || !strings.Contains(err.Error(), "no raft state") {
		t.Fatalf("Recover of an empty directory: %v", err)
	}
	wantAfter := []raft.Server{
		{Suffrage: raft.Voter, ID: "n0", Address: raft.ServerAddress(cfg0.RaftAddr)},
		{Suffrage: raft.Nonvoter, ID: "n2", Address: raft.ServerAddress(cfg2.RaftAddr)},
	}
	for range 2 { // a dry run writes nothing: the second finds the same
		r, err := Recover(cfg0.DataDir, "n0", false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Written || !r.Needed() || len(r.Before.Servers) != 3 {
			t.Fatalf("dry run: written %v, needed %v, before %v", r.Written, r.Needed(), r.Before.Servers)
		}
		if !reflect.DeepEqual(r.After.Servers, wantAfter) || !reflect.DeepEqual(r.Dropped, []string{"n1"}) {
			t.Fatalf("dry run: after %v dropping %v; want %v dropping [n1]", r.After.Servers, r.Dropped, wantAfter)
		}
		if r.LastIndex == 0 || r.LastTerm == 0 {
			t.Fatalf("dry run: newest entry %d term %d", r.LastIndex, r.LastTerm)
		}
	}
	r, err := Recover(cfg0.DataDir, "n0", true)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Written {
		t.Fatal("Recover wrote nothing")
	}
	if again, err := Recover(cfg0.DataDir, "n0", false); err != nil || again.Needed() || !reflect.DeepEqual(again.Before.Servers, wantAfter) {
		t.Fatalf("after the recovery: %+v, %v; want nothing left to do", again, err)
	}

	n0 = startTCP(t, cfg0)
	n2 = startTCP(t, cfg2)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !n0.IsLeader() {
			return errors.New("the recovered node does not lead")
		}
		return nil
	})
	got, _ := n0.FSM().State()
	if !reflect.DeepEqual(got.Models, want.Models) {
		t.Fatalf("the recovered state's models differ from the group's:\n%+v\nwant\n%+v", got.Models, want.Models)
	}
	c.nodes = []*Node{n0, n2}
	for _, n := range c.nodes { // through the log, so the non-voter's state agrees
		testenv.CheckFor(t, 10*time.Second, func() error {
			st := stateOf(n)
			if st.Members["n1"] != nil || st.Members["n0"] == nil || st.Members["n2"] == nil {
				return fmt.Errorf("%s's members after the recovery: %v; want n0 and n2", n.ID(), st.Members)
			}
			return nil
		})
	}
	if _, err := os.Stat(filepath.Join(cfg0.DataDir, droppedFile)); !os.IsNotExist(err) {
		t.Fatalf("%s is left after the records went: %v", droppedFile, err)
	}
	if _, err := c.register(n0, "m", "version two"); err != nil {
		t.Fatalf("a write after the recovery: %v", err)
	}
	c.waitConverged(n0, n2)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !n2.isVoter() {
			return fmt.Errorf("n2 is not promoted to the free seat")
		}
		return nil
	})
	_, members, err := n0.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 {
		t.Fatalf("members %+v; want n0 and n2", members)
	}
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
