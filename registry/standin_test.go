package registry

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/batching"
	"github.com/infergate/infergate/oip"
)

func indexString(t *testing.T, r *Repository) string {
	t.Helper()
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range idx {
		b.WriteString(e.Name + "/" + e.Version + " " + string(e.State) + " " + e.Reason + "\n")
	}
	return b.String()
}

// The index shows a stand-in as serving in the failed version's place after
// a poll that changed nothing too (it lost its reason).
func TestStandInReasonKeptOverPolls(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "fail3")
	_ = r.Load("m", nil)
	before := indexString(t, r)
	if !strings.Contains(before, "m/2 READY serving in place of version 3") {
		t.Fatalf("after the first load the index is\n%s", before)
	}
	_ = r.Poll()
	after := indexString(t, r)
	if !strings.Contains(after, "m/2 READY serving in place of version 3") {
		t.Fatalf("nothing changed on disk, version 3 still fails and 2 still stands in, but after one poll the index is\n%s(before the poll:\n%s)", after, before)
	}
}

// A poll skips files whose last load failed and that have not changed,
// older ones tried as stand-ins too (each poll loaded them again).
func TestPollSkipsUnchangedFailingStandIn(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "fail1")
	writeModel(t, dir, "m", 2, "fail2")
	_ = r.Load("m", nil)
	n0 := l.count()
	for range 3 {
		_ = r.Poll()
	}
	if n := l.count() - n0; n != 0 {
		l.mu.Lock()
		loads := append([]string(nil), l.loads[n0:]...)
		l.mu.Unlock()
		t.Fatalf("3 polls with nothing changed on disk loaded %d files again: %v; want none (an unchanged failure is not retried by a poll)", n, loads)
	}
}

// infergate_model_load_failing counts what is failing now: a model whose
// directory is removed drops out of it (its failures stayed counted).
func TestLoadFailingGaugeDropsRemovedModel(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	writeModel(t, dir, "m", 1, "fail1")
	_ = r.Load("m", nil)
	gauge := func() string { return loadFailingLine(set) }
	if g := gauge(); g != "infergate_model_load_failing 1" {
		t.Fatalf("after the failed load: %s", g)
	}
	if err := os.RemoveAll(filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	_ = r.Poll()
	if g := gauge(); g != "infergate_model_load_failing 0" {
		t.Fatalf("model directory removed and polled: %s; want 0 (nothing in the repository fails now)\nindex:\n%s", g, indexString(t, r))
	}
}

// A stand-in's reason lists the failed versions in order, the same from
// one load to the next (it followed map iteration).
func TestStandInReasonOrder(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	two := &ModelConfig{VersionPolicy: VersionPolicy{Latest: &LatestPolicy{NumVersions: 2}}}
	seen := map[string]bool{}
	for i := range 24 {
		name := "m" + string(rune('a'+i))
		writeModel(t, dir, name, 1, "ok1")
		writeModel(t, dir, name, 2, "ok2")
		writeModel(t, dir, name, 3, "fail3")
		writeModel(t, dir, name, 4, "fail4")
		_ = r.Load(name, two)
		idx, _ := r.Index()
		for _, e := range idx {
			if e.Name == name && e.Version == "2" {
				seen[e.Reason] = true
			}
		}
	}
	if len(seen) > 1 {
		t.Fatalf("the same state (versions 3 and 4 failed, 2 stands in) gave %d different reasons: %v", len(seen), seen)
	}
}

// A version loaded after Hurry (a poll during the shutdown delay) is
// hurried too: its requests do not wait out the queue delay.
func TestVersionLoadedAfterHurryIsHurried(t *testing.T) {
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	defaults := ModelConfig{MaxBatchSize: 16, DynamicBatching: &DynamicBatching{MaxQueueDelayUS: new(int64(10_000_000))}}
	r, err := New(Config{Dir: dir, Load: l.load, Logf: t.Logf, Defaults: defaults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	do := func(n int64) time.Duration { return runOne(t, r, n) }
	r.Hurry() // the shutdown begins
	if d := do(1); d < 0 {
		t.Fatal("version 1, loaded before Hurry, still waits for the queue delay")
	}
	writeModel(t, dir, "m", 2, "m2") // a deploy lands during --shutdown-delay
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if d := do(2); d < 0 {
		t.Fatal("version 2, loaded by a poll after Hurry (during the shutdown delay), waits out the 10s max_queue_delay: a request to it was not answered within 2s")
	}
}

// The stand-in is the next older version on disk that loads, whatever
// served before: with 3 and 2 broken, 1 stands in; once 2 is fixed, a
// poll moves to 2, as a restart would (1 kept serving).
func TestFixedNewerStandInPicked(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "fail2")
	writeModel(t, dir, "m", 3, "fail3")
	_ = r.Load("m", nil)
	if v := mustAcquire(t, r, "m", 0); v.Number != 1 {
		t.Fatalf("start: version %d serves; want 1 standing in", v.Number)
	} else {
		v.Release()
	}
	writeModel(t, dir, "m", 2, "m2-fixed")
	_ = r.Poll()
	_ = r.Load("m", nil)
	v := mustAcquire(t, r, "m", 0)
	v.Release()
	if v.Number != 2 {
		r2, _, _ := newTestRepoAt(t, dir)
		_ = r2.Load("m", nil)
		w := mustAcquire(t, r2, "m", 0)
		w.Release()
		t.Fatalf("version 2 fixed, polled and loaded explicitly: version %d still serves; want 2, the next older version on disk (a restart on the same disk serves %d)\nindex:\n%s",
			v.Number, w.Number, indexString(t, r))
	}
}

func newTestRepoAt(t *testing.T, dir string) (*Repository, *fakeLoader, string) {
	t.Helper()
	l := &fakeLoader{t: t}
	r, err := New(Config{Dir: dir, Load: l.load, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, l, dir
}

// With 3 and 2 broken and 1 standing in, both failures stay in the index
// and in infergate_model_load_failing over a poll that changed nothing
// (version 2's was dropped).
func TestFailedStandInKeptByPoll(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "fail2")
	writeModel(t, dir, "m", 3, "fail3")
	_ = r.Load("m", nil)
	gauge := func() string { return loadFailingLine(set) }
	g1, i1 := gauge(), indexString(t, r)
	_ = r.Poll()
	g2, i2 := gauge(), indexString(t, r)
	if g1 != g2 || i1 != i2 {
		t.Fatalf("nothing changed on disk; before the poll %s, index\n%safter it %s, index\n%s", g1, i1, g2, i2)
	}
}

// loadFailingLine returns set's infergate_model_load_failing line.
func loadFailingLine(set *metrics.Set) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "infergate_model_load_failing ") {
			return line
		}
	}
	return "(absent)"
}

// newRepoWithMetrics is newTestRepo with the repository's metrics in a set
// of the test's own.
func newRepoWithMetrics(t *testing.T) (*Repository, *metrics.Set, string) {
	t.Helper()
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	set := metrics.NewSet()
	r, err := New(Config{Dir: dir, Load: l.load, Logf: t.Logf, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, set, dir
}

// runOne runs a one-row request on version n of model m and returns how
// long it took, or -1 when it had no answer within 2 s.
func runOne(t *testing.T, r *Repository, n int64) time.Duration {
	t.Helper()
	v := mustAcquire(t, r, "m", n)
	defer v.Release()
	req := &batching.Request{Rows: 1, Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{1, 2}, Data: make([]byte, 8)}}}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- v.Batcher.Do(req) }()
	select {
	case <-done:
		return time.Since(start)
	case <-time.After(2 * time.Second):
		return -1
	}
}
