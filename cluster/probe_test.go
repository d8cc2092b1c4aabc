package cluster

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// TestMembersWithoutLeaderTellsGoneFromUp: a node that knows no leader
// (cut off from the majority, or the group lost it) lists a member whose
// HTTP address does not answer as unreachable, and one that answers as a
// follower; raft's configuration alone lists both as followers. Once it
// knows a leader again, a follower says nothing of the others' health.
func TestMembersWithoutLeaderTellsGoneFromUp(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	survivor := c.follower(leader)
	var up, gone *Node
	for _, n := range c.nodes {
		switch {
		case n == survivor:
		case up == nil:
			up = n
		default:
			gone = n
		}
	}
	// up answers on its HTTP address; gone's refuses connections.
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/health/live" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"live":true}`))
	}))
	defer live.Close()
	// The leader's announcement of its own addresses would overwrite the
	// records set below (the followers' cannot reach it over HTTP here).
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !leader.announced.Load() {
			return fmt.Errorf("the leader has not announced itself yet")
		}
		return nil
	})
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for n, addr := range map[*Node]string{up: live.URL, gone: dead.URL} {
		if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: n.ID(), RaftAddr: n.cfg.RaftAddr, HTTPAddr: addr}}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(c.nodes...)

	states := func() map[string]string {
		_, ms, err := survivor.Members()
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]string)
		for _, m := range ms {
			out[m.ID] = m.State
		}
		return out
	}
	c.isolate(survivor)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if addr, _ := survivor.raft.LeaderWithID(); addr != "" {
			return fmt.Errorf("the survivor still knows leader %s", addr)
		}
		s := states()
		if s[up.ID()] != "follower" || s[gone.ID()] != "unreachable" {
			return fmt.Errorf("states %v; want %s follower (it answers) and %s unreachable", s, up.ID(), gone.ID())
		}
		return nil
	})
	if n := survivor.unreachableCount(); n != 1 {
		t.Fatalf("unreachableCount %d; want 1", n)
	}

	c.heal()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if addr, _ := survivor.raft.LeaderWithID(); addr == "" {
			return fmt.Errorf("the survivor knows no leader yet")
		}
		if s := states(); s[gone.ID()] == "unreachable" && !survivor.IsLeader() {
			return fmt.Errorf("states %v; want no unreachable member in a follower's view", s)
		}
		return nil
	})
}
