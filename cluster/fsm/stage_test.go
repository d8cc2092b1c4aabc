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

// TestRollbackTarget: the version a rollback would make production, as
// GET /v1/models gives it (rollback_to), is the one OpRollback then
// makes production, skipping retired versions.
func TestRollbackTarget(t *testing.T) {
	f := seeded(t) // 1 staged, 2 production, 3 canary
	apply := applier(t, f)
	target := func() int64 {
		st, _ := f.State()
		return st.Models["m"].RollbackTarget()
	}
	apply(Command{Op: OpSetAlias, Model: "m", Alias: AliasProduction, Version: 3}, nil, "")
	if got := target(); got != 2 {
		t.Fatalf("after promoting 3 over 2: rollback target %d; want 2", got)
	}
	apply(Command{Op: OpSetAlias, Model: "m", Alias: AliasProduction, Version: 1}, nil, "")
	apply(Command{Op: OpSetAlias, Model: "m", Alias: "canary", Version: 2}, nil, "")
	apply(Command{Op: OpRetireVersion, Model: "m", Version: 3}, nil, "")
	if got := target(); got != 2 {
		t.Fatalf("with 3 retired: rollback target %d; want 2, skipping it", got)
	}
	apply(Command{Op: OpRollback, Model: "m"}, nil, "")
	if st, _ := f.State(); st.Models["m"].Production() != 2 {
		t.Fatalf("the rollback made version %d production; want 2, the target it gave", st.Models["m"].Production())
	}
}
