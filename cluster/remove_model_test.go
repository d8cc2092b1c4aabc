package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// releaseStub serves a member's GET /v1/local/models as a node of this
// release does, or, with old set, as one of an earlier release (no
// protocol), or, with down set, not at all (503); the rest as adminStub.
type releaseStub struct {
	*adminStub
	old, down atomic.Bool
}

func (s *releaseStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.node.Load()
	if r.Method == http.MethodGet && r.URL.Path == "/v1/local/models" && n != nil {
		if s.down.Load() {
			http.Error(w, `{"error": "down"}`, http.StatusServiceUnavailable)
			return
		}
		ls := n.LocalStatus()
		if s.old.Load() {
			ls.Protocol = 0
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ls)
		return
	}
	s.adminStub.ServeHTTP(w, r)
}

// releaseCluster starts three nodes served by releaseStubs and joins
// them.
func releaseCluster(t *testing.T, port int) (*testCluster, []*releaseStub) {
	t.Helper()
	trans, apis, _ := stubNet(t, 3, port)
	var nodes []*Node
	var stubs []*releaseStub
	for i, tr := range trans {
		rs := &releaseStub{adminStub: apis[i]}
		srv := httptest.NewServer(rs)
		t.Cleanup(srv.Close)
		cfg := testConfig(t, fmt.Sprintf("n%d", i), tr, "")
		cfg.HTTPAddr = srv.URL
		if i > 0 {
			cfg.Join = "http://127.0.0.1:1" // joined by hand below
		}
		nodes = append(nodes, startOn(t, cfg, apis[i]))
		stubs = append(stubs, rs)
	}
	c := &testCluster{t: t, nodes: nodes, trans: trans}
	c.joinAll()
	// The gate asks members at the addresses their records hold: each
	// node's announce writes its own.
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, n := range nodes {
			for _, m := range nodes {
				if stateOf(n).Members[m.ID()] == nil {
					return fmt.Errorf("%s has no record of %s yet", n.ID(), m.ID())
				}
			}
		}
		return nil
	})
	return c, stubs
}

// registerAnywhere registers as c.register does, on whichever node leads:
// a young group may lose its first leader, before the write or while it
// commits (then it is tried again only if the next leader lacks it).
func (c *testCluster) registerAnywhere(model, content string) {
	c.t.Helper()
	sum := sha256.Sum256([]byte(content))
	digest := hex.EncodeToString(sum[:])
	testenv.CheckFor(c.t, 10*time.Second, func() error {
		leader := c.waitLeader(c.nodes...)
		if m := stateOf(leader).Model(model); m != nil {
			for _, v := range m.Versions {
				if v.SHA256 == digest {
					return nil // committed by an attempt of unknown outcome
				}
			}
		}
		_, err := c.register(leader, model, content)
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome) {
			return err
		}
		if err != nil {
			c.t.Fatal(err)
		}
		return nil
	})
}

// TestRemoveModelNeedsEveryMemberOnThisRelease: a node of an earlier
// release refuses remove_model (an unknown op), so had the leader applied
// it, that node would go on serving the model while the others dropped
// it. The removal is refused, naming the member, while one runs an
// earlier release or does not answer; once every member knows the op it
// goes through, from a follower too, and every node unloads the model.
func TestRemoveModelNeedsEveryMemberOnThisRelease(t *testing.T) {
	c, stubs := releaseCluster(t, 20010)
	c.registerAnywhere("m", "v1 bytes")
	c.registerAnywhere("m", "v2 bytes")
	c.registerAnywhere("keep", "keep bytes")
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, n := range c.nodes {
			if lm := n.cfg.Registry.Model("m"); lm == nil || lm.Version(2) == nil {
				return fmt.Errorf("%s does not serve m version 2 yet", n.ID())
			}
		}
		return nil
	})
	leader := c.waitLeader(c.nodes...)
	follower := c.follower(leader)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The stub that plays an earlier release is the third node's: a
	// leader does not ask itself, and its real release refuses the op.
	third := 0
	for c.nodes[third] == leader || c.nodes[third] == follower {
		third++
	}
	old := stubs[third]
	oldID := c.nodes[third].ID()
	f := func(through *Node, want string) {
		t.Helper()
		err := through.RemoveModel(ctx, "m")
		if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "upgrade every member first") {
			t.Fatalf("remove through %s: got %v; want a conflict containing %q and saying to upgrade every member first", through.ID(), err, want)
		}
		for _, n := range c.nodes {
			if n.FSM().Removed("m") {
				t.Fatalf("%s: the model was removed despite the refusal", n.ID())
			}
		}
	}
	old.old.Store(true)
	f(leader, fmt.Sprintf("member %s runs an earlier release", oldID))
	f(follower, fmt.Sprintf("member %s runs an earlier release", oldID))
	old.old.Store(false)
	old.down.Store(true)
	f(leader, fmt.Sprintf("member %s did not answer", oldID))
	old.down.Store(false)

	if err := follower.RemoveModel(ctx, "m"); err != nil {
		t.Fatalf("remove with every member on this release: %v", err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, n := range c.nodes {
			if !n.FSM().Removed("m") {
				return fmt.Errorf("%s has not applied the removal", n.ID())
			}
			if lm := n.cfg.Registry.Model("m"); lm != nil {
				return fmt.Errorf("%s still serves m: %d versions", n.ID(), len(lm.Versions()))
			}
			if n.cfg.Registry.Model("keep") == nil {
				return fmt.Errorf("%s no longer serves keep", n.ID())
			}
		}
		return nil
	})
	if err := leader.RemoveModel(ctx, "m"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("second removal: got %v; want ErrNotFound", err)
	}
}

// A node of an earlier release cannot apply a removal it replays from the
// log: once a model was removed, the leader refuses its join.
func TestJoinOfEarlierReleaseRefusedAfterRemoval(t *testing.T) {
	c, _ := releaseCluster(t, 20020)
	c.registerAnywhere("m", "v1 bytes")
	oldJoin := fsm.Member{ID: "old", RaftAddr: c.nodes[2].cfg.RaftAddr, HTTPAddr: "http://127.0.0.9:1", KnowsDropped: true}
	join := func() error {
		t.Helper()
		var err error
		testenv.CheckFor(t, 10*time.Second, func() error {
			err = c.waitLeader(c.nodes...).JoinLocal(oldJoin)
			if errors.Is(err, ErrNotLeader) {
				return err
			}
			return nil
		})
		return err
	}
	// Before any removal, the join goes on to the address checks.
	if err := join(); err == nil || strings.Contains(err.Error(), "earlier release") {
		t.Fatalf("join before a removal: got %v; want the address conflict, not a release refusal", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.nodes[0].RemoveModel(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	err := join()
	if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), `node "old" runs an earlier release`) {
		t.Fatalf("join of an earlier release after a removal: got %v; want a conflict naming it", err)
	}
}

// An upload after a removal makes the model served again, but the removal
// stays in the raft log, and a node of an earlier release that joined
// would replay it, refuse it as unknown, and keep the old production
// while the others serve the new upload. The leader refuses its join
// while its log holds a removal, not only while the state shows one.
func TestJoinOfEarlierReleaseRefusedAfterRemovalAndUpload(t *testing.T) {
	c, _ := releaseCluster(t, 20030)
	c.registerAnywhere("m", "v1 bytes")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testenv.CheckFor(t, 10*time.Second, func() error {
		err := c.waitLeader(c.nodes...).RemoveModel(ctx, "m")
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		if err != nil {
			t.Fatal(err)
		}
		return nil
	})
	c.registerAnywhere("m", "v2 bytes")
	leader := c.waitLeader(c.nodes...)
	if anyRemoved(stateOf(leader)) {
		t.Fatalf("the upload after the removal left the model removed")
	}
	oldJoin := fsm.Member{ID: "old", RaftAddr: c.nodes[2].cfg.RaftAddr, HTTPAddr: "http://127.0.0.9:1", KnowsDropped: true}
	var err error
	testenv.CheckFor(t, 10*time.Second, func() error {
		err = c.waitLeader(c.nodes...).JoinLocal(oldJoin)
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		return nil
	})
	if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), `node "old" runs an earlier release`) {
		t.Fatalf("join of an earlier release while the log holds a removal: got %v; want a conflict naming it", err)
	}
	// A node of this release joins as before (here it reaches the
	// address checks: the address is n2's).
	oldJoin.Protocol = Protocol
	if err := c.waitLeader(c.nodes...).JoinLocal(oldJoin); err == nil || strings.Contains(err.Error(), "earlier release") {
		t.Fatalf("join of this release: got %v; want the address conflict, not a release refusal", err)
	}
}

// The release check names every member it cannot vouch for: one listed
// in the raft configuration with no record of its address yet, and one
// of an earlier release, found by a goroutine of its own.
func TestReleaseCheckNamesEveryProblem(t *testing.T) {
	c, stubs := releaseCluster(t, 20040)
	c.registerAnywhere("m", "v1 bytes")
	leader := c.waitLeader(c.nodes...)
	if err := leader.raft.AddNonvoter("ghost", "127.0.0.99:20040", 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if n != leader {
			stubs[i].old.Store(true)
		}
	}
	err := leader.checkReleases(t.Context(), &fsm.Command{Op: fsm.OpRemoveModel, Model: "m"}, Protocol)
	if !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), "member ghost has not announced its address") || strings.Count(err.Error(), "runs an earlier release") != 2 {
		t.Fatalf("check with a member unannounced and two of an earlier release: got %v; want a conflict naming all three", err)
	}
}

// The release check vouches for a member only by its own answer: an
// address that another node answers (a record left stale, two nodes given
// one --advertise address) says nothing of the member's release.
func TestReleaseCheckWantsTheMemberItself(t *testing.T) {
	c, stubs := releaseCluster(t, 20050)
	c.registerAnywhere("m", "v1 bytes")
	leader := c.waitLeader(c.nodes...)
	var others []int
	for i, n := range c.nodes {
		if n != leader {
			others = append(others, i)
		}
	}
	// The first other member's record names the second's address; the
	// first runs an earlier release.
	a, b := c.nodes[others[0]], c.nodes[others[1]]
	stubs[others[0]].old.Store(true)
	rec := *stateOf(leader).Members[a.ID()]
	rec.HTTPAddr = b.cfg.HTTPAddr
	if _, err := leader.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &rec}); err != nil {
		t.Fatal(err)
	}
	err := leader.checkReleases(t.Context(), &fsm.Command{Op: fsm.OpRemoveModel, Model: "m"}, Protocol)
	if want := fmt.Sprintf("member %s's address %s answered as node %s", a.ID(), b.cfg.HTTPAddr, b.ID()); !errors.Is(err, fsm.ErrConflict) || !strings.Contains(err.Error(), want) {
		t.Fatalf("check with a member's address answered by another node: got %v; want a conflict saying %q", err, want)
	}
}
