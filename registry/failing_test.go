package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailing lists the models that serve nothing because their load
// failed (strict readiness reads it): not one that still serves an
// earlier version, nor one unloaded on purpose, even when a load asked
// for it again and failed (that load's caller got the error; polls leave
// the model unloaded), until a load of it succeeds.
func TestFailing(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "broken", 1, "fail1")
	writeModel(t, dir, "kept", 1, "k1")
	writeModel(t, dir, "ok", 1, "ok1")
	writeModel(t, dir, "badconfig", 1, "b1")
	if err := os.WriteFile(filepath.Join(dir, "badconfig", "config.json"), []byte(`{"instances": "four"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = r.Poll()
	writeModel(t, dir, "kept", 2, "fail2")
	_ = r.Poll()
	got := func() string {
		var s string
		for _, e := range r.Failing() {
			s += fmt.Sprintf("%s/%s ", e.Name, e.Version)
		}
		return s
	}
	if s := got(); s != "badconfig/ broken/1 " {
		t.Fatalf("failing: %q; want badconfig (its configuration) and broken version 1, not kept, which serves version 1\nindex:\n%s", s, indexString(t, r))
	}
	for _, e := range r.Failing() {
		if e.Reason == "" || e.State != StateUnavailable {
			t.Fatalf("%+v: want UNAVAILABLE with the reason", e)
		}
	}
	if err := r.Unload("broken"); err != nil {
		t.Fatal(err)
	}
	if s := got(); s != "badconfig/ " {
		t.Fatalf("after unloading broken on purpose: %q; want badconfig alone", s)
	}
	if err := r.Load("broken", nil); err == nil {
		t.Fatal("loading broken again: nil error")
	}
	if s := got(); s != "badconfig/ " {
		t.Fatalf("after a load asked for broken again and failed: %q; want badconfig alone (broken stays unloaded)", s)
	}
	writeModel(t, dir, "broken", 1, "fixed1")
	if err := r.Load("broken", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "broken", 2, "fail2")
	writeModel(t, dir, "broken", 1, "fail1-again")
	_ = r.Poll()
	if s := got(); s != "badconfig/ " {
		t.Fatalf("broken loaded again, its version 1 in memory: %q; want badconfig alone\nindex:\n%s", s, indexString(t, r))
	}
}

// TestEmptyModelDirectoryFails: a model directory that holds no version
// is the repository's model, failing (its index row UNAVAILABLE with the
// reason, counted by strict readiness), not an unknown name with an empty
// row (found by a README-walking helper); a name without a directory is
// still unknown.
func TestEmptyModelDirectoryFails(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "ok", 1, "ok1")
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = r.Poll()
	f := r.Failing()
	if len(f) != 1 || f[0].Name != "empty" || f[0].State != StateUnavailable || !strings.Contains(f[0].Reason, "no version directory under") {
		t.Fatalf("failing: %+v; want the empty model, UNAVAILABLE with the reason\nindex:\n%s", f, indexString(t, r))
	}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx {
		if e.Name == "empty" && (e.State != StateUnavailable || e.Reason == "") {
			t.Fatalf("index row %+v; want UNAVAILABLE with the reason", e)
		}
	}
	if err := r.Load("empty", nil); !errors.Is(err, ErrNoVersions) {
		t.Fatalf("Load(empty): %v; want ErrNoVersions", err)
	}
	if err := r.Load("nosuch", nil); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("Load(nosuch): %v; want ErrModelNotFound", err)
	}
}
