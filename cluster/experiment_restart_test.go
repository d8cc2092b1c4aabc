package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// soloWithTwoVersions starts a one-node cluster with model "m" versions 1
// (production) and 2 (staged).
func soloWithTwoVersions(t *testing.T) (Config, *Node) {
	t.Helper()
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, content := range []string{"good one", "good two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, n
}

// TestRestartedNodeKeepsTheExperiment: a unit gets the same arm on every
// node, after restarts too. A node restarts as serve does
// (RestoreProduction, then the models load and serve before the control
// plane starts); while raft replays its log, splits.json gives it the
// experiment (found by a reviewing helper: before it, a treatment unit
// was served by production until the node caught up).
func TestRestartedNodeKeepsTheExperiment(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 1},
		{Name: "treatment", Version: 2, Weight: 1},
	}}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e}); err != nil {
		t.Fatal(err)
	}
	unit := ""
	for i := 0; unit == ""; i++ {
		if u := fmt.Sprint("user-", i); e.Assign([]byte(u)) == 1 {
			unit = u
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		v, arm, err := n.cfg.Registry.AcquireUnversioned("m", []byte(unit))
		if err != nil {
			return err
		}
		v.Release()
		if v.Number != 2 || arm != "treatment" {
			return fmt.Errorf("version %d arm %q", v.Number, arm)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	// The model's directory asks for every version, as a --models
	// directory registered with --register-local-models may: both
	// versions load from disk at the restart.
	if err := os.WriteFile(filepath.Join(cfg.Registry.Dir(), "m", "config.json"), []byte(`{"version_policy":{"all":{}}}`), 0o644); err != nil {
		t.Fatal(err)
	}

	repo, again := restartAsServe(t, cfg, n, nil)
	var wrong, right atomic.Int64
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
			if v, arm, err := repo.AcquireUnversioned("m", []byte(unit)); err == nil {
				if v.Number != 2 || arm != "treatment" {
					wrong.Add(1)
				} else {
					right.Add(1)
				}
				v.Release()
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	testenv.CheckFor(t, 15*time.Second, func() error {
		if _, idx := again.FSM().State(); idx == 0 {
			return fmt.Errorf("not caught up")
		}
		if x := repo.Model("m"); x == nil || x.Experiment() == nil {
			return fmt.Errorf("no experiment yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	if w := wrong.Load(); w != 0 {
		t.Errorf("after a restart, before raft caught up, unit %s (arm treatment, version 2 on every other node) was served %d times by production version 1 without an arm (%d times right)", unit, w, right.Load())
	}
}

func TestRestoreSplitsReportsDamage(t *testing.T) {
	f := func(content, wantErr string, wantExperiment bool) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, splitsFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		repo, err := registry.New(registry.Config{Dir: t.TempDir(), Load: func([]byte, registry.ModelConfig) (registry.Backend, error) { return textBackend{}, nil }, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		err = RestoreProduction(dir, repo)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("RestoreProduction with %s: %v; want an error containing %q", content, err, wantErr)
		}
		if got := repo.ExperimentOf("good") != nil && repo.ShadowOf("good") != nil; got != wantExperiment {
			t.Fatalf("with %s: model good has an experiment: %t; want %t", content, got, wantExperiment)
		}
	}
	good := `"good":{"experiment":{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]},"shadow":{"version":3,"percent":5}}`
	f(`{`+good+`}`, "", true)
	f(`{`+good+`,"bad":{"experiment":{"name":"e","arms":[]}}}`, `model "bad": experiment: the experiment has 0 arms`, true)
	f(`garbage`, "cannot read the models' experiments and shadows", false)
}
