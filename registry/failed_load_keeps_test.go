package registry

import (
	"testing"
	"time"
)

// A failed load retires nothing that serves (README, "Hot swap"): version
// 3 serves from memory after its rewritten file failed; a broken version
// 4 copied in leaves version 3 serving, not an older stand-in.
func TestInMemoryVersionKeptOverOlderStandIn(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "m3")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 3, "fail3-rewritten")
	_ = r.Load("m", nil)
	if v := mustAcquire(t, r, "m", 0); v.Number != 3 || backendOf(v).tag != "m3" {
		t.Fatalf("setup: version %d (%s) serves; want 3 (m3, the earlier load)", v.Number, backendOf(v).tag)
	} else {
		v.Release()
	}
	writeModel(t, dir, "m", 4, "fail4")
	_ = r.Load("m", nil)
	v, err := r.Acquire("m", 0)
	if err != nil {
		t.Fatalf("after broken version 4 copied in: %v\nindex:\n%s", err, indexString(t, r))
	}
	v.Release()
	if v.Number != 3 {
		t.Fatalf("broken version 4 copied in: version %d (%s) serves; want 3 (m3), which served and still works in memory; it was retired\nindex:\n%s",
			v.Number, backendOf(v).tag, indexString(t, r))
	}
}

// Same through a poll, with the default pinned at 3 (SetDefault, as the
// cluster's production alias does): the unversioned route keeps a version.
func TestPollKeepsPinnedDefault(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "m3")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	r.SetDefault("m", 3)
	writeModel(t, dir, "m", 3, "fail3-rewritten")
	_ = r.Poll()
	writeModel(t, dir, "m", 4, "fail4")
	_ = r.Poll()
	v, err := r.Acquire("m", 0)
	if err != nil {
		t.Fatalf("default pinned at 3, which served from memory; after a broken 4 was copied in and polled, unversioned requests get %v\nindex:\n%s", err, indexString(t, r))
	}
	v.Release()
}

// A failed load retires nothing (Load's contract): an override narrowing
// latest 2 to 1 while version 3's new file is broken leaves version 2.
func TestFailedLoadRetiresNothing(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "m3")
	two := &ModelConfig{VersionPolicy: VersionPolicy{Latest: &LatestPolicy{NumVersions: 2}}}
	if err := r.Load("m", two); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 3, "fail3-rewritten")
	one := &ModelConfig{VersionPolicy: VersionPolicy{Latest: &LatestPolicy{NumVersions: 1}}}
	if err := r.Load("m", one); err == nil {
		t.Fatal("Load with version 3 broken: nil error")
	}
	if v, err := r.Acquire("m", 2); err == nil {
		v.Release()
	} else {
		t.Fatalf("the load failed (its override was not kept) but version 2 was retired: Acquire(m, 2): %v\nindex:\n%s", err, indexString(t, r))
	}
}

// Same with a specific policy: [1 2 3] to [1 2] with version 1's new file
// broken leaves version 3.
func TestSpecificFailedLoadRetiresNothing(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "m3")
	three := &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2, 3}}}}
	if err := r.Load("m", three); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 1, "fail1-rewritten")
	two := &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2}}}}
	if err := r.Load("m", two); err == nil {
		t.Fatal("Load with version 1 broken: nil error")
	}
	if v, err := r.Acquire("m", 3); err == nil {
		v.Release()
	} else {
		t.Fatalf("specific policy: the load failed (its override was not kept) but version 3 was retired: Acquire(m, 3): %v\nindex:\n%s", err, indexString(t, r))
	}
}

// A Hurry that lands while a load round is under way (a poll during
// --shutdown-delay) reaches the versions that round loaded before it too:
// here version 2's load calls Hurry, and version 1 of the same round must
// not wait out its 10 s queue delay.
func TestHurryDuringLoadRound(t *testing.T) {
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	var r *Repository
	load := func(data []byte, cfg ModelConfig) (Backend, error) {
		if string(data) == "m2" {
			r.Hurry() // the shutdown begins, concurrently with the poll
		}
		return l.load(data, cfg)
	}
	defaults := ModelConfig{MaxBatchSize: 16, DynamicBatching: &DynamicBatching{MaxQueueDelayUS: new(int64(10_000_000))}}
	var err error
	r, err = New(Config{Dir: dir, Load: load, Logf: t.Logf, Defaults: defaults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	two := &ModelConfig{VersionPolicy: VersionPolicy{Latest: &LatestPolicy{NumVersions: 2}}}
	if err := r.Load("m", two); err != nil {
		t.Fatal(err)
	}
	do := func(n int64) time.Duration { return runOne(t, r, n) }
	if d := do(2); d < 0 {
		t.Fatal("version 2 not hurried either")
	}
	if d := do(1); d < 0 {
		t.Fatal("Hurry was called while the load round ran and version 1 of that round serves after it, yet it waits out the 10s max_queue_delay: no answer within 2s")
	}
}
