package bench

import (
	"math/rand/v2"
	"time"
)

// schedule yields the intended send times of an open-loop step as offsets
// from its start: evenly spaced at the rate, or with exponentially
// distributed gaps of the same mean (a Poisson process, --poisson). The
// offsets are absolute, so a late sender never shifts the times that
// follow: falling behind shows as latency, not as a lower rate.
//
// A schedule is used by one goroutine (the pacer).
type schedule struct {
	interval float64 // mean gap in nanoseconds
	poisson  bool
	rng      *rand.Rand
	n        int64   // offsets returned so far
	at       float64 // the last offset in nanoseconds (Poisson)
}

// newSchedule returns the schedule of rate requests per second; seed
// fixes the Poisson gaps.
func newSchedule(rate float64, poisson bool, seed uint64) *schedule {
	return &schedule{
		interval: float64(time.Second) / rate,
		poisson:  poisson,
		rng:      rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}
}

// next returns the offset of the next request from the start of the step.
// The first request is due at once.
func (s *schedule) next() time.Duration {
	var at float64
	switch {
	case s.n == 0:
	case s.poisson:
		s.at += s.rng.ExpFloat64() * s.interval
		at = s.at
	default:
		// Multiply rather than add, so rounding does not accumulate.
		at = float64(s.n) * s.interval
	}
	s.n++
	return time.Duration(at)
}
