package registry

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// tritonReasons maps infergate's failure reasons onto the reason label of
// Triton's nv_inference_request_failure: a request the server turned away
// (overloaded, timed out in the queue, displaced) is REJECTED, one the
// model failed on BACKEND, one the client gave up on CANCELED, and a bad
// request OTHER.
var tritonReasons = [numReasons]string{
	ReasonBadRequest: "OTHER",
	ReasonOverloaded: "REJECTED",
	ReasonTimeout:    "REJECTED",
	ReasonCanceled:   "CANCELED",
	ReasonInternal:   "BACKEND",
	ReasonDisplaced:  "REJECTED",
}

// registerTritonMetrics adds, for a version whose series m holds, the
// series that Triton's dashboards read, under Triton's names and labels:
// cumulative counts and microseconds (nv_inference_*, nv_cache_*). Each is
// computed from m's own counters when /metrics is scraped, so they cost
// the request path nothing. pending reports the requests waiting in the
// version's queue. Triton's compute_input and compute_output durations
// have no counterpart (infergate times gathering, the run and scattering
// as one) and are left out.
func (m *VersionMetrics) registerTritonMetrics(set *metrics.Set, labels string, pending func() float64) {
	add := func(base, extra string, f func() float64) {
		name := base + "{" + labels + extra + "}"
		m.names = append(m.names, name)
		set.GetOrCreateGauge(name, f)
	}
	count := func(c *metrics.Counter) func() float64 {
		return func() float64 { return float64(c.Get()) }
	}
	us := func(ns ...func() uint64) func() float64 {
		return func() float64 {
			var sum uint64
			for _, f := range ns {
				sum += f()
			}
			return float64(sum / 1000)
		}
	}
	add("nv_inference_request_success", "", count(m.Success))
	seen := map[string]bool{}
	for _, reason := range tritonReasons {
		if seen[reason] {
			continue
		}
		seen[reason] = true
		add("nv_inference_request_failure", fmt.Sprintf(`,reason=%q`, reason), func() float64 {
			var n uint64
			for r, tr := range tritonReasons {
				if tr == reason {
					n += m.Failure[r].Get()
				}
			}
			return float64(n)
		})
	}
	add("nv_inference_count", "", count(m.InferenceCount))
	add("nv_inference_exec_count", "", count(m.ExecCount))
	add("nv_inference_pending_request_count", "", pending)
	add("nv_inference_request_duration_us", "", us(m.successNS.Load, m.failNS.Load))
	add("nv_inference_queue_duration_us", "", us(m.queue.ns.Load))
	add("nv_inference_compute_infer_duration_us", "", us(m.computeInfer.ns.Load))
	add("nv_cache_num_hits_per_model", "", count(m.CacheHits))
	add("nv_cache_num_misses_per_model", "", count(m.CacheMisses))
	add("nv_cache_hit_duration_per_model", "", us(m.cacheHitNS.Load))
	add("nv_cache_miss_duration_per_model", "", us(m.cacheMissNS.Load))
}
