// Package diskfree keeps a node from filling its disk: a Guard tells
// whether the filesystem holding a directory would keep a minimum of free
// space after a write, so that work which grows the disk (a traffic log,
// a model upload, a blob pulled from a peer) is refused while there is
// still room for the writes that must not fail, raft's log first. It
// also tells whether an error is the disk being full.
package diskfree

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
)

// Guard checks the free space of one directory's filesystem against a
// minimum. The free space is read at most once per refresh interval (a
// second), on a goroutine of its own, so that Check, which only reads
// the last reading, is cheap enough for a request path and never waits
// on a filesystem that hangs (a network mount whose server went away:
// the reading then stays as it was). Its methods are safe for concurrent
// use. A nil *Guard allows everything.
type Guard struct {
	dir   string
	min   uint64
	every time.Duration
	// statfs reads the free bytes of dir; tests replace it, and set
	// inline to have Free read on the caller's goroutine.
	statfs func(dir string) (uint64, error)
	inline bool
	// at is when reading was last asked for (UnixNano); whoever moves it
	// on starts the next one, unless one is still running (reading1).
	at       atomic.Int64
	reading  atomic.Pointer[reading]
	reading1 atomic.Bool // a reading is running
	// spent counts the bytes Check let through since the last reading,
	// so that a fast writer cannot run past the minimum between two.
	spent atomic.Int64
}

type reading struct {
	free uint64
	err  error
}

// New returns a Guard that keeps min bytes free on the filesystem of dir
// (0: it only reports the free space).
func New(dir string, min uint64) *Guard {
	return newGuard(dir, min, statfs)
}

func newGuard(dir string, min uint64, read func(string) (uint64, error)) *Guard {
	g := &Guard{dir: dir, min: min, every: time.Second, statfs: read}
	g.at.Store(time.Now().UnixNano())
	g.refresh()
	return g
}

// refresh takes a reading; New calls it, then Free's goroutines, one at
// a time.
func (g *Guard) refresh() {
	free, err := g.statfs(g.dir)
	g.reading.Store(&reading{free: free, err: err})
	g.spent.Store(0)
}

// Dir is the directory the Guard watches.
func (g *Guard) Dir() string { return g.dir }

// Min is the free space the Guard keeps, in bytes.
func (g *Guard) Min() uint64 { return g.min }

// Free returns the free bytes of the filesystem for unprivileged users,
// as last read (within about a refresh interval, unless the filesystem
// hangs), and starts the next reading when one is due.
func (g *Guard) Free() (uint64, error) {
	now := time.Now().UnixNano()
	if last := g.at.Load(); now-last >= int64(g.every) && g.at.CompareAndSwap(last, now) {
		switch {
		case g.inline:
			g.refresh()
		case g.reading1.CompareAndSwap(false, true):
			// Not waited for by anyone: a statfs that hangs holds this
			// goroutine alone, and no other starts until it returns.
			go func() {
				defer g.reading1.Store(false)
				g.refresh()
			}()
		}
	}
	r := g.reading.Load()
	return r.free, r.err
}

// Check returns a *LowError when writing need more bytes would leave less
// than the minimum free; nil otherwise, and when the free space cannot be
// read (the write then fails, or not, on its own). What it lets through
// counts against the free space until the next reading, so the caller
// should go on to write it.
func (g *Guard) Check(need int64) error {
	if g == nil || g.min == 0 {
		return nil
	}
	free, err := g.Free()
	if err != nil {
		return nil
	}
	need = max(need, 0)
	if spent := uint64(max(g.spent.Load(), 0)); spent < free {
		free -= spent
	} else {
		free = 0
	}
	if free >= g.min && free-g.min >= uint64(need) {
		g.spent.Add(need)
		return nil
	}
	return &LowError{Dir: g.dir, Free: free, Need: uint64(need), Min: g.min}
}

// Low reports whether the free space is under the minimum now.
func (g *Guard) Low() bool { return g.Check(0) != nil }

// LowError says that a write was refused to keep the minimum free.
type LowError struct {
	Dir             string
	Free, Need, Min uint64
}

func (e *LowError) Error() string {
	need := ""
	if e.Need > 0 {
		need = " and this needs " + Size(e.Need)
	}
	free, min := Sizes(e.Free, e.Min)
	return fmt.Sprintf("the disk of %s has %s free%s; the node keeps %s free (--min-free-disk): free space there, or lower --min-free-disk", e.Dir, free, need, min)
}

// Is makes errors.Is(err, ErrLow) match a *LowError.
func (e *LowError) Is(target error) bool { return target == ErrLow }

// ErrLow matches every *LowError under errors.Is.
var ErrLow = errors.New("too little free disk space")

// IsFull reports whether err is a write that failed because the disk (or
// the user's quota on it) is full.
func IsFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Sizes formats a and b as Size does, or in bytes when Size would round
// them alike although they differ ("2.0 MiB free, under the 2 MiB kept"
// reads as no shortage).
func Sizes(a, b uint64) (string, string) {
	if a != b {
		div, _ := unit(max(a, b))
		if fmt.Sprintf("%.1f", float64(a)/float64(div)) == fmt.Sprintf("%.1f", float64(b)/float64(div)) {
			return fmt.Sprintf("%d bytes", a), fmt.Sprintf("%d bytes", b)
		}
	}
	return Size(a), Size(b)
}

// unit returns the binary unit Size writes n in: its bytes and name.
func unit(n uint64) (uint64, string) {
	div, exp := uint64(1), 0
	for m := n; m >= 1024 && exp < 5; m /= 1024 {
		div *= 1024
		exp++
	}
	return div, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
}

// Size formats n bytes for a person: "64 MiB", "1.5 GiB", "900 B".
func Size(n uint64) string {
	div, suffix := unit(n)
	if div == 1 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) || v >= 100 {
		return fmt.Sprintf("%.0f %s", v, suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
