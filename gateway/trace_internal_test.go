package gateway

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
)

// When a trace count runs out, the traces taken before its last one that
// are still being recorded (their requests ran at the same time) are
// written as soon as they are: the file holds every trace the count
// allowed, not only those recorded before the last one.
func TestTraceCountWritesTracesRecordedAfterItsLast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1, Count: 2}, metrics.NewSet(), t.Logf)
	defer tr.close()
	first, ok1 := tr.take("m")
	second, ok2 := tr.take("m")
	if _, ok := tr.take("m"); !ok1 || !ok2 || ok {
		t.Fatalf("take: ok %v %v, then %v; want two traces, then none", ok1, ok2, ok)
	}
	at := time.Now()
	// The second request's answer was ready first.
	tr.record(&traceEntry{id: second, model: "m", version: "1", start: at, end: at})
	tr.record(&traceEntry{id: first, model: "m", version: "1", start: at, end: at})
	testenv.CheckFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var got []map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", file, err, b)
		}
		if len(got) != 4 {
			return fmt.Errorf("with the count run out (and no shutdown) the file holds %d objects; want 4, both traces", len(got))
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
	defer tr.close()
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
	trace := func() uint64 {
		t.Helper()
		id, ok := tr.take("m")
		if !ok {
			t.Fatal("take: no trace at rate 1")
		}
		at := time.Now()
		tr.record(&traceEntry{id: id, model: "m", version: "1", start: at, end: at})
		return id
	}
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
	tr.close()
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
		id, ok := tr.take("m")
		if !ok {
			t.Fatal("take: no trace at rate 1")
		}
		at := time.Now()
		tr.record(&traceEntry{id: id, model: "m", version: "1", start: at, end: at})
		time.Sleep(time.Millisecond) // the writer keeps up: a write failure each
	}
	tr.close()
	if n := lines.Load(); n > 2 {
		t.Fatalf("100 trace files that cannot be written logged %d lines; want at most 2", n)
	}
	// Their traces are lost, and counted so; none was written.
	if got := set.GetOrCreateCounter("infergate_traces_dropped_total").Get(); got != 100 {
		t.Fatalf("infergate_traces_dropped_total %d after 100 files of one trace failed; want 100", got)
	}
}
