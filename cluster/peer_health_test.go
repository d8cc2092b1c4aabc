package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// stateOn returns member id's state in n's member list.
func stateOn(t *testing.T, n *Node, id string) string {
	t.Helper()
	_, members, err := n.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.ID == id {
			return m.State
		}
	}
	return "absent"
}

// A follower cut off from the leader is listed as unreachable on the
// leader, and counted in infergate_cluster_members_unreachable, until it
// answers again (before, it stayed a follower in every view).
func TestCutOffFollowerListedUnreachable(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	victim := c.follower(leader)
	if got := stateOn(t, leader, victim.ID()); got != "follower" {
		t.Fatalf("before: %s is %q; want follower", victim.ID(), got)
	}
	for i, n := range c.nodes {
		if n == victim {
			c.partition(i)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if got := stateOn(t, leader, victim.ID()); got != "unreachable" {
			return fmt.Errorf("%s is %q on the leader; want unreachable", victim.ID(), got)
		}
		if got := leader.unreachableCount(); got != 1 {
			return fmt.Errorf("unreachable count %d; want 1", got)
		}
		return nil
	})
	// The leader says for how long it has not heard from it.
	_, members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if want := m.ID == victim.ID(); (m.SilentMS > 0) != want {
			t.Errorf("member %s (%s): silent %d ms; want it only for the unreachable member", m.ID, m.State, m.SilentMS)
		}
	}
	// Nor does the leader ask it for its models' status, which a hung
	// member would hold up for a second: its HTTP address now hangs.
	var asked atomic.Int32
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		<-r.Context().Done()
	}))
	defer hung.Close()
	if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: victim.ID(), RaftAddr: victim.cfg.RaftAddr, HTTPAddr: hung.URL}}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Models(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the leader asked the unreachable member for its status %d times; want none", n)
	}
	li := slices.Index(c.nodes, leader)
	testenv.CheckFor(t, 2*time.Second, func() error {
		if c.logs[li].count("cluster: member "+victim.ID(), "listed unreachable until it answers") != 1 {
			return fmt.Errorf("the leader has not logged %s unreachable once", victim.ID())
		}
		return nil
	})
	c.heal()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !leader.IsLeader() {
			return nil // a new term clears the view; the test is over
		}
		if got := stateOn(t, leader, victim.ID()); got != "follower" {
			return fmt.Errorf("%s is %q after healing; want follower", victim.ID(), got)
		}
		return nil
	})
	if leader.IsLeader() {
		testenv.CheckFor(t, 2*time.Second, func() error {
			if c.logs[li].count("cluster: member "+victim.ID()+" answers this leader's heartbeats again") != 1 {
				return fmt.Errorf("the leader has not logged once that %s answers again", victim.ID())
			}
			return nil
		})
	}
}
