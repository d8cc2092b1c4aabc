package fsm

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRestoreEarlierReleases restores snapshots that earlier releases'
// nodes wrote to their --data (testdata/snapshot-COMMIT.json, each a
// state.bin taken by raft from a node that had ctr v1-v3 with production
// 3, ranker v1-v2 with 50 more aliases, and from c0f4b0b on an experiment
// on ctr and a shadow on ranker). A release that restarts on such a data
// directory, or a node of it that installs one from a leader of the
// release before, must read them whole: Restore decodes strictly, so a
// field renamed or dropped from the State would refuse them.
func TestRestoreEarlierReleases(t *testing.T) {
	f := func(file string, index uint64, splits bool, edit func(m map[string]any)) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		g := New()
		if err := g.Restore(closerOf(b)); err != nil {
			t.Fatalf("%s: Restore: %v", file, err)
		}
		st, gotIndex := g.State()
		if gotIndex != index || g.Applied() != index {
			t.Fatalf("%s: index %d, applied %d; want %d", file, gotIndex, g.Applied(), index)
		}
		ctr, ranker := st.Model("ctr"), st.Model("ranker")
		if ctr == nil || ranker == nil {
			t.Fatalf("%s: models %v; want ctr and ranker", file, st.Models)
		}
		if ctr.Production() != 3 || len(ctr.Versions) != 3 || ranker.Production() != 1 || len(ranker.Versions) != 2 || len(ranker.Aliases) != 51 {
			t.Fatalf("%s: ctr production %d of %d versions, ranker production %d of %d versions with %d aliases; want 3 of 3, 1 of 2 with 51",
				file, ctr.Production(), len(ctr.Versions), ranker.Production(), len(ranker.Versions), len(ranker.Aliases))
		}
		if v := ranker.Version(2); v == nil || v.Size != 5255995 || v.Stage != StageStaged {
			t.Fatalf("%s: ranker version 2 %+v; want staged, 5255995 bytes", file, v)
		}
		if splits {
			if e := ctr.Experiment; e == nil || e.Name != "exp1" || len(e.Arms) != 2 || e.Arms[1].Version != 2 || e.Arms[1].Weight != 30 || e.Phase != 0 {
				t.Fatalf("%s: ctr experiment %+v; want exp1 with arm b on version 2 at weight 30, no phase", file, e)
			}
			if s := ranker.Shadow; s == nil || s.Version != 2 || s.Percent != 25 || s.Tolerance != 0.01 {
				t.Fatalf("%s: ranker shadow %+v; want version 2 at 25%% with tolerance 0.01", file, s)
			}
		} else if ctr.Experiment != nil || ranker.Shadow != nil {
			t.Fatalf("%s: experiment %+v, shadow %+v; want none", file, ctr.Experiment, ranker.Shadow)
		}
		if len(st.Members) != 1 {
			t.Fatalf("%s: members %v; want the one node", file, st.Members)
		}
		// What this release writes of it reads back the same.
		h := restore(t, snapshotBytes(t, g))
		if got, _ := h.State(); !reflect.DeepEqual(got, st) {
			t.Fatalf("%s: restored again:\ngot  %s\nwant %s", file, summary(got), summary(st))
		}
	}
	f("snapshot-c7add6a.json", 1111, false, nil)
	// 320b287, the first release, wrote no "applied".
	f("snapshot-c7add6a.json", 1111, false, func(m map[string]any) { delete(m, "applied") })
	f("snapshot-c0f4b0b.json", 1113, true, nil)
	f("snapshot-df0502c.json", 1113, true, nil)
}

func closerOf(b []byte) *closer { return &closer{Reader: bytes.NewReader(b)} }
