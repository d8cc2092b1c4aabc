package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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

// runExperiment starts experiment e on model "m" of n, by default "exp"
// with arms control (version 1) and treatment (version 2) of weight 1,
// and returns it once n's repository runs it.
func runExperiment(t *testing.T, n *Node, e *route.Experiment) *registry.Experiment {
	t.Helper()
	if e == nil {
		e = &route.Experiment{Name: "exp", Arms: []route.Arm{
			{Name: "control", Version: 1, Weight: 1},
			{Name: "treatment", Version: 2, Weight: 1},
		}}
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var x *registry.Experiment
	testenv.CheckFor(t, 10*time.Second, func() error {
		if x = n.cfg.Registry.ExperimentOf("m"); x == nil || !x.SameSplit(e) {
			return fmt.Errorf("the experiment is not set on the node yet")
		}
		return nil
	})
	return x
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
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e, Created: time.Now()}); err != nil {
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

// TestRestartedNodeServesAsBeforeWhenReady restarts a node whose model
// runs an experiment between production and a staged version: once its
// initial loads are done, before raft has caught up, it must serve
// production and both arms, and the reconciler must then keep the
// versions it loaded instead of loading them again. Found by a walk on
// real servers: the repository's own rule loaded only the highest
// version, so for the first second unversioned requests got 503 and the
// control arm fell back.
func TestRestartedNodeServesAsBeforeWhenReady(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 1},
		{Name: "treatment", Version: 2, Weight: 1},
	}}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		var served map[string]servedModel
		if err := loadJSON(filepath.Join(cfg.DataDir, servedFile), &served); err != nil {
			return err
		}
		if got := served["m"].Versions; len(got) != 2 {
			return fmt.Errorf("served.json lists versions %v of m; want 1 and 2", got)
		}
		return nil
	})

	var before map[int64]*registry.Version
	repo, again := restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		lm := repo.Model("m")
		if lm == nil || lm.Version(1) == nil || lm.Version(2) == nil {
			var got []int64
			if lm != nil {
				for _, v := range lm.Versions() {
					got = append(got, v.Number)
				}
			}
			t.Fatalf("after the initial loads m serves versions %v; want 1 and 2", got)
		}
		before = map[int64]*registry.Version{1: lm.Version(1), 2: lm.Version(2)}
		v, err := repo.Acquire("m", 0)
		if err != nil {
			t.Fatalf("an unversioned request after the initial loads: %v; want production, version 1", err)
		}
		v.Release()
		if v.Number != 1 {
			t.Fatalf("an unversioned request went to version %d; want production, 1", v.Number)
		}
		for i := range 40 {
			unit := fmt.Sprint("user-", i)
			want := e.Arms[e.Assign([]byte(unit))]
			v, arm, err := repo.AcquireUnversioned("m", []byte(unit))
			if err != nil {
				t.Fatalf("unit %s: %v", unit, err)
			}
			v.Release()
			if v.Number != want.Version || arm != want.Name {
				t.Fatalf("unit %s: version %d arm %q; want %d %q", unit, v.Number, arm, want.Version, want.Name)
			}
		}
	})
	checkKeptLoads(t, again, repo, before)
}

// checkKeptLoads waits until the restarted node again has caught up and
// reports model m's versions 1 and 2 ready, then checks that it kept the
// Versions the restart loaded (before) instead of loading them again.
func checkKeptLoads(t *testing.T, again *Node, repo *registry.Repository, before map[int64]*registry.Version) {
	t.Helper()
	testenv.CheckFor(t, 15*time.Second, func() error {
		st := again.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady {
			return fmt.Errorf("statuses %+v; want both ready", st)
		}
		return nil
	})
	lm := repo.Model("m")
	for v, was := range before {
		if lm.Version(v) != was {
			t.Errorf("the reconciler loaded version %d again; it should keep what the restart loaded with the same configuration", v)
		}
	}
}

func TestRestoredLoadsReportsDamage(t *testing.T) {
	f := func(content, wantErr string, wantModels ...string) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, servedFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := RestoredLoads(dir)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("RestoredLoads with %s: %v; want an error containing %q", content, err, wantErr)
		}
		if len(got) != len(wantModels) {
			t.Fatalf("with %s: %d models; want %v", content, len(got), wantModels)
		}
		for _, name := range wantModels {
			cfg := got[name]
			if cfg == nil || cfg.VersionPolicy.Specific == nil || len(cfg.VersionPolicy.Specific.Versions) == 0 {
				t.Fatalf("with %s: model %s: %+v; want its versions", content, name, cfg)
			}
		}
	}
	good := `"good":{"versions":[1,3],"config":{"max_batch_size":8}}`
	f(`{`+good+`}`, "", "good")
	f(`{"plain":{"versions":[2]}}`, "", "plain")
	f(`{`+good+`,"none":{"versions":[]}}`, `model "none": no versions`, "good")
	f(`{`+good+`,"zero":{"versions":[0]}}`, `model "zero": version 0 is not`, "good")
	f(`{`+good+`,"cfg":{"versions":[1],"config":{"max_batch_size":-1}}}`, `model "cfg": its config`, "good")
	f(`garbage`, "cannot read the versions this node served")
	if got, err := RestoredLoads(t.TempDir()); got != nil || err != nil {
		t.Fatalf("without the file: %v, %v; want nothing", got, err)
	}
}

// TestRestartedNodeCarriesExperimentCounts: what a node counted for an
// experiment's arms survives its restart (before, the counts started
// over, and the results lost them), and is written while it runs, for a
// crash to lose at most countsEvery's.
func TestRestartedNodeCarriesExperimentCounts(t *testing.T) {
	every := countsEvery
	countsEvery = 50 * time.Millisecond
	t.Cleanup(func() { countsEvery = every })
	cfg, n := soloWithTwoVersions(t)
	x := runExperiment(t, n, nil)
	one, two := 1.0, 2.0
	x.Outcome("treatment", &one, &two)
	x.Outcome("treatment", &one, nil)
	x.Outcome("control", nil, &two)
	before := x.Counts()
	// The reconciler records the experiment in splits.json.
	testenv.CheckFor(t, 10*time.Second, func() error {
		var splits map[string]split
		if err := loadJSON(filepath.Join(cfg.DataDir, splitsFile), &splits); err != nil {
			return err
		}
		if !splits["m"].Experiment.Equal(x.Clone()) {
			return fmt.Errorf("%s holds %+v", splitsFile, splits["m"].Experiment)
		}
		return nil
	})

	var atStart *registry.ExperimentCounts
	repo, again := restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		if x := repo.ExperimentOf("m"); x != nil {
			atStart = x.Counts()
		}
	})
	if !reflect.DeepEqual(atStart, before) {
		t.Fatalf("restarted, before raft caught up, the node counts %+v; want %+v", atStart, before)
	}
	testenv.CheckFor(t, 15*time.Second, func() error {
		if _, idx := again.FSM().State(); idx == 0 {
			return fmt.Errorf("not caught up")
		}
		return nil
	})
	x = repo.ExperimentOf("m")
	if got := x.Counts(); !reflect.DeepEqual(got, before) {
		t.Fatalf("restarted and caught up, the node counts %+v; want %+v", got, before)
	}

	// Written while the node runs.
	x.Outcome("control", &one, nil)
	want := x.Counts()
	testenv.CheckFor(t, 10*time.Second, func() error {
		var saved map[string]*registry.ExperimentCounts
		if err := loadJSON(filepath.Join(cfg.DataDir, countsFile), &saved); err != nil {
			return err
		}
		if !reflect.DeepEqual(saved["m"], want) {
			return fmt.Errorf("%s holds %+v; want %+v", countsFile, saved["m"], want)
		}
		return nil
	})
}

// TestModelsWaitForTheReplay: a restarted node reports its models only
// once it has replayed its raft log. Before, "infergate models show"
// right after a restart answered that a registered model was not
// registered.
func TestModelsWaitForTheReplay(t *testing.T) {
	cfg, n := soloWithTwoVersions(t)
	_, again := restartAsServe(t, cfg, n, nil)
	// An election takes a heartbeat timeout (a second) at least.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	err := again.WaitReplayed(ctx)
	cancel()
	if !errors.Is(err, ErrBehind) || !strings.Contains(err.Error(), "replaying its raft log") {
		t.Fatalf("right after the restart: %v; want ErrBehind saying the node replays its log", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := again.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	views, err := again.Models(ctx, "m")
	if err != nil || len(views) != 1 || len(views[0].Versions) != 2 {
		t.Fatalf("once replayed: %+v, %v; want model m with its 2 versions", views, err)
	}
}
