package gateway_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// restartNode is a node of ctr versions 1 and 2 whose traffic log is in
// dir, logging every prediction, in segments of segBytes.
func restartNode(t *testing.T, dir string, segBytes int64) (*testServer, *trafficlog.Log) {
	t.Helper()
	tc := trafficlog.DefaultConfig()
	tc.Dir = dir
	tc.SyncInterval = 10 * time.Millisecond
	tc.SegmentBytes = segBytes
	tc.MaxRecordBytes = min(tc.MaxRecordBytes, int(segBytes))
	tc.Logf = t.Logf
	tc.Metrics = metrics.NewSet()
	tl, err := trafficlog.Open(tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	cfg := gateway.DefaultConfig()
	cfg.TrafficLog, cfg.TrafficPercent = tl, 100
	s := startServer(t, serverOptions{cfg: cfg,
		defaults: registry.ModelConfig{VersionPolicy: registry.VersionPolicy{All: &struct{}{}}},
		files:    map[string][]byte{"ctr/1": ctrONNX(), "ctr/2": ctrONNX()}})
	return s, tl
}

// abExperiment is exp on ctr, control version 1 and treatment version 2,
// in the phase that began at started.
func abExperiment(phase uint64, started time.Time, wControl, wTreatment int) *route.Experiment {
	return &route.Experiment{Name: "exp", Phase: phase, Started: started, Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: wControl}, {Name: "treatment", Version: 2, Weight: wTreatment}}}
}

// predictByArm makes n predictions of distinct units and returns their
// ids by the arm that answered.
func predictByArm(t *testing.T, s *testServer, n int) map[string][]string {
	t.Helper()
	ids := make(map[string][]string)
	for i := range n {
		r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(uint64(i), 1, 64), 1), gateway.HeaderUnitID, fmt.Sprint("user-", i))
		if r.code != 200 {
			t.Fatalf("infer: %s", r)
		}
		arm := r.header[gateway.HeaderExperimentArm]
		ids[arm] = append(ids[arm], decodeInfer(t, r).ID)
	}
	if len(ids["control"]) == 0 || len(ids["treatment"]) == 0 {
		t.Fatalf("%d predictions by arm: %v; want both arms", n, ids)
	}
	return ids
}

// postRewards posts reward 1 for each id, naming no arm, and returns how
// many the answer says were attributed to an arm.
func postRewards(t *testing.T, s *testServer, ids []string) int {
	t.Helper()
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"reward":1}`, id)
	}
	b.WriteByte(']')
	r := s.post(t, "/v2/models/ctr/feedback", []byte(b.String()))
	if r.code != 200 {
		t.Fatalf("feedback: %s", r)
	}
	var a struct{ Accepted, Attributed int }
	if err := json.Unmarshal(r.body, &a); err != nil || a.Accepted != len(ids) {
		t.Fatalf("feedback answer %s (%v); want %d accepted", r.body, err, len(ids))
	}
	return a.Attributed
}

// armRewards is how many rewards arm of exp counted on s.
func armRewards(t *testing.T, s *testServer, arm string, version int) float64 {
	t.Helper()
	v, err := metricValue(s.metricsText(t), fmt.Sprintf(`infergate_experiment_rewards_total{model="ctr",experiment="exp",arm=%q,version="%d"}`, arm, version))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFeedbackAfterRestartCountsForItsArm: feedback naming only the id of
// a prediction made before the node restarted, over the same traffic log,
// counts for the arm that answered it while the experiment's phase goes
// on (it counted for none: the node remembered arms in memory only, and
// a rolling restart lost the feedback of the minutes before it).
func TestFeedbackAfterRestartCountsForItsArm(t *testing.T) {
	dir := t.TempDir()
	x := abExperiment(9, time.Now().Add(-time.Minute), 1, 1)
	s1, tl1 := restartNode(t, dir, 64<<20)
	s1.repo.SetExperiment("ctr", x)
	ids := predictByArm(t, s1, 40)
	tl1.Close() // the node stops: its log is closed, on disk

	s2, _ := restartNode(t, dir, 64<<20)
	s2.repo.SetExperiment("ctr", x) // restored after the server started, as serve does
	all := append(append([]string(nil), ids["control"]...), ids["treatment"]...)
	if got := postRewards(t, s2, all); got != len(all) {
		t.Fatalf("after the restart, %d of the %d outcomes of predictions made before it were attributed; want all", got, len(all))
	}
	for _, a := range []struct {
		arm     string
		version int
	}{{"control", 1}, {"treatment", 2}} {
		if got, want := armRewards(t, s2, a.arm, a.version), float64(len(ids[a.arm])); got != want {
			t.Fatalf("rewards counted for %s after the restart: %v; want %v, its predictions before it", a.arm, got, want)
		}
	}
}

// TestFeedbackAfterRestartNotCountedForANewPhase: once the split has
// changed (a new phase, begun after the predictions), feedback for the
// predictions made before the restart counts for no arm, though the arms
// keep their names and versions: their units may have moved between arms.
func TestFeedbackAfterRestartNotCountedForANewPhase(t *testing.T) {
	dir := t.TempDir()
	x := abExperiment(9, time.Now().Add(-time.Minute), 1, 1)
	s1, tl1 := restartNode(t, dir, 64<<20)
	s1.repo.SetExperiment("ctr", x)
	ids := predictByArm(t, s1, 40)
	tl1.Close()

	s2, _ := restartNode(t, dir, 64<<20)
	s2.repo.SetExperiment("ctr", x)
	// The phase the predictions were made in counts the first of each arm.
	if got := postRewards(t, s2, []string{ids["control"][0], ids["treatment"][0]}); got != 2 {
		t.Fatalf("in the predictions' phase, %d of 2 outcomes attributed; want 2", got)
	}
	s2.repo.SetExperiment("ctr", abExperiment(12, time.Now(), 1, 3)) // ramped: a new phase
	// The arms' series count on across the change; the new phase's
	// counts are what they add from here.
	c0, t0 := armRewards(t, s2, "control", 1), armRewards(t, s2, "treatment", 2)
	rest := append(append([]string(nil), ids["control"][1:]...), ids["treatment"][1:]...)
	if got := postRewards(t, s2, rest); got != 0 {
		t.Fatalf("after the split changed, %d outcomes of predictions made in the phase before were attributed to the new phase; want none", got)
	}
	if c, tr := armRewards(t, s2, "control", 1)-c0, armRewards(t, s2, "treatment", 2)-t0; c != 0 || tr != 0 {
		t.Fatalf("the new phase counted rewards control %v, treatment %v; want 0 and 0", c, tr)
	}
}

// TestFeedbackAfterRestartOverDamagedLog: damage in the traffic log
// where the node reads back its predictions ends the reading there, and a
// torn last record is cut off as the log opens: the node starts and
// serves, and the predictions before the damage still have their arms.
func TestFeedbackAfterRestartOverDamagedLog(t *testing.T) {
	dir := t.TempDir()
	x := abExperiment(9, time.Now().Add(-time.Minute), 1, 1)
	s1, tl1 := restartNode(t, dir, 64<<10)
	s1.repo.SetExperiment("ctr", x)
	var order []string // ids, each batch's grouped by arm
	byID := make(map[string]bool)
	for len(order) < 800 {
		for _, l := range predictByArm(t, s1, 40) {
			for _, id := range l {
				if !byID[id] {
					byID[id] = true
					order = append(order, id)
				}
			}
		}
	}
	// Where each prediction lies, to tell those after the damage, once
	// the log's writer has written them all (it takes them
	// asynchronously).
	posOf := make(map[string]int64)
	var e trafficlog.Event
	testenv.CheckFor(t, 10*time.Second, func() error {
		if _, err := tl1.Read(tl1.Stats().First, 1<<30, func(pos int64, rec []byte) bool {
			if _, err := trafficlog.Decode(rec, &e); err == nil && e.Kind == trafficlog.Prediction {
				posOf[e.ID] = pos
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(posOf) < len(order) {
			return fmt.Errorf("the log holds %d of the %d predictions", len(posOf), len(order))
		}
		return nil
	})
	tl1.Close() // all on disk
	// A sealed segment, the third from the end, is damaged from its
	// middle on.
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) < 4 {
		t.Fatalf("segments %v, %v; the test wants 4 or more", segs, err)
	}
	afterBase, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(segs[len(segs)-2]), ".seg"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// In the segments after the damaged one, less the last record (torn
	// below): the one at the highest position (order is by arm within
	// each batch, not as written).
	var newest int64
	for _, pos := range posOf {
		newest = max(newest, pos)
	}
	var after []string
	for _, id := range order {
		if pos := posOf[id]; pos >= afterBase && pos != newest {
			after = append(after, id)
		}
	}
	if len(after) == 0 {
		t.Fatalf("no prediction after the damaged segment; the test wants some")
	}
	damaged := segs[len(segs)-3]
	data, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data); i++ {
		data[i] ^= 0xa5
	}
	if err := os.WriteFile(damaged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// And the last one ends in a torn record, as after a crash.
	last := segs[len(segs)-1]
	if fi, err := os.Stat(last); err != nil || fi.Size() < 100 {
		t.Fatalf("last segment %s: %v, %v; want 100 bytes or more", last, fi, err)
	} else if err := os.Truncate(last, fi.Size()-50); err != nil {
		t.Fatal(err)
	}

	s2, _ := restartNode(t, dir, 64<<10)
	s2.repo.SetExperiment("ctr", x)
	if r := s2.post(t, "/v2/models/ctr/infer", ctrRequest(features(1, 1, 64), 1)); r.code != 200 {
		t.Fatalf("infer after a restart over a damaged log: %s", r)
	}
	if !strings.Contains(s2.log.String(), "skips from") {
		t.Fatalf("the server log does not say the refill skipped the damage:\n%s", s2.log)
	}
	// The oldest predictions are in the tail's undamaged first part.
	if got := postRewards(t, s2, order[:10]); got != 10 {
		t.Fatalf("%d of the 10 oldest predictions' outcomes attributed; want 10 (read before the damage)", got)
	}
	// The newest, in the segment after the damage: the refill goes on
	// there (it stopped at the damage, and lost the newest).
	if got := postRewards(t, s2, after); got != len(after) {
		t.Fatalf("%d of the %d predictions in the segment after the damage attributed; want all", got, len(after))
	}
}
