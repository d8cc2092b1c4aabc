package cluster

import (
	"context"
	"encoding/json"
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
	c.isolate(victim)
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

// A follower cannot tell a hung member from a live one: only the leader
// hears from every member. So through a follower, GET /v1/cluster
// (MembersFromLeader) lists a member unreachable as the leader does, and
// a models listing stops waiting for its status once the leader says so,
// rather than for the whole peerStatusTimeout (before, through a
// follower, the member read "follower" and every listing took a second).
func TestFollowerGivesLeadersView(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	victim := c.follower(leader)
	var other *Node
	for _, n := range c.nodes {
		if n != leader && n != victim {
			other = n
		}
	}
	// The leader's HTTP side, as gateway/admin.go serves it: another
	// node's GET /v1/cluster (marked forwarded) gets the leader's own view.
	var viewsAsked atomic.Int32
	leaderHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/cluster":
			viewsAsked.Add(1)
			if r.Header.Get(HeaderForwarded) == "" {
				http.Error(w, "not forwarded", http.StatusBadRequest)
				return
			}
			l, members, err := leader.Members()
			if err != nil {
				stubWriteErr(w, err)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"leader": l, "members": members})
		case "/v1/local/models":
			json.NewEncoder(w).Encode(leader.LocalStatus())
		default:
			http.NotFound(w, r)
		}
	}))
	defer leaderHTTP.Close()
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hung.Close()
	// Each node makes sure the group holds its own addresses once it
	// starts (announce); the test's come after.
	testenv.CheckFor(t, 5*time.Second, func() error {
		for _, n := range c.nodes {
			if !n.announced.Load() {
				return fmt.Errorf("%s has not announced itself yet", n.ID())
			}
		}
		return nil
	})
	for id, url := range map[*Node]string{leader: leaderHTTP.URL, victim: hung.URL} {
		if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: id.ID(), RaftAddr: id.cfg.RaftAddr, HTTPAddr: url}}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if _, url := other.Leader(); url != leaderHTTP.URL {
			return fmt.Errorf("the follower knows the leader's address as %q", url)
		}
		return nil
	})
	c.isolate(victim)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if got := stateOn(t, leader, victim.ID()); got != "unreachable" {
			return fmt.Errorf("%s is %q on the leader; want unreachable", victim.ID(), got)
		}
		return nil
	})
	if got := stateOn(t, other, victim.ID()); got != "follower" {
		t.Fatalf("in the follower's own view %s is %q; want follower (it cannot know)", victim.ID(), got)
	}
	asked := time.Now()
	_, members, err := other.MembersFromLeader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		unreachable := m.ID == victim.ID()
		if (m.State == "unreachable") != unreachable || (m.SilentMS > 0) != unreachable {
			t.Errorf("through the follower, member %s is %q, silent %d ms; want unreachable with a silence only for %s", m.ID, m.State, m.SilentMS, victim.ID())
		}
	}

	start := time.Now()
	if _, err := other.Models(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= peerStatusTimeout*9/10 {
		t.Errorf("a models listing through the follower took %s; want it to stop waiting for the hung member once the leader lists it unreachable, well before %s", took, peerStatusTimeout)
	}
	// The listing used the view the first call got (leaderViewTTL).
	if n := viewsAsked.Load(); n != 1 && time.Since(asked) < leaderViewTTL {
		t.Errorf("the follower asked the leader for its view %d times within a second; want once", n)
	}
	// Its metric gives the leader's count, where it gave 0.
	if got := other.membersUnreachable(); got != 1 {
		t.Errorf("infergate_cluster_members_unreachable on the follower: %d; want 1, the leader's", got)
	}
	// However seldom it is scraped: the view it has grown old (a scrape a
	// minute), the follower asks again by itself (found by a reviewing
	// helper: only a scrape made it ask, so each read the answer the one
	// before had asked for, too old to use at a minute).
	a := *other.leaderView.last.Load()
	a.at = a.at.Add(-time.Minute)
	other.leaderView.last.Store(&a)
	testenv.CheckFor(t, 3*leaderViewPoll, func() error {
		if got := other.membersUnreachable(); got != 1 {
			return fmt.Errorf("infergate_cluster_members_unreachable on the follower: %d; want 1, the leader's", got)
		}
		return nil
	})
}

// A scrape of a follower never waits for its leader (found by a reviewing
// helper: the metric asked the leader at scrape time, holding the view's
// lock for up to half a second per call, and a hung leader held every
// scrape and admin read up behind it): it gives what it has, and the
// leader is asked in the background.
func TestUnreachableMetricNeverWaitsForTheLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	other := c.follower(leader)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hung.Close()
	// Once the leader has announced itself, or its announcement would
	// write its own address back (seen in a -race run).
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !leader.announced.Load() {
			return fmt.Errorf("the leader has not announced itself yet")
		}
		return nil
	})
	if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: leader.ID(), RaftAddr: leader.cfg.RaftAddr, HTTPAddr: hung.URL}}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if _, url := other.Leader(); url != hung.URL {
			return fmt.Errorf("the follower knows the leader's address as %q", url)
		}
		return nil
	})
	for i := range 5 {
		start := time.Now()
		other.membersUnreachable()
		if took := time.Since(start); took >= leaderViewTimeout*4/5 {
			t.Fatalf("scrape %d of a follower whose leader hangs took %s; want no wait", i, took)
		}
		time.Sleep(300 * time.Millisecond) // the background ask under way, or done
	}
}
