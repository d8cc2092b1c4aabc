package bench

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFlagRun(t *testing.T) {
	f := func(r Run, unbatched bool, want string) {
		t.Helper()
		flagRun(&r, unbatched)
		if (want == "") != (r.Flagged == "") || !strings.Contains(r.Flagged, want) {
			t.Fatalf("flagRun(%s): %q; want %q", r.Name, r.Flagged, want)
		}
	}
	f(Run{Name: "clean", Requests: 1000}, false, "")
	f(Run{Name: "1% exactly", Requests: 1000, Errors: 10, ErrorKinds: map[string]int64{"http_503": 10}}, false, "")
	f(Run{Name: "above 1%", Requests: 1000, Errors: 11, ErrorKinds: map[string]int64{"http_503": 8, "timeout": 3}}, false,
		"errors 1.1% > 1% (http_503 8, timeout 3)")
	f(Run{Name: "all errors", Requests: 5, Errors: 5, ErrorKinds: map[string]int64{"connect": 5}}, false, "errors 100.0%")
	f(Run{Name: "nothing", Requests: 0}, false, "no requests were measured")
	f(Run{Name: "kept", Requests: 100, Flagged: "earlier reason"}, false, "earlier reason")
	f(Run{Name: "cache hit by accident", Kind: KindGateway, Requests: 1000, Server: &ServerStats{CacheHits: 500}}, false,
		"50% of the requests from its response cache")
	f(Run{Name: "cache run", Kind: KindGateway, Cache: true, Requests: 1000, Server: &ServerStats{CacheHits: 999}}, false, "")
	f(Run{Name: "batched when off", Kind: KindGateway, RowsPerRequest: 1, Requests: 1000, Server: &ServerStats{AvgBatch: 1.8}}, true,
		"the server batched (1.80 rows per execution")
	f(Run{Name: "rows per request", Kind: KindGateway, RowsPerRequest: 4, Requests: 1000, Server: &ServerStats{AvgBatch: 4}}, true, "")
	f(Run{Name: "batching on", Kind: KindGateway, Batching: true, RowsPerRequest: 1, Requests: 1000, Server: &ServerStats{AvgBatch: 9}}, false, "")
}

func TestSummarize(t *testing.T) {
	rep := func(rps, p50 float64, errs int64, flag string) Run {
		return Run{Name: "x", ThroughputRPS: rps, RowsPerS: rps, Requests: 100, Errors: errs, DurationS: 1,
			Latency: Latency{P50: p50, P99: 2 * p50}, Flagged: flag, Timeline: []TimelinePoint{{TS: rps}}}
	}
	reps := []Run{rep(300, 30, 0, ""), rep(100, 10, 2, "errors 2.0% > 1%"), rep(200, 20, 0, "")}
	for i := range reps {
		reps[i].Repetition = i + 1
	}
	r := summarize(reps)
	if r.ThroughputRPS != 200 || r.Latency.P50 != 20 || r.Latency.P99 != 40 || r.Requests != 300 || r.Errors != 2 || r.DurationS != 3 {
		t.Fatalf("summary %+v", r)
	}
	if r.Repeats != 3 || len(r.Repetitions) != 3 || r.Repetition != 0 || r.Timeline[0].TS != 200 {
		t.Fatalf("summary repetitions %d/%d, repetition %d, timeline of %g; want 3, 3, 0, the median's (200)",
			r.Repeats, len(r.Repetitions), r.Repetition, r.Timeline[0].TS)
	}
	if s := r.Spread; s == nil || s.ThroughputRPS != (MinMax{100, 300}) || s.P50US != (MinMax{10, 30}) {
		t.Fatalf("spread %+v", r.Spread)
	}
	if r.Flagged != "#2: errors 2.0% > 1%" {
		t.Fatalf("flagged %q", r.Flagged)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("median of 1..4 = %g; want 2.5", got)
	}
}

func TestSweepStopsAtThreshold(t *testing.T) {
	s := newSession(context.Background(), DefaultOptions())
	levels := []level{{mode: ModeOpen, rate: 1000}, {mode: ModeOpen, rate: 2000}, {mode: ModeOpen, rate: 4000}, {mode: ModeOpen, rate: 8000}}
	var ran []float64
	s.series(KindGateway, "ctr", levels, 5*time.Millisecond, func(l level) Run {
		ran = append(ran, l.rate)
		p99 := map[float64]float64{1000: 800, 2000: 1500, 4000: 7000, 8000: 90000}[l.rate]
		return Run{Name: runName(KindGateway, "ctr", l), Requests: 10, ThroughputRPS: l.rate * 0.99, Latency: Latency{P99: p99}}
	})
	if len(ran) != 3 {
		t.Fatalf("ran %v; want the sweep to stop after 4000/s", ran)
	}
	want := Sweep{Kind: KindGateway, Model: "ctr", Mode: ModeOpen, MaxP99US: 5000,
		Best: "gateway/ctr@r2000", BestLoad: 2000, BestThroughputRPS: 1980, StoppedAt: "gateway/ctr@r4000"}
	if len(s.report.Sweeps) != 1 || s.report.Sweeps[0] != want {
		t.Fatalf("sweeps %+v; want %+v", s.report.Sweeps, want)
	}
}

func TestBatchSizes(t *testing.T) {
	f := func(max int, want string) {
		t.Helper()
		var parts []string
		for _, b := range batchSizes(max) {
			parts = append(parts, strconv.Itoa(b))
		}
		if got := strings.Join(parts, ","); got != want {
			t.Fatalf("batchSizes(%d) = %s; want %s", max, got, want)
		}
	}
	f(1, "1")
	f(2, "1,2")
	f(64, "1,2,4,8,16,32,64")
	f(48, "1,2,4,8,16,32,48")
}

// A suite that stops with an error after switching the model's
// configuration puts back the one it found.
func TestSuiteRestoresConfigOnError(t *testing.T) {
	g := &fakeGateway{badBody: true} // the first answer fails its checks
	cfg := DefaultSuiteConfig()
	cfg.Options = shortOptions()
	cfg.Target = startFakeGateway(t, g)
	cfg.Models = []string{"ctr"}
	cfg.MaxBatch = 1
	cfg.ORTLib = "/nonexistent/libonnxruntime.so"
	_, err := RunSuite(t.Context(), cfg)
	if err == nil {
		t.Fatal("want the capture's error")
	}
	if loaded := g.loaded(); loaded == "" || loaded[len(loaded)-1] != 'r' {
		t.Fatalf("configurations loaded %q (error: %v); want the configuration the suite found loaded back last ('r')", loaded, err)
	}
}

// bench suite --concurrency 1 runs each step once.
func TestSuiteConcurrencyOneRunsStepsOnce(t *testing.T) {
	g := &fakeGateway{}
	cfg := DefaultSuiteConfig()
	cfg.Options = shortOptions()
	cfg.Warmup, cfg.Duration = 10*time.Millisecond, 50*time.Millisecond
	cfg.Target = startFakeGateway(t, g)
	cfg.Models = []string{"ctr"}
	cfg.MaxBatch = 1
	cfg.Overload = 0
	cfg.Concurrency = 1
	cfg.BatchedConfig = `{"max_batch_size":32}`
	cfg.ORTLib = "/nonexistent/libonnxruntime.so"
	rep, err := RunSuite(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rep.Runs {
		seen[r.Name]++
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s measured %d times", name, n)
		}
	}
}
