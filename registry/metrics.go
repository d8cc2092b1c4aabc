package registry

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/batching"
)

// FailureReason classifies a failed inference request for metrics.
type FailureReason uint8

// The failure reasons, as the "reason" label of
// infergate_inference_request_failure_total.
const (
	ReasonBadRequest FailureReason = iota
	ReasonOverloaded
	ReasonTimeout
	ReasonCanceled
	ReasonInternal
	// ReasonDisplaced is a queued request that gave its place to one of
	// higher priority (batching.ErrDisplaced).
	ReasonDisplaced
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonBadRequest: "bad_request",
	ReasonOverloaded: "overloaded",
	ReasonTimeout:    "timeout",
	ReasonCanceled:   "canceled",
	ReasonInternal:   "internal",
	ReasonDisplaced:  "displaced",
}

// String returns the reason's metric label.
func (r FailureReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// latencyBuckets are the upper bounds, in seconds, of the request duration
// histograms: fine below a millisecond, where a gateway should live.
var latencyBuckets = []float64{
	50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6,
	1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 7.5e-3,
	10e-3, 20e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10,
}

// VersionMetrics are the request metrics of one model version, named in
// the spirit of Triton's nv_inference_*. The gateway updates them; the
// registry creates them on first load and removes them on final unload.
type VersionMetrics struct {
	// Success counts requests answered with 2xx.
	Success *metrics.Counter
	// Failure counts failed requests by reason.
	Failure [numReasons]*metrics.Counter
	// Duration is the time from request decode to response encode.
	Duration *metrics.PrometheusHistogram
	// InferenceCount counts rows (the batch dimension) executed.
	InferenceCount *metrics.Counter
	// ExecCount counts model executions (batches).
	ExecCount *metrics.Counter
	// QueueDuration is each request's wait for its batch to start.
	QueueDuration *metrics.PrometheusHistogram
	// WakeDuration is, for each request that another goroutine ran, the
	// time from its answer to its caller running again.
	WakeDuration *metrics.PrometheusHistogram
	// ComputeDuration is each execution's time in the backend.
	ComputeDuration *metrics.PrometheusHistogram
	// BatchSize is the rows of each execution.
	BatchSize *metrics.PrometheusHistogram
	// SampledCompute and SampledCPU add up, over one backend run in 64
	// (see batching.CPUObserver), the run's time and the CPU time of the
	// thread that ran it. With one intra-op thread on a CPU, their
	// ratio is the share of ONNX Runtime's time that its thread had a CPU:
	// below 1 when the machine's CPUs were oversubscribed.
	SampledCompute, SampledCPU *metrics.FloatCounter
	// CacheHits and CacheMisses count response cache lookups;
	// CacheHitDuration is the whole time of requests answered by a hit.
	CacheHits, CacheMisses *metrics.Counter
	CacheHitDuration       *metrics.PrometheusHistogram

	// Total durations for the statistics extension (see Statistics),
	// which Prometheus histograms do not give back: of the requests
	// counted by Success, by Failure (those refused before they were
	// timed add nothing) and by CacheHits, in nanoseconds; and counts with
	// durations of the events no counter above counts per request.
	successNS, failNS, cacheHitNS, cacheMissNS atomic.Uint64
	queue, computeInfer                        durationStat
	// lastInference is when the last request for the version arrived,
	// in Unix milliseconds.
	lastInference atomic.Int64
	// batches maps the rows of an execution to its durationStat.
	batches sync.Map

	names []string
	// triton holds the series under Triton's names (addTritonSeries),
	// which writeTritonMetrics writes; nil without Config.TritonMetrics.
	triton []tritonSeries
}

// durationStat is a count of events and their total duration. The zero
// value is ready; it is safe for concurrent use.
type durationStat struct {
	count, ns atomic.Uint64
}

// add counts n events that took d in all.
func (s *durationStat) add(n int, d time.Duration) {
	s.count.Add(uint64(n))
	if d > 0 {
		s.ns.Add(uint64(d))
	}
}

// value returns the count and the total duration.
func (s *durationStat) value() StatValue {
	return StatValue{Count: s.count.Load(), NS: s.ns.Load()}
}

// newVersionMetrics creates the series of one version; inFlight reports
// the requests holding whichever object currently serves that version,
// queued its requests waiting for an instance and queueBound the most
// that may wait (max_queue).
func newVersionMetrics(set *metrics.Set, model, version string, inFlight, queued, queueBound func() float64) *VersionMetrics {
	m := &VersionMetrics{}
	labels := fmt.Sprintf(`model=%q,version=%q`, model, version)
	name := func(base, extra string) string {
		s := base + "{" + labels + extra + "}"
		m.names = append(m.names, s)
		return s
	}
	m.Success = set.GetOrCreateCounter(name("infergate_inference_request_success_total", ""))
	for r := FailureReason(0); r < numReasons; r++ {
		m.Failure[r] = set.GetOrCreateCounter(name("infergate_inference_request_failure_total", fmt.Sprintf(`,reason=%q`, r)))
	}
	m.Duration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_request_duration_seconds", ""), latencyBuckets)
	m.InferenceCount = set.GetOrCreateCounter(name("infergate_inference_count_total", ""))
	m.ExecCount = set.GetOrCreateCounter(name("infergate_inference_exec_count_total", ""))
	set.GetOrCreateGauge(name("infergate_inference_requests_in_flight", ""), inFlight)
	set.GetOrCreateGauge(name("infergate_inference_queue_requests", ""), queued)
	set.GetOrCreateGauge(name("infergate_inference_queue_max_requests", ""), queueBound)
	m.QueueDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_queue_duration_seconds", ""), latencyBuckets)
	m.WakeDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_wake_duration_seconds", ""), wakeBuckets)
	m.ComputeDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_compute_duration_seconds", ""), latencyBuckets)
	m.BatchSize = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_batch_size", ""), batchBuckets)
	m.SampledCompute = set.GetOrCreateFloatCounter(name("infergate_inference_compute_sampled_seconds_total", ""))
	m.SampledCPU = set.GetOrCreateFloatCounter(name("infergate_inference_compute_sampled_cpu_seconds_total", ""))
	m.CacheHits = set.GetOrCreateCounter(name("infergate_cache_hits_total", ""))
	m.CacheMisses = set.GetOrCreateCounter(name("infergate_cache_misses_total", ""))
	m.CacheHitDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_cache_hit_duration_seconds", ""), latencyBuckets)
	return m
}

// wakeBuckets are the upper bounds, in seconds, of the wake-up histogram:
// a goroutine the scheduler runs at once takes a microsecond or two, one
// queued behind a processor in cgo tens of them.
var wakeBuckets = []float64{
	1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 50e-3,
}

// loadBuckets are the upper bounds, in seconds, of the model load
// histogram: a small model loads in milliseconds, a large one in a minute.
var loadBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// batchBuckets are the upper bounds of the batch size histograms, in rows.
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

// Executed implements batching.Observer.
// Failed executions count in the compute time only: the request failures
// are counted by the gateway, per request.
func (m *VersionMetrics) Executed(rows, requests int, compute time.Duration, err error) {
	m.ComputeDuration.Update(compute.Seconds())
	if err != nil {
		return
	}
	m.ExecCount.Inc()
	m.InferenceCount.Add(rows)
	m.BatchSize.Update(float64(rows))
	// Each request of the batch waited for the whole execution.
	m.computeInfer.add(requests, time.Duration(requests)*compute)
	bs, ok := m.batches.Load(rows)
	if !ok {
		bs, _ = m.batches.LoadOrStore(rows, new(durationStat))
	}
	bs.(*durationStat).add(1, compute)
}

// Queued implements batching.Observer.
func (m *VersionMetrics) Queued(wait time.Duration) {
	m.QueueDuration.Update(wait.Seconds())
	m.queue.add(1, wait)
}

// Woken implements batching.Observer.
func (m *VersionMetrics) Woken(wait time.Duration) {
	m.WakeDuration.Update(wait.Seconds())
}

var _ batching.CPUObserver = (*VersionMetrics)(nil)

// OnCPU implements batching.CPUObserver.
func (m *VersionMetrics) OnCPU(compute, cpu time.Duration) {
	m.SampledCompute.Add(compute.Seconds())
	m.SampledCPU.Add(cpu.Seconds())
}

// Arrived records that a request for the version arrived at t.
func (m *VersionMetrics) Arrived(t time.Time) {
	// Written at most once a millisecond (a write on every request would
	// bounce the cache line between the cores that serve them), and never
	// back in time.
	ms := t.UnixMilli()
	for {
		old := m.lastInference.Load()
		if old >= ms || m.lastInference.CompareAndSwap(old, ms) {
			return
		}
	}
}

// Succeeded counts a request answered with 2xx after d.
func (m *VersionMetrics) Succeeded(d time.Duration) {
	m.Success.Inc()
	m.Duration.Update(d.Seconds())
	m.successNS.Add(uint64(max(d, 0)))
}

// CacheHit counts a request that the response cache answered, total after
// it arrived, of which lookup went into finding the entry and copying it
// into the response. In the statistics, as in Triton's, a hit also
// counts as a request queued for no time.
func (m *VersionMetrics) CacheHit(total, lookup time.Duration) {
	m.CacheHits.Inc()
	m.CacheHitDuration.Update(total.Seconds())
	m.cacheHitNS.Add(uint64(max(lookup, 0)))
	m.queue.add(1, 0)
}

// CacheMiss counts a request that the response cache could not answer;
// d is the time spent looking it up and storing its outputs.
func (m *VersionMetrics) CacheMiss(d time.Duration) {
	m.CacheMisses.Inc()
	m.cacheMissNS.Add(uint64(max(d, 0)))
}

// Failed counts a request that failed for reason after d.
func (m *VersionMetrics) Failed(reason FailureReason, d time.Duration) {
	m.Failure[reason].Inc()
	m.failNS.Add(uint64(max(d, 0)))
}

// Statistics is what GET /v2/models/{m}/stats reports of a version: its
// activity since its series were created (when it was first loaded on
// this node; reloads with a new configuration keep them).
type Statistics struct {
	// LastInference is when the last request arrived, in Unix
	// milliseconds; 0 before the first.
	LastInference int64
	// InferenceCount is the rows executed, ExecutionCount the executions
	// (batches); neither counts cache hits.
	InferenceCount, ExecutionCount uint64
	// Success counts requests answered with 2xx, cache hits included, and
	// their whole time in the gateway; Fail the failed ones, those refused
	// for too many in flight included (with no time).
	Success, Fail StatValue
	// Queue counts requests that went through the batcher, and their wait
	// for an instance, and cache hits, which waited for none.
	Queue StatValue
	// ComputeInfer counts requests that went through the backend and the
	// time of the executions they were part of (inputs gathered into the
	// batch, the run, outputs taken out of it).
	ComputeInfer StatValue
	// CacheHit counts the requests the response cache answered and the
	// time spent finding their entries and copying them into the
	// responses.
	CacheHit StatValue
	// CacheMiss counts the requests the response cache looked up and
	// could not answer, and the time spent looking them up and storing
	// their outputs.
	CacheMiss StatValue
	// Batches are the executions by rows, in ascending order.
	Batches []BatchStat
}

// StatValue is a count of events and their total duration in
// nanoseconds.
type StatValue struct{ Count, NS uint64 }

// BatchStat is the executions of one size: their count and total time.
type BatchStat struct {
	Rows int
	StatValue
}

// Statistics returns the version's statistics now. The counters are read
// one after the other, not as one snapshot.
func (m *VersionMetrics) Statistics() Statistics {
	var failed uint64
	for _, c := range m.Failure {
		failed += c.Get()
	}
	st := Statistics{
		LastInference:  m.lastInference.Load(),
		InferenceCount: m.InferenceCount.Get(),
		ExecutionCount: m.ExecCount.Get(),
		Success:        StatValue{Count: m.Success.Get(), NS: m.successNS.Load()},
		Fail:           StatValue{Count: failed, NS: m.failNS.Load()},
		Queue:          m.queue.value(),
		ComputeInfer:   m.computeInfer.value(),
		CacheHit:       StatValue{Count: m.CacheHits.Get(), NS: m.cacheHitNS.Load()},
		CacheMiss:      StatValue{Count: m.CacheMisses.Get(), NS: m.cacheMissNS.Load()},
	}
	m.batches.Range(func(k, v any) bool {
		st.Batches = append(st.Batches, BatchStat{Rows: k.(int), StatValue: v.(*durationStat).value()})
		return true
	})
	sort.Slice(st.Batches, func(i, j int) bool { return st.Batches[i].Rows < st.Batches[j].Rows })
	return st
}

func (m *VersionMetrics) unregister(set *metrics.Set) {
	for _, n := range m.names {
		set.UnregisterMetric(n)
	}
}
