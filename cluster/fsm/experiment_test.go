package fsm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway/route"
)

// applier returns a function that applies a command to f, with the next
// index from 101, and checks its outcome: success and the state's
// invariants, or the error wanted and the state left as it was.
func applier(t *testing.T, f *FSM) func(c Command, wantErr error, wantMsg string) {
	index := uint64(100)
	return func(c Command, wantErr error, wantMsg string) {
		t.Helper()
		index++
		before := stateBytes(t, f)
		res := f.ApplyCommand(c, index)
		if wantErr == nil {
			if res.Err != nil {
				t.Fatalf("%s: %v", c.Op, res.Err)
			}
			checkState(t, f)
			return
		}
		if !errors.Is(res.Err, wantErr) || !strings.Contains(res.Err.Error(), wantMsg) {
			t.Fatalf("%s: got %v; want %v containing %q", c.Op, res.Err, wantErr, wantMsg)
		}
		if after := stateBytes(t, f); !bytes.Equal(after, before) {
			t.Fatalf("%s failed but changed the state", c.Op)
		}
	}
}

func setExperiment(model string, arms ...route.Arm) Command {
	return Command{Op: OpSetExperiment, Model: model, Experiment: &route.Experiment{Name: "ranking", Arms: arms}}
}

// TestApplyExperiment walks an experiment through the states a person
// puts it in, on the seeded model "m" (1 staged, 2 production, 3 canary).
func TestApplyExperiment(t *testing.T) {
	f := seeded(t)
	apply := applier(t, f)
	experiment := func() *route.Experiment {
		st, _ := f.State()
		return st.Models["m"].Experiment
	}

	apply(setExperiment("nope", arm("a", 1, 1), arm("b", 2, 1)), ErrNotFound, `model "nope" is not registered`)
	apply(setExperiment("m", arm("a", 2, 1), arm("b", 9, 1)), ErrNotFound, `arm "b": model "m" has no version 9`)
	apply(Command{Op: OpEndExperiment, Model: "m"}, ErrNotFound, `model "m" runs no experiment`)
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 1}, nil, "")
	apply(setExperiment("m", arm("control", 2, 90), arm("old", 1, 10)), ErrConflict, `arm "old": version 1 of model "m" is retired`)

	arms := []route.Arm{arm("control", 2, 90), arm("treatment", 3, 10)}
	apply(setExperiment("m", arms...), nil, "")
	if e := experiment(); e == nil || e.Name != "ranking" || len(e.Arms) != 2 || e.Arms[1] != arms[1] {
		t.Fatalf("experiment after set: %+v", e)
	}
	// The FSM keeps its own copy.
	arms[1].Weight = 77
	if e := experiment(); e.Arms[1].Weight != 10 {
		t.Fatalf("the state shares the command's arms: %+v", e)
	}

	// An arm's version cannot be retired, even without an alias.
	apply(Command{Op: OpRemoveMember, Member: &Member{ID: "n1"}}, nil, "")
	apply(Command{Op: OpSetAlias, Model: "m", Alias: "canary", Version: 2}, nil, "")
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, ErrConflict, `it is an arm of experiment "ranking"; end the experiment (infergate models end-experiment m, or DELETE /v1/models/m/experiment)`)

	// Setting again replaces it: ramp the treatment to half.
	apply(setExperiment("m", arm("control", 2, 50), arm("treatment", 3, 50)), nil, "")
	if e := experiment(); e.Arms[0].Weight != 50 {
		t.Fatalf("experiment after the ramp: %+v", e)
	}

	// The experiment survives a snapshot and a restore.
	b := snapshotBytes(t, f)
	g := restore(t, b)
	if st, _ := g.State(); !st.Models["m"].Experiment.Equal(experiment()) {
		t.Fatalf("restored experiment %+v; want %+v", st.Models["m"].Experiment, experiment())
	}

	apply(Command{Op: OpEndExperiment, Model: "m"}, nil, "")
	if e := experiment(); e != nil {
		t.Fatalf("experiment after end: %+v", e)
	}
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, nil, "")
}

// TestExperimentPhase: an experiment's phase begins at the write that
// starts it or changes its split, and a write of the split it runs, or
// one that claims a phase, leaves it.
func TestExperimentPhase(t *testing.T) {
	f := seeded(t)
	apply := applier(t, f)
	phase := func() (uint64, time.Time) {
		t.Helper()
		st, index := f.State()
		e := st.Models["m"].Experiment
		if e == nil {
			t.Fatalf("no experiment at index %d", index)
		}
		return e.Phase, e.Started
	}
	at := func(c Command, created time.Time) Command {
		c.Created = created
		return c
	}
	t0 := time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)
	want := func(p uint64, started time.Time) {
		t.Helper()
		if gp, gs := phase(); gp != p || !gs.Equal(started) {
			t.Fatalf("phase %d started %v; want %d started %v", gp, gs, p, started)
		}
	}

	apply(at(setExperiment("m", arm("control", 2, 90), arm("treatment", 3, 10)), t0), nil, "")
	_, start := f.State()
	want(start, t0)
	// The same split again (a client's retry): the phase goes on, even
	// when the command claims another.
	same := at(setExperiment("m", arm("control", 2, 90), arm("treatment", 3, 10)), t0.Add(time.Minute))
	same.Experiment.Phase, same.Experiment.Started = 1, t0.Add(time.Hour)
	apply(same, nil, "")
	want(start, t0)
	// Each change of the split begins a phase: weights, salt, versions.
	for i, c := range []*route.Experiment{
		{Name: "ranking", Arms: []route.Arm{arm("control", 2, 50), arm("treatment", 3, 50)}},
		{Name: "ranking", Salt: "again", Arms: []route.Arm{arm("control", 2, 50), arm("treatment", 3, 50)}},
		{Name: "ranking", Salt: "again", Arms: []route.Arm{arm("control", 2, 50), arm("treatment", 1, 50)}},
	} {
		created := t0.Add(time.Duration(i+1) * time.Hour)
		apply(Command{Op: OpSetExperiment, Model: "m", Experiment: c, Created: created}, nil, "")
		_, index := f.State()
		want(index, created)
	}
	// A write of a release before phases (no Created) begins none.
	apply(setExperiment("m", arm("control", 2, 40), arm("treatment", 1, 60)), nil, "")
	want(0, time.Time{})
	// Ended and started again, the same split: a new phase.
	p, _ := phase()
	apply(Command{Op: OpEndExperiment, Model: "m"}, nil, "")
	apply(at(setExperiment("m", arm("control", 2, 50), arm("treatment", 1, 50)), t0.Add(5*time.Hour)), nil, "")
	if again, _ := phase(); again == p {
		t.Fatalf("an experiment started again carries on the ended one's phase %d", p)
	}
	// A snapshot keeps the phase.
	p, started := phase()
	g := restore(t, snapshotBytes(t, f))
	if st, _ := g.State(); st.Models["m"].Experiment.Phase != p || !st.Models["m"].Experiment.Started.Equal(started) {
		t.Fatalf("restored experiment %+v; want phase %d started %v", st.Models["m"].Experiment, p, started)
	}
}

func TestExperimentCommandValidate(t *testing.T) {
	f := func(c Command, want string) {
		t.Helper()
		_, err := c.Encode()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Encode(%+v) = %v; want ErrInvalid containing %q", c, err, want)
		}
	}
	f(Command{Op: OpSetExperiment, Model: "m"}, "set_experiment: the experiment is missing")
	f(setExperiment("m", arm("a", 1, 1)), "has 1 arms")
	f(setExperiment("bad/name", arm("a", 1, 1), arm("b", 2, 1)), "bad/name")
	f(Command{Op: OpEndExperiment}, "end_experiment")
}

func TestRestoreRejectsExperimentOnRetiredVersion(t *testing.T) {
	f := seeded(t)
	if res := f.ApplyCommand(setExperiment("m", arm("a", 2, 1), arm("b", 3, 1)), 50); res.Err != nil {
		t.Fatal(res.Err)
	}
	b := snapshotBytes(t, f)
	broken := bytes.Replace(b, []byte(`"version":3,`), []byte(`"version":4,`), 1)
	broken = bytes.Replace(broken, []byte(`"next_version":4`), []byte(`"next_version":5`), 1)
	broken = bytes.Replace(broken, []byte(`"canary":3`), []byte(`"canary":4`), 1)
	if bytes.Equal(broken, b) {
		t.Fatalf("the snapshot did not have the expected form: %s", b)
	}
	err := New().Restore(&closer{Reader: bytes.NewReader(broken)})
	if err == nil || !strings.Contains(err.Error(), `arm "b" of experiment "ranking" serves version 3, which does not exist or is retired`) {
		t.Fatalf("Restore of an experiment on a missing version: %v", err)
	}
}

// TestRandomCommandsKeepExperimentsValid applies random commands, the
// experiment ops among them, checking the invariants after every one.
func TestRandomCommandsKeepExperimentsValid(t *testing.T) {
	f := New()
	var set, ended int
	for i, c := range randomCommands(rand.New(rand.NewPCG(7, 8)), 3000) {
		res := f.ApplyCommand(c, uint64(i+1))
		if res.Err == nil {
			switch c.Op {
			case OpSetExperiment:
				set++
			case OpEndExperiment:
				ended++
			}
		}
		checkState(t, f)
	}
	if set < 10 || ended < 10 {
		t.Fatalf("%d experiments set and %d ended; want both to happen", set, ended)
	}
}

func arm(name string, version int64, weight int) route.Arm {
	return route.Arm{Name: name, Version: version, Weight: weight}
}

func TestApplyShadow(t *testing.T) {
	f := seeded(t) // m: 1 staged, 2 production, 3 canary
	apply := applier(t, f)
	shadow := func(model string, v int64) Command {
		return Command{Op: OpSetShadow, Model: model, Shadow: &route.Shadow{Version: v, Percent: 10}}
	}
	apply(shadow("nope", 1), ErrNotFound, `model "nope" is not registered`)
	apply(shadow("m", 9), ErrNotFound, `model "m" has no version 9`)
	apply(Command{Op: OpEndShadow, Model: "m"}, ErrNotFound, `model "m" has no shadow`)
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 1}, nil, "")
	apply(shadow("m", 1), ErrConflict, "version 1 of model \"m\" is retired")
	apply(Command{Op: OpSetAlias, Model: "m", Alias: "canary", Version: 2}, nil, "")
	apply(shadow("m", 3), nil, "")
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, ErrConflict, "it is the model's shadow; end the shadow first (infergate models end-shadow m, or DELETE /v1/models/m/shadow)")
	g := restore(t, snapshotBytes(t, f))
	if st, _ := g.State(); !st.Models["m"].Shadow.Equal(&route.Shadow{Version: 3, Percent: 10}) {
		t.Fatalf("restored shadow %+v", st.Models["m"].Shadow)
	}
	apply(Command{Op: OpEndShadow, Model: "m"}, nil, "")
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, nil, "")
	if _, err := (&Command{Op: OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: 2}}).Encode(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "percent 0") {
		t.Fatalf("a shadow without percent: %v", err)
	}
}
