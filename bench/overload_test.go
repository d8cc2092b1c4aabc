package bench

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestClassifyStatus(t *testing.T) {
	f := func(code int, retryAfter string, shedding bool, want string) {
		t.Helper()
		var ra []byte
		if retryAfter != "-" {
			ra = []byte(retryAfter)
		}
		if got := classifyStatus(code, ra, shedding); got != want {
			t.Fatalf("classifyStatus(%d, %q, %v) = %q; want %q", code, retryAfter, shedding, got, want)
		}
	}
	// Outside overload runs every status is an error.
	f(503, "1", false, "http_503")
	f(429, "1", false, "http_429")
	// In overload runs 429 and 503 with a usable Retry-After are shed.
	f(503, "1", true, outcomeShed)
	f(429, "0", true, outcomeShed)
	f(503, " 120 ", true, outcomeShed)
	f(503, "Wed, 21 Oct 2015 07:28:00 GMT", true, outcomeShed)
	// Without one, they are errors of their own kind.
	f(503, "-", true, ErrKindShedWithoutRetryAfter)
	f(503, "", true, ErrKindShedWithoutRetryAfter)
	f(429, "soon", true, ErrKindShedWithoutRetryAfter)
	f(503, "-1", true, ErrKindShedWithoutRetryAfter)
	f(503, "1.5", true, ErrKindShedWithoutRetryAfter)
	// Other statuses stay errors.
	f(500, "1", true, "http_500")
	f(400, "-", true, "http_400")
	f(502, "1", true, "http_502")
}

func TestFlagOverload(t *testing.T) {
	// clean is an overload run that meets every bound.
	clean := func() Run {
		return Run{
			Name: "gateway-overload/ranker@3x", Kind: KindGateway, Mode: ModeOpen, Rate: 3000,
			Overload: 3, OfferedRPS: 3000, SustainableRPS: 1000, SentRPS: 2990, MaxAcceptedP99US: 1e6,
			Requests: 15000, ThroughputRPS: 1000, Latency: Latency{P99: 400e3},
			Shed:   &ShedStats{Count: 10000, Fraction: 0.6667, P50US: 300, P99US: 2000, MaxUS: 9000},
			Health: &HealthStats{Probes: 500, P50US: 200, P99US: 3000, MaxUS: 8000},
		}
	}
	f := func(change func(r *Run), want ...string) {
		t.Helper()
		r := clean()
		change(&r)
		flagRun(&r, false)
		if len(want) == 0 && r.Flagged != "" {
			t.Fatalf("flagged %q; want clean", r.Flagged)
		}
		for _, w := range want {
			if !strings.Contains(r.Flagged, w) {
				t.Fatalf("flagged %q; want %q in it", r.Flagged, w)
			}
		}
	}
	f(func(r *Run) {})
	// Shed requests are not errors; the others count against all requests.
	f(func(r *Run) { r.Errors, r.ErrorKinds = 150, map[string]int64{"timeout": 150} })
	f(func(r *Run) { r.Errors, r.ErrorKinds = 151, map[string]int64{ErrKindShedWithoutRetryAfter: 151} },
		"errors 1.0% > 1% (shed_without_retry_after 151)")
	f(func(r *Run) { r.Shed.P99US = 10_000 })
	f(func(r *Run) { r.Shed.P99US = 10_001 }, "shedding is slow: shed p99 10.0ms > 10.0ms")
	// Nothing shed: no shed latency to judge.
	f(func(r *Run) { *r.Shed = ShedStats{} })
	f(func(r *Run) { r.Health.Failures = 1 }, "/v2/health/ready failed 1 of 500 probes")
	f(func(r *Run) { r.Health.P99US = 50_000 })
	f(func(r *Run) { r.Health.P99US = 51_000 }, "/v2/health/ready is slow: p99 51.0ms > 50.0ms")
	f(func(r *Run) { r.Health.Probes = 0 }, "no readiness probe was measured")
	f(func(r *Run) { r.Latency.P99 = 1e6 })
	f(func(r *Run) { r.Latency.P99 = 1.2e6 }, "accepted p99 1.20s > 1.00s (--max-accepted-p99)")
	f(func(r *Run) { r.SentRPS = 2800 }, "the load generator sent 2,800/s of the 3,000/s offered")
	// Every reason at once, after the one already there.
	f(func(r *Run) {
		r.Flagged = "earlier"
		r.Shed.P99US, r.Health.Failures, r.Latency.P99 = 20e3, 2, 2e6
	}, "earlier; shedding is slow", "failed 2 of 500", "accepted p99 2.00s")
	// Other runs are not held to these bounds.
	r := Run{Name: "gateway/ranker@r3000", Mode: ModeOpen, Rate: 3000, SentRPS: 100, Requests: 100, Latency: Latency{P99: 5e6}}
	if flagRun(&r, false); r.Flagged != "" {
		t.Fatalf("a plain open-loop run is flagged %q", r.Flagged)
	}
}

func TestSustainableRun(t *testing.T) {
	runs := []Run{
		{Name: "gateway/m@c1", Kind: KindGateway, Mode: ModeClosed, ThroughputRPS: 300},
		{Name: "gateway/m@c64", Kind: KindGateway, Mode: ModeClosed, ThroughputRPS: 900},
		{Name: "gateway/m@c256", Kind: KindGateway, Mode: ModeClosed, ThroughputRPS: 950, Flagged: "errors 3.0% > 1%"},
		{Name: "gateway/m@r5000", Kind: KindGateway, Mode: ModeOpen, ThroughputRPS: 2000},
		{Name: "http-floor/m@c64", Kind: KindHTTPFloor, Mode: ModeClosed, ThroughputRPS: 40000},
	}
	isGW := func(r *Run) bool { return r.Kind == KindGateway }
	if r, ok := sustainableRun(runs, isGW); !ok || r.Name != "gateway/m@c64" {
		t.Fatalf("sustainable %q %v; want gateway/m@c64: the best clean closed-loop gateway run", r.Name, ok)
	}
	if r, ok := sustainableRun(runs[2:4], isGW); ok {
		t.Fatalf("sustainable %q; want none (flagged or open loop)", r.Name)
	}
	if got := overloadName("ranker", 3); got != "gateway-overload/ranker@3x" {
		t.Fatalf("overloadName = %q", got)
	}
	if got := overloadName("ranker", 2.5); got != "gateway-overload/ranker@2.5x" {
		t.Fatalf("overloadName = %q", got)
	}
}

// TestOpenLoopShed checks the bookkeeping of shed requests: apart from
// the errors, with their own latency, in Requests and the timeline, not in
// the throughput.
func TestOpenLoopShed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 64, duration: time.Second, shedding: true,
			newSender: func() sender {
				return &fakeSender{
					latency: func(seq uint64) time.Duration {
						if seq%4 != 0 {
							return 2 * time.Millisecond // shed
						}
						return 20 * time.Millisecond
					},
					errKind: func(seq uint64) string {
						switch {
						case seq%100 == 1:
							return ErrKindShedWithoutRetryAfter
						case seq%4 != 0:
							return outcomeShed
						}
						return ""
					},
				}
			},
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 1000 || r.Errors != 10 || r.ErrorKinds[ErrKindShedWithoutRetryAfter] != 10 || r.ErrorKinds[outcomeShed] != 0 {
			t.Fatalf("requests %d errors %d kinds %v; want 1000, 10 shed_without_retry_after", r.Requests, r.Errors, r.ErrorKinds)
		}
		sh := r.Shed
		if sh == nil || sh.Count != 740 || sh.Fraction != 0.74 {
			t.Fatalf("shed %+v; want 740, 0.74", sh)
		}
		if !near(sh.P50US, 2000, 0.001) || !near(sh.MaxUS, 2000, 0.001) || !near(r.Latency.P50, 20_000, 0.001) {
			t.Fatalf("shed latency %+v, accepted %+v; want 2ms and 20ms", sh, r.Latency)
		}
		// The answers served (accepted or shed) span from request 2's at
		// 4 ms (request 1 is an error) to request 996's at 1.016 s.
		if want := round1(250 / 1.012); r.ThroughputRPS != want {
			t.Fatalf("throughput %g over %g s; want %g (accepted only)", r.ThroughputRPS, r.DurationS, want)
		}
		var shed, errs int64
		for _, p := range r.Timeline {
			shed += p.Shed
			errs += p.Errors
		}
		if shed != 740 || errs != 10 {
			t.Fatalf("timeline holds %d shed and %d errors; want 740 and 10", shed, errs)
		}
		flagRun(&r, false)
		if r.Flagged != "" {
			t.Fatalf("flagged %q; want clean (1%% errors)", r.Flagged)
		}
	})
	// A step that is not an overload step has no shed figures.
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{rate: 100, maxInFlight: 4, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: constLatency(time.Millisecond)} }}
		if r := runFake(t, ls, ModeOpen); r.Shed != nil || r.Health != nil {
			t.Fatalf("shed %+v health %+v; want none", r.Shed, r.Health)
		}
	})
}

func TestHealthProber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var sent []time.Duration
		p := &healthProber{
			interval: 10 * time.Millisecond,
			probe: func() (int, error) {
				at := time.Since(start)
				sent = append(sent, at)
				switch {
				case at == 500*time.Millisecond:
					time.Sleep(100 * time.Millisecond) // a stall
				case at == 700*time.Millisecond:
					return 503, nil
				case at == 800*time.Millisecond:
					time.Sleep(time.Second)
					return 0, errors.New("timeout")
				default:
					time.Sleep(time.Millisecond)
				}
				return 200, nil
			},
		}
		stop := make(chan struct{})
		p.run(stop, start, start.Add(200*time.Millisecond), start.Add(3200*time.Millisecond))
		st := p.stats()
		// Probes every 10ms from 0 to 3190ms, less the 9 the stall skipped
		// (510ms to 590ms) and the 99 the timeout did (810ms to 1790ms), of
		// which those from 200ms count.
		if len(sent) != 320-9-99 || st.Probes != 300-9-99 {
			t.Fatalf("%d probes sent, %d measured; want %d and %d: %v", len(sent), st.Probes, 320-9-99, 300-9-99, sent)
		}
		if sent[51] != 600*time.Millisecond || sent[72] != 1800*time.Millisecond {
			t.Fatalf("the probes after the stall and the timeout were sent at %s and %s; want 600ms and 1.8s", sent[51], sent[72])
		}
		if st.Failures != 2 {
			t.Fatalf("%d failures; want 2 (a 503 and a timeout)", st.Failures)
		}
		// The stall and the timeout stand for the probes they held up.
		if !near(st.MaxUS, 1e6, 0.001) || st.P99US < 100e3 || !near(st.P50US, 1000, 0.001) {
			t.Fatalf("health %+v; want p50 1ms, p99 100ms or more, max 1s", st)
		}
	})
	// Closing stop ends it early.
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := 0
		p := &healthProber{interval: 10 * time.Millisecond, probe: func() (int, error) { n++; return 200, nil }}
		stop := make(chan struct{})
		time.AfterFunc(95*time.Millisecond, func() { close(stop) })
		p.run(stop, start, start, start.Add(time.Hour))
		if n != 10 || p.stats().Probes != 10 {
			t.Fatalf("%d probes; want 10", n)
		}
	})
}

func TestMeasureOverloadAgainstFakeGateway(t *testing.T) {
	run := func(g *fakeGateway) Run {
		t.Helper()
		url := startFakeGateway(t, g)
		cfg := DefaultConfig()
		cfg.Options = shortOptions()
		cfg.Target = url
		cfg.Concurrency = []int{2}
		cfg.Overload = 3
		rep, err := Measure(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range rep.Runs {
			names = append(names, r.Name)
		}
		if want := []string{"gateway/ctr@c2", "gateway-overload/ctr@3x"}; !slices.Equal(names, want) {
			t.Fatalf("runs %v; want %v", names, want)
		}
		sus, r := rep.Runs[0], rep.Runs[1]
		if sus.Shed != nil || sus.Errors != 0 || sus.ThroughputRPS <= 0 {
			t.Fatalf("sustainable run %+v", sus)
		}
		if r.SustainableRun != sus.Name || r.SustainableRPS != sus.ThroughputRPS || r.Overload != 3 ||
			r.OfferedRPS != round1(3*sus.ThroughputRPS) || r.Rate != r.OfferedRPS || r.Mode != ModeOpen || r.MaxAcceptedP99US != 1e6 {
			t.Fatalf("overload run %+v; want 3 × %g/s of %s", r, sus.ThroughputRPS, sus.Name)
		}
		// The prober also probes through the warm-up, unmeasured: the
		// server saw more probes than were measured. (How many fall in
		// the window depends on the machine: on one busy enough that a
		// probe takes 40 ms, it skips the ticks it overran.)
		if r.Shed == nil || r.Health == nil || r.Health.Probes < 1 || g.probes.Load() <= r.Health.Probes {
			t.Fatalf("shed %+v health %+v; the server saw %d probes", r.Shed, r.Health, g.probes.Load())
		}
		var table strings.Builder
		WriteTable(&table, rep)
		if !strings.Contains(table.String(), "overload gateway-overload/ctr@3x: offered ") {
			t.Fatalf("table:\n%s", table.String())
		}
		return r
	}
	// Two instances of 2ms each: about 1,000/s sustained in closed loop at
	// 2; offered 3,000/s, about two thirds are shed, at once. (How many
	// exactly depends on how busy the machine running the test is: only
	// some shed and some accepted is asserted.)
	r := run(&fakeGateway{capacity: 2, work: 2 * time.Millisecond})
	if r.Errors != 0 || r.Shed.Count == 0 || r.Shed.Fraction <= 0 || r.Shed.Fraction >= 1 || r.ThroughputRPS <= 0 {
		t.Fatalf("errors %d %v, shed %+v, accepted %g/s; want no errors, some shed and some accepted", r.Errors, r.ErrorKinds, r.Shed, r.ThroughputRPS)
	}
	if r.Shed.Count+int64(r.ThroughputRPS*r.DurationS+0.5) > r.Requests+1 {
		t.Fatalf("requests %d < shed %d + accepted %g", r.Requests, r.Shed.Count, r.ThroughputRPS*r.DurationS)
	}
	if r.Health.Failures != 0 || strings.Contains(r.Flagged, "errors") {
		t.Fatalf("health %+v flagged %q", r.Health, r.Flagged)
	}
	// Without Retry-After, what was shed is an error.
	r = run(&fakeGateway{capacity: 2, work: 2 * time.Millisecond, noRetryAfter: true})
	if r.Shed.Count != 0 || r.ErrorKinds[ErrKindShedWithoutRetryAfter] == 0 || !strings.Contains(r.Flagged, ErrKindShedWithoutRetryAfter) {
		t.Fatalf("shed %+v errors %v flagged %q; want shed_without_retry_after errors, flagged", r.Shed, r.ErrorKinds, r.Flagged)
	}
}

func TestOverloadConfig(t *testing.T) {
	f := func(change func(c *Config), want string) {
		t.Helper()
		c := DefaultConfig()
		c.Concurrency = []int{64}
		c.Overload = 3
		change(&c)
		err := c.Validate()
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Fatalf("Validate() = %v; want %q", err, want)
		}
	}
	f(func(c *Config) {}, "")
	f(func(c *Config) { c.Overload = 0 }, "")
	f(func(c *Config) { c.Overload = 1 }, "--overload 1 must be 0 (off) or above 1")
	f(func(c *Config) { c.Overload = 101 }, "at most 100")
	f(func(c *Config) { c.Rates = []float64{100} }, "--overload sets the open-loop rate itself")
	f(func(c *Config) { c.Concurrency = nil }, "--overload needs a closed-loop level")
	f(func(c *Config) { c.MaxAcceptedP99 = 0 }, "--max-accepted-p99 0s must be positive")
	s := DefaultSuiteConfig()
	s.Target = "http://127.0.0.1:1"
	if err := s.Validate(); err != nil || s.Overload != 3 || s.OverloadModel != "ranker" || s.OverloadRows != 16 {
		t.Fatalf("suite defaults: %v %+v", err, s)
	}
	s.OverloadRows = 0
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "rows per request, 0,") {
		t.Fatalf("suite with 0 overload rows: %v", err)
	}
	s.Overload = 0
	if err := s.Validate(); err != nil {
		t.Fatalf("suite without overload: %v", err)
	}
}

// TestReportOverloadFields pins the JSON of overload runs, and checks that
// other runs do not carry it.
func TestReportOverloadFields(t *testing.T) {
	runs := []Run{
		{Name: "gateway/ranker@c64", Mode: ModeClosed},
		{Name: "gateway-overload/ranker@3x", Mode: ModeOpen, Overload: 3, OfferedRPS: 3000, SustainableRPS: 1000,
			SustainableRun: "gateway/ranker@c64", MaxAcceptedP99US: 1e6,
			Shed:     &ShedStats{Count: 2, Fraction: 0.5, P50US: 1, P99US: 2, MaxUS: 3},
			Health:   &HealthStats{Probes: 4, Failures: 1, P50US: 1, P99US: 2, MaxUS: 3},
			Timeline: []TimelinePoint{{TS: 1, Shed: 2}}},
	}
	b, err := json.Marshal(runs)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	fields := []string{"overload", "offered_rps", "sustainable_rps", "sustainable_run", "max_accepted_p99_us", "shed", "health"}
	for _, k := range fields {
		if _, ok := got[0][k]; ok {
			t.Fatalf("a plain run has %q: %s", k, b)
		}
		if _, ok := got[1][k]; !ok {
			t.Fatalf("an overload run has no %q: %s", k, b)
		}
	}
	var sub struct {
		Shed     map[string]float64 `json:"shed"`
		Health   map[string]float64 `json:"health"`
		Timeline []map[string]float64
	}
	if err := json.Unmarshal(got[1]["shed"], &sub.Shed); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got[1]["health"], &sub.Health); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{"count": 2, "fraction": 0.5, "p50_us": 1, "p99_us": 2, "max_us": 3} {
		if sub.Shed[k] != v {
			t.Fatalf("shed.%s = %g; want %g (%s)", k, sub.Shed[k], v, got[1]["shed"])
		}
	}
	for k, v := range map[string]float64{"probes": 4, "failures": 1, "p50_us": 1, "p99_us": 2, "max_us": 3} {
		if sub.Health[k] != v {
			t.Fatalf("health.%s = %g; want %g (%s)", k, sub.Health[k], v, got[1]["health"])
		}
	}
	if !strings.Contains(string(got[1]["timeline"]), `"shed":2`) {
		t.Fatalf("timeline %s; want shed in it", got[1]["timeline"])
	}
	if strings.Contains(string(b), `"shed":0`) {
		t.Fatalf("a timeline point without shed requests carries the field: %s", b)
	}
}

// TestSuiteOverloadPair checks where the suite puts its overload pair:
// after the batched runs of OverloadModel, with OverloadRows rows, and
// that --overload 0 drops it.
func TestSuiteOverloadPair(t *testing.T) {
	run := func(overload float64) []Run {
		g := &fakeGateway{capacity: 4, work: 5 * time.Millisecond}
		cfg := overloadSuite(startFakeGateway(t, g), 3)
		cfg.Overload = overload
		rep, err := RunSuite(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Runs
	}
	names := func(runs []Run) string {
		var n []string
		for _, r := range runs {
			n = append(n, r.Name)
		}
		return strings.Join(n, " ")
	}
	runs := run(3)
	want := "ort-floor/ctr http-floor/ctr@c4 http-floor/ctr@c1 gateway/ctr@c4 gateway/ctr@c1 " +
		"gateway-batched/ctr@c4 gateway-batched/ctr@c1 gateway-sustainable/ctr@c4 gateway-overload/ctr@3x gateway-cached/ctr@c4"
	if got := names(runs); got != want {
		t.Fatalf("runs %s; want %s", got, want)
	}
	sus, ovl := runs[7], runs[8]
	if sus.RowsPerRequest != 3 || !sus.Batching || sus.Mode != ModeClosed || sus.Concurrency != 4 || sus.Flagged != "" || sus.Shed != nil {
		t.Fatalf("sustainable run %+v", sus)
	}
	if ovl.RowsPerRequest != 3 || !ovl.Batching || ovl.SustainableRun != sus.Name || ovl.OfferedRPS != round1(3*sus.ThroughputRPS) ||
		ovl.Shed == nil || ovl.Shed.Count == 0 || ovl.Health == nil || ovl.Health.Probes == 0 || ovl.Config == "" {
		t.Fatalf("overload run %+v", ovl)
	}
	if got := names(run(0)); strings.Contains(got, "overload") || strings.Contains(got, "sustainable") {
		t.Fatalf("runs with --overload 0: %s", got)
	}
}
