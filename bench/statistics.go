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
// /metrics. Every version of the model counts that is in both readings.
type statsDelta struct {
	before, after *oip.ModelStatistics
}

// counters are what the figures come from, for one version or summed.
type counters struct {
	rows, execs         uint64
	queueN, queueNS     uint64
	computeN, computeNS uint64 // per execution: input, infer and output
	cacheHits           uint64
	bySize              map[int]uint64 // executions by batch size
	nsBySize            map[int]uint64 // their compute time, ns
}

func versionCounters(ms *oip.ModelStat) counters {
	is := &ms.InferenceStats
	c := counters{
		rows: ms.InferenceCount, execs: ms.ExecutionCount,
		queueN: is.Queue.Count, queueNS: is.Queue.NS,
		cacheHits: is.CacheHit.Count,
		bySize:    map[int]uint64{},
		nsBySize:  map[int]uint64{},
	}
	for _, b := range ms.BatchStats {
		ns := b.ComputeInput.NS + b.ComputeInfer.NS + b.ComputeOutput.NS
		c.computeN += b.ComputeInfer.Count
		c.computeNS += ns
		c.bySize[b.BatchSize] += b.ComputeInfer.Count
		c.nsBySize[b.BatchSize] += ns
	}
	return c
}

// fields lists c's counters, for sub and the reset check.
func (c *counters) fields() []*uint64 {
	return []*uint64{&c.rows, &c.execs, &c.queueN, &c.queueNS, &c.computeN, &c.computeNS, &c.cacheHits}
}

// sub returns what c gained since b. When any counter went down, the
// version was loaded again in between, and all of c is new.
func (c counters) sub(b counters) counters {
	reset := false
	bf := b.fields()
	for i, f := range c.fields() {
		reset = reset || *f < *bf[i]
	}
	for size, n := range c.bySize {
		reset = reset || n < b.bySize[size] || c.nsBySize[size] < b.nsBySize[size]
	}
	if reset {
		return c
	}
	d := counters{bySize: map[int]uint64{}, nsBySize: map[int]uint64{}}
	df := d.fields()
	for i, f := range c.fields() {
		*df[i] = *f - *bf[i]
	}
	for size, n := range c.bySize {
		if n > b.bySize[size] {
			d.bySize[size] = n - b.bySize[size]
			d.nsBySize[size] = c.nsBySize[size] - b.nsBySize[size]
		}
	}
	return d
}

// add adds o to c.
func (c *counters) add(o counters) {
	of := o.fields()
	for i, f := range c.fields() {
		*f += *of[i]
	}
	for size, n := range o.bySize {
		c.bySize[size] += n
	}
	for size, ns := range o.nsBySize {
		c.nsBySize[size] += ns
	}
}

// grown returns the growth of every version in both readings, summed. A
// version loaded or unloaded during the step is left out: its counts
// cannot be split at the window.
func (d statsDelta) grown() counters {
	before := map[[2]string]counters{}
	for i := range d.before.ModelStats {
		ms := &d.before.ModelStats[i]
		before[[2]string{ms.Name, ms.Version}] = versionCounters(ms)
	}
	sum := counters{bySize: map[int]uint64{}, nsBySize: map[int]uint64{}}
	for i := range d.after.ModelStats {
		ms := &d.after.ModelStats[i]
		if b, ok := before[[2]string{ms.Name, ms.Version}]; ok {
			sum.add(versionCounters(ms).sub(b))
		}
	}
	return sum
}

// stats returns the step's server figures. The queue figure leaves cache
// hits out, which the extension counts as queued for no time, to match
// what infergate's /metrics gives.
func (d statsDelta) stats() *ServerStats {
	g := d.grown()
	st := &ServerStats{From: ServerStatsFromStatistics}
	if g.execs > 0 {
		st.AvgBatch = round3(float64(g.rows) / float64(g.execs))
	}
	if n := g.queueN - min(g.cacheHits, g.queueN); n > 0 {
		st.QueueUSAvg = round1(float64(g.queueNS) / float64(n) / 1e3)
	}
	if g.computeN > 0 {
		st.ComputeUSAvg = round1(float64(g.computeNS) / float64(g.computeN) / 1e3)
	}
	st.CacheHits = float64(g.cacheHits)
	return st
}

// batchBins returns the executions of bySize as the report's batch-size
// distribution, one bin per size that ran.
func batchBins(bySize []SizeCompute) []BatchBin {
	out := make([]BatchBin, len(bySize))
	for i, s := range bySize {
		out[i] = BatchBin{Size: float64(s.Size), Count: float64(s.Count)}
	}
	return out
}

// computeBySize returns the executions of the step by batch size with
// their compute time.
func (d statsDelta) computeBySize() []SizeCompute {
	g := d.grown()
	var out []SizeCompute
	for _, size := range slices.Sorted(maps.Keys(g.bySize)) {
		if n := g.bySize[size]; n > 0 {
			out = append(out, SizeCompute{Size: size, Count: n, ComputeUS: round1(float64(g.nsBySize[size]) / 1e3)})
		}
	}
	return out
}
