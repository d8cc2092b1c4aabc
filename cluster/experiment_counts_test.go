package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/registry"
)

// countsNode returns a node with just what saveCounts uses: a repository
// restored, as serve restores it, from what the node in dir recorded, and
// the state machine f.
func countsNode(t *testing.T, dir string, f *fsm.FSM) *Node {
	t.Helper()
	repo, err := registry.New(registry.Config{Dir: t.TempDir(), Load: func([]byte, registry.ModelConfig) (registry.Backend, error) { return textBackend{}, nil }, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	if err := RestoreProduction(dir, repo); err != nil {
		t.Fatal(err)
	}
	return &Node{cfg: Config{Registry: repo, DataDir: dir}, fsm: f, logf: t.Logf}
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSaveCountsBeforeCatchUpKeepsWhatItCarries: a restarted node writes
// its counts file every countsEvery from its first moment, while its
// state machine still holds the snapshot it restarted on (or a past
// state replayed from its log; without a quorum, for as long as the
// group has none). The counts it carries from before the restart must
// stay in the file: those of an experiment the snapshot predates, and
// those of a phase newer than splits.json (route applies a change at
// once, and saveCountsLoop counts it, while the reconciler that writes
// splits.json may be loading a version for minutes). Before, the file
// was rewritten from the state's models and the restored experiments
// only, and a second restart (or a crash) before the node caught up lost
// those counts.
func TestSaveCountsBeforeCatchUpKeepsWhatItCarries(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)
	// The snapshot the node restarts on: models a and c run experiments
	// (phases 5 and 7); b's experiment (phase 6) came after it.
	f := fsm.New()
	index := uint64(0)
	do := func(c fsm.Command, at uint64) {
		t.Helper()
		index = max(index+1, at)
		if res := f.ApplyCommand(c, index); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for _, model := range []string{"a", "c"} {
		for _, content := range []string{"one", "two"} {
			sum := sha256.Sum256([]byte(model + content))
			do(fsm.Command{Op: fsm.OpRegisterVersion, Model: model, SHA256: hex.EncodeToString(sum[:]), Size: 3, Created: t0, Origin: "n1"}, 0)
		}
	}
	exp := func(phase uint64) *route.Experiment {
		return &route.Experiment{Name: "exp", Phase: phase, Started: t0, Arms: []route.Arm{
			{Name: "control", Version: 1, Weight: 1},
			{Name: "treatment", Version: 2, Weight: 1},
		}}
	}
	do(fsm.Command{Op: fsm.OpSetExperiment, Model: "a", Experiment: exp(0), Created: t0}, 5)
	do(fsm.Command{Op: fsm.OpSetExperiment, Model: "c", Experiment: exp(0), Created: t0}, 7)
	st, _ := f.State()
	if st.Models["a"].Experiment.Phase != 5 || st.Models["c"].Experiment.Phase != 7 {
		t.Fatalf("phases %d and %d; want 5 and 7", st.Models["a"].Experiment.Phase, st.Models["c"].Experiment.Phase)
	}

	// What the node recorded when it stopped: splits.json from the
	// reconciler's last pass (c still at phase 7), the counts of every
	// experiment it ran (c's at phase 9 by then).
	dir := t.TempDir()
	writeJSONFile(t, filepath.Join(dir, splitsFile), map[string]split{
		"a": {Experiment: exp(5)}, "b": {Experiment: exp(6)}, "c": {Experiment: exp(7)},
	})
	counts := func(phase, requests uint64) *registry.ExperimentCounts {
		return &registry.ExperimentCounts{Experiment: "exp", Phase: phase, Arms: []registry.ArmCounts{
			{Arm: "control", Version: 1, ArmStats: registry.ArmStats{Requests: requests}},
			{Arm: "treatment", Version: 2, ArmStats: registry.ArmStats{Requests: requests + 1}},
		}}
	}
	was := map[string]*registry.ExperimentCounts{"a": counts(5, 10), "b": counts(6, 20), "c": counts(9, 30)}
	writeJSONFile(t, filepath.Join(dir, countsFile), was)

	n := countsNode(t, dir, f)
	n.saveCounts() // saveCountsLoop's first tick, before the node caught up

	// A second restart: what does it carry?
	again := countsNode(t, dir, f)
	for name, want := range map[string]*registry.ExperimentCounts{"a": was["a"], "b": was["b"]} {
		x := again.cfg.Registry.ExperimentOf(name)
		if x == nil {
			t.Fatalf("model %s: no experiment restored", name)
		}
		if got := x.Counts(); fmt.Sprint(got.Arms) != fmt.Sprint(want.Arms) {
			t.Errorf("model %s: restarted twice, the node counts %+v; want %+v", name, got.Arms, want.Arms)
		}
	}
	// c's phase 9 counts wait, as they did after the first restart, for
	// route to set phase 9.
	again.cfg.Registry.SetExperiment("c", exp(9))
	if got := again.cfg.Registry.ExperimentOf("c").Counts(); fmt.Sprint(got.Arms) != fmt.Sprint(was["c"].Arms) {
		t.Errorf("model c: restarted twice and caught up, the node counts %+v; want %+v", got.Arms, was["c"].Arms)
	}
}

// TestSaveCountsSurvivesAHugeReward: feedback took any finite reward,
// and a reward of 1e200 made its arm's sum of squares +Inf, which JSON
// cannot encode. saveCounts panicked ("BUG: cannot encode experiment
// counts") on saveCountsLoop's goroutine, which ended the process: one
// POST of feedback took a node down within countsEvery. The gateway now
// refuses such a reward (gateway.MaxOutcome); counted anyway, it fails
// as a write does.
func TestSaveCountsSurvivesAHugeReward(t *testing.T) {
	f := fsm.New()
	t0 := time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)
	index := uint64(0)
	for _, content := range []string{"one", "two"} {
		sum := sha256.Sum256([]byte(content))
		index++
		if res := f.ApplyCommand(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]), Size: 3, Created: t0, Origin: "n1"}, index); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{{Name: "control", Version: 1, Weight: 1}, {Name: "treatment", Version: 2, Weight: 1}}}
	index++
	if res := f.ApplyCommand(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e, Created: t0}, index); res.Err != nil {
		t.Fatal(res.Err)
	}
	st, _ := f.State()
	n := countsNode(t, t.TempDir(), f)
	n.cfg.Registry.SetExperiment("m", st.Models["m"].Experiment)
	x := n.cfg.Registry.ExperimentOf("m")
	one, huge := 1.0, 1e200
	x.Outcome("control", &one, &one)
	x.Outcome("treatment", nil, &huge)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("saveCounts panicked: %v", p)
			}
		}()
		n.saveCounts()
	}()
}

// TestSaveCountsLogsAFailureOnce: the counts file is written every few
// seconds while feedback flows; a write that fails (a full disk; here a
// directory in the file's place) is logged when it begins and when it
// ends, not every countsEvery.
func TestSaveCountsLogsAFailureOnce(t *testing.T) {
	dir := t.TempDir()
	n := countsNode(t, dir, fsm.New())
	var lines []string
	n.logf = func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	repo := n.cfg.Registry
	repo.SetExperiment("m", &route.Experiment{Name: "exp", Phase: 3, Arms: []route.Arm{
		{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1},
	}})
	path := filepath.Join(dir, countsFile)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	one := 1.0
	for range 3 {
		repo.ExperimentOf("m").Outcome("a", &one, nil)
		n.saveCounts()
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "cannot record what this node counted") {
		t.Fatalf("3 failed writes logged %q; want one line", lines)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	n.saveCounts()
	if len(lines) != 2 || !strings.Contains(lines[1], "again") {
		t.Fatalf("the write that worked again logged %q", lines[1:])
	}
	var saved map[string]*registry.ExperimentCounts
	if err := loadJSON(path, &saved); err != nil || saved["m"].Arms[0].Labels != 3 {
		t.Fatalf("the file holds %+v (%v); want arm a's 3 labels", saved["m"], err)
	}
}
