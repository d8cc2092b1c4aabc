package fsm

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway/route"
)

// TestRemoveModel removes a model with three versions, an alias besides
// production, an experiment and a shadow: every version is retired, the
// aliases, experiment and shadow are gone, the model stays for the record
// (Removed), a snapshot of it restores (it holds only fields earlier
// releases read), and a later upload of the name continues the numbering.
func TestRemoveModel(t *testing.T) {
	f := New()
	var index uint64
	apply := func(c Command) *Result {
		t.Helper()
		index++
		return f.ApplyCommand(c, index)
	}
	for range 3 {
		if res := apply(registerCmd("m", 0)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	apply(registerCmd("other", 0))
	for _, c := range []Command{
		{Op: OpSetAlias, Model: "m", Alias: "beta", Version: 2},
		{Op: OpSetExperiment, Model: "m", Experiment: &route.Experiment{Name: "e", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 50}, {Name: "b", Version: 2, Weight: 50}}}},
		{Op: OpSetShadow, Model: "m", Shadow: &route.Shadow{Version: 3, Percent: 10}},
	} {
		if res := apply(c); res.Err != nil {
			t.Fatalf("%s: %v", c.Op, res.Err)
		}
	}
	if f.Removed("m") {
		t.Fatal("Removed before the removal: got true; want false")
	}

	if res := apply(Command{Op: OpRemoveModel, Model: "m"}); res.Err != nil {
		t.Fatalf("remove: %v", res.Err)
	}
	st, got := f.State()
	if got != index {
		t.Fatalf("index %d; want %d", got, index)
	}
	m := st.Model("m")
	if m == nil {
		t.Fatal("model m is gone; want it kept with its versions retired")
	}
	for _, v := range m.Versions {
		if v.Stage != StageRetired {
			t.Fatalf("version %d in stage %s; want retired", v.Number, v.Stage)
		}
	}
	if len(m.Versions) != 3 || len(m.Aliases) != 0 || m.Experiment != nil || m.Shadow != nil || m.Production() != 0 {
		t.Fatalf("after removal: %d versions, aliases %v, experiment %v, shadow %v; want 3 versions, no aliases, experiment or shadow", len(m.Versions), m.Aliases, m.Experiment, m.Shadow)
	}
	if !f.Removed("m") || f.Removed("other") || f.Removed("none") {
		t.Fatalf("Removed m, other, none: got %t %t %t; want true false false", f.Removed("m"), f.Removed("other"), f.Removed("none"))
	}
	if o := st.Model("other"); o.Production() != 1 {
		t.Fatalf("model other: production %d; want 1 (untouched)", o.Production())
	}
	if _, _, ok := f.Stage("m", 0); ok {
		t.Fatal("Stage(m, 0): ok; want no version for unversioned requests")
	}
	checkState(t, f)
	g := restore(t, snapshotBytes(t, f))
	if gst, _ := g.State(); !reflect.DeepEqual(gst, st) || !g.Removed("m") {
		t.Fatalf("restored:\ngot  %s\nwant %s", summary(gst), summary(st))
	}

	// Again: not found, and the state stays as it was.
	before := stateBytes(t, f)
	res := apply(Command{Op: OpRemoveModel, Model: "m"})
	if !errors.Is(res.Err, ErrNotFound) || !strings.Contains(res.Err.Error(), "removed already") {
		t.Fatalf("second removal: got %v; want ErrNotFound saying it was removed already", res.Err)
	}
	if res := apply(Command{Op: OpRemoveModel, Model: "none"}); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("removing an unknown model: got %v; want ErrNotFound", res.Err)
	}
	if after := stateBytes(t, f); string(after) != string(before) {
		t.Fatalf("refused removals changed the state:\n%s\n%s", before, after)
	}
	// A retired version cannot be aliased back.
	if res := apply(Command{Op: OpSetAlias, Model: "m", Alias: AliasProduction, Version: 3}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("promoting a removed model's version: got %v; want ErrConflict", res.Err)
	}

	// A new upload continues at 4 and becomes production: numbers are
	// never reused with other bytes.
	res = apply(registerCmd("m", 0))
	if res.Err != nil || res.Version != 4 {
		t.Fatalf("upload after removal: got version %d, %v; want 4", res.Version, res.Err)
	}
	if n, stage, ok := f.Stage("m", 0); !ok || n != 4 || stage != StageProduction || f.Removed("m") {
		t.Fatalf("after the new upload: Stage(m, 0) = %d %s %t, Removed %t; want 4 production true, false", n, stage, ok, f.Removed("m"))
	}
	if res := apply(registerCmd("m", 2)); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("registering version 2 again: got %v; want ErrConflict", res.Err)
	}
	checkState(t, f)
}

func TestRemoveModelValidate(t *testing.T) {
	c := Command{Op: OpRemoveModel, Model: "Bad Name"}
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate(%+v): got %v; want ErrInvalid", c, err)
	}
	c.Model = "ok"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(%+v): got %v; want nil", c, err)
	}
}
