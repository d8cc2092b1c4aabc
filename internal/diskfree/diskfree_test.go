package diskfree

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var free atomic.Uint64
	g := newGuard("/data", 100, func(string) (uint64, error) { return free.Load(), nil })
	g.every, g.inline = 0, true // read at every call, at once
	f := func(have uint64, need int64, wantLow bool) {
		t.Helper()
		free.Store(have)
		err := g.Check(need)
		if (err != nil) != wantLow {
			t.Fatalf("free %d, need %d: %v; want low %v", have, need, err, wantLow)
		}
		if err != nil && !errors.Is(err, ErrLow) {
			t.Fatalf("%v does not match ErrLow", err)
		}
	}
	f(1000, 0, false)
	f(1000, 900, false) // leaves exactly the minimum
	f(1000, 901, true)
	f(100, 0, false)
	f(99, 0, true)
	f(0, 0, true)
	f(50, -5, true)

	var nilGuard *Guard
	if err := nilGuard.Check(1 << 40); err != nil {
		t.Fatalf("a nil Guard refused: %v", err)
	}
	off := newGuard("/data", 0, func(string) (uint64, error) { return 0, nil })
	if err := off.Check(1 << 40); err != nil {
		t.Fatalf("a Guard with no minimum refused: %v", err)
	}
	unreadable := newGuard("/gone", 100, func(string) (uint64, error) { return 0, os.ErrNotExist })
	if err := unreadable.Check(10); err != nil {
		t.Fatalf("a Guard that cannot read the free space refused: %v", err)
	}
}

func TestLowErrorSaysWhatToDo(t *testing.T) {
	g := newGuard("/var/lib/infergate", 64<<20, func(string) (uint64, error) { return 10 << 20, nil })
	err := g.Check(5 << 20)
	want := "the disk of /var/lib/infergate has 10 MiB free and this needs 5 MiB; the node keeps 64 MiB free (--min-free-disk): free space there, or lower --min-free-disk"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v; want %s", err, want)
	}
}

// Free reads the filesystem at most once per interval, however many ask.
func TestFreeIsCached(t *testing.T) {
	var reads atomic.Int64
	g := newGuard("/data", 1, func(string) (uint64, error) { reads.Add(1); return 10, nil })
	g.every, g.inline = time.Hour, true
	for range 1000 {
		g.Check(1)
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads; want 1 (at New)", n)
	}
	g.at.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	g.Check(1)
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads after the interval; want 2", n)
	}
}

func TestStatfsReadsRealDirectory(t *testing.T) {
	g := New(t.TempDir(), 1)
	free, err := g.Free()
	if err != nil || free == 0 {
		t.Fatalf("free %d, %v; want some space on the test's filesystem", free, err)
	}
	if err := New(t.TempDir(), free*4).Check(0); err == nil {
		t.Fatal("a minimum of four times the free space was not refused")
	}
}

func TestIsFull(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := IsFull(err); got != want {
			t.Fatalf("IsFull(%v) = %v; want %v", err, got, want)
		}
	}
	f(&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true)
	f(fmt.Errorf("cannot store: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}), true)
	f(os.ErrNotExist, false)
	f(nil, false)
}

func TestSize(t *testing.T) {
	f := func(n uint64, want string) {
		t.Helper()
		if got := Size(n); got != want {
			t.Fatalf("Size(%d) = %q; want %q", n, got, want)
		}
	}
	f(0, "0 B")
	f(1023, "1023 B")
	f(1024, "1 KiB")
	f(1536, "1.5 KiB")
	f(64<<20, "64 MiB")
	f(3<<30+(1<<29), "3.5 GiB")
	f(200<<30+(1<<29), "200 GiB")
	if s := Size(5 << 50); !strings.HasSuffix(s, "PiB") {
		t.Fatalf("Size(5 PiB) = %q", s)
	}
}

// Between two readings, what Check let through counts against the free
// space: a writer faster than the refresh stops at the minimum.
func TestCheckCountsWhatItLetThrough(t *testing.T) {
	g := newGuard("/data", 100, func(string) (uint64, error) { return 1000, nil })
	g.every, g.inline = time.Hour, true
	passed := 0
	for g.Check(10) == nil {
		passed++
		if passed > 1000 {
			t.Fatal("Check never refused")
		}
	}
	if passed != 90 {
		t.Fatalf("%d writes of 10 bytes passed; want 90 (1000 free, 100 kept)", passed)
	}
	g.at.Store(0) // the next reading sees the same 1000 free: the writes were deleted meanwhile
	if err := g.Check(10); err != nil {
		t.Fatalf("after a new reading: %v", err)
	}
}

// Check never waits for the filesystem: a statfs that stops answering (a
// network mount whose server went away) holds one goroutine of the
// guard's, not the request that found the reading due, and no other
// reading starts meanwhile.
func TestCheckDoesNotWaitForAHungStatfs(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	var calls atomic.Int32
	g := newGuard("/data", 1, func(string) (uint64, error) {
		if calls.Add(1) > 1 {
			<-hang
		}
		return 1 << 30, nil
	})
	g.every = time.Millisecond
	done := make(chan error, 1)
	go func() {
		for range 100 {
			time.Sleep(2 * time.Millisecond)
			if err := g.Check(100); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Check with the last reading 1 GiB free: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Check waited on a statfs that does not return")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d readings started; want 2 (New's, then one that hangs)", n)
	}
}

func TestSizesTellApart(t *testing.T) {
	f := func(a, b uint64, wantA, wantB string) {
		t.Helper()
		if ga, gb := Sizes(a, b); ga != wantA || gb != wantB {
			t.Fatalf("Sizes(%d, %d) = %q, %q; want %q, %q", a, b, ga, gb, wantA, wantB)
		}
	}
	f(2093056, 2097152, "2093056 bytes", "2097152 bytes")
	f(1<<20, 64<<20, "1 MiB", "64 MiB")
	f(2<<20, 2<<20, "2 MiB", "2 MiB")
}
