package registry

import (
	"errors"
	"testing"
)

// An override that differs from the serving configuration only in its
// version policy, and with which no version loaded (it selects none that
// exists), is not kept: the version serving from the configuration before
// does not count as loaded with it, and polls go on following config.json.
func TestFailedPolicyOverrideNotKept(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{7}}}})
	if err == nil {
		t.Fatal("Load of an override that selects no existing version succeeded")
	}
	writeModel(t, dir, "m", 2, "m2")
	r.Poll()
	v, err := r.Acquire("m", 2)
	if err != nil {
		r.loadMu.Lock()
		o := r.overrides["m"]
		r.loadMu.Unlock()
		t.Fatalf("after a failed override (no version loaded with it), a poll does not load version 2 (config.json, latest 1): %v; override kept: %+v", err, o)
	}
	v.Release()
}

// The same with a version that exists but fails to load: the override's
// policy wanted only version 2 (broken); it is not kept, so replacing the
// broken file later does not apply the failed request behind the
// operator's back.
func TestFailedPolicyOverrideOnBrokenVersion(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1}}}})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "fail2")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{2}}}})
	if !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("got %v; want ErrLoadFailed", err)
	}
	r.loadMu.Lock()
	_, kept := r.overrides["m"]
	r.loadMu.Unlock()
	if kept {
		t.Fatalf("the override with which no version loaded (version 2 failed; version 1 loaded with the defaults) is kept")
	}
}
