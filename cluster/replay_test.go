package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// A node restarts as serve does. Model m's production is version 2 and
// version 1 is staged; version 2 was registered long after version 1
// (many writes in between, as a busy cluster has). While raft replays the
// log after the restart, the state machine passes through the group's
// past states, in which version 2 does not exist yet and version 1 is
// production. The reconciler must not act on those: unversioned requests
// must never reach staged version 1 (README: "never to a staged version"),
// and version 2, loaded from disk before the control plane started, must
// not be unloaded meanwhile.
func TestReplayNeverRoutesToPastProduction(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	if _, err := c.register(n, "m", "good one"); err != nil { // v1, production for now
		t.Fatal(err)
	}
	// Writes in between, as other models and aliases come and go.
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for range 150 {
				if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fmt.Sprintf("a%d", g), Version: 1}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d filler writes failed", failed.Load())
	}
	if _, err := c.register(n, "m", "good two"); err != nil { // v2
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetAlias, Model: "m", Alias: fsm.AliasProduction, Version: 2}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 and 2 ready", st)
		}
		if d := n.cfg.Registry.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("default %d; want 2", d)
		}
		return nil
	})
	// Let the reconciler record production 2 in production.json.
	time.Sleep(200 * time.Millisecond)

	repo, again := restartAsServe(t, cfg, n, nil)
	var wrong atomic.Int64
	var v2gone atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if v, err := repo.Acquire("m", 0); err == nil {
				if v.Number != 2 {
					wrong.Store(v.Number)
				}
				v.Release()
			}
			if lm := repo.Model("m"); lm == nil || lm.Version(2) == nil {
				v2gone.Add(1)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	testenv.CheckFor(t, 15*time.Second, func() error {
		if _, idx := again.FSM().State(); idx == 0 {
			return fmt.Errorf("not caught up")
		}
		st := again.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want 1 and 2 ready", st)
		}
		if d := repo.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("default %d; want 2", d)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	if v := wrong.Load(); v != 0 {
		t.Errorf("while raft replayed the log after the restart, an unversioned request was served by version %d, staged; production is 2", v)
	}
	if k := v2gone.Load(); k != 0 {
		t.Errorf("while raft replayed the log after the restart, production version 2 (loaded from disk) was not loaded in %d of the samples", k)
	}
}

// lastCommand finds the log's last command, past no-ops and
// configuration entries, and 0 in a log without one.
func TestLastCommand(t *testing.T) {
	logs := raft.NewInmemStore()
	if got, _ := lastCommand(logs); got != 0 {
		t.Fatalf("empty log: got %d; want 0", got)
	}
	types := []raft.LogType{raft.LogConfiguration, raft.LogCommand, raft.LogCommand, raft.LogNoop, raft.LogConfiguration}
	for i, typ := range types {
		if err := logs.StoreLog(&raft.Log{Index: uint64(i + 1), Term: uint64(i/2 + 1), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	if got, term := lastCommand(logs); got != 3 || term != 2 {
		t.Fatalf("got index %d term %d; want 3 and 2, the last command's", got, term)
	}
	// The same index in another term (a leader's entry in its place) is
	// not the command waited for; nor is an index compacted away.
	n := &Node{logs: logs, replayTo: 3, replayTerm: 2}
	if n.replayDropped() {
		t.Fatal("replayDropped with the command still in the log")
	}
	if err := logs.StoreLog(&raft.Log{Index: 3, Term: 3, Type: raft.LogNoop}); err != nil {
		t.Fatal(err)
	}
	if !n.replayDropped() {
		t.Fatal("replayDropped false with another term's entry at the command's index")
	}
	if err := logs.DeleteRange(1, 5); err != nil { // compacted into a snapshot
		t.Fatal(err)
	}
	if got, _ := lastCommand(logs); got != 0 || !n.replayDropped() {
		t.Fatalf("after compaction: got %d, dropped %v; want 0 (the snapshot holds the commands), true", got, n.replayDropped())
	}
}
