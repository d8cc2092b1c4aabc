package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/gateway/route"
)

// summary renders what the ops change in s, in a stable order.
func summary(s *State) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.Models)) {
		m := s.Models[name]
		fmt.Fprintf(&b, "%s next=%d", name, m.NextVersion)
		for _, v := range m.Versions {
			fmt.Fprintf(&b, " %d:%s", v.Number, v.Stage)
		}
		b.WriteString(" aliases=")
		for i, a := range slices.Sorted(maps.Keys(m.Aliases)) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%d", a, m.Aliases[a])
		}
		fmt.Fprintf(&b, " history=%v; ", m.History)
	}
	b.WriteString("members=")
	for _, id := range slices.Sorted(maps.Keys(s.Members)) {
		mb := s.Members[id]
		fmt.Fprintf(&b, "[%s %s %s %t]", mb.ID, mb.RaftAddr, mb.HTTPAddr, mb.Voter)
	}
	return b.String()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// stateBytes returns the state and the index of its last change, encoded:
// what a refused command must leave alone (it does move Applied).
func stateBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	st, index := f.State()
	b, err := json.Marshal(struct {
		Index uint64
		State *State
	}{index, st})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshotBytes returns what Persist writes for f now.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed || sink.cancelled {
		t.Fatalf("Persist: got %v, closed %t, cancelled %t; want nil, true, false", err, sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func restore(t testing.TB, b []byte) *FSM {
	t.Helper()
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("Restore(%s): %v", b, err)
	}
	return f
}

func checkState(t testing.TB, f *FSM) {
	t.Helper()
	st, _ := f.State()
	if err := st.check(); err != nil {
		t.Fatalf("broken invariant: %v\nstate: %s", err, summary(st))
	}
}

func TestApply(t *testing.T) {
	type step struct {
		c           Command
		wantVersion int64
		wantErr     error  // nil, ErrNotFound or ErrConflict
		wantMsg     string // part of the error message
		want        string // summary after the step, if it succeeds
	}
	promote := registerCmd("m", 0)
	promote.Promote = true
	alias := func(a string, n int64) Command {
		return Command{Op: OpSetAlias, Model: "m", Version: n, Alias: a}
	}
	retire := func(n int64) Command { return Command{Op: OpRetireVersion, Model: "m", Version: n} }
	rollback := Command{Op: OpRollback, Model: "m"}
	n1 := &Member{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://a:2", Voter: true}
	n2 := &Member{ID: "n2", RaftAddr: "b:1", HTTPAddr: "http://b:2"}
	n1b := &Member{ID: "n1", RaftAddr: "c:1", HTTPAddr: "https://c", Voter: false}

	steps := []step{
		{c: registerCmd("m", 0), wantVersion: 1,
			want: "m next=2 1:production aliases=production:1 history=[]; members="},
		{c: registerCmd("m", 0), wantVersion: 2,
			want: "m next=3 1:production 2:staged aliases=production:1 history=[]; members="},
		{c: promote, wantVersion: 3,
			want: "m next=4 1:staged 2:staged 3:production aliases=production:3 history=[1]; members="},
		{c: alias("canary", 2), wantVersion: 2,
			want: "m next=4 1:staged 2:staged 3:production aliases=canary:2,production:3 history=[1]; members="},
		{c: alias("production", 2), wantVersion: 2,
			want: "m next=4 1:staged 2:production 3:staged aliases=canary:2,production:2 history=[1 3]; members="},
		{c: alias("production", 2), wantVersion: 2, // already production: no history entry
			want: "m next=4 1:staged 2:production 3:staged aliases=canary:2,production:2 history=[1 3]; members="},
		{c: retire(3), wantVersion: 3,
			want: "m next=4 1:staged 2:production 3:retired aliases=canary:2,production:2 history=[1 3]; members="},
		{c: retire(3), wantVersion: 3, // already retired: no-op
			want: "m next=4 1:staged 2:production 3:retired aliases=canary:2,production:2 history=[1 3]; members="},
		{c: alias("canary", 3), wantErr: ErrConflict,
			wantMsg: `conflict: cannot point alias "canary" at version 3 of model "m": the version is retired`},
		{c: retire(2), wantErr: ErrConflict,
			wantMsg: `conflict: cannot retire version 2 of model "m": aliases ["canary" "production"] point to it; point them at another version first (infergate models alias, or PUT /v1/models/m/aliases/{alias})`},
		// 3 is retired, so rollback skips it and goes back to 1.
		{c: rollback, wantVersion: 1,
			want: "m next=4 1:production 2:staged 3:retired aliases=canary:2,production:1 history=[]; members="},
		{c: rollback, wantErr: ErrConflict,
			wantMsg: `conflict: model "m" has no earlier production version to roll back to`},
		{c: registerCmd("m", 10), wantVersion: 10,
			want: "m next=11 1:production 2:staged 3:retired 10:staged aliases=canary:2,production:1 history=[]; members="},
		{c: registerCmd("m", 10), wantErr: ErrConflict, wantMsg: `conflict: model "m" already has version 10`},
		{c: registerCmd("m", 5), wantErr: ErrConflict,
			wantMsg: `conflict: model "m" cannot get version 5: numbers below 11 were used or skipped and are never reused; ask for version 0 to get 11`},
		{c: registerCmd("m", 0), wantVersion: 11,
			want: "m next=12 1:production 2:staged 3:retired 10:staged 11:staged aliases=canary:2,production:1 history=[]; members="},
		{c: alias("canary", 11), wantVersion: 11,
			want: "m next=12 1:production 2:staged 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; members="},
		{c: retire(2), wantVersion: 2,
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; members="},
		{c: retire(1), wantErr: ErrConflict, wantMsg: `aliases ["production"] point to it`},
		{c: alias("production", 2), wantErr: ErrConflict, wantMsg: "the version is retired"},
		// A model's first version is production even when registered with a number.
		{c: registerCmd("x", 7), wantVersion: 7,
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members="},

		// Unknown models and versions.
		{c: Command{Op: OpRollback, Model: "nope"}, wantErr: ErrNotFound, wantMsg: `not found: model "nope"`},
		{c: Command{Op: OpSetAlias, Model: "nope", Version: 1, Alias: "a"}, wantErr: ErrNotFound, wantMsg: `not found: model "nope"`},
		{c: alias("canary", 99), wantErr: ErrNotFound, wantMsg: `not found: model "m" has no version 99`},
		{c: retire(4), wantErr: ErrNotFound, wantMsg: `not found: model "m" has no version 4`},
		{c: Command{Op: OpRetireVersion, Model: "nope", Version: 1}, wantErr: ErrNotFound, wantMsg: `not found: model "nope"`},

		// Members.
		{c: Command{Op: OpSetMember, Member: n1},
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members=[n1 a:1 http://a:2 true]"},
		{c: Command{Op: OpSetMember, Member: n2},
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members=[n1 a:1 http://a:2 true][n2 b:1 http://b:2 false]"},
		{c: Command{Op: OpSetMember, Member: n1b},
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members=[n1 c:1 https://c false][n2 b:1 http://b:2 false]"},
		{c: Command{Op: OpRemoveMember, Member: &Member{ID: "n2"}},
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members=[n1 c:1 https://c false]"},
		{c: Command{Op: OpRemoveMember, Member: &Member{ID: "n2"}}, // absent: no-op
			want: "m next=12 1:production 2:retired 3:retired 10:staged 11:staged aliases=canary:11,production:1 history=[]; " +
				"x next=8 7:production aliases=production:7 history=[]; members=[n1 c:1 https://c false]"},
	}

	f := New()
	for i, s := range steps {
		index := uint64(i + 1)
		before := stateBytes(t, f)
		data, err := s.c.Encode()
		if err != nil {
			t.Fatalf("step %d: Encode(%+v): %v", i, s.c, err)
		}
		res := f.Apply(&raft.Log{Index: index, Data: data}).(*Result)
		if s.wantErr != nil {
			if !errors.Is(res.Err, s.wantErr) || !strings.Contains(res.Err.Error(), s.wantMsg) {
				t.Fatalf("step %d %s: got error %v; want %v containing %q", i, data, res.Err, s.wantErr, s.wantMsg)
			}
			if after := stateBytes(t, f); !bytes.Equal(after, before) {
				t.Fatalf("step %d %s: the failing command changed the state\nbefore: %s\nafter:  %s", i, data, before, after)
			}
			continue
		}
		if res.Err != nil || res.Version != s.wantVersion {
			t.Fatalf("step %d %s: got version %d, error %v; want %d, nil", i, data, res.Version, res.Err, s.wantVersion)
		}
		st, gotIndex := f.State()
		if got := summary(st); got != s.want || gotIndex != index {
			t.Fatalf("step %d %s:\ngot  %s at %d\nwant %s at %d", i, data, got, gotIndex, s.want, index)
		}
		checkState(t, f)
	}
}

func TestApplyRegisterStoresFields(t *testing.T) {
	f := New()
	c := registerCmd("m", 0)
	c.Created = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	c.Origin = "n1"
	c.Config = json.RawMessage("{ \"instances\" : 2,\n \"device\": \"cpu\" }")
	if res := f.ApplyCommand(c, 1); res.Err != nil {
		t.Fatalf("ApplyCommand: %v", res.Err)
	}
	st, _ := f.State()
	want := &Model{
		Name: "m",
		Versions: []*Version{{
			Number: 1, SHA256: testSHA, Size: 100, Stage: StageProduction,
			Created: c.Created, Origin: "n1",
			Config: json.RawMessage(`{"instances":2,"device":"cpu"}`),
		}},
		Aliases:     map[string]int64{AliasProduction: 1},
		NextVersion: 2,
	}
	if got := st.Model("m"); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	if got := st.Model("m").Production(); got != 1 {
		t.Fatalf("Production(): got %d; want 1", got)
	}
	if got := st.Model("nope"); got != nil {
		t.Fatalf(`Model("nope"): got %+v; want nil`, got)
	}
}

func TestApplyHistory(t *testing.T) {
	f := New()
	for i := 1; i <= 40; i++ {
		c := registerCmd("m", 0)
		c.Promote = true
		if res := f.ApplyCommand(c, uint64(i)); res.Err != nil || res.Version != int64(i) {
			t.Fatalf("register %d: got %d, %v; want %d, nil", i, res.Version, res.Err, i)
		}
	}
	st, _ := f.State()
	var want []int64
	for n := int64(8); n <= 39; n++ {
		want = append(want, n)
	}
	if got := st.Model("m").History; !slices.Equal(got, want) {
		t.Fatalf("History: got %v; want %v", got, want)
	}

	// Rollback skips retired versions and the current production version,
	// which History may hold further down.
	f = New()
	for _, c := range []Command{
		registerCmd("m", 0),
		registerCmd("m", 0),
		{Op: OpSetAlias, Model: "m", Version: 2, Alias: AliasProduction}, // history [1]
		{Op: OpSetAlias, Model: "m", Version: 1, Alias: AliasProduction}, // history [1 2]
		registerCmd("m", 0),
		{Op: OpSetAlias, Model: "m", Version: 3, Alias: AliasProduction}, // history [1 2 1]
		{Op: OpSetAlias, Model: "m", Version: 1, Alias: AliasProduction}, // history [1 2 1 3]
		{Op: OpRetireVersion, Model: "m", Version: 3},
	} {
		if res := f.ApplyCommand(c, 1); res.Err != nil {
			t.Fatalf("%+v: %v", c, res.Err)
		}
	}
	res := f.ApplyCommand(Command{Op: OpRollback, Model: "m"}, 2)
	st, _ = f.State()
	want1 := "m next=4 1:staged 2:production 3:retired aliases=production:2 history=[1]; members="
	if got := summary(st); res.Err != nil || res.Version != 2 || got != want1 {
		t.Fatalf("rollback: got %d, %v, %s; want 2, nil, %s", res.Version, res.Err, got, want1)
	}
}

func TestApplyInvalid(t *testing.T) {
	f := New()
	f.ApplyCommand(registerCmd("m", 0), 1)
	<-f.Changed()
	before := stateBytes(t, f)
	for _, data := range []string{
		"", "garbage", "null", "[]", `{"op":"rollback"}`, `{"op":"nope","model":"m"}`,
		`{"op":"register_version","model":"m","sha256":"x","size":1}`,
		`{"op":"rollback","model":"m"} {"op":"rollback","model":"m"}`,
		`{"op":"set_member","member":null}`,
	} {
		res, ok := f.Apply(&raft.Log{Index: 2, Data: []byte(data)}).(*Result)
		if !ok || !errors.Is(res.Err, ErrInvalid) {
			t.Fatalf("Apply(%q): got %+v; want a *Result with ErrInvalid", data, res)
		}
	}
	if after := stateBytes(t, f); !bytes.Equal(after, before) {
		t.Fatalf("invalid commands changed the state\nbefore: %s\nafter:  %s", before, after)
	}
	select {
	case <-f.Changed():
		t.Fatalf("Changed was signalled by failing commands")
	default:
	}
}

func TestApplyGarbage(t *testing.T) {
	f := seeded(t)
	valid := encodeAll(t, seedCommands())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(64))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
		} else { // a valid command with a few bytes changed
			b = slices.Clone(valid[rng.IntN(len(valid))])
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
		}
		res, ok := f.Apply(&raft.Log{Index: uint64(i), Data: b}).(*Result)
		if !ok || res == nil {
			t.Fatalf("Apply(%q): got %#v; want a *Result", b, res)
		}
		if res.Err != nil && !errors.Is(res.Err, ErrInvalid) && !errors.Is(res.Err, ErrNotFound) && !errors.Is(res.Err, ErrConflict) {
			t.Fatalf("Apply(%q): got error %v; want one wrapping a sentinel", b, res.Err)
		}
	}
	checkState(t, f)
}

func TestChanged(t *testing.T) {
	signalled := func(f *FSM) bool {
		select {
		case <-f.Changed():
			return true
		default:
			return false
		}
	}
	f := New()
	if signalled(f) {
		t.Fatalf("a new FSM signalled Changed")
	}
	f.ApplyCommand(registerCmd("m", 0), 1)
	f.ApplyCommand(registerCmd("m", 0), 2)
	if !signalled(f) {
		t.Fatalf("Changed was not signalled after two applies")
	}
	if signalled(f) {
		t.Fatalf("two applies signalled Changed twice; want them coalesced")
	}
	f.ApplyCommand(Command{Op: OpRollback, Model: "m"}, 3) // fails
	if signalled(f) {
		t.Fatalf("a failing command signalled Changed")
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, New())))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !signalled(f) {
		t.Fatalf("Changed was not signalled after Restore")
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := seeded(t)
	f.ApplyCommand(Command{Op: OpSetMember, Member: &Member{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://a:2", Voter: true}}, 20)
	c := registerCmd("with-config", 0)
	c.Config = json.RawMessage(`{"note": "<&>"}`)
	c.Created = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.ApplyCommand(c, 21)

	b := snapshotBytes(t, f)
	g := restore(t, b)
	want, wantIndex := f.State()
	got, gotIndex := g.State()
	if !reflect.DeepEqual(got, want) || gotIndex != wantIndex {
		t.Fatalf("restored state:\ngot  %s at %d\nwant %s at %d", summary(got), gotIndex, summary(want), wantIndex)
	}
	if b2 := snapshotBytes(t, g); !bytes.Equal(b2, b) {
		t.Fatalf("snapshot of the restored FSM:\ngot  %s\nwant %s", b2, b)
	}
	if !strings.HasPrefix(string(b), `{"index":21,"applied":21,"state":{"models":{`) {
		t.Fatalf("snapshot: got %s; want it to start with the index and the models", b)
	}

	// The snapshot is a copy: applying after taking it does not change it.
	snap, _ := f.Snapshot()
	f.ApplyCommand(Command{Op: OpRetireVersion, Model: "m", Version: 1}, 22)
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !bytes.Equal(sink.Bytes(), b) {
		t.Fatalf("Persist after Apply: got %s, %v; want %s", sink.Bytes(), err, b)
	}
}

// closer records whether Close was called.
type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestRestoreRejects(t *testing.T) {
	valid := func(edit func(m map[string]any)) string {
		st := map[string]any{
			"name":               "m",
			"versions":           []any{map[string]any{"version": 1, "sha256": testSHA, "size": 1, "stage": "production", "created": "2025-01-01T00:00:00Z", "origin": ""}},
			"aliases":            map[string]any{"production": 1},
			"production_history": []any{},
			"next_version":       2,
		}
		edit(st)
		b, err := json.Marshal(map[string]any{"index": 5, "state": map[string]any{"models": map[string]any{"m": st}, "members": map[string]any{}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	version := func(m map[string]any) map[string]any { return m["versions"].([]any)[0].(map[string]any) }

	f := func(in, want string) {
		t.Helper()
		fsm := seeded(t)
		before := snapshotBytes(t, fsm)
		rc := &closer{Reader: strings.NewReader(in)}
		err := fsm.Restore(rc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Restore(%s): got %v; want an error containing %q", in, err, want)
		}
		if !rc.closed {
			t.Fatalf("Restore(%s) did not close the reader", in)
		}
		if after := snapshotBytes(t, fsm); !bytes.Equal(after, before) {
			t.Fatalf("Restore(%s) failed but changed the state", in)
		}
	}
	if err := New().Restore(io.NopCloser(strings.NewReader(valid(func(map[string]any) {})))); err != nil {
		t.Fatalf("Restore(valid): %v", err)
	}
	f("", "cannot restore snapshot: EOF")
	f("garbage", "invalid character")
	f(`{"index":1}`, "it has no state")
	f(`{"index":1,"state":null}`, "it has no state")
	f(`{"index":1,"state":{},"extra":1}`, `unknown field "extra"`)
	f(`{"index":1,"state":{}} {}`, "trailing data")
	f(valid(func(m map[string]any) { m["name"] = "other" }), `model "other" is stored under the name "m"`)
	f(valid(func(m map[string]any) { m["next_version"] = 1 }), "version 1 is not between the previous one (0) and next_version (1)")
	f(valid(func(m map[string]any) { version(m)["stage"] = "staged" }), "the production alias points to version 1 in stage staged")
	f(valid(func(m map[string]any) { version(m)["stage"] = "retired" }), `alias "production" points to version 1, which does not exist or is retired`)
	f(valid(func(m map[string]any) { version(m)["stage"] = "live" }), `unknown stage "live"`)
	f(valid(func(m map[string]any) { version(m)["sha256"] = "x" }), `version 1: sha256 "x" is not 64 lowercase hex characters`)
	f(valid(func(m map[string]any) { m["aliases"] = map[string]any{} }), "version 1 is in stage production but the production alias points to 0")
	f(valid(func(m map[string]any) { m["aliases"] = map[string]any{"production": 1, "canary": 2} }), `alias "canary" points to version 2`)
	f(valid(func(m map[string]any) { m["production_history"] = []any{4} }), "production_history holds version 4")
	f(valid(func(m map[string]any) {
		m["versions"] = append(m["versions"].([]any), m["versions"].([]any)[0])
	}), "version 1 is not between the previous one (1)")
}

// seedCommands builds model "m" with versions 1-3: 2 is production, 3 is
// the canary, 1 is in History.
func seedCommands() []Command {
	return []Command{
		registerCmd("m", 0),
		registerCmd("m", 0),
		registerCmd("m", 0),
		{Op: OpSetAlias, Model: "m", Version: 2, Alias: AliasProduction},
		{Op: OpSetAlias, Model: "m", Version: 3, Alias: "canary"},
		{Op: OpSetMember, Member: &Member{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://a:2", Voter: true}},
	}
}

func seeded(t testing.TB) *FSM {
	t.Helper()
	f := New()
	for i, c := range seedCommands() {
		if res := f.ApplyCommand(c, uint64(i+1)); res.Err != nil {
			t.Fatalf("seed %+v: %v", c, res.Err)
		}
	}
	return f
}

func encodeAll(t testing.TB, cs []Command) [][]byte {
	t.Helper()
	var out [][]byte
	for _, c := range cs {
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c, err)
		}
		out = append(out, b)
	}
	return out
}

// randomCommands returns n well-formed commands over a few models, versions
// and aliases, so that many of them succeed and many conflict.
func randomCommands(rng *rand.Rand, n int) []Command {
	models := []string{"a", "b", "c"}
	aliases := []string{AliasProduction, AliasProduction, "canary", "shadow"}
	var cs []Command
	for range n {
		model := models[rng.IntN(len(models))]
		version := 1 + rng.Int64N(8)
		var c Command
		switch rng.IntN(11) {
		case 0, 1:
			c = registerCmd(model, 0)
			if rng.IntN(4) == 0 {
				c.Version = version + 4
			}
			c.Promote = rng.IntN(3) == 0
			c.Created = time.Unix(rng.Int64N(1<<31), 0).UTC()
			c.Origin = fmt.Sprintf("n%d", rng.IntN(3))
			c.Config = json.RawMessage(fmt.Sprintf(`{"instances": %d}`, rng.IntN(4)))
		case 2:
			c = Command{Op: OpSetAlias, Model: model, Version: version, Alias: aliases[rng.IntN(len(aliases))]}
		case 3:
			c = Command{Op: OpRollback, Model: model}
		case 4:
			c = Command{Op: OpRetireVersion, Model: model, Version: version}
		case 5:
			id := fmt.Sprintf("n%d", rng.IntN(4))
			c = Command{Op: OpSetMember, Member: &Member{ID: id, RaftAddr: id + ":7000", HTTPAddr: "http://" + id, Voter: rng.IntN(2) == 0}}
		case 6:
			c = Command{Op: OpRemoveMember, Member: &Member{ID: fmt.Sprintf("n%d", rng.IntN(4))}}
		case 7:
			c = Command{Op: OpSetExperiment, Model: model, Experiment: &route.Experiment{Name: "e", Arms: []route.Arm{
				{Name: "control", Version: version, Weight: rng.IntN(10)},
				{Name: "treatment", Version: 1 + rng.Int64N(8), Weight: 1 + rng.IntN(10)},
			}}}
		case 8:
			c = Command{Op: OpEndExperiment, Model: model}
		case 9:
			c = Command{Op: OpSetShadow, Model: model, Shadow: &route.Shadow{Version: version, Percent: float64(1 + rng.IntN(100))}}
		case 10:
			c = Command{Op: OpEndShadow, Model: model}
		}
		cs = append(cs, c)
	}
	return cs
}

func TestDeterminism(t *testing.T) {
	cs := randomCommands(rand.New(rand.NewPCG(3, 4)), 2000)
	data := encodeAll(t, cs)
	a, b := New(), New()
	var ok int
	for i, c := range cs {
		index := uint64(i + 1)
		ra := a.Apply(&raft.Log{Index: index, Data: data[i]}).(*Result)
		rb := b.ApplyCommand(c, index)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("command %d %s: got results %v and %v; want them equal", i, data[i], ra, rb)
		}
		if ra.Err == nil {
			ok++
		}
	}
	if ok < len(cs)/4 || ok > len(cs)*3/4 {
		t.Fatalf("%d of %d commands succeeded; want a mix of successes and failures", ok, len(cs))
	}
	checkState(t, a)
	if sa, sb := snapshotBytes(t, a), snapshotBytes(t, b); !bytes.Equal(sa, sb) {
		t.Fatalf("the same commands gave different snapshots:\n%s\n%s", sa, sb)
	}
}

// FuzzApply applies newline-separated commands to a seeded FSM: it must not
// panic, must keep the state's invariants and must snapshot and restore it
// exactly.
func FuzzApply(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("garbage\n{}"))
	for _, b := range encodeAll(f, seedCommands()) {
		f.Add(b)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		f.Add(bytes.Join(encodeAll(f, randomCommands(rng, 8)), []byte("\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := seeded(t)
		for i, line := range bytes.SplitN(data, []byte("\n"), 64) {
			res, ok := fsm.Apply(&raft.Log{Index: uint64(100 + i), Data: line}).(*Result)
			if !ok || res == nil {
				t.Fatalf("Apply(%q): got %#v; want a *Result", line, res)
			}
			c, err := Decode(line)
			if err == nil {
				err = c.Validate()
			}
			if err != nil && !errors.Is(res.Err, ErrInvalid) {
				t.Fatalf("Apply(%q): got %v; want ErrInvalid, as Decode and Validate say %v", line, res.Err, err)
			}
		}
		checkState(t, fsm)
		b := snapshotBytes(t, fsm)
		if b2 := snapshotBytes(t, restore(t, b)); !bytes.Equal(b2, b) {
			t.Fatalf("snapshot after restore:\ngot  %s\nwant %s", b2, b)
		}
	})
}

func TestAppliedCountsRefusedCommands(t *testing.T) {
	f := New()
	f.ApplyCommand(Command{Op: OpRollback, Model: "missing"}, 5) // refused: no such model
	if _, index := f.State(); index != 0 || f.Applied() != 5 {
		t.Fatalf("after a refused command at 5: state index %d, Applied %d; want 0, 5", index, f.Applied())
	}
	f.Apply(&raft.Log{Index: 6, Data: []byte("not json")})
	if f.Applied() != 6 {
		t.Fatalf("after garbage at 6: Applied %d; want 6", f.Applied())
	}
}
