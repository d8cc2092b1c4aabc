package shm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// object makes a shared memory object of size bytes in dir.
func object(t *testing.T, dir, name string, size int) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterReadWrite(t *testing.T) {
	dir := t.TempDir()
	object(t, dir, "obj", 10000)
	tb := New(dir)
	defer tb.Close()
	if err := tb.Register("in", "/obj", 5000, 100); err != nil {
		t.Fatal(err)
	}
	got, err := tb.Read([]byte("x"), "in", 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{'x', byte(5010 % 256), byte(5011 % 256), byte(5012 % 256), byte(5013 % 256)}
	if !bytes.Equal(got, want) {
		t.Fatalf("Read: got %v; want %v", got, want)
	}
	if err := tb.Write("in", 96, 4, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(filepath.Join(dir, "obj"))
	if !bytes.Equal(file[5096:5100], []byte{1, 2, 3, byte(5099 % 256)}) {
		t.Fatalf("after Write the object holds %v at 5096", file[5096:5100])
	}
	st, err := tb.Status("")
	if err != nil || len(st) != 1 || st[0] != (Status{Name: "in", Key: "/obj", Offset: 5000, ByteSize: 100}) {
		t.Fatalf("Status: %v, %v", st, err)
	}

	f := func(err error, target error, fragment string) {
		t.Helper()
		if !errors.Is(err, target) || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("got %v; want %v containing %q", err, target, fragment)
		}
	}
	f(tb.Register("in", "obj", 0, 1), ErrExists, `"in"; unregister it first`)
	f(tb.Register("b", "nope", 0, 1), ErrInvalid, `no shared memory object "nope" on this host`)
	f(tb.Register("b", "obj", 9990, 11), ErrInvalid, `has 10000 bytes; offset 9990 plus byte_size 11 needs 10001`)
	f(tb.Register("b", "../etc/passwd", 0, 1), ErrInvalid, `key "../etc/passwd"`)
	f(tb.Register("b", "/a/b", 0, 1), ErrInvalid, `key "/a/b"`)
	f(tb.Register("b", "/", 0, 1), ErrInvalid, `key "/"`)
	f(tb.Register("b", "obj", 0, 0), ErrInvalid, "byte_size must be at least 1")
	f(tb.Register("b", "obj", -1, 1), ErrInvalid, "offset -1")
	f(tb.Register("", "obj", 0, 1), ErrInvalid, "region name")
	_, err = tb.Read(nil, "in", 97, 4)
	f(err, ErrInvalid, "shared_memory_offset 97 and shared_memory_byte_size 4 reach past region \"in\", of 100 bytes")
	f(tb.Write("in", 0, 2, []byte{1, 2, 3}), ErrInvalid, "the output has 3 bytes but shared_memory_byte_size gives it 2")
	_, err = tb.Read(nil, "other", 0, 1)
	f(err, ErrNotFound, `"other"; register it first`)
	_, err = tb.Status("other")
	f(err, ErrNotFound, `"other"`)

	tb.Unregister("other") // not registered: no error, nothing changes
	tb.Unregister("in")
	_, err = tb.Read(nil, "in", 0, 1)
	f(err, ErrNotFound, `"in"`)
	if st, _ := tb.Status(""); len(st) != 0 {
		t.Fatalf("Status after Unregister: %v", st)
	}
}

// A region stays mapped while a use holds it, and is unmapped by the last.
func TestUnregisterInUse(t *testing.T) {
	dir := t.TempDir()
	object(t, dir, "obj", 4096)
	tb := New(dir)
	if err := tb.Register("r", "obj", 0, 4096); err != nil {
		t.Fatal(err)
	}
	r, err := tb.acquire("r")
	if err != nil {
		t.Fatal(err)
	}
	tb.Unregister("")
	if r.mapping[4095] != byte(4095%256) { // would fault if unmapped
		t.Fatal("wrong byte")
	}
	tb.release(r)
	if !r.gone || r.refs != 0 {
		t.Fatalf("gone %v refs %d", r.gone, r.refs)
	}
}

// An object truncated under its mapping makes the access fail, not the
// process.
func TestTruncatedObjectFaults(t *testing.T) {
	dir := t.TempDir()
	object(t, dir, "obj", 8192)
	tb := New(dir)
	defer tb.Close()
	if err := tb.Register("r", "obj", 0, 8192); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "obj"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := tb.Read(nil, "r", 4096, 16)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "faulted: was the object truncated?") {
		t.Fatalf("Read of a truncated object: %v; want the fault as an error", err)
	}
	if err := tb.Write("r", 0, 16, []byte{1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Write to a truncated object: %v; want the fault as an error", err)
	}
}
