package cluster

import (
	"errors"
	"strings"
	"testing"

	"github.com/infergate/infergate/cluster/fsm"
)

// A join under a new id at the raft address of a member (a machine set up
// again with another --node-id, or a copied --cluster) is a conflict that
// names the member holding the address, not raft's bare "found duplicate
// address" that the admin API answered 500 with; nothing changes.
func TestJoinAtMembersAddressConflicts(t *testing.T) {
	c := newTestCluster(t, 2)
	leader := c.waitLeader(c.nodes...)
	other := c.nodes[0]
	if other == leader {
		other = c.nodes[1]
	}
	m := fsm.Member{ID: "newcomer", RaftAddr: other.cfg.RaftAddr, HTTPAddr: "http://127.0.0.9:8080"}
	err := leader.JoinLocal(m)
	if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), `"`+other.ID()+`"`) {
		t.Fatalf("JoinLocal at %s's address: got %v; want fsm.ErrConflict naming %q", other.ID(), err, other.ID())
	}
	_, members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 {
		t.Fatalf("members after the refused join: got %+v; want the 2 there were", members)
	}
}
