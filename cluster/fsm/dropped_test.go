package fsm

import (
	"bytes"
	"io"
	"testing"
)

// A recovery's drop removes the record and bars the id; a set_member
// (taken in again) lifts the bar; the bars survive a snapshot.
func TestDropMember(t *testing.T) {
	f := New()
	apply := func(c Command) {
		t.Helper()
		if res := f.ApplyCommand(c, 1); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	m := func(id string) *Member {
		return &Member{ID: id, RaftAddr: "127.0.0.1:1", HTTPAddr: "http://127.0.0.1:2"}
	}
	apply(Command{Op: OpSetMember, Member: m("a")})
	apply(Command{Op: OpSetMember, Member: m("b")})
	apply(Command{Op: OpDropMember, Member: &Member{ID: "a"}})
	apply(Command{Op: OpDropMember, Member: &Member{ID: "b"}})
	fresh := m("b")
	fresh.Fresh = true
	apply(Command{Op: OpSetMember, Member: fresh})
	st, _ := f.State()
	if st.Members["a"] != nil || !st.Dropped["a"] || st.Dropped["b"] || st.Members["b"] == nil || st.Members["b"].Fresh {
		t.Fatalf("members %v, dropped %v; want a dropped, b back without its fresh flag", st.Members, st.Dropped)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*snapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if st, _ := g.State(); !st.Dropped["a"] || len(st.Dropped) != 1 {
		t.Fatalf("restored dropped %v; want a", st.Dropped)
	}
	// A state without drops snapshots without the field: earlier releases
	// read it.
	h := New()
	hs, _ := h.Snapshot()
	buf.Reset()
	hs.(*snapshot).write(&buf)
	if bytes.Contains(buf.Bytes(), []byte("dropped")) {
		t.Fatalf("a snapshot without drops names them: %s", buf.Bytes())
	}
}
