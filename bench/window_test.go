package bench

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infergate/infergate/oip"
)

// A model served by two versions, one of which was reloaded during the
// step (its series made again) while the other kept growing: each series
// counts from its own value before, as the statistics extension's path
// counts each version.
func TestDeltaPerSeries(t *testing.T) {
	before, err := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 6400
infergate_inference_count_total{model="ctr",version="2"} 6400
infergate_inference_exec_count_total{model="ctr",version="1"} 100
infergate_inference_exec_count_total{model="ctr",version="2"} 200
`))
	if err != nil {
		t.Fatal(err)
	}
	// v1 was reloaded: it restarted at 0 and ran 10 batches of 32 rows;
	// v2 ran 100 batches of 32 rows.
	after, err := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 320
infergate_inference_count_total{model="ctr",version="2"} 9600
infergate_inference_exec_count_total{model="ctr",version="1"} 10
infergate_inference_exec_count_total{model="ctr",version="2"} 300
`))
	if err != nil {
		t.Fatal(err)
	}
	d := &scrapeDelta{before: before, after: after, model: "ctr"}
	if got, want := d.delta(metricRows), 320.0+3200; got != want {
		t.Errorf("rows delta %g; want %g (v1 320 since its reset + v2 3200)", got, want)
	}
	if got, want := d.delta(metricExecs), 10.0+100; got != want {
		t.Errorf("execs delta %g; want %g", got, want)
	}
	st := d.stats()
	if st.AvgBatch != 32 {
		t.Errorf("/metrics path: avg batch %g; want 32 (every batch had 32 rows)", st.AvgBatch)
	}

	// The same counters through the statistics extension: per-version
	// reset detection gives 32.
	ms := func(v string, rows, execs uint64) oip.ModelStat {
		return oip.ModelStat{Name: "ctr", Version: v, InferenceCount: rows, ExecutionCount: execs}
	}
	sd := statsDelta{
		before: &oip.ModelStatistics{ModelStats: []oip.ModelStat{ms("1", 6400, 100), ms("2", 6400, 200)}},
		after:  &oip.ModelStatistics{ModelStats: []oip.ModelStat{ms("1", 320, 10), ms("2", 9600, 300)}},
	}
	if got := sd.stats().AvgBatch; got != 32 {
		t.Fatalf("statistics path: avg batch %g; want 32", got)
	}
}

// After a reload that made the version's series again, the batch-size
// distribution is that of the executions since, as are the statistics.
func TestBatchesAfterReset(t *testing.T) {
	before, _ := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 100
infergate_inference_exec_count_total{model="ctr",version="1"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="1"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="2"} 100
infergate_inference_batch_size_bucket{model="ctr",version="1",le="+Inf"} 100
`))
	after, _ := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 90
infergate_inference_exec_count_total{model="ctr",version="1"} 80
infergate_inference_batch_size_bucket{model="ctr",version="1",le="1"} 50
infergate_inference_batch_size_bucket{model="ctr",version="1",le="2"} 80
infergate_inference_batch_size_bucket{model="ctr",version="1",le="+Inf"} 80
`))
	d := &scrapeDelta{before: before, after: after, model: "ctr"}
	if st := d.stats(); st.AvgBatch != 1.125 {
		t.Fatalf("stats after a reset: avg batch %g; want 90/80", st.AvgBatch)
	}
	want := []BatchBin{{Size: 1, Count: 50}, {Size: 2, Count: 30}}
	if got := d.batches(); !reflect.DeepEqual(got, want) {
		t.Errorf("batches after a reset: %+v; want %+v (the 80 executions since the reset)", got, want)
	}
}

// A reload is decided for the version, not counter by counter: its rows
// climbed past their old value (110 > 100) while its executions did not
// (80 < 100), and both count from zero (1.375 rows a batch, not 10/80).
func TestResetPerVersion(t *testing.T) {
	before, _ := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 100
infergate_inference_exec_count_total{model="ctr",version="1"} 100
`))
	after, _ := ParseMetrics([]byte(`infergate_inference_count_total{model="ctr",version="1"} 110
infergate_inference_exec_count_total{model="ctr",version="1"} 80
`))
	d := &scrapeDelta{before: before, after: after, model: "ctr"}
	if st := d.stats(); st.AvgBatch != 1.375 {
		t.Errorf("/metrics path after a reset: avg batch %g; want 110/80 = 1.375", st.AvgBatch)
	}
	ms := func(rows, execs uint64) *oip.ModelStatistics {
		return &oip.ModelStatistics{ModelStats: []oip.ModelStat{{Name: "ctr", Version: "1", InferenceCount: rows, ExecutionCount: execs}}}
	}
	if got := (statsDelta{before: ms(100, 100), after: ms(110, 80)}).stats().AvgBatch; got != 1.375 {
		t.Fatalf("statistics path: avg batch %g; want 1.375", got)
	}
}

// stragglerSender answers every request in 1 ms but request straggler,
// which times out after 5 s.
func stragglerSender(straggler uint64) func() sender {
	return func() sender {
		return &fakeSender{
			latency: func(seq uint64) time.Duration {
				if seq == straggler {
					return 5 * time.Second
				}
				return time.Millisecond
			},
			errKind: func(seq uint64) string {
				if seq == straggler {
					return ErrKindTimeout
				}
				return ""
			},
		}
	}
}

// One request of about 4,000, sent 1 ms before the window closes, times
// out after 5 s: a closed loop's rates stay those of its window (3,999
// req/s), not of the time until the straggler's answer.
func TestStragglerKeepsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const straggler = 999 * 4 // worker 0's request sent at 999 ms
		ls := &loadStep{
			concurrency: 4, duration: time.Second,
			newSender: stragglerSender(straggler),
		}
		r := runFake(t, ls, ModeClosed)
		flagRun(&r, false)
		if r.Flagged != "" || r.Errors != 1 || r.Requests != 4000 {
			t.Fatalf("requests %d errors %d flagged %q; want 4000, 1, clean", r.Requests, r.Errors, r.Flagged)
		}
		// 3,999 answers arrived within the 1 s window.
		if !near(r.ThroughputRPS, 3999, 0.02) {
			t.Fatalf("throughput %g req/s over %g s; want about 3,999 req/s over the 1 s window (one timeout must not divide it by 6)",
				r.ThroughputRPS, r.DurationS)
		}
	})
}

// Open loop at 100/s ending on --max-requests 10: the 10 requests fill
// 100 ms of the schedule, so the sent rate and the throughput are 100/s.
func TestOpenLoopMaxRequestsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 100, maxInFlight: 4, duration: time.Hour, maxRequests: 10,
			newSender: func() sender { return &fakeSender{latency: constLatency(time.Millisecond)} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 10 {
			t.Fatalf("requests %d; want 10", r.Requests)
		}
		if r.SentRPS > 100 || r.ThroughputRPS > 100 {
			t.Fatalf("sent %g/s, throughput %g/s at an offered 100/s; neither can exceed what was offered", r.SentRPS, r.ThroughputRPS)
		}
	})
}

// An overload step repeated 3 times, each with 10,000 requests of which
// 6,000 were shed: the summary's shed requests and probes are totals like
// its requests (18,000 of 30,000, 60%), and the repetitions' own figures
// are left as they were.
func TestSummarizeOverloadCounts(t *testing.T) {
	rep := func(i int, rps float64, failures int64) Run {
		flag := ""
		if failures > 0 {
			flag = "/v2/health/ready failed 3 of 300 probes"
		}
		return Run{Name: "gateway-overload/ranker@3x", Kind: KindGateway, Mode: ModeOpen, Repetition: i, Flagged: flag,
			Overload: 3, OfferedRPS: 3000, SustainableRPS: 1000, SentRPS: 3000,
			Requests: 10_000, ThroughputRPS: rps, RowsPerS: rps,
			Shed:   &ShedStats{Count: 6000, Fraction: 0.6, P50US: 100, P99US: 500, MaxUS: 900},
			Health: &HealthStats{Probes: 300, Failures: failures, P99US: 1000}}
	}
	r := summarize([]Run{rep(1, 1000, 0), rep(2, 1100, 0), rep(3, 900, 3)})
	if r.Requests != 30_000 {
		t.Fatalf("requests %d; want the total 30,000", r.Requests)
	}
	if got := float64(r.Shed.Count) / float64(r.Requests); math.Abs(got-r.Shed.Fraction) > 1e-9 {
		t.Errorf("shed count %d of %d requests is %.2f, but the fraction says %.2f", r.Shed.Count, r.Requests, got, r.Shed.Fraction)
	}
	if r.Health.Probes != 900 || r.Health.Failures != 3 {
		t.Errorf("health %d probes, %d failed; want 900 and 3 over the repetitions (one failed 3 probes)", r.Health.Probes, r.Health.Failures)
	}
	if line := overloadLine(&r); !strings.Contains(line, "shed 18,000 of 30,000 requests") {
		t.Errorf("overload line: %s", line)
	}
	for _, p := range r.Repetitions {
		if p.Shed.Count != 6000 || p.Health.Probes != 300 {
			t.Errorf("repetition %d: shed %d, probes %d; want its own 6,000 and 300", p.Repetition, p.Shed.Count, p.Health.Probes)
		}
	}
}
