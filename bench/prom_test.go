package bench

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	f := func(text string, want []Sample) {
		t.Helper()
		got, err := ParseMetrics([]byte(text))
		if err != nil {
			t.Fatalf("ParseMetrics(%q): %s", text, err)
		}
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseMetrics(%q)\ngot  %+v\nwant %+v", text, got, want)
		}
	}
	f("", nil)
	f("# HELP x help\n# TYPE x counter\n\n", nil)
	f("x 1", []Sample{{Name: "x", Value: 1}})
	f("x_total 12.5\n", []Sample{{Name: "x_total", Value: 12.5}})
	f("  x 1 1700000000000\r\n", []Sample{{Name: "x", Value: 1}})
	f("ns:x_y 3e-3", []Sample{{Name: "ns:x_y", Value: 0.003}})
	f(`a{model="ctr",version="1"} 7`, []Sample{{Name: "a", Labels: []Label{{"model", "ctr"}, {"version", "1"}}, Value: 7}})
	f(`a{ model = "ctr" , } 7`, []Sample{{Name: "a", Labels: []Label{{"model", "ctr"}}, Value: 7}})
	f(`a{} 7`, []Sample{{Name: "a", Value: 7}})
	f(`a{l="q\"u\\o\nte, }"} 1`, []Sample{{Name: "a", Labels: []Label{{"l", "q\"u\\o\nte, }"}}, Value: 1}})
	f(`h_bucket{le="+Inf"} 3`, []Sample{{Name: "h_bucket", Labels: []Label{{"le", "+Inf"}}, Value: 3}})
	f("a +Inf\nb -Inf", []Sample{{Name: "a", Value: math.Inf(1)}, {Name: "b", Value: math.Inf(-1)}})

	// NaN never equals itself.
	got, err := ParseMetrics([]byte("a NaN"))
	if err != nil || len(got) != 1 || !math.IsNaN(got[0].Value) {
		t.Fatalf("NaN: %v %v", got, err)
	}

	bad := func(text, wantErr string) {
		t.Helper()
		_, err := ParseMetrics([]byte(text))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ParseMetrics(%q): error %v; want one containing %q", text, err, wantErr)
		}
	}
	bad("x", "want a value")
	bad("x y", "not a number")
	bad("x 1 2 3", "want a value")
	bad("x 1 abc", "timestamp")
	bad(`x{a="b" 1`, "want ',' or '}'")
	bad(`x{a=b} 1`, "not quoted")
	bad(`x{a="b} 1`, "unterminated")
	bad(`x{1a="b"} 1`, "bad label name")
	bad(`x{a} 1`, "no '='")
	bad("1x 1", "no metric name")
	bad("ok 1\nx{", "line 2")
}

// gatewayMetrics is /metrics of a gateway serving ctr (two versions) and
// ranker, before and after a step on ctr.
const metricsBefore = `# TYPE infergate_inference_count_total counter
infergate_inference_count_total{model="ctr",version="1"} 100
infergate_inference_count_total{model="ctr",version="2"} 50
infergate_inference_count_total{model="ranker",version="1"} 9999
infergate_inference_exec_count_total{model="ctr",version="1"} 100
infergate_inference_exec_count_total{model="ctr",version="2"} 50
infergate_inference_exec_count_total{model="ranker",version="1"} 10
infergate_inference_queue_duration_seconds_sum{model="ctr",version="1"} 1
infergate_inference_queue_duration_seconds_count{model="ctr",version="1"} 100
infergate_inference_compute_duration_seconds_sum{model="ctr",version="1"} 2
infergate_inference_compute_duration_seconds_count{model="ctr",version="1"} 100
infergate_inference_wake_duration_seconds_sum{model="ctr",version="1"} 0.5
infergate_inference_wake_duration_seconds_count{model="ctr",version="1"} 100
infergate_inference_compute_sampled_seconds_total{model="ctr",version="1"} 0.2
infergate_inference_compute_sampled_cpu_seconds_total{model="ctr",version="1"} 0.1
infergate_inference_compute_sampled_seconds_total{model="ranker",version="1"} 5
infergate_inference_compute_sampled_cpu_seconds_total{model="ranker",version="1"} 1
infergate_inference_request_failure_total{model="ctr",version="1",reason="overloaded"} 5
infergate_inference_request_failure_total{model="ctr",version="1",reason="bad_request"} 7
infergate_cache_hits_total 10
infergate_cache_misses_total 20
infergate_inference_batch_size_bucket{model="ctr",version="1",le="1"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="2"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="4"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="+Inf"} 100
infergate_inference_batch_size_bucket{model="ranker",version="1",le="1"} 10
`

const metricsAfter = `infergate_inference_count_total{model="ctr",version="1"} 1100
infergate_inference_count_total{model="ctr",version="2"} 50
infergate_inference_count_total{model="ranker",version="1"} 20000
infergate_inference_exec_count_total{model="ctr",version="1"} 350
infergate_inference_exec_count_total{model="ctr",version="2"} 50
infergate_inference_exec_count_total{model="ranker",version="1"} 20
infergate_inference_queue_duration_seconds_sum{model="ctr",version="1"} 1.05
infergate_inference_queue_duration_seconds_count{model="ctr",version="1"} 350
infergate_inference_compute_duration_seconds_sum{model="ctr",version="1"} 2.1
infergate_inference_compute_duration_seconds_count{model="ctr",version="1"} 150
infergate_inference_wake_duration_seconds_sum{model="ctr",version="1"} 0.508
infergate_inference_wake_duration_seconds_count{model="ctr",version="1"} 300
infergate_inference_compute_sampled_seconds_total{model="ctr",version="1"} 0.21
infergate_inference_compute_sampled_cpu_seconds_total{model="ctr",version="1"} 0.1075
infergate_inference_compute_sampled_seconds_total{model="ranker",version="1"} 6
infergate_inference_compute_sampled_cpu_seconds_total{model="ranker",version="1"} 2
infergate_inference_request_failure_total{model="ctr",version="1",reason="overloaded"} 8
infergate_inference_request_failure_total{model="ctr",version="1",reason="bad_request"} 70
infergate_cache_hits_total 15
infergate_cache_misses_total 1020
infergate_inference_batch_size_bucket{model="ctr",version="1",le="1"} 150
infergate_inference_batch_size_bucket{model="ctr",version="1",le="2"} 200
infergate_inference_batch_size_bucket{model="ctr",version="1",le="4"} 350
infergate_inference_batch_size_bucket{model="ctr",version="1",le="+Inf"} 350
infergate_inference_batch_size_bucket{model="ranker",version="1",le="1"} 20
`

func TestServerStats(t *testing.T) {
	before, err := ParseMetrics([]byte(metricsBefore))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseMetrics([]byte(metricsAfter))
	if err != nil {
		t.Fatal(err)
	}
	d := &scrapeDelta{before: before, after: after, model: "ctr"}
	got := d.stats()
	want := &ServerStats{
		AvgBatch:     4,    // 1000 rows / 250 executions
		QueueUSAvg:   200,  // 0.05 s / 250
		ComputeUSAvg: 2000, // 0.1 s / 50
		WakeUSAvg:    40,   // 0.008 s / 200
		ComputeOnCPU: 0.75, // 0.0075 s of CPU / 0.01 s sampled
		CacheHits:    5,    // node-wide: no model label
		CacheMisses:  1000, //
		Rejected:     3,    // reason="overloaded" only
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\ngot  %+v\nwant %+v", got, want)
	}
	wantBins := []BatchBin{{Size: 1, Count: 50}, {Size: 2, Count: 50}, {Size: 4, Count: 150}}
	if bins := d.batches(); !reflect.DeepEqual(bins, wantBins) {
		t.Fatalf("batches %+v; want %+v", bins, wantBins)
	}

	// A reloaded model restarts its counters: the value after is the growth.
	reset := &scrapeDelta{before: after, after: before, model: "ctr"}
	if s := reset.stats(); s.AvgBatch != 1 {
		t.Fatalf("after a reset: avg batch %g; want 150/150 = 1", s.AvgBatch)
	}
	// No queue/compute metrics yet (an older gateway): zero, not NaN.
	old := &scrapeDelta{before: before[:6], after: after[:6], model: "ranker"}
	if s := old.stats(); s.QueueUSAvg != 0 || s.ComputeUSAvg != 0 || s.AvgBatch != 1000.1 { // 10001 rows / 10 executions
		t.Fatalf("old gateway: %+v", s)
	}
	// A target without the gateway's metrics has no server figures.
	other, _ := ParseMetrics([]byte("go_goroutines 7\n"))
	if s := (&scrapeDelta{before: other, after: other, model: "ctr"}).stats(); s != nil {
		t.Fatalf("stats of a non-infergate target: %+v; want nil", s)
	}

	// A gauge whose name ends in _count (serve --triton-metrics) going
	// down is no reset: the step's figures stay its growth.
	pending := func(samples []Sample, v float64) []Sample {
		return append(slices.Clone(samples), Sample{Name: "nv_inference_pending_request_count", Labels: []Label{{"model", "ctr"}, {"version", "1"}}, Value: v})
	}
	triton := &scrapeDelta{before: pending(before, 12), after: pending(after, 0), model: "ctr"}
	if s := triton.stats(); !reflect.DeepEqual(s, want) {
		t.Fatalf("with Triton's pending-request gauge falling from 12 to 0:\ngot  %+v\nwant %+v", s, want)
	}

	vm := `infergate_inference_batch_size_bucket{model="ctr",version="1",vmrange="1.000e+00...1.000e+00"} 3
infergate_inference_batch_size_bucket{model="ctr",version="1",vmrange="3.594e+00...4.000e+00"} 2
`
	vmAfter, _ := ParseMetrics([]byte(vm))
	bins := (&scrapeDelta{after: vmAfter, model: "ctr"}).batches()
	if !reflect.DeepEqual(bins, []BatchBin{{Size: 1, Count: 3}, {Size: 4, Count: 2}}) {
		t.Fatalf("vmrange batches %+v", bins)
	}
}
