package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
)

// traceNow traces a request of model m, which tr must sample, and
// returns its trace id.
func traceNow(t *testing.T, tr *tracer) uint64 {
	t.Helper()
	if !tr.sample("m") {
		t.Fatal("sample: no trace at rate 1")
	}
	at := time.Now()
	id, ok := tr.record(&traceEntry{model: "m", version: "1", start: at, end: at})
	if !ok {
		t.Fatal("record: not traced")
	}
	return id
}

// sample takes no lock, yet traces exactly one request in the rate, the
// first included, of requests that come at once; a model with settings of
// its own counts its own.
func TestTraceSampleOneInRate(t *testing.T) {
	tr := newTracer(TraceConfig{File: filepath.Join(t.TempDir(), "t.json"), Level: TraceTimestamps, Rate: 7}, metrics.NewSet(), t.Logf)
	defer tr.close(context.Background())
	if _, err := tr.update("own", []oip.TraceSetting{{Name: "trace_rate", Values: []string{"3"}}}); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"m", "own"} {
		var got []int
		for i := range 10 {
			if tr.sample(model) {
				got = append(got, i)
			}
		}
		want := "[0 7]"
		if model == "own" {
			want = "[0 3 6 9]"
		}
		if fmt.Sprint(got) != want {
			t.Fatalf("model %s: requests %v of the first 10 sampled; want %s", model, got, want)
		}
	}
	const goroutines, each = 8, 10000
	var sampled, own atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if tr.sample("m") {
					sampled.Add(1)
				}
				if tr.sample("own") {
					own.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// 10 each seen before, by the loop above.
	if got, want := sampled.Load(), int64((10+goroutines*each+6)/7-2); got != want {
		t.Fatalf("%d requests at rate 7 from %d goroutines: %d sampled; want %d", goroutines*each, goroutines, got, want)
	}
	if got, want := own.Load(), int64((10+goroutines*each+2)/3-4); got != want {
		t.Fatalf("%d requests of a model at rate 3 from %d goroutines: %d sampled; want %d", goroutines*each, goroutines, got, want)
	}
}

// A trace count runs out exactly once under requests that come at once:
// exactly count traces, ids 1 to count, and the file is written with all
// of them as the last is recorded (not at shutdown).
func TestTraceCountRunsOutOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	set := metrics.NewSet()
	const count = 1000
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1, Count: count}, set, t.Logf)
	defer tr.close(context.Background())
	var traced atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range count {
				if !tr.sample("m") {
					continue
				}
				at := time.Now()
				if _, ok := tr.record(&traceEntry{model: "m", version: "1", start: at, end: at}); ok {
					traced.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := traced.Load(); n != count {
		t.Fatalf("%d traced with a count of %d", n, count)
	}
	if got := set.GetOrCreateCounter("infergate_traces_total").Get(); got != count {
		t.Fatalf("infergate_traces_total %d; want %d", got, count)
	}
	if tr.on.Load() {
		t.Fatal("tracing is still on once the count ran out")
	}
	if got := tr.settings("")[3]; got.Values[0] != "0" {
		t.Fatalf("trace_count %v once it ran out; want 0", got.Values)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var recs []struct {
			ID         uint64          `json:"id"`
			Timestamps json.RawMessage `json:"timestamps"`
		}
		if err := json.Unmarshal(b, &recs); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", file, err, b)
		}
		ids := make(map[uint64]bool)
		for _, r := range recs {
			if r.Timestamps != nil {
				ids[r.ID] = true
			}
		}
		for id := range uint64(count) {
			if !ids[id+1] {
				return fmt.Errorf("the file holds %d traces, without id %d; want ids 1 to %d", len(ids), id+1, count)
			}
		}
		if len(ids) != count {
			return fmt.Errorf("the file holds %d traces; want %d", len(ids), count)
		}
		return nil
	})
}

// A log frequency above the traces a tracer holds unwritten is refused,
// from the flags and the API: such a file would never fill, and every
// trace past maxHeldTraces would be dropped until shutdown.
func TestTraceLogFrequencyBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	over := strconv.Itoa(maxHeldTraces + 1)
	c := TraceConfig{File: file, LogFrequency: maxHeldTraces + 1}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "at most "+strconv.Itoa(maxHeldTraces)) {
		t.Fatalf("Validate with log frequency %s: got %v; want an error naming the most", over, err)
	}
	c.LogFrequency = maxHeldTraces
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate with log frequency %d: %v", maxHeldTraces, err)
	}
	tr := newTracer(TraceConfig{File: file}, metrics.NewSet(), t.Logf)
	defer tr.close(context.Background())
	if _, err := tr.update("", []oip.TraceSetting{{Name: "log_frequency", Values: []string{over}}}); err == nil || !strings.Contains(err.Error(), "at most "+strconv.Itoa(maxHeldTraces)) {
		t.Fatalf("log_frequency %s: got %v; want an error naming the most", over, err)
	}
	if _, err := tr.update("", []oip.TraceSetting{{Name: "log_frequency", Values: []string{strconv.Itoa(maxHeldTraces)}}}); err != nil {
		t.Fatalf("log_frequency %d: %v", maxHeldTraces, err)
	}
}

// With log frequency 0 the file holds every trace it was given, across a
// spell of indexed files: going back to 0 does not write it again with
// only the traces taken since.
func TestTraceFileKeepsItsTracesAcrossLogFrequency(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1}, metrics.NewSet(), t.Logf)
	trace := func() uint64 { return traceNow(t, tr) }
	set := func(freq ...string) {
		t.Helper()
		if _, err := tr.update("", []oip.TraceSetting{{Name: "log_frequency", Values: freq}}); err != nil {
			t.Fatal(err)
		}
	}
	want := []uint64{trace(), trace()}
	set("1") // the file is written with both
	trace()  // to t.json.0
	set()    // back to the flag's 0
	want = append(want, trace())
	tr.close(context.Background())
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		ID         uint64          `json:"id"`
		Timestamps json.RawMessage `json:"timestamps"`
	}
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", file, err, b)
	}
	var got []uint64
	for _, r := range recs {
		if r.Timestamps != nil {
			got = append(got, r.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s holds the traces %v; want %v", file, got, want)
	}
}

// A trace file that cannot be written is logged once a minute, saying how
// many more failed since, not once a file: at log frequency 1 that was a
// line per traced request.
func TestTraceWriteFailuresLogLimited(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.json")
	var lines atomic.Int32
	logf := func(format string, args ...any) {
		lines.Add(1)
		t.Logf(format, args...)
	}
	set := metrics.NewSet()
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1, LogFrequency: 1}, set, logf)
	if err := os.Remove(dir); err != nil { // the directory is gone
		t.Fatal(err)
	}
	for range 100 {
		traceNow(t, tr)
		time.Sleep(time.Millisecond) // the writer keeps up: a write failure each
	}
	tr.close(context.Background())
	if n := lines.Load(); n > 2 {
		t.Fatalf("100 trace files that cannot be written logged %d lines; want at most 2", n)
	}
	// Their traces are lost, and counted so; none was written.
	if got := set.GetOrCreateCounter("infergate_traces_dropped_total").Get(); got != 100 {
		t.Fatalf("infergate_traces_dropped_total %d after 100 files of one trace failed; want 100", got)
	}
}

// With a log frequency, each file holds its traces and no other's though
// the buffers of written files hold the next traces: traces from
// requests that come at once, a file of 10 every 10, every trace in one
// file.
func TestTraceIndexedFilesWhole(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	const goroutines, each, freq = 4, 250, 10
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1, LogFrequency: freq}, metrics.NewSet(), t.Logf)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				traceNow(t, tr)
				time.Sleep(100 * time.Microsecond) // the writer keeps up
			}
		})
	}
	wg.Wait()
	tr.close(context.Background())
	seen := make(map[uint64]string)
	for i := range goroutines * each / freq {
		path := fmt.Sprintf("%s.%d", file, i)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var recs []struct {
			ID         uint64          `json:"id"`
			Timestamps json.RawMessage `json:"timestamps"`
		}
		if err := json.Unmarshal(b, &recs); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", path, err, b)
		}
		if len(recs) != 2*freq {
			t.Fatalf("%s holds %d objects; want %d, two a trace", path, len(recs), 2*freq)
		}
		for _, r := range recs {
			if r.Timestamps == nil {
				continue
			}
			if seen[r.ID] != "" {
				t.Fatalf("trace %d is in %s and %s", r.ID, seen[r.ID], path)
			}
			seen[r.ID] = path
		}
	}
	if len(seen) != goroutines*each {
		t.Fatalf("the files hold %d traces; want %d", len(seen), goroutines*each)
	}
}

// A shutdown waits for the trace files being written only until its
// deadline: a disk that does not answer must not hold the process.
func TestTraceCloseBoundedByItsContext(t *testing.T) {
	release := make(chan struct{})
	old := traceWriteFile
	traceWriteFile = func(string, []byte, os.FileMode) error {
		<-release // a write that hangs
		return nil
	}
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	oldGrace := traceCloseGrace
	traceCloseGrace = 300 * time.Millisecond
	tr := newTracer(TraceConfig{File: filepath.Join(t.TempDir(), "t.json"), Level: TraceTimestamps, Rate: 1, LogFrequency: 1}, metrics.NewSet(), logf)
	t.Cleanup(func() {
		close(release)
		tr.wg.Wait() // the writer done with traceWriteFile
		traceWriteFile, traceCloseGrace = old, oldGrace
	})
	for range 3 {
		traceNow(t, tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	tr.close(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("close with a writer that hangs took %s; want it bounded by its context (200ms) and the grace (300ms)", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 1 || !strings.Contains(lines[0], "stopped waiting at the shutdown's deadline") {
		t.Fatalf("logged %q; want one line saying the shutdown stopped waiting", lines)
	}
}

// The trace writer's lines have their levels: traces lost to a file
// that cannot be written are an ERROR; a file to be written again, and
// traces dropped past maxHeldTraces, a WARNING.
func TestTraceLogLevels(t *testing.T) {
	// logged returns a logf keeping the formats, and what it kept.
	logged := func() (func(string, ...any), func() []string) {
		var mu sync.Mutex
		var formats []string
		return func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				formats = append(formats, format)
				t.Logf(format, args...)
			}, func() []string {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(formats)
			}
	}
	record := func(tr *tracer) {
		t.Helper()
		if !tr.sample("m") {
			t.Fatal("sample: no trace at rate 1")
		}
		at := time.Now()
		tr.record(&traceEntry{model: "m", version: "1", start: at, end: at})
	}
	f := func(name string, c TraceConfig, gone bool, traces int, prefix, fragment string) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c.File, c.Level, c.Rate = filepath.Join(dir, "t.json"), TraceTimestamps, 1
			logf, formats := logged()
			tr := newTracer(c, metrics.NewSet(), logf)
			if gone {
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
			}
			for range traces {
				record(tr)
			}
			tr.close(context.Background())
			for _, f := range formats() {
				if strings.Contains(f, fragment) {
					if !strings.HasPrefix(f, prefix) {
						t.Fatalf("the line %q has not the level %q", f, prefix)
					}
					return
				}
			}
			t.Fatalf("no line says %q: %q", fragment, formats())
		})
	}
	f("lost", TraceConfig{LogFrequency: 1}, true, 1, logging.Error, "cannot write")
	f("written again", TraceConfig{Count: 1}, true, 1, logging.Warning, "cannot write")
	f("held", TraceConfig{}, false, maxHeldTraces+1, logging.Warning, "held unwritten")
}

// A shutdown whose deadline went by before it reached the tracer (its
// requests ran to it) still gives the last write of the trace file a
// grace: with log frequency 0 that file holds every trace taken.
func TestTraceCloseWritesAfterItsDeadline(t *testing.T) {
	old := traceWriteFile
	traceWriteFile = func(path string, data []byte, perm os.FileMode) error {
		time.Sleep(100 * time.Millisecond) // a disk that is slow, not hung
		return old(path, data, perm)
	}
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1}, metrics.NewSet(), t.Logf)
	t.Cleanup(func() {
		tr.wg.Wait() // the writer done with traceWriteFile
		traceWriteFile = old
	})
	id := traceNow(t, tr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr.close(ctx)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("after close with its context done: %v; want the trace file written", err)
	}
	if !strings.Contains(string(b), fmt.Sprintf(`{"id":%d,`, id)) {
		t.Fatalf("the trace file holds\n%s\nwant trace %d", b, id)
	}
}

// close's last write of the whole file waits for room in the writer's
// queue: with the writer 16 files behind it was dropped, and with it
// every trace taken since the file was last written.
func TestTraceCloseWaitsForRoomInTheQueue(t *testing.T) {
	release := make(chan struct{})
	old := traceWriteFile
	traceWriteFile = func(path string, data []byte, perm os.FileMode) error {
		<-release // a slow disk
		return old(path, data, perm)
	}
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1}, metrics.NewSet(), t.Logf)
	t.Cleanup(func() {
		tr.wg.Wait() // the writer done with traceWriteFile
		traceWriteFile = old
	})
	// Each change of the settings writes the whole file: the writer
	// takes one and the queue holds 16 more.
	for i := range 1 + cap(tr.writes) + 1 {
		traceNow(t, tr)
		if _, err := tr.update("", []oip.TraceSetting{{Name: "trace_rate", Values: []string{strconv.Itoa(1 + i%2)}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.update("", []oip.TraceSetting{{Name: "trace_rate", Values: []string{"1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	last := traceNow(t, tr)
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	tr.close(context.Background())
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), fmt.Sprintf(`{"id":%d,`, last)) {
		t.Fatalf("the trace file lacks the last trace, %d:\n%.300s", last, b)
	}
}
