package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A voter restarts while the rest of its group is down, so raft cannot
// replay its log (nothing commits without a majority). It serves the
// versions it loaded from disk meanwhile, and what it reports of them
// must say so: before, its LocalStatus listed no model at all until the
// reconciler's first pass, so every member's view (GET /v1/models,
// "infergate models show") called its versions "pending", "the node has
// not begun on it", for the 1-3 s of a rolling restart's replay, or
// for as long as the group had no leader, while they answered requests.
func TestRestartedNodeReportsWhatItServesWhileReplaying(t *testing.T) {
	c, cfgs := newTCPCluster(t)
	n0, n1, n2, cfg2 := c.nodes[0], c.nodes[1], c.nodes[2], cfgs[2]
	if _, err := c.register(n0, "m", "good one"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n2.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("n2: version 1 %+v; want ready", s)
		}
		return nil
	})
	// No snapshot: the state machine replays the log from its start, and
	// lists no model until it gets there.
	if _, err := c.register(n0, "m", "good two"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n2.LocalStatus().Models["m"]["2"]; s.State != VersionReady {
			return fmt.Errorf("n2: version 2 %+v; want ready", s)
		}
		return nil
	})
	// The restart loads what served.json lists: wait until it lists both.
	testenv.CheckFor(t, 10*time.Second, func() error {
		loads, err := RestoredLoads(cfg2.DataDir)
		if err != nil {
			return err
		}
		if c := loads["m"]; c == nil || c.VersionPolicy.Specific == nil || len(c.VersionPolicy.Specific.Versions) != 2 {
			return fmt.Errorf("served.json lists %+v for m; want versions 1 and 2", c)
		}
		return nil
	})
	for _, n := range []*Node{n0, n1} {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	_, again := restartAsServe(t, cfg2, n2, nil)
	select {
	case <-again.replayed:
		t.Fatalf("the restarted node replayed its log with no majority up; the test needs it stuck")
	case <-time.After(500 * time.Millisecond):
	}
	ls := again.LocalStatus()
	for _, v := range []string{"1", "2"} {
		s := ls.Models["m"][v]
		if s.State != VersionReady || !strings.Contains(s.Reason, "replaying its raft log") {
			t.Errorf("LocalStatus of version %s while the node replays its log: %+v; want ready (it serves it from disk), saying it replays the log", v, s)
		}
	}
	if !strings.Contains(ls.Pending, "replaying its raft log (index") {
		t.Errorf("LocalStatus.Pending while the node replays its log: %q; want it to say so, with the index", ls.Pending)
	}
}

// A member whose LocalStatus lists no state for a version yet is
// "pending" in the cluster's view, with the reason the member gives.
func TestPendingVersionSaysWhy(t *testing.T) {
	f := func(ls *LocalStatus, want VersionStatus) {
		t.Helper()
		if got := pendingStatus(ls); got != want {
			t.Errorf("pendingStatus(%+v) = %+v; want %+v", ls, got, want)
		}
	}
	f(&LocalStatus{}, VersionStatus{State: "pending"})
	f(&LocalStatus{Pending: "this node restarted and is replaying its raft log (index 3 of the 9 it held)"},
		VersionStatus{State: "pending", Reason: "this node restarted and is replaying its raft log (index 3 of the 9 it held)"})
}

// A restart's log says when the node caught up with its raft log, even
// when that took less than the second after which it says it replays:
// before, a quick replay left no line between "ready" and the next
// event, so the log of a rolling restart never said when the node's view
// of the cluster became current again.
func TestRestartLogsCaughtUp(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	var mu sync.Mutex
	var lines []string
	cfg.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	restartAsServe(t, cfg, n, nil)
	testenv.CheckFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.HasPrefix(l, "cluster: caught up with the raft log after ") {
				return nil
			}
		}
		return fmt.Errorf("no line says the restarted node caught up with its raft log; lines: %q", lines)
	})
}
