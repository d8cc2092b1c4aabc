package registry

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
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
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonBadRequest: "bad_request",
	ReasonOverloaded: "overloaded",
	ReasonTimeout:    "timeout",
	ReasonCanceled:   "canceled",
	ReasonInternal:   "internal",
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
	// ComputeDuration is each execution's time in the backend.
	ComputeDuration *metrics.PrometheusHistogram
	// BatchSize is the rows of each execution.
	BatchSize *metrics.PrometheusHistogram
	// CacheHits and CacheMisses count response cache lookups;
	// CacheHitDuration is the whole time of requests answered by a hit.
	CacheHits, CacheMisses *metrics.Counter
	CacheHitDuration       *metrics.PrometheusHistogram

	names []string
}

// newVersionMetrics creates the series of one version; inFlight reports
// the requests holding whichever object currently serves that version.
func newVersionMetrics(set *metrics.Set, model, version string, inFlight func() float64) *VersionMetrics {
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
	m.QueueDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_queue_duration_seconds", ""), latencyBuckets)
	m.ComputeDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_compute_duration_seconds", ""), latencyBuckets)
	m.BatchSize = set.GetOrCreatePrometheusHistogramExt(name("infergate_inference_batch_size", ""), batchBuckets)
	m.CacheHits = set.GetOrCreateCounter(name("infergate_cache_hits_total", ""))
	m.CacheMisses = set.GetOrCreateCounter(name("infergate_cache_misses_total", ""))
	m.CacheHitDuration = set.GetOrCreatePrometheusHistogramExt(name("infergate_cache_hit_duration_seconds", ""), latencyBuckets)
	return m
}

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
}

// Queued implements batching.Observer.
func (m *VersionMetrics) Queued(wait time.Duration) {
	m.QueueDuration.Update(wait.Seconds())
}

func (m *VersionMetrics) unregister(set *metrics.Set) {
	for _, n := range m.names {
		set.UnregisterMetric(n)
	}
}
