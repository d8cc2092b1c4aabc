package fsm

import "testing"

// TestStage: a named version's stage, and for 0 production's, which
// unversioned requests get.
func TestStage(t *testing.T) {
	f := New()
	apply := applier(t, f)
	apply(registerCmd("m", 1), nil, "")
	apply(registerCmd("m", 2), nil, "")
	apply(registerCmd("m", 3), nil, "")
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, nil, "")
	check := func(name string, v, wantNum int64, wantStage string, wantOK bool) {
		t.Helper()
		num, stage, ok := f.Stage(name, v)
		if num != wantNum || stage != wantStage || ok != wantOK {
			t.Fatalf("Stage(%q, %d): got %d, %q, %v; want %d, %q, %v", name, v, num, stage, ok, wantNum, wantStage, wantOK)
		}
	}
	check("m", 0, 1, StageProduction, true) // the first version
	check("m", 3, 3, StageRetired, true)
	check("m", 4, 0, "", false)
	check("x", 0, 0, "", false)
	apply(Command{Op: OpSetAlias, Model: "m", Alias: AliasProduction, Version: 2}, nil, "")
	check("m", 0, 2, StageProduction, true)
	check("m", 1, 1, StageStaged, true)
}
