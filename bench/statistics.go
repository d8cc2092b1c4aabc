package bench

import (
	"maps"
	"slices"

	"github.com/infergate/infergate/oip"
)

// statsDelta gives a step's server figures from two readings of the
// statistics extension (GET /v2/models/{m}/stats) taken around its
// measured window. The bench reads them only from a server whose /metrics
// has none of infergate's series: Triton, whose metrics live on another
// port under other names, or an infergate behind a proxy that hides
// /metrics. Every version of the model counts.
type statsDelta struct {
	before, after *oip.ModelStatistics
}

// counters are the totals of one reading that the figures come from.
type counters struct {
	rows, execs         uint64
	queueN, queueNS     uint64
	computeN, computeNS uint64 // per execution: input, infer and output
	cacheHits           uint64
	bySize              map[int]uint64 // executions by batch size
}

func readCounters(st *oip.ModelStatistics) counters {
	c := counters{bySize: map[int]uint64{}}
	for _, ms := range st.ModelStats {
		c.rows += ms.InferenceCount
		c.execs += ms.ExecutionCount
		c.queueN += ms.InferenceStats.Queue.Count
		c.queueNS += ms.InferenceStats.Queue.NS
		c.cacheHits += ms.InferenceStats.CacheHit.Count
		for _, b := range ms.BatchStats {
			c.computeN += b.ComputeInfer.Count
			c.computeNS += b.ComputeInput.NS + b.ComputeInfer.NS + b.ComputeOutput.NS
			c.bySize[b.BatchSize] += b.ComputeInfer.Count
		}
	}
	return c
}

// grew returns how much a counter grew from b to a; one that went down
// was reset (the model was unloaded and loaded again), and a is the
// growth since.
func grew(a, b uint64) float64 {
	if a < b {
		return float64(a)
	}
	return float64(a - b)
}

// stats returns the step's server figures.
func (d statsDelta) stats() *ServerStats {
	a, b := readCounters(d.after), readCounters(d.before)
	st := &ServerStats{From: ServerStatsFromStatistics}
	if execs := grew(a.execs, b.execs); execs > 0 {
		st.AvgBatch = round3(grew(a.rows, b.rows) / execs)
	}
	if n := grew(a.queueN, b.queueN); n > 0 {
		st.QueueUSAvg = round1(grew(a.queueNS, b.queueNS) / n / 1e3)
	}
	if n := grew(a.computeN, b.computeN); n > 0 {
		st.ComputeUSAvg = round1(grew(a.computeNS, b.computeNS) / n / 1e3)
	}
	st.CacheHits = grew(a.cacheHits, b.cacheHits)
	return st
}

// batches returns the executions of the step by batch size, one bin per
// size that ran.
func (d statsDelta) batches() []BatchBin {
	a, b := readCounters(d.after), readCounters(d.before)
	var out []BatchBin
	for _, size := range slices.Sorted(maps.Keys(a.bySize)) {
		if n := grew(a.bySize[size], b.bySize[size]); n > 0 {
			out = append(out, BatchBin{Size: float64(size), Count: n})
		}
	}
	return out
}
