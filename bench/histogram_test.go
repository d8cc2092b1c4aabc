package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const workers = 8
	hs := make([]*hdrhistogram.Histogram, workers)
	all := newHistogram()
	for w := range hs {
		hs[w] = newHistogram()
	}
	for i := range 200_000 {
		// A log-uniform spread from 1 µs to 10 s, and a few at the edges.
		v := int64(math.Exp(rng.Float64() * math.Log(10e6)))
		switch i % 50_000 {
		case 0:
			v = 1
		case 1:
			v = histMaxUS
		}
		hs[rng.IntN(workers)].RecordValue(v)
		all.RecordValue(v)
	}
	merged := mergeHistograms(hs...)
	if merged.TotalCount() != all.TotalCount() {
		t.Fatalf("merged count %d; want %d", merged.TotalCount(), all.TotalCount())
	}
	for _, q := range []float64{0, 1, 10, 50, 90, 99, 99.9, 99.99, 100} {
		if got, want := merged.ValueAtQuantile(q), all.ValueAtQuantile(q); got != want {
			t.Fatalf("p%g of the merge is %d; want %d as from one histogram", q, got, want)
		}
	}
	if got, want := latencyOf(merged), latencyOf(all); got != want {
		t.Fatalf("latency of the merge %+v; want %+v", got, want)
	}
	if !merged.Equals(all) {
		t.Fatalf("merged histogram differs from the one fed every value")
	}
	if mergeHistograms(nil, hs[0]).TotalCount() != hs[0].TotalCount() {
		t.Fatalf("merge with nil lost values")
	}
}

func TestLatencyOfKnownDistributions(t *testing.T) {
	within := func(name string, got, want, rel float64) {
		t.Helper()
		if math.Abs(got-want) > rel*want {
			t.Fatalf("%s: got %g; want %g within %g%%", name, got, want, rel*100)
		}
	}
	// Uniform 1..100000 µs, every value once.
	h := newHistogram()
	for v := int64(1); v <= 100_000; v++ {
		h.RecordValue(v)
	}
	l := latencyOf(h)
	within("uniform p50", l.P50, 50_000, 0.001)
	within("uniform p90", l.P90, 90_000, 0.001)
	within("uniform p99", l.P99, 99_000, 0.001)
	within("uniform p99.9", l.P999, 99_900, 0.001)
	within("uniform max", l.Max, 100_000, 0.001)
	within("uniform mean", l.Mean, 50_000.5, 0.001)

	// Exponential with mean 1000 µs: quantile q is -1000 ln(1-q).
	rng := rand.New(rand.NewPCG(3, 4))
	h = newHistogram()
	for range 1_000_000 {
		h.RecordValue(durationUS(time.Duration(rng.ExpFloat64() * 1000 * float64(time.Microsecond))))
	}
	l = latencyOf(h)
	within("exponential p50", l.P50, -1000*math.Log(0.5), 0.02)
	within("exponential p90", l.P90, -1000*math.Log(0.1), 0.02)
	within("exponential p99", l.P99, -1000*math.Log(0.01), 0.03)
	within("exponential mean", l.Mean, 1000, 0.02)

	// A constant.
	h = newHistogram()
	for range 1000 {
		h.RecordValue(250)
	}
	if l := latencyOf(h); l.P50 != 250 || l.P99 != 250 || l.Max != 250 || l.Mean != 250 {
		t.Fatalf("constant 250: %+v", l)
	}
	if l := latencyOf(newHistogram()); l != (Latency{}) {
		t.Fatalf("empty histogram: %+v; want zeros", l)
	}
}

func TestDurationUS(t *testing.T) {
	f := func(d time.Duration, want int64) {
		t.Helper()
		if got := durationUS(d); got != want {
			t.Fatalf("durationUS(%s) = %d; want %d", d, got, want)
		}
	}
	f(0, 1)
	f(-time.Second, 1)
	f(499*time.Nanosecond, 1)
	f(1500*time.Nanosecond, 2)
	f(250*time.Microsecond, 250)
	f(time.Minute, histMaxUS)
	f(time.Hour, histMaxUS)
}

func TestHistogramBins(t *testing.T) {
	h := newHistogram()
	for v := int64(1); v <= 20_000; v += 7 {
		h.RecordValue(v)
	}
	bins := histogramBins(h)
	var total int64
	for i, b := range bins {
		total += b.Count
		if i > 0 && b.UpToUS <= bins[i-1].UpToUS {
			t.Fatalf("bin %d bound %g not above %g", i, b.UpToUS, bins[i-1].UpToUS)
		}
	}
	if total != h.TotalCount() {
		t.Fatalf("bins hold %d values; want %d", total, h.TotalCount())
	}
	if bins[0].UpToUS != 1 || bins[len(bins)-1].UpToUS < 20_000 || bins[len(bins)-1].UpToUS > 26_000 {
		t.Fatalf("bins span %g..%g; want 1..~20000", bins[0].UpToUS, bins[len(bins)-1].UpToUS)
	}
	// Decade bounds are round.
	for _, b := range bins {
		if b.UpToUS == 1000 || b.UpToUS == 100 {
			return
		}
	}
	t.Fatalf("no bin ends at 100 or 1000 µs: %v", bins)
}
