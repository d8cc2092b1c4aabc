package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
)

// suffrage returns the voters and non-voters of n's raft configuration,
// sorted by id.
func suffrage(t *testing.T, n *Node) (voters, nonvoters []string) {
	t.Helper()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			nonvoters = append(nonvoters, string(s.ID))
		}
	}
	slices.Sort(voters)
	slices.Sort(nonvoters)
	return voters, nonvoters
}

// A removed voter's seat goes to a non-voter at once, and only one seat's
// worth: with two non-voters, the first by id is promoted and the other
// stays as it was.
func TestRemovedVoterSeatGoesToNonvoter(t *testing.T) {
	c := newTestCluster(t, 5) // n0-n2 voters, n3 and n4 non-voters
	leader := c.waitLeader(c.nodes...)
	if v, nv := suffrage(t, leader); len(v) != 3 || !slices.Equal(nv, []string{"n3", "n4"}) {
		t.Fatalf("before: voters %v, non-voters %v; want 3 voters and n3, n4", v, nv)
	}
	victim := c.follower(leader)
	if victim.ID() == "n3" || victim.ID() == "n4" {
		t.Fatalf("follower %s is a non-voter", victim.ID())
	}
	if err := leader.RemoveLocal(victim.ID()); err != nil {
		t.Fatal(err)
	}
	// RemoveLocal promotes before it returns.
	voters, nonvoters := suffrage(t, leader)
	if len(voters) != 3 || !slices.Contains(voters, "n3") || slices.Contains(voters, victim.ID()) {
		t.Fatalf("after removing %s: voters %v; want 3 with n3", victim.ID(), voters)
	}
	if !slices.Equal(nonvoters, []string{"n4"}) {
		t.Fatalf("after removing %s: non-voters %v; want [n4]", victim.ID(), nonvoters)
	}
	// Its member record says so on every node, and GET /v1/cluster's view
	// too.
	testenv.CheckFor(t, 5*time.Second, func() error {
		for _, n := range c.nodes {
			if n == victim {
				continue
			}
			if rec := stateOf(n).Members["n3"]; rec == nil || !rec.Voter {
				return fmt.Errorf("%s's record of n3: %+v; want a voter", n.ID(), rec)
			}
		}
		return nil
	})
	_, members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.ID == "n3" && (!m.Voter || m.State == "nonvoter") {
			t.Fatalf("n3 listed as %+v; want a voter", m)
		}
	}
	// The promoted voter counts: with the leader cut off, the other two
	// voters elect one of themselves.
	rest := c.isolate(leader)
	var remaining []*Node
	for _, n := range rest {
		if n != victim && n.ID() != "n4" {
			remaining = append(remaining, n)
		}
	}
	c.waitLeader(remaining...)
}

// A seat freed without RemoveLocal (a raft removal that bypassed it, or a
// promotion that failed) is filled by the leader's periodic check.
func TestFreeVoterSeatFilledLater(t *testing.T) {
	c := newTestCluster(t, 4)
	leader := c.waitLeader(c.nodes...)
	victim := c.follower(leader)
	if err := leader.raft.RemoveServer(raft.ServerID(victim.ID()), 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		voters, nonvoters := suffrage(t, leader)
		if len(voters) != 3 || len(nonvoters) != 0 {
			return fmt.Errorf("voters %v, non-voters %v; want n3 promoted", voters, nonvoters)
		}
		return nil
	})
}

// Promotion never goes past MaxVoters: a group whose seats are full
// leaves its non-voters alone.
func TestNoPromotionWithSeatsFull(t *testing.T) {
	c := newTestCluster(t, 4)
	leader := c.waitLeader(c.nodes...)
	leader.fillVoters()
	if v, nv := suffrage(t, leader); len(v) != 3 || !slices.Equal(nv, []string{"n3"}) {
		t.Fatalf("voters %v, non-voters %v; want 3 and [n3]", v, nv)
	}
}
