package trafficlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/oip"
)

func fp32(name string, shape []int64, vals ...float32) oip.Tensor {
	var b []byte
	for _, v := range vals {
		b = append(b, byte(math.Float32bits(v)), byte(math.Float32bits(v)>>8), byte(math.Float32bits(v)>>16), byte(math.Float32bits(v)>>24))
	}
	return oip.Tensor{Name: name, Datatype: oip.FP32, Shape: shape, Data: b}
}

func prediction(i int) *Event {
	return &Event{
		Kind: Prediction, Time: time.Unix(1700000000, int64(i)).UTC(), ID: fmt.Sprint("req-", i),
		Model: "ranker", Version: 2, Arm: "treatment", Unit: "user-7",
		Inputs:  []oip.Tensor{fp32("features", []int64{1, 3}, float32(i), 2, 3)},
		Outputs: []oip.Tensor{fp32("score", []int64{1, 1}, 0.5)},
	}
}

func feedback(i int) *Event {
	return &Event{Kind: Feedback, Time: time.Unix(1700000001, int64(i)).UTC(), ID: fmt.Sprint("req-", i), Model: "ranker",
		Label: 1, HasLabel: true, Reward: -0.25, HasReward: true}
}

func testConfig(t *testing.T, dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Logf = t.Logf
	cfg.Metrics = metrics.NewSet()
	return cfg
}

func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readAll reads every record from from on and decodes it.
func readAll(t *testing.T, l *Log, from int64) ([]Event, []int64, int64) {
	t.Helper()
	var evs []Event
	var poss []int64
	next, err := l.Read(from, 1<<30, func(pos int64, rec []byte) bool {
		var e Event
		n, err := Decode(rec, &e)
		if err != nil || n != len(rec) {
			t.Fatalf("record at %d: %d bytes of %d, %v", pos, n, len(rec), err)
		}
		// Decoded tensors share rec, which Read reuses.
		for _, ts := range [][]oip.Tensor{e.Inputs, e.Outputs} {
			for i := range ts {
				ts[i].Data = bytes.Clone(ts[i].Data)
			}
		}
		evs = append(evs, e)
		poss = append(poss, pos)
		return true
	})
	if err != nil {
		t.Fatalf("Read from %d: %v", from, err)
	}
	return evs, poss, next
}

func sameEvent(t *testing.T, got Event, want *Event) {
	t.Helper()
	got.Time = got.Time.UTC()
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("got %+v\nwant %+v", got, *want)
	}
}

func TestAppendReadAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(t, dir))
	var want []*Event
	for i := range 10 {
		e := prediction(i)
		if i%3 == 2 {
			e = feedback(i)
		}
		want = append(want, e)
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, testConfig(t, dir))
	got, poss, next := readAll(t, l, 0)
	if len(got) != len(want) {
		t.Fatalf("read %d events after a restart; want %d", len(got), len(want))
	}
	for i := range got {
		sameEvent(t, got[i], want[i])
	}
	if st := l.Stats(); st.First != 0 || st.Next != next || st.Bytes != next {
		t.Fatalf("stats %+v; want first 0, next %d", st, next)
	}
	// Positions go on after the restart, and a Read from any record's
	// position starts there.
	if err := l.AppendSync(prediction(10)); err != nil {
		t.Fatal(err)
	}
	tail, tailPos, _ := readAll(t, l, poss[7])
	if len(tail) != 4 || tailPos[0] != poss[7] || tail[3].ID != "req-10" {
		t.Fatalf("from the 8th record: %d events from %v; want 4, the last req-10", len(tail), tailPos)
	}
}

func TestReadersSeeOnlySyncedRecords(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SyncInterval = time.Hour
	l := open(t, cfg)
	if err := l.Append(prediction(1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // written, not synced
	if got, _, next := readAll(t, l, 0); len(got) != 0 || next != 0 {
		t.Fatalf("before a sync: read %d events, next %d; want none", len(got), next)
	}
	if err := l.AppendSync(feedback(1)); err != nil {
		t.Fatal(err)
	}
	got, _, _ := readAll(t, l, 0)
	if len(got) != 2 || got[0].Kind != Prediction || got[1].Kind != Feedback {
		t.Fatalf("after AppendSync: %d events; want the prediction and the feedback", len(got))
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	whole := AppendRecord(nil, prediction(3))
	for _, tail := range [][]byte{
		whole[:5],            // a frame cut short
		whole[:len(whole)-1], // a payload cut short
		append(bytes.Clone(whole[:len(whole)-1]), whole[len(whole)-1]^0xff), // a damaged byte
		make([]byte, 300), // zeros: a file longer than the data that reached it
	} {
		dir := t.TempDir()
		l := open(t, testConfig(t, dir))
		for i := range 3 {
			if err := l.AppendSync(prediction(i)); err != nil {
				t.Fatal(err)
			}
		}
		good := l.Stats().Next
		l.Close()
		path := filepath.Join(dir, segName(0))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(tail)
		f.Close()
		var logged []string
		cfg := testConfig(t, dir)
		cfg.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		l = open(t, cfg)
		// The cut bytes' positions are not given again: the log goes on
		// in a new segment at the old end.
		end := good + int64(len(tail))
		if st := l.Stats(); st.Next != end || st.Segments != 2 {
			t.Fatalf("after a torn tail of %d bytes: %+v; want the end at %d, in a second segment", len(tail), st, end)
		}
		if len(logged) != 1 || !strings.Contains(logged[0], fmt.Sprintf("cut off the last %d bytes", len(tail))) {
			t.Fatalf("logged %q; want one line saying what was cut off", logged)
		}
		got, _, _ := readAll(t, l, 0)
		if len(got) != 3 {
			t.Fatalf("read %d events; want the 3 whole ones", len(got))
		}
		l.Close()
		if info, _ := os.Stat(path); info.Size() != good {
			t.Fatalf("the segment has %d bytes; want %d, cut on disk", info.Size(), good)
		}
	}
}

func TestRotationAndRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 128 << 10
	cfg.MaxRecordBytes = 16 << 10
	l := open(t, cfg)
	big := make([]float32, 2000) // about 8 KB a record
	var total int64
	for i := range 100 {
		e := prediction(i)
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, 2000}, big...)}
		if err := l.AppendSync(e); err != nil {
			t.Fatal(err)
		}
		total += int64(len(AppendRecord(nil, e)))
	}
	st := l.Stats()
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if st.Next != total || st.Bytes > cfg.MaxBytes || st.First == 0 || len(files) != st.Segments || st.Segments > 3 {
		t.Fatalf("stats %+v, %d files; want next %d, at most %d bytes in at most 3 segments, the first ones deleted", st, len(files), total, cfg.MaxBytes)
	}
	var pe *PositionError
	if _, err := l.Read(0, 1<<20, func(int64, []byte) bool { return true }); !errors.As(err, &pe) || pe.First != st.First || !strings.Contains(err.Error(), "was deleted (to keep the log within its byte budget") {
		t.Fatalf("reading a deleted position: %v; want a PositionError naming the first, %d", err, st.First)
	}
	got, poss, next := readAll(t, l, st.First)
	if next != st.Next || len(got) == 0 || got[len(got)-1].ID != "req-99" {
		t.Fatalf("read %d events up to %d; want up to %d, the last req-99", len(got), next, st.Next)
	}
	for i := 1; i < len(poss); i++ {
		if poss[i] <= poss[i-1] {
			t.Fatalf("positions not increasing: %v", poss)
		}
	}
	// A restart finds the same segments.
	l.Close()
	again := open(t, cfg)
	if st2 := again.Stats(); st2 != st {
		t.Fatalf("after a restart: %+v; want %+v", st2, st)
	}
	if _, err := again.Read(st.Next+1, 1<<20, func(int64, []byte) bool { return true }); !errors.As(err, &pe) || !strings.Contains(err.Error(), "beyond the log's end") {
		t.Fatalf("reading past the end: %v", err)
	}
}

func TestReadBoundsAndMisalignedPositions(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(t, dir))
	for i := range 5 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
	}
	one := len(AppendRecord(nil, prediction(0)))
	n := 0
	next, err := l.Read(0, 2*one+1, func(int64, []byte) bool { n++; return true })
	if err != nil || n != 2 || next != int64(2*one) {
		t.Fatalf("a read bounded to 2 records: %d records, next %d, %v; want 2, %d", n, next, err, 2*one)
	}
	n = 0
	if _, err := l.Read(0, 1, func(int64, []byte) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("a read bounded below one record: %d records, %v; want the first anyway", n, err)
	}
	n = 0
	next, err = l.Read(0, 1<<20, func(int64, []byte) bool { n++; return n < 3 })
	if err != nil || n != 3 || next != int64(3*one) {
		t.Fatalf("fn stopping at the third: %d, next %d, %v", n, next, err)
	}
	if _, err := l.Read(3, 1<<20, func(int64, []byte) bool { return true }); !errors.Is(err, ErrNotRecord) || !strings.Contains(err.Error(), "no traffic log record starts at position 3") {
		t.Fatalf("a read from inside a record: %v; want ErrNotRecord", err)
	}
	// A record damaged on disk after whole ones (a bit flipped in the
	// third) is damage, said as such.
	f, err := os.OpenFile(filepath.Join(dir, segName(0)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	at := int64(2*one + one - 2)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n = 0
	next, err = l.Read(0, 1<<20, func(int64, []byte) bool { n++; return true })
	if want := fmt.Sprintf("damaged traffic log record at position %d, after a whole one", 2*one); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || n != 2 || next != int64(2*one) {
		t.Fatalf("a read over a damaged third record: %d records, next %d, %v; want 2 records, then an error saying %q", n, next, err, want)
	}
}

func TestQueueFullDropsAndSyncRefuses(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxRecordBytes = 1 << 10
	cfg.QueueBytes = 4 << 10
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	l.beforeBatch = func() { <-hold }
	accepted := 0
	for i := range 100 {
		if err := l.Append(prediction(i)); err == nil {
			accepted++
		} else if !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	if err := l.AppendSync(prediction(100)); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendSync into a full queue: %v; want ErrFull at once", err)
	}
	fit, sum := 0, 0
	for sum+len(AppendRecord(nil, prediction(fit))) <= int(cfg.QueueBytes) {
		sum += len(AppendRecord(nil, prediction(fit)))
		fit++
	}
	if accepted != fit {
		t.Fatalf("accepted %d records into a queue of %d bytes; want the %d that fit", accepted, cfg.QueueBytes, fit)
	}
	big := prediction(0)
	big.Inputs = []oip.Tensor{fp32("features", []int64{1, 400}, make([]float32, 400)...)}
	if err := l.Append(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record over the limit: %v; want ErrTooLarge", err)
	}
	close(hold)
	l.Close()
	text := func() string {
		var b bytes.Buffer
		cfg.Metrics.WritePrometheus(&b)
		return b.String()
	}()
	for _, want := range []string{
		fmt.Sprintf(`infergate_traffic_dropped_total{reason="queue_full"} %d`, 100-accepted+1),
		`infergate_traffic_dropped_total{reason="too_large"} 1`,
		fmt.Sprintf(`infergate_traffic_events_total{kind="prediction"} %d`, accepted),
	} {
		if !strings.Contains(text, want+"\n") {
			t.Fatalf("metrics lack %q:\n%s", want, text)
		}
	}
	if err := l.Append(prediction(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v; want ErrClosed", err)
	}
}

// TestConcurrentAppendsAndReads: appends from many goroutines, some
// waiting for the sync, while readers follow the log. Every AppendSync'd
// record is readable once it returns; positions are contiguous.
func TestConcurrentAppendsAndReads(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SegmentBytes = 64 << 10
	cfg.MaxBytes = 1 << 30
	cfg.MaxRecordBytes = 16 << 10
	cfg.SyncInterval = 5 * time.Millisecond
	l := open(t, cfg)
	var wg sync.WaitGroup
	synced := make(chan string, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				e := prediction(g*1000 + i)
				if i%5 == 0 {
					e = feedback(g*1000 + i)
					if err := l.AppendSync(e); err != nil {
						t.Error(err)
						return
					}
					synced <- e.ID
					continue
				}
				if err := l.Append(e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for range 2 {
		rg.Go(func() {
			pos := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				next, err := l.Read(pos, 64<<10, func(p int64, rec []byte) bool {
					if p != pos {
						t.Errorf("record at %d; want %d", p, pos)
					}
					pos += int64(len(rec))
					return true
				})
				if err != nil {
					t.Error(err)
					return
				}
				pos = next
			}
		})
	}
	wg.Wait()
	close(synced)
	close(stop)
	rg.Wait()
	ids := map[string]bool{}
	got, _, _ := readAll(t, l, 0)
	for _, e := range got {
		ids[e.ID+e.Kind.String()] = true
	}
	for id := range synced {
		if !ids[id+"feedback"] {
			t.Fatalf("feedback %s was synced and is not in the log", id)
		}
	}
	l.Close()
	if got, _, _ := readAll(t, open(t, cfg), 0); len(got) != 8*50 {
		t.Fatalf("after close: %d events; want %d", len(got), 8*50)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(mod func(*Config), want string) {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Dir = "x"
		mod(&cfg)
		err := cfg.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("got %v; want %q", err, want)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.Dir = "" }, "needs a directory")
	f(func(c *Config) { c.SegmentBytes = 1000 }, "too small")
	f(func(c *Config) { c.MaxBytes = c.SegmentBytes }, "fewer than two segments")
	f(func(c *Config) { c.MaxRecordBytes = int(c.SegmentBytes) + 1 }, "do not fit segments")
	f(func(c *Config) { c.QueueBytes = int64(c.MaxRecordBytes) - 1 }, "do not fit its queue")
}

// The fsync durations are a Prometheus histogram with le buckets, as the
// README says of every histogram (histogram_quantile needs them).
func TestSyncDurationHasLEBuckets(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	l := open(t, cfg)
	if err := l.AppendSync(feedback(1)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	cfg.Metrics.WritePrometheus(&b)
	out := b.String()
	if !strings.Contains(out, `infergate_traffic_sync_duration_seconds_bucket{le="0.001"}`) || strings.Contains(out, "vmrange") {
		t.Fatalf("the fsync histogram has no le buckets:\n%s", out)
	}
	if !strings.Contains(out, "infergate_traffic_sync_duration_seconds_count 1") {
		t.Fatalf("one sync, not counted:\n%s", out)
	}
}

// A damaged record says the way past it: where the next segment begins.
// A read from there goes on.
func TestDamagedRecordNamesTheNextSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SegmentBytes = 64 << 10
	cfg.MaxRecordBytes = 16 << 10
	l := open(t, cfg)
	big := make([]float32, 2000) // about 8 KB a record
	for i := range 20 {
		e := prediction(i)
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, 2000}, big...)}
		if err := l.AppendSync(e); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	l.mu.Unlock()
	if len(segs) < 2 {
		t.Fatalf("%d segments; want 2 or more", len(segs))
	}
	f, err := os.OpenFile(filepath.Join(dir, segName(segs[0].base)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff}, 12000); err != nil { // inside the second record
		t.Fatal(err)
	}
	f.Close()
	n := 0
	_, err = l.Read(segs[0].base, 1<<30, func(int64, []byte) bool { n++; return true })
	want := fmt.Sprintf("read from position %d, where the next segment begins, to skip the rest of %s", segs[1].base, segName(segs[0].base))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || n != 1 {
		t.Fatalf("a read over the damage: %d records, %v; want 1 record, then an error saying %q", n, err, want)
	}
	if next, ok := l.SegmentAfter(segs[0].base + 12000); !ok || next != segs[1].base {
		t.Errorf("SegmentAfter(the damage) = %d, %v; want %d, true", next, ok, segs[1].base)
	}
	if _, ok := l.SegmentAfter(segs[len(segs)-1].base); ok {
		t.Error("SegmentAfter(a position of the last segment) found one")
	}
	n = 0
	if _, err := l.Read(segs[1].base, 1<<30, func(int64, []byte) bool { n++; return true }); err != nil || n == 0 {
		t.Fatalf("a read from the next segment: %d records, %v; want some, and no error", n, err)
	}
}

// A crash while a start cuts a torn end off leaves the new segment at the
// old end on disk and the torn segment uncut (the new segment is made
// first): the next start goes on in the new one, never at the cut, and
// reads pass the torn bytes as damage, with the way past it.
func TestCrashBeforeTheTornEndIsCut(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(t, dir))
	for i := range 3 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
	}
	good := l.Stats().Next
	l.Close()
	tail := AppendRecord(nil, prediction(3))[:7]
	f, err := os.OpenFile(filepath.Join(dir, segName(0)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(tail)
	f.Close()
	end := good + int64(len(tail))
	if err := os.WriteFile(filepath.Join(dir, segName(end)), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	l = open(t, testConfig(t, dir))
	if err := l.AppendSync(prediction(4)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var poss []int64
	read := func(from int64) (int64, error) {
		return l.Read(from, 1<<20, func(pos int64, rec []byte) bool {
			var e Event
			if _, err := Decode(rec, &e); err != nil {
				t.Fatalf("record at %d: %v", pos, err)
			}
			ids, poss = append(ids, e.ID), append(poss, pos)
			return true
		})
	}
	next, err := read(0)
	if !errors.Is(err, ErrCorrupt) || next != good || len(ids) != 3 {
		t.Fatalf("Read(0) = %d, %v, %q; want the 3 whole records, then damage at %d", next, err, ids, good)
	}
	skip, ok := l.SegmentAfter(good)
	if !ok || skip != end {
		t.Fatalf("SegmentAfter(%d) = %d, %v; want %d, the new segment", good, skip, ok, end)
	}
	if _, err := read(skip); err != nil || len(ids) != 4 || ids[3] != "req-4" || poss[3] != end {
		t.Fatalf("Read(%d): %v, %q at %v; want req-4 at %d", skip, err, ids, poss, end)
	}
}
