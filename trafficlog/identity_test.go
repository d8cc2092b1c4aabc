package trafficlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A log keeps its identity across restarts; a log made anew in the same
// directory (its segments wiped) gets another, as does one whose identity
// file is damaged; a log written before identities gets one and keeps it.
func TestLogIdentity(t *testing.T) {
	dir := t.TempDir()
	reopen := func() (*Log, []string) {
		t.Helper()
		var logged []string
		cfg := testConfig(t, dir)
		cfg.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		l := open(t, cfg)
		if !validID(l.ID()) {
			t.Fatalf("identity %q; want 16 hex digits", l.ID())
		}
		return l, logged
	}
	l, _ := reopen()
	first := l.ID()
	if err := l.AppendSync(prediction(0)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, _ = reopen()
	if l.ID() != first {
		t.Fatalf("after a restart: identity %s; want %s, the same log", l.ID(), first)
	}
	l.Close()

	// The segments wiped, the identity file left: a new log.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, s := range segs {
		os.Remove(s)
	}
	l, _ = reopen()
	second := l.ID()
	if second == first {
		t.Fatalf("a log started over in a wiped directory kept identity %s", first)
	}
	l.Close()

	// A damaged identity file: a new identity, logged.
	if err := os.WriteFile(filepath.Join(dir, idFile), []byte("not an id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, logged := reopen()
	if l.ID() == second || len(logged) != 1 || !strings.Contains(logged[0], "identity") {
		t.Fatalf("after damage: identity %s (was %s), logged %q; want a new one, logged", l.ID(), second, logged)
	}
	third := l.ID()
	l.Close()

	// A log from before identities: segments, no file.
	os.Remove(filepath.Join(dir, idFile))
	l, _ = reopen()
	fourth := l.ID()
	l.Close()
	l, _ = reopen()
	if fourth == third || l.ID() != fourth {
		t.Fatalf("a log without an identity file: %s, then %s after a restart (was %s); want a new one, then kept", fourth, l.ID(), third)
	}
}

// A record damaged in the last segment, with records after it, is found
// when the log opens: the segment is kept whole (a reader may have read
// the records after the damage, and nothing is lost), and the log goes on
// in a new segment at its end, so no position is ever given to a second
// record. It used to be cut off at the damage, records after it and all,
// and the next records took their positions.
func TestDamageFoundAtOpenKeepsTheSegment(t *testing.T) {
	dir, poss, end := fourRecords(t)
	path := filepath.Join(dir, segName(0))
	flipByte(t, path, poss[1]+frameLen+3)

	var logged []string
	cfg := testConfig(t, dir)
	cfg.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	l := open(t, cfg)
	if info, err := os.Stat(path); err != nil || info.Size() != end {
		t.Fatalf("the damaged segment: %v; want it kept whole, %d bytes", sizeOf(info, err), end)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], fmt.Sprintf("goes on in a new segment at position %d", end)) {
		t.Fatalf("logged %q; want one line naming the new segment", logged)
	}
	if st := l.Stats(); st.Next != end || st.Segments != 2 {
		t.Fatalf("stats %+v; want the end at %d, in a second segment", st, end)
	}
	// A read stops at the damage and names the way past it.
	var got []int64
	next, err := l.Read(0, 1<<20, func(pos int64, rec []byte) bool { got = append(got, pos); return true })
	if !errors.Is(err, ErrCorrupt) || next != poss[1] || len(got) != 1 || !strings.Contains(err.Error(), fmt.Sprintf("read from position %d", end)) {
		t.Fatalf("read: positions %v, next %d, %v; want the first record, then the damage at %d naming %d", got, next, err, poss[1], end)
	}
	// A new record takes a new position.
	if err := l.AppendSync(prediction(9)); err != nil {
		t.Fatal(err)
	}
	evs, newPoss, _ := readAll(t, l, end)
	if len(evs) != 1 || newPoss[0] != end || evs[0].ID != "req-9" {
		t.Fatalf("after the damage: %d events at %v; want req-9 at %d", len(evs), newPoss, end)
	}
}

// A record damaged in the segment being written, found by a read: the
// writer starts a new segment, so that a reader stopped at the damage has
// a way past it without waiting for the segment to fill (64 MiB of
// traffic by default).
func TestDamageInTheActiveSegmentStartsTheNext(t *testing.T) {
	dir := t.TempDir()
	var logs chanLog
	cfg := testConfig(t, dir)
	cfg.Logf = logs.logf
	l := open(t, cfg)
	for i := range 3 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, poss, end := readAll(t, l, 0)
	flipByte(t, filepath.Join(dir, segName(0)), poss[1]+frameLen+3)
	_, err := l.Read(poss[1], 1<<20, func(int64, []byte) bool { return true })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "starting a new segment") {
		t.Fatalf("read at the damage: %v; want it damaged, the log starting a new segment", err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if st := l.Stats(); st.Segments != 2 {
			return fmt.Errorf("no new segment after the damage: %+v", st)
		}
		return nil
	})
	if skip, ok := l.SegmentAfter(poss[1]); !ok || skip != end {
		t.Fatalf("the way past the damage: %d, %v; want %d", skip, ok, end)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("started a new segment at position %d", end)) {
		t.Fatalf("logged %q; want the new segment named", logs.String())
	}
	if err := l.AppendSync(prediction(7)); err != nil {
		t.Fatal(err)
	}
	evs, newPoss, _ := readAll(t, l, end)
	if len(evs) != 1 || newPoss[0] != end {
		t.Fatalf("read past the damage: %d events at %v; want one at %d", len(evs), newPoss, end)
	}
}

// flipByte flips the bits of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// chanLog gathers log lines from any goroutine.
type chanLog struct {
	mu    sync.Mutex
	lines []string
}

func (c *chanLog) logf(format string, args ...any) {
	c.mu.Lock()
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *chanLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// sizeOf says what os.Stat found, for a failure message.
func sizeOf(info os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d bytes", info.Size())
}

// A bit flipped in a synced record's length, in the last segment (found
// by reviewing helpers): the length then claims more than the file
// holds, which recovery took for a torn end, cutting off the records
// after it, whose positions the next records then took. A bad record
// with good ones after it is damage, whatever its length says: the
// segment is kept whole, and no position read before holds another
// record.
func TestLengthDamageKeepsTheRecordsAfterIt(t *testing.T) {
	for _, b := range []int64{1, 2, 3} { // each byte of the length but its lowest
		dir, poss, end := fourRecords(t)
		path := filepath.Join(dir, segName(0))
		flipByte(t, path, poss[1]+b)
		var logged []string
		cfg := testConfig(t, dir)
		cfg.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		l := open(t, cfg)
		if st := l.Stats(); st.Next != end || len(logged) != 1 || !strings.Contains(logged[0], "kept as it is") {
			t.Fatalf("length byte %d flipped: after open %+v, logged %q; want the end at %d, the segment kept", b, st, logged, end)
		}
		if info, err := os.Stat(path); err != nil || info.Size() != end {
			t.Fatalf("length byte %d flipped: the damaged segment: %v; want it whole, %d bytes", b, sizeOf(info, err), end)
		}
		if err := l.AppendSync(prediction(9)); err != nil {
			t.Fatal(err)
		}
		if evs, newPoss, _ := readAll(t, l, end); len(evs) != 1 || newPoss[0] != end {
			t.Fatalf("length byte %d flipped: the next record: %d events at %v; want one at %d, past every position read before", b, len(evs), newPoss, end)
		}
		l.Close()
	}
}

// Reads from positions that are not a record's, in the segment being
// written, are no damage (found by a reviewing helper: each made the
// writer start a new segment, a file and three fsyncs, and told the
// reader to skip records that were whole).
func TestNonRecordPositionIsNoDamage(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(t, dir))
	for i := range 20 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
		st := l.Stats()
		_, err := l.Read(st.Next-1, 1<<20, func(int64, []byte) bool { return true })
		if !errors.Is(err, ErrNotRecord) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("a read from position %d, inside the last record: %v; want ErrNotRecord, not damage", st.Next-1, err)
		}
	}
	if err := l.AppendSync(prediction(20)); err != nil { // a batch after the last read's kick, were there one
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 1 {
		t.Fatalf("20 reads at positions inside records, no damage: %d segment files; want 1", len(segs))
	}
}

// fourRecords writes four synced records to a new log, closed, and
// returns its directory, the records' positions and the end.
func fourRecords(t *testing.T) (dir string, poss []int64, end int64) {
	t.Helper()
	dir = t.TempDir()
	l := open(t, testConfig(t, dir))
	for i := range 4 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, poss, end = readAll(t, l, 0)
	l.Close()
	return dir, poss, end
}

// recordAfter finds a whole record anywhere after the first byte, across
// the windows it reads in, and nothing in bytes that hold none.
func TestRecordAfter(t *testing.T) {
	rec := AppendRecord(nil, prediction(1))
	const step = 1 << 20
	f := func(size int, at []int, want bool) {
		t.Helper()
		b := make([]byte, size)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		for _, a := range at {
			copy(b[a:], rec)
		}
		got, err := recordAfter(bytes.NewReader(b), int64(len(b)), 4<<20)
		if err != nil || got != want {
			t.Fatalf("records at %v in %d bytes: %v, %v; want %v", at, size, got, err, want)
		}
	}
	f(3*step, nil, false)
	f(3*step, []int{0}, false) // the bad record itself is not one after it
	f(3*step, []int{5}, true)
	f(3*step, []int{step - 3}, true) // across the first window's step
	f(3*step, []int{2*step + 7}, true)
	f(3*step, []int{3*step - len(rec)}, true) // at the very end
	f(len(rec)+100, []int{100}, true)
	if got, _ := recordAfter(bytes.NewReader(make([]byte, 2*step)), 2*step, 4<<20); got {
		t.Fatal("a record found in zeros")
	}
}
