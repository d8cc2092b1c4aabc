package bench

import (
	"math"
	"testing"
	"time"
)

func TestScheduleConstant(t *testing.T) {
	f := func(rate float64) {
		t.Helper()
		s := newSchedule(rate, false, 1)
		interval := float64(time.Second) / rate
		const n = 10_000
		var last time.Duration
		for i := range n {
			at := s.next()
			if want := time.Duration(float64(i) * interval); at != want {
				t.Fatalf("rate %g: offset %d is %s; want %s", rate, i, at, want)
			}
			last = at
		}
		if mean := float64(last) / (n - 1); math.Abs(mean-interval)/interval > 1e-6 {
			t.Fatalf("rate %g: mean interval %.1fns; want %.1fns", rate, mean, interval)
		}
	}
	f(1)
	f(1000)
	f(2000)
	f(3333)
	f(1e6)
}

func TestSchedulePoisson(t *testing.T) {
	f := func(rate float64, seed uint64) {
		t.Helper()
		s := newSchedule(rate, true, seed)
		interval := float64(time.Second) / rate
		const n = 10_000
		if at := s.next(); at != 0 {
			t.Fatalf("first offset %s; want 0", at)
		}
		prev := time.Duration(0)
		var sum, sumSq float64
		for range n {
			at := s.next()
			gap := float64(at - prev)
			if gap < 0 {
				t.Fatalf("offsets go back: %s after %s", at, prev)
			}
			sum += gap
			sumSq += gap * gap
			prev = at
		}
		mean := sum / n
		std := math.Sqrt(sumSq/n - mean*mean)
		if math.Abs(mean-interval)/interval > 0.03 {
			t.Fatalf("rate %g seed %d: mean gap %.0fns; want %.0fns within 3%%", rate, seed, mean, interval)
		}
		// Exponential gaps: the standard deviation equals the mean.
		if math.Abs(std-mean)/mean > 0.05 {
			t.Fatalf("rate %g seed %d: gap std %.0fns, mean %.0fns; want equal within 5%% (exponential)", rate, seed, std, mean)
		}
	}
	f(1000, 1)
	f(1000, 2)
	f(2000, 3)
	f(50_000, 4)
}
