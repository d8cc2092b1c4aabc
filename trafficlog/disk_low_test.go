package trafficlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/diskfree"
)

// With less free disk than its guard keeps, the log drops what Append
// hands it and refuses AppendSync, counting both and saying why, instead
// of writing until the disk is full; with room, it writes.
func TestDiskLowDropsAndCounts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	var lines []string
	cfg.Logf = func(format string, args ...any) { lines = append(lines, format) }
	cfg.Disk = diskfree.New(dir, 1<<62) // more than any test machine has free
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(prediction(0)); !errors.Is(err, diskfree.ErrLow) {
		t.Fatalf("Append: %v; want diskfree.ErrLow", err)
	}
	err = l.AppendSync(prediction(1), prediction(2))
	var low *diskfree.LowError
	if !errors.As(err, &low) || !strings.Contains(err.Error(), "--min-free-disk") {
		t.Fatalf("AppendSync: %v; want a *diskfree.LowError naming the flag", err)
	}
	if got := l.c.DropDiskLow.Get(); got != 3 {
		t.Fatalf("dropped for disk space: %d; want 3", got)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "dropping events until there is room") {
		t.Fatalf("logged %q; want one line", lines)
	}
	if st := l.Stats(); st.Next != st.First {
		t.Fatalf("the log holds %d bytes; want none", st.Next-st.First)
	}

	cfg2 := testConfig(t, t.TempDir())
	cfg2.Disk = diskfree.New(cfg2.Dir, 1)
	l2, err := Open(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.AppendSync(prediction(0)); err != nil {
		t.Fatalf("with room: %v", err)
	}
}
