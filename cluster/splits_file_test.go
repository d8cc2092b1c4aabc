package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// splits.json follows set_shadow and end_shadow, including the end of the
// last one; a restarted node has the shadow from its first request.
func TestSplitsFileFollowsShadow(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	path := filepath.Join(cfg.DataDir, splitsFile)
	want := func(s string) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, func() error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if string(b) != s {
				return fmt.Errorf("splits.json = %s; want %s", b, s)
			}
			return nil
		})
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: 2, Percent: 10}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	t.Logf("after set_shadow: %s", b)
	testenv.CheckFor(t, 5*time.Second, func() error {
		b, _ := os.ReadFile(path)
		if len(b) < 10 {
			return fmt.Errorf("splits.json = %s", b)
		}
		return nil
	})
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: 2, Percent: 20, Tolerance: 0.5}}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if sh := n.cfg.Registry.ShadowOf("m"); sh == nil || sh.Percent != 20 {
			return fmt.Errorf("shadow %+v", sh)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	b, _ = os.ReadFile(path)
	t.Logf("after change: %s", b)
	var before *registry.Shadow
	_, again := restartAsServe(t, cfg, n, func(r *registry.Repository) {
		if m := r.Model("m"); m != nil {
			before = m.Shadow()
		}
	})
	if before == nil || before.Percent != 20 || before.Tolerance != 0.5 {
		t.Fatalf("restarted before raft: shadow %+v; want version 2, 20%%, tolerance 0.5", before)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !again.IsLeader() {
			return fmt.Errorf("not leader")
		}
		return nil
	})
	if _, err := again.ApplyLocal(fsm.Command{Op: fsm.OpEndShadow, Model: "m"}); err != nil {
		t.Fatal(err)
	}
	want("{}")
}
