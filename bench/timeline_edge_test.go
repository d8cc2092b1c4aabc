package bench

import (
	"testing"
	"testing/synctest"
	"time"
)

// Open loop at 1,000/s for 1 s against a server that keeps up, each
// answer taking 100 ms: the window is divided as 1 s (the answers' span),
// and the answers of the last 100 ms of sends arrive after it, in the
// timeline's last point, which must run to the last answer, not read
// about 2,000 req/s over one interval's length.
func TestOpenLoopTimelineLastPoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 1024, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: constLatency(100 * time.Millisecond)} },
		}
		r := runFake(t, ls, ModeOpen)
		if len(r.Timeline) == 0 {
			t.Fatal("no timeline")
		}
		last := r.Timeline[len(r.Timeline)-1]
		if !near(last.ThroughputRPS, 1000, 0.15) {
			t.Fatalf("timeline's last point (t %gs) reads %g req/s; the server answered 1,000/s throughout (run %g req/s; points %+v)",
				last.TS, last.ThroughputRPS, r.ThroughputRPS, r.Timeline)
		}
	})
}

// histogramBins runs from the bin holding its smallest value to the one
// holding its largest, each by its bucket's lowest value: a largest
// latency of exactly a bound (10,000 µs) ends the bins at the 10,000 µs
// bin, with no empty bin after it (h.Max(), the bucket's highest value,
// 10,007, would add one).
func TestHistogramNoTrailingEmptyBin(t *testing.T) {
	h := newHistogram()
	h.RecordValue(5)
	h.RecordValue(10_000)
	bins := histogramBins(h)
	if last := bins[len(bins)-1]; last.Count == 0 {
		t.Fatalf("last bin %+v is empty; want the bins to end with the one holding the largest value (10,000 µs)", last)
	}
}
