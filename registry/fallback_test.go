package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Under the latest policy, a selected version that fails to load leaves
// its place to the next older one on disk, on a first load (a restart)
// as on a reload: a broken new version copied in leaves the one before
// it serving, and the index says so. Specific and all policies get no
// stand-in.
func TestFailedLatestFallsBackToOlder(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "m", 3, "fail3")
	err := r.Load("m", nil)
	if !errors.Is(err, ErrLoadFailed) || !strings.Contains(err.Error(), "fail3") {
		t.Fatalf("Load: got %v; want ErrLoadFailed naming version 3", err)
	}
	v := mustAcquire(t, r, "m", 0)
	v.Release()
	if v.Number != 2 || backendOf(v).tag != "m2" {
		t.Fatalf("unversioned: version %d (%s); want 2, standing in for 3", v.Number, backendOf(v).tag)
	}
	if _, err := r.Acquire("m", 1); err == nil {
		t.Fatal("version 1 serves too; want only the one stand-in the policy's count allows")
	}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(idx)
	for _, want := range []string{"{m 2 READY serving in place of version 3, which failed to load", "{m 3 UNAVAILABLE"} {
		if !strings.Contains(got, want) {
			t.Fatalf("index %s; want %q", got, want)
		}
	}

	// Two versions, the newer broken too: each falls back in turn.
	writeModel(t, dir, "n", 1, "n1")
	writeModel(t, dir, "n", 2, "fail2")
	writeModel(t, dir, "n", 3, "n3")
	if err := r.Load("n", &ModelConfig{VersionPolicy: VersionPolicy{Latest: &LatestPolicy{NumVersions: 2}}}); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load n: %v", err)
	}
	for _, want := range []int64{1, 3} {
		v := mustAcquire(t, r, "n", want)
		v.Release()
	}

	// A specific policy names its versions: no stand-in.
	if err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{3}}}}); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load m specific [3]: %v", err)
	}
}
