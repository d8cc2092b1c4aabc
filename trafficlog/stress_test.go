package trafficlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
)

// TestCloseRacingAppendSync: writers
// AppendSync while Close runs. Every AppendSync that returned nil is in
// the log after a restart, and none that returned an error is.
func TestCloseRacingAppendSync(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		cfg := testConfig(t, dir)
		cfg.SegmentBytes = 64 << 10
		cfg.MaxBytes = 1 << 30
		cfg.MaxRecordBytes = 16 << 10
		l := open(t, cfg)
		var mu sync.Mutex
		ok, failed := map[string]bool{}, map[string]bool{}
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					a, b := prediction(i), feedback(i)
					a.ID, b.ID = fmt.Sprintf("g%d-%d-a", g, i), fmt.Sprintf("g%d-%d-b", g, i)
					a.Inputs = []oip.Tensor{fp32("features", []int64{1, 300}, make([]float32, 300)...)}
					err := l.AppendSync(a, b)
					mu.Lock()
					if err == nil {
						ok[a.ID], ok[b.ID] = true, true
					} else {
						failed[a.ID], failed[b.ID] = true, true
					}
					mu.Unlock()
					if errors.Is(err, ErrClosed) {
						return
					}
				}
			})
		}
		time.Sleep(time.Duration(5+round) * time.Millisecond)
		l.Close()
		wg.Wait()
		l2 := open(t, cfg)
		got, poss, next := readAll(t, l2, 0)
		seen := map[string]bool{}
		for _, e := range got {
			seen[e.ID] = true
			if failed[e.ID] {
				t.Fatalf("round %d: %s is in the log though its AppendSync failed", round, e.ID)
			}
		}
		for id := range ok {
			if !seen[id] {
				t.Fatalf("round %d: %s was acknowledged but is not in the log", round, id)
			}
		}
		if len(poss) > 0 && next != l2.Stats().Next {
			t.Fatalf("round %d: read up to %d; log ends at %d", round, next, l2.Stats().Next)
		}
		l2.Close()
	}
}

// TestRestartAfterRotation: a restart right after a
// rotation with the newest segment empty (its only record cut, as a crash
// before its sync leaves it), more appends over several restarts, then a
// restart with a smaller budget: positions stay contiguous, the empty
// segment's base is where the log goes on, and the last record reads back.
func TestRestartAfterRotation(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 1 << 20
	cfg.MaxRecordBytes = 16 << 10
	big := func(i int) *Event {
		e := prediction(i)
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, 2000}, make([]float32, 2000)...)}
		return e
	}
	l := open(t, cfg)
	i := 0
	for l.Stats().Segments < 2 {
		if err := l.AppendSync(big(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	base := l.Stats().Next - int64(len(AppendRecord(nil, big(i-1))))
	l.Close()
	if err := os.Truncate(filepath.Join(dir, segName(base)), 0); err != nil {
		t.Fatal(err)
	}
	l = open(t, cfg)
	if st := l.Stats(); st.Next != base || st.Segments != 2 {
		t.Fatalf("after a restart with an empty newest segment at %d: %+v", base, st)
	}
	l.Close()
	for range 3 {
		l = open(t, cfg)
		for range 7 {
			if err := l.AppendSync(big(i)); err != nil {
				t.Fatal(err)
			}
			i++
		}
		l.Close()
	}
	cfg.MaxBytes = 2 * cfg.SegmentBytes
	l = open(t, cfg)
	for range 20 {
		if err := l.AppendSync(big(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	st := l.Stats()
	pos := st.First
	var last Event
	next, err := l.Read(st.First, 1<<30, func(p int64, rec []byte) bool {
		if p != pos {
			t.Fatalf("record at %d; want %d", p, pos)
		}
		pos += int64(len(rec))
		if _, err := Decode(rec, &last); err != nil {
			t.Fatal(err)
		}
		return true
	})
	if err != nil || next != st.Next || pos != st.Next {
		t.Fatalf("read to %d (%d), %v; end %d", next, pos, err, st.Next)
	}
	if last.ID != fmt.Sprint("req-", i-1) {
		t.Fatalf("last %s; want req-%d", last.ID, i-1)
	}
}
