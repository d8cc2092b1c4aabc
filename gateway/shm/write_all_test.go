package shm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteAll writes all of its outputs or none: one that does not fit, or
// names a region not registered, leaves the others unwritten; a region
// unregistered between the checks and the writes is still written, so
// that the request does not fail after writing part of its outputs (as
// it could when each write looked its region up again); and a region
// unregistered during the call is unmapped when it ends.
func TestWriteAllOrNone(t *testing.T) {
	dir := t.TempDir()
	object(t, dir, "obj", 4096)
	tb := New(dir)
	defer tb.Close()
	for _, r := range []string{"a", "b"} {
		if err := tb.Register(r, "obj", map[string]int64{"a": 0, "b": 2048}[r], 2048); err != nil {
			t.Fatal(err)
		}
	}
	file := func() []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "obj"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	orig := file()

	f := func(outs []Out, wantIdx int, fragment string) {
		t.Helper()
		i, err := tb.WriteAll(outs)
		if err == nil || i != wantIdx || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("got %d, %v; want %d and an error containing %q", i, err, wantIdx, fragment)
		}
		if !bytes.Equal(file(), orig) {
			t.Fatal("a failed WriteAll wrote part of its outputs")
		}
	}
	f([]Out{{"a", 0, 4, []byte{9, 9, 9, 9}}, {"b", 0, 2, []byte{9, 9, 9}}}, 1, "the output has 3 bytes but shared_memory_byte_size gives it 2")
	f([]Out{{"a", 0, 4, []byte{9}}, {"gone", 0, 4, []byte{9}}}, 1, `"gone"; register it first`)
	f([]Out{{"a", 0, 4, []byte{9}}, {"b", 2047, 2, []byte{9}}}, 1, "reach past region")

	// Unregistered between the checks and the writes: written all the
	// same, and unmapped once the call lets go of it.
	var b *region
	testHookWrites = func() {
		b = tb.regions["b"]
		tb.Unregister("b")
	}
	defer func() { testHookWrites = nil }()
	if i, err := tb.WriteAll([]Out{{"a", 4, 2, []byte{7, 7}}, {"b", 8, 2, []byte{8, 8}}}); err != nil {
		t.Fatalf("WriteAll with a region unregistered midway: %d, %v; want both written", i, err)
	}
	got := file()
	if !bytes.Equal(got[4:6], []byte{7, 7}) || !bytes.Equal(got[2048+8:2048+10], []byte{8, 8}) {
		t.Fatalf("after WriteAll the object holds %v at 4 and %v at 2056", got[4:6], got[2056:2058])
	}
	if !b.gone || b.refs != 0 {
		t.Fatalf("region b after WriteAll: gone %v, refs %d; want gone with no use left (unmapped)", b.gone, b.refs)
	}
	if _, err := tb.WriteAll([]Out{{"b", 0, 1, []byte{1}}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("WriteAll to b after it was unregistered: %v; want ErrNotFound", err)
	}
}
