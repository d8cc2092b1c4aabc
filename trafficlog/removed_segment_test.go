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
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 1 << 20
	cfg.MaxRecordBytes = 16 << 10
	l := open(t, cfg)
	for i := range 30 {
		e := prediction(i)
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, 2000}, make([]float32, 2000)...)}
		if err := l.AppendSync(e); err != nil {
			t.Fatal(err)
		}
	}
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
