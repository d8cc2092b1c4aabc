package registry

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

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

// tritonFamilies are the families of Triton's series that infergate
// exports, in the order /metrics writes them, with their Prometheus types
// as Triton gives them: counters but for the pending requests, a gauge.
// Tools that convert by type (an OpenTelemetry collector turning counters
// into monotonic sums) read them as they read Triton's.
var tritonFamilies = []struct{ name, typ string }{
	{"nv_inference_request_success", "counter"},
	{"nv_inference_request_failure", "counter"},
	{"nv_inference_count", "counter"},
	{"nv_inference_exec_count", "counter"},
	{"nv_inference_pending_request_count", "gauge"},
	{"nv_inference_request_duration_us", "counter"},
	{"nv_inference_queue_duration_us", "counter"},
	{"nv_inference_compute_infer_duration_us", "counter"},
	{"nv_cache_num_hits_per_model", "counter"},
	{"nv_cache_num_misses_per_model", "counter"},
	{"nv_cache_hit_duration_per_model", "counter"},
	{"nv_cache_miss_duration_per_model", "counter"},
}

// tritonSeries is one series under Triton's names: its family, its
// labels, and its value, read when /metrics is scraped.
type tritonSeries struct {
	family, labels string
	value          func() float64
}

// addTritonSeries gives a version whose series m holds the series that
// Triton's dashboards read, under Triton's names and labels: cumulative
// counts and microseconds (nv_inference_*, nv_cache_*). Each is computed
// from m's own counters when /metrics is scraped (writeTritonMetrics), so
// they cost the request path nothing. pending reports the requests
// waiting in the version's queue. Triton's compute_input and
// compute_output durations have no counterpart (infergate times
// gathering, the run and scattering as one) and are left out.
func (m *VersionMetrics) addTritonSeries(labels string, pending func() float64) {
	add := func(family, extra string, f func() float64) {
		m.triton = append(m.triton, tritonSeries{family: family, labels: labels + extra, value: f})
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

// writeTritonMetrics writes the Triton series of every version that has
// metrics now, family by family, each with its TYPE line where /metrics
// carries them (metrics.ExposeMetadata). The repository registers it on
// its metrics set when Config.TritonMetrics is on.
func (r *Repository) writeTritonMetrics(w io.Writer) {
	r.mu.Lock()
	var all []tritonSeries
	for _, e := range r.vmetrics {
		all = append(all, e.vm.triton...)
	}
	r.mu.Unlock()
	// Read outside the lock: a value may look the version up.
	slices.SortFunc(all, func(a, b tritonSeries) int { return strings.Compare(a.labels, b.labels) })
	var b bytes.Buffer
	for _, f := range tritonFamilies {
		first := true
		for _, s := range all {
			if s.family != f.name {
				continue
			}
			if first {
				first = false
				metrics.WriteMetadataIfNeeded(&b, f.name, f.typ)
			}
			fmt.Fprintf(&b, "%s{%s} %s\n", f.name, s.labels, strconv.FormatFloat(s.value(), 'g', -1, 64))
		}
	}
	w.Write(b.Bytes())
}
