package trafficlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/internal/diskfree"
)

// TestLowerBudgetAppliesAtOpen: a log reopened with a smaller byte budget
// (what the disk-low log line tells an operator to do) is cut to it at
// once. Retention ran only when a segment filled, so a log that the low
// disk kept from writing never shrank: it held its old size for good,
// dropping every event.
func TestLowerBudgetAppliesAtOpen(t *testing.T) {
	dir, cfg, l := segmentedLog(t, 60)
	before := l.Stats()
	l.Close()
	cfg.MaxBytes = 2 * cfg.SegmentBytes
	// The disk is short of room: nothing can be written to start a
	// segment, and retention must not wait for one.
	cfg.Disk = diskfree.New(dir, 1<<62)
	l = open(t, cfg)
	st := l.Stats()
	if sealed := st.Bytes - sizeOfLast(t, dir); sealed+cfg.SegmentBytes > cfg.MaxBytes || st.Next != before.Next {
		t.Fatalf("reopened with a budget of %d bytes: %+v (before %+v); want at most the budget, a full active segment counted, and the same end", cfg.MaxBytes, st, before)
	}
	var onDisk int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += info.Size()
	}
	if onDisk != st.Bytes || len(files) != st.Segments {
		t.Fatalf("%d bytes in %d files on disk; want the %d bytes in %d segments the log lists", onDisk, len(files), st.Bytes, st.Segments)
	}
	if got, _, next := readAll(t, l, st.First); len(got) == 0 || next != before.Next {
		t.Fatalf("read %d events up to %d; want the newest, up to %d", len(got), next, before.Next)
	}
}

// sizeOfLast is the size of the newest segment file in dir.
func sizeOfLast(t *testing.T, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	info, err := os.Stat(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
