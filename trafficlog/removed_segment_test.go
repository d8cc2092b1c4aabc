package trafficlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
)

// TestOldestSegmentRemovedByHand: an operator frees disk by deleting the
// oldest segment file while the node runs. A read of it says where the
// log starts now, and reads go on from there (found by a reviewing
// helper: Stats kept naming the removed segment and the read said
// "beyond the log's end", so a reader could never get past it).
func TestOldestSegmentRemovedByHand(t *testing.T) {
	dir, _, l := segmentedLog(t, 30)
	st := l.Stats()
	if st.Segments < 3 {
		t.Fatalf("%d segments; the test needs 3", st.Segments)
	}
	if err := os.Remove(filepath.Join(dir, segName(st.First))); err != nil {
		t.Fatal(err)
	}
	// The first read finds the file gone and says where the log starts
	// now; a read from there goes on.
	_, err := l.Read(st.First, 1<<20, func(int64, []byte) bool { return true })
	var pe *PositionError
	if !errors.As(err, &pe) || pe.First <= st.First || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("Read from the removed segment %d: %v; want a PositionError naming a later first record", st.First, err)
	}
	if got := l.Stats(); got.First != pe.First || got.Segments != st.Segments-1 {
		t.Fatalf("stats after: %+v; want first %d, %d segments", got, pe.First, st.Segments-1)
	}
	n := 0
	if _, err := l.Read(pe.First, 1<<20, func(int64, []byte) bool { n++; return true }); err != nil || n == 0 {
		t.Fatalf("Read from the new first %d: %d records, %v", pe.First, n, err)
	}
}

// TestMiddleSegmentRemovedByHand: a segment file deleted by hand between
// others that are still there is a gap: a read over it, or from a
// position in it, goes on at the next segment. It answered a
// PositionError saying the position was "beyond the log's end" (it was
// not), losing the records the read had passed before the gap.
func TestMiddleSegmentRemovedByHand(t *testing.T) {
	dir, _, l := segmentedLog(t, 40)
	st := l.Stats()
	if st.Segments < 4 {
		t.Fatalf("%d segments; the test needs 4", st.Segments)
	}
	second, ok := l.SegmentAfter(st.First)
	if !ok {
		t.Fatal("no second segment")
	}
	third, _ := l.SegmentAfter(second)
	if err := os.Remove(filepath.Join(dir, segName(second))); err != nil {
		t.Fatal(err)
	}
	f := func(from, wantFirst int64) {
		t.Helper()
		var poss []int64
		next, err := l.Read(from, 1<<30, func(pos int64, _ []byte) bool { poss = append(poss, pos); return true })
		if err != nil || next != st.Next || len(poss) == 0 || poss[0] != wantFirst {
			t.Fatalf("Read from %d: records from %v, next %d, %v; want records from %d up to %d", from, poss[:min(len(poss), 1)], next, err, wantFirst, st.Next)
		}
		for _, p := range poss {
			if p >= second && p < third {
				t.Fatalf("Read from %d gave a record at %d, in the removed segment", from, p)
			}
		}
	}
	f(st.First, st.First)
	f(second, third)
	f(second+1, third)
}

// segmentedLog opens a log in a new directory, with 64 KiB segments in a
// budget of 1 MiB, and appends n predictions of about 8 KB each (eight to
// a segment); it returns the directory, the configuration and the log.
func segmentedLog(t *testing.T, n int) (string, Config, *Log) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 1 << 20
	cfg.MaxRecordBytes = 16 << 10
	l := open(t, cfg)
	for i := range n {
		e := prediction(i)
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, 2000}, make([]float32, 2000)...)}
		if err := l.AppendSync(e); err != nil {
			t.Fatal(err)
		}
	}
	return dir, cfg, l
}
