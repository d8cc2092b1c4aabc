package bench

import (
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms hold microseconds from 1 µs to 60 s with 3
// significant figures: any recorded value is off by at most 0.1%.
const (
	histMinUS   = 1
	histMaxUS   = 60_000_000
	histSigFigs = 3
)

// newHistogram returns an empty latency histogram (about 140 KB).
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUS, histMaxUS, histSigFigs)
}

// durationUS converts d to whole microseconds within the histogram's
// range: shorter than 1 µs counts as 1 µs, longer than 60 s as 60 s.
func durationUS(d time.Duration) int64 {
	us := (int64(d) + 500) / 1000
	return min(max(us, histMinUS), histMaxUS)
}

// mergeHistograms returns a new histogram holding every value of hs; nil
// entries are skipped.
func mergeHistograms(hs ...*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	all := newHistogram()
	for _, h := range hs {
		if h != nil {
			all.Merge(h)
		}
	}
	return all
}

// latencyOf returns the percentiles of h; all zero when h is empty.
func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  float64(h.ValueAtQuantile(50)),
		P90:  float64(h.ValueAtQuantile(90)),
		P99:  float64(h.ValueAtQuantile(99)),
		P999: float64(h.ValueAtQuantile(99.9)),
		Max:  float64(h.Max()),
		Mean: math.Round(h.Mean()*10) / 10,
	}
}

// binsPerDecade is the resolution of the latency distribution in reports:
// bin bounds grow by a factor 10^(1/10) (about 26%).
const binsPerDecade = 10

// histogramBins returns the distribution of h in logarithmic bins, from
// the bin holding its smallest value to the one holding its largest; empty
// bins in between are kept, so the bins can be plotted as they are.
func histogramBins(h *hdrhistogram.Histogram) []HistogramBin {
	if h.TotalCount() == 0 {
		return nil
	}
	binOf := func(v int64) int {
		// The smallest k with bound(k) >= v.
		k := int(math.Ceil(math.Log10(float64(max(v, 1))) * binsPerDecade))
		for k > 0 && bound(k-1) >= float64(v) {
			k--
		}
		for bound(k) < float64(v) {
			k++
		}
		return k
	}
	// Each bucket by its lowest value: a latency of exactly a bin's bound
	// belongs in that bin ("at most UpToUS"), though its bucket reaches a
	// little past it. The bins run from the first bucket's to the last's.
	var bars []hdrhistogram.Bar
	for _, bar := range h.Distribution() {
		if bar.Count > 0 {
			bars = append(bars, bar)
		}
	}
	lo, hi := binOf(bars[0].From), binOf(bars[len(bars)-1].From)
	bins := make([]HistogramBin, hi-lo+1)
	for i := range bins {
		bins[i].UpToUS = bound(lo + i)
	}
	for _, bar := range bars {
		bins[binOf(bar.From)-lo].Count += bar.Count
	}
	return bins
}

// bound returns the upper bound in µs of logarithmic bin k, rounded to
// three significant figures so that reports read 1, 1.26, 1.58, 2, ...
func bound(k int) float64 {
	v := math.Pow(10, float64(k)/binsPerDecade)
	mag := math.Pow(10, math.Floor(math.Log10(v))-2)
	return math.Round(v/mag) * mag
}
