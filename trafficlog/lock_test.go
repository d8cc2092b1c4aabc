package trafficlog

import (
	"errors"
	"strings"
	"testing"
)

// TestDirectoryIsLocked: a second log opened on the directory of one
// that is open (two servers given one --traffic-dir) is refused, saying
// why; each wrote at its own idea of the end of the same segment file,
// so one node's fsynced feedback was overwritten by the other's. Closing
// the first frees the directory.
func TestDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	a := open(t, testConfig(t, dir))
	if err := a.AppendSync(feedback(1)); err != nil {
		t.Fatal(err)
	}
	b, err := Open(testConfig(t, dir))
	if err == nil {
		b.AppendSync(feedback(2))
		b.Close()
		got, _, _ := readAll(t, a, 0)
		t.Fatalf("a second log opened on the directory of an open one (it holds %d events now); want it refused", len(got))
	}
	if !strings.Contains(err.Error(), "in use by another") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v; want an error saying the directory %s is in use", err, dir)
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v; want it to wrap ErrLocked", err)
	}
	a.Close()
	c := open(t, testConfig(t, dir))
	if got, _, _ := readAll(t, c, 0); len(got) != 1 || got[0].ID != "req-1" {
		t.Fatalf("after the first closed: %d events; want its feedback", len(got))
	}
}
