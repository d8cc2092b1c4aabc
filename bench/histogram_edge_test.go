package bench

import (
	"strings"
	"testing"
	"time"
)

// --timeout is bounded by the latency histograms' range (60 s): a longer
// one would count a 90 s answer as a success that reads p99 and max 60 s.
func TestTimeoutBoundedByHistogramRange(t *testing.T) {
	o := DefaultOptions()
	o.Timeout = time.Minute
	if err := o.validate(); err != nil {
		t.Fatalf("--timeout 1m: %v", err)
	}
	o.Timeout = 2 * time.Minute
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "latencies are recorded up to 1m0s") {
		t.Fatalf("--timeout 2m: got %v; want it refused, naming the bound", err)
	}
}

// When a recorder's sample budget (maxSamples / recorders; 131,072 a
// worker at 64 workers, about 21 s of an http-floor at 400k req/s) runs
// out, the timeline ends there, rather than read 0 req/s, p50 0 and 0
// errors while the server went on answering (a collapse the HTML charts
// would draw). Here a budget of 100 runs out after 1 s of a 2 s window
// answered at a steady 100 req/s.
func TestTimelineEndsWhereSamplesEnd(t *testing.T) {
	ws := time.Unix(1000, 0)
	rec := newRecorder(100)
	for i := range 200 {
		rec.record(true, ws, time.Millisecond, ws.Add(time.Duration(i+1)*10*time.Millisecond-time.Microsecond), 1, "", false)
	}
	res := &stepResult{recs: []*recorder{rec}, windowStart: ws, windowEnd: ws.Add(2 * time.Second)}
	r := Run{}
	res.fill(&r, 250*time.Millisecond)
	if n := len(r.Timeline); n != 3 || r.Timeline[n-1].TS != 0.75 {
		t.Fatalf("timeline %+v; want 3 points, to 0.75 s, the last whole interval before the samples end", r.Timeline)
	}
	for _, p := range r.Timeline {
		if p.ThroughputRPS != 100 {
			t.Fatalf("run %g req/s, but the timeline at %gs reads %g req/s, p50 %g (points: %+v)", r.ThroughputRPS, p.TS, p.ThroughputRPS, p.P50US, r.Timeline)
		}
	}
}

// HistogramBin counts "requests whose latency is at most UpToUS": two of
// exactly 10,000 µs belong in the 10,000 µs bin, not, by their HDR
// bucket's highest equivalent value (10,007), in the 12,600 µs bin.
func TestHistogramBinAtBound(t *testing.T) {
	h := newHistogram()
	h.RecordValue(10_000)
	h.RecordValue(10_000)
	for _, b := range histogramBins(h) {
		if b.Count > 0 && b.UpToUS != 10_000 {
			t.Fatalf("latencies of exactly 10,000µs counted in the bin up to %gµs: %+v", b.UpToUS, histogramBins(h))
		}
	}
}
