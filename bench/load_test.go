package bench

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSender answers after latency(seq) of (fake) time, with errKind(seq),
// and logs when each request was sent.
type fakeSender struct {
	latency func(seq uint64) time.Duration
	errKind func(seq uint64) string
	log     *sendLog
}

type sendLog struct {
	mu   sync.Mutex
	sent map[uint64]time.Time
}

func (l *sendLog) add(seq uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[uint64]time.Time{}
	}
	l.sent[seq] = at
}

func (f *fakeSender) send(seq uint64) (time.Time, int, string) {
	if f.log != nil {
		f.log.add(seq, time.Now())
	}
	time.Sleep(f.latency(seq))
	kind := ""
	if f.errKind != nil {
		kind = f.errKind(seq)
	}
	return time.Now(), 1, kind
}

func (f *fakeSender) close() {}

func constLatency(d time.Duration) func(uint64) time.Duration {
	return func(uint64) time.Duration { return d }
}

// sleepFake waits on the bubble's fake clock.
func sleepFake(t time.Time) { time.Sleep(time.Until(t)) }

func runFake(t *testing.T, ls *loadStep, mode string) Run {
	t.Helper()
	if ls.sleepUntil == nil {
		ls.sleepUntil = sleepFake
	}
	ls.mode = mode
	res := ls.run(context.Background())
	r := Run{Mode: mode}
	res.fill(&r, 100*time.Millisecond)
	return r
}

func near(got, want, rel float64) bool {
	return got >= want*(1-rel) && got <= want*(1+rel)
}

func TestClosedLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &sendLog{}
		ls := &loadStep{
			concurrency: 4,
			warmup:      100 * time.Millisecond,
			duration:    time.Second,
			newSender:   func() sender { return &fakeSender{latency: constLatency(10 * time.Millisecond), log: log} },
		}
		r := runFake(t, ls, ModeClosed)
		// Each worker starts a request every 10ms; those started in the
		// window [100ms, 1100ms) count: 100 per worker.
		if r.Requests != 400 || r.Errors != 0 {
			t.Fatalf("requests %d errors %d; want 400 and 0", r.Requests, r.Errors)
		}
		if r.ThroughputRPS != 400 || r.RowsPerS != 400 || r.DurationS != 1 {
			t.Fatalf("throughput %g rows/s %g duration %g; want 400, 400, 1", r.ThroughputRPS, r.RowsPerS, r.DurationS)
		}
		if !near(r.Latency.P50, 10_000, 0.001) || !near(r.Latency.Max, 10_000, 0.001) {
			t.Fatalf("latency %+v; want 10ms everywhere", r.Latency)
		}
		if len(r.Timeline) != 10 {
			t.Fatalf("%d timeline points; want 10", len(r.Timeline))
		}
		// Answers land at +10ms, +20ms, ... +1000ms of the window: the
		// first interval gets 9 per worker, the last 11 (it holds the end).
		for i, p := range r.Timeline {
			want := 400.0
			switch i {
			case 0:
				want = 360
			case 9:
				want = 440
			}
			if p.ThroughputRPS != want || p.P50US != 10_000 {
				t.Fatalf("timeline point %d %+v; want %g req/s, p50 10ms", i, p, want)
			}
		}
		if len(log.sent) != 4*110 {
			t.Fatalf("%d requests sent with warm-up; want 440", len(log.sent))
		}
	})
}

func TestOpenLoopSendsAtIntendedTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &sendLog{}
		start := time.Now()
		ls := &loadStep{
			rate:        100,
			maxInFlight: 16,
			warmup:      200 * time.Millisecond,
			duration:    time.Second,
			newSender:   func() sender { return &fakeSender{latency: constLatency(25 * time.Millisecond), log: log} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 100 || r.Errors != 0 || r.Late != 0 {
			t.Fatalf("requests %d errors %d late %d; want 100, 0, 0", r.Requests, r.Errors, r.Late)
		}
		if len(log.sent) != 120 {
			t.Fatalf("%d requests sent with warm-up; want 120", len(log.sent))
		}
		for seq, at := range log.sent {
			if want := start.Add(time.Duration(seq) * 10 * time.Millisecond); !at.Equal(want) {
				t.Fatalf("request %d sent at +%s; want +%s", seq, at.Sub(start), want.Sub(start))
			}
		}
		// The answers come 25ms after their requests, over 1 s from 25ms
		// into the window: 100 in 1 s, not in the 1.015 s since it opened.
		if r.SentRPS != 100 || r.ThroughputRPS != 100 {
			t.Fatalf("sent %g/s, achieved %g/s; want 100 and 100", r.SentRPS, r.ThroughputRPS)
		}
		if !near(r.Latency.P50, 25_000, 0.001) || !near(r.Latency.Max, 25_000, 0.001) {
			t.Fatalf("latency %+v; want 25ms", r.Latency)
		}
	})
}

func TestOpenLoopPoisson(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &sendLog{}
		start := time.Now()
		ls := &loadStep{
			rate:        1000,
			poisson:     true,
			seed:        7,
			maxInFlight: 64,
			duration:    10 * time.Second,
			newSender:   func() sender { return &fakeSender{latency: constLatency(100 * time.Microsecond), log: log} },
		}
		r := runFake(t, ls, ModeOpen)
		if !near(float64(r.Requests), 10_000, 0.03) || r.Late != 0 {
			t.Fatalf("requests %d late %d; want about 10000 and 0", r.Requests, r.Late)
		}
		// Sent exactly when the schedule says.
		s := newSchedule(1000, true, 7)
		for seq := uint64(0); seq < uint64(len(log.sent)); seq++ {
			if want := start.Add(s.next()); !log.sent[seq].Equal(want) {
				t.Fatalf("request %d sent at +%s; want +%s", seq, log.sent[seq].Sub(start), want.Sub(start))
			}
		}
	})
}

// TestOpenLoopNoCoordinatedOmission stalls one request for 200ms. With one
// request allowed in flight, the requests due during the stall wait, and
// their latency counts the wait; with room in flight, only the stalled one
// is slow.
func TestOpenLoopNoCoordinatedOmission(t *testing.T) {
	stall := func(seq uint64) time.Duration {
		if seq == 100 {
			return 200 * time.Millisecond
		}
		return 100 * time.Microsecond
	}
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 1, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: stall} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 1000 || r.Errors != 0 {
			t.Fatalf("requests %d errors %d; want 1000 and 0", r.Requests, r.Errors)
		}
		// Requests 101..~322 leave late, after the stall.
		if r.Late < 200 || r.Late > 250 {
			t.Fatalf("late %d; want about 220", r.Late)
		}
		if r.Latency.P90 < 10_000 || r.Latency.Max < 199_000 {
			t.Fatalf("latency %+v; want p90 above 10ms and max near 200ms", r.Latency)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 64, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: stall} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 1000 || r.Late != 0 {
			t.Fatalf("requests %d late %d; want 1000 and 0", r.Requests, r.Late)
		}
		if r.Latency.P99 > 101 || r.Latency.Max < 199_000 {
			t.Fatalf("latency %+v; want p99 100µs and max near 200ms", r.Latency)
		}
	})
}

func TestOpenLoopNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 1, duration: time.Second,
			newSender: func() sender {
				return &fakeSender{latency: func(seq uint64) time.Duration {
					if seq == 500 {
						return 2 * time.Second
					}
					return 100 * time.Microsecond
				}}
			},
		}
		start := time.Now()
		r := runFake(t, ls, ModeOpen)
		if took := time.Since(start); took != 2500*time.Millisecond {
			t.Fatalf("step took %s; want 2.5s (the stalled request's answer)", took)
		}
		if r.Requests != 1000 || r.Errors != 499 || r.ErrorKinds[ErrKindNotSent] != 499 {
			t.Fatalf("requests %d errors %d kinds %v; want 1000, 499 not_sent", r.Requests, r.Errors, r.ErrorKinds)
		}
		flagRun(&r, false)
		if r.Flagged == "" {
			t.Fatalf("a run with 49.9%% unsent requests is not flagged")
		}
	})
}

func TestMaxRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			concurrency: 2, duration: time.Hour, maxRequests: 50, warmup: 10 * time.Millisecond,
			newSender: func() sender { return &fakeSender{latency: constLatency(time.Millisecond)} },
		}
		r := runFake(t, ls, ModeClosed)
		if r.Requests != 50 || r.ThroughputRPS != 2000 {
			t.Fatalf("requests %d throughput %g; want 50 and 2000/s", r.Requests, r.ThroughputRPS)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 100, maxInFlight: 4, duration: time.Hour, maxRequests: 30,
			newSender: func() sender { return &fakeSender{latency: constLatency(time.Millisecond)} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 30 {
			t.Fatalf("requests %d; want 30", r.Requests)
		}
	})
}

func TestStepStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		ls := &loadStep{
			mode: ModeClosed, concurrency: 3, duration: time.Hour,
			newSender: func() sender { return &fakeSender{latency: constLatency(10 * time.Millisecond)} },
		}
		start := time.Now()
		res := ls.run(ctx)
		if took := time.Since(start); took > 510*time.Millisecond {
			t.Fatalf("step took %s after cancel at 500ms", took)
		}
		var r Run
		res.fill(&r, 0)
		// A worker may start one more request at the instant of the cancel.
		if r.Requests < 150 || r.Requests > 153 || !near(r.ThroughputRPS, 300, 0.02) {
			t.Fatalf("requests %d throughput %g; want 150 and 300/s", r.Requests, r.ThroughputRPS)
		}
	})
}

func TestErrorsCountedByKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			concurrency: 1, duration: time.Second,
			newSender: func() sender {
				return &fakeSender{
					latency: constLatency(time.Millisecond),
					errKind: func(seq uint64) string {
						switch seq % 100 {
						case 0:
							return ErrKindStatus(503)
						case 1:
							return ErrKindBadBody
						}
						return ""
					},
				}
			},
		}
		r := runFake(t, ls, ModeClosed)
		if r.Requests != 1000 || r.Errors != 20 || r.ErrorKinds["http_503"] != 10 || r.ErrorKinds[ErrKindBadBody] != 10 {
			t.Fatalf("requests %d errors %d kinds %v", r.Requests, r.Errors, r.ErrorKinds)
		}
		if r.ThroughputRPS != 980 {
			t.Fatalf("throughput %g; want 980 (successes only)", r.ThroughputRPS)
		}
		var errs int64
		for _, p := range r.Timeline {
			errs += p.Errors
		}
		if errs != 20 {
			t.Fatalf("timeline holds %d errors; want 20", errs)
		}
	})
}
