package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// Removing the leader hands leadership over to a voter that answers, even
// where raft's own pick (the voter furthest along, the first in the
// configuration on a tie) is one that is down: the transfer to it failed,
// and the removal answered raft's "leadership transfer timeout" (a 500 on
// the admin API) for as long as that voter stayed down.
func TestRemoveLeaderWithVoterDown(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	var down, up *Node
	for _, n := range c.nodes { // configuration order
		switch {
		case n == leader:
		case down == nil:
			down = n
		default:
			up = n
		}
	}
	// Both followers hold the whole log: raft's pick is a tie, which the
	// first in the configuration wins.
	testenv.CheckFor(t, 5*time.Second, func() error {
		if a, b, l := down.raft.LastIndex(), up.raft.LastIndex(), leader.raft.LastIndex(); a != l || b != l {
			return fmt.Errorf("last indexes %d and %d; want the leader's %d", a, b, l)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // for the leader to take their answers
	c.isolate(down)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if got := stateOn(t, leader, down.ID()); got != "unreachable" {
			return fmt.Errorf("%s is %q on the leader; want unreachable", down.ID(), got)
		}
		return nil
	})
	err := leader.RemoveLocal(leader.ID())
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("RemoveLocal(%s) with %s down: got %v; want ErrNotLeader after handing leadership over", leader.ID(), down.ID(), err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !up.IsLeader() {
			return fmt.Errorf("%s does not lead", up.ID())
		}
		return nil
	})
}
