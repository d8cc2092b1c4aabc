package trafficlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// FuzzSegment opens a log whose directory holds a segment of mutated
// bytes, sealed (a segment after it) or last (the one recovery checks),
// and reads it through. Nothing is skipped silently: the records read are
// the segment's bytes, one after another from its start, up to its end,
// or up to damage that Read reports where it is, or up to a torn end that
// Open cut off and logged. The log then takes and reads back an event.
func FuzzSegment(f *testing.F) {
	var good []byte
	for i := range 3 {
		good = AppendRecord(good, prediction(i))
		good = AppendRecord(good, feedback(i))
	}
	f.Add(good, false)
	f.Add(good, true)
	f.Add(good[:len(good)-3], false)
	f.Add(good[:len(good)-3], true)
	damaged := bytes.Clone(good)
	damaged[20] ^= 0xff
	f.Add(damaged, false)
	f.Add(damaged, true)
	f.Add(append(bytes.Clone(good), make([]byte, 16)...), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, sealed bool) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(0)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if sealed && len(data) > 0 {
			if err := os.WriteFile(filepath.Join(dir, segName(int64(len(data)))), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var logged strings.Builder
		cfg := DefaultConfig()
		cfg.Dir = dir
		cfg.MaxRecordBytes = 64 << 10
		cfg.Metrics = metrics.NewSet()
		cfg.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(&logged, format+"\n", args...)
		}
		l, err := Open(cfg)
		if err != nil {
			t.Fatalf("Open over a segment of %d bytes: %v", len(data), err)
		}
		defer l.Close()

		covered := int64(0) // the fuzzed segment's bytes read as records
		damageAt := int64(-1)
		pos := l.Stats().First
		for range 100 {
			next, err := l.Read(pos, 1<<30, func(p int64, rec []byte) bool {
				if p >= int64(len(data)) {
					return true
				}
				if p != covered || !bytes.Equal(rec, data[p:min(int64(len(data)), p+int64(len(rec)))]) {
					t.Fatalf("record at %d (%d bytes): not the segment's bytes there, or not next after %d", p, len(rec), covered)
				}
				covered += int64(len(rec))
				return true
			})
			if err == nil {
				break
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read from %d: %v; want nil or ErrCorrupt", pos, err)
			}
			if damageAt < 0 {
				damageAt = next
			}
			after, ok := l.SegmentAfter(next)
			if !ok {
				t.Fatalf("Read from %d: %v at %d, and no segment after it", pos, err, next)
			}
			pos = after
		}
		if covered < int64(len(data)) && damageAt != covered {
			mu.Lock()
			cut := strings.Contains(logged.String(), "cut off the last")
			mu.Unlock()
			info, err := os.Stat(filepath.Join(dir, segName(0)))
			if err != nil {
				t.Fatal(err)
			}
			if sealed || !cut || info.Size() != covered {
				t.Fatalf("%d of %d bytes read as records; damage reported at %d, segment now %d bytes, cut logged %t", covered, len(data), damageAt, info.Size(), cut)
			}
		}

		// The log goes on.
		at := l.Stats().Next
		e := prediction(9)
		if err := l.AppendSync(e); err != nil {
			t.Fatalf("AppendSync after recovery: %v", err)
		}
		evs, poss, _ := readAll(t, l, at)
		if len(evs) != 1 || poss[0] != at {
			t.Fatalf("read back from %d: %d events at %v; want 1 at %d", at, len(evs), poss, at)
		}
		sameEvent(t, evs[0], e)
	})
}
