package registry

import "testing"

// TestHandOver: after HandOver(m, 1, 2) unversioned requests get version
// 1 while 2 is not ready, and 2 from the load that swaps it in, one that
// unloads 1 too; a version 2 that fails to load leaves them on 1.
func TestHandOver(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "fail m2")
	only := func(vs ...int64) *ModelConfig {
		return &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: vs}}}
	}
	check := func(want int64) {
		t.Helper()
		if want == 0 {
			if v, err := r.Acquire("m", 0); err == nil {
				v.Release()
				t.Fatalf("unversioned requests get version %d; want not ready", v.Number)
			}
		} else {
			v, err := r.Acquire("m", 0)
			if err != nil {
				t.Fatalf("unversioned request: %v; want version %d", err, want)
			}
			v.Release()
			if v.Number != want {
				t.Fatalf("unversioned requests get version %d; want %d", v.Number, want)
			}
		}
		if got := r.DefaultVersion("m"); got != want && want != 0 {
			t.Fatalf("DefaultVersion %d; want %d", got, want)
		}
	}

	if err := r.Load("m", only(1)); err != nil {
		t.Fatal(err)
	}
	r.SetDefault("m", 1)
	r.HandOver("m", 1, 2, false)
	check(1)
	if err := r.Load("m", only(2)); err == nil {
		t.Fatal("version 2 loaded; want its failure")
	}
	check(1) // a failed load retires nothing that serves

	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", only(2)); err != nil {
		t.Fatal(err)
	}
	if r.Model("m").Version(1) != nil {
		t.Fatal("version 1 still loaded")
	}
	check(2)

	// SetDefault ends a hand-over: a version not ready gets nothing.
	r.SetDefault("m", 3)
	check(0)
	r.HandOver("m", 2, 3, false)
	check(2)
}
