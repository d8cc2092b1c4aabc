package bench

import (
	"testing"
	"testing/synctest"
	"time"
)

// Closed loop cut short by --max-requests: 4 workers at 1 ms send 4,000
// requests in about 1 s, one of which (sent at 999 ms) times out after
// 5 s. The window ends when the limit was reached and the last answer
// served, not when the last worker returned after the timeout (which read
// about 667 req/s): a straggler stretches a cut window no more than
// TestStragglerKeepsWindow lets it stretch an uncut one.
func TestMaxRequestsClosedStraggler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const straggler = 999 * 4
		ls := &loadStep{
			concurrency: 4, duration: time.Hour, maxRequests: 4000,
			newSender: stragglerSender(straggler),
		}
		r := runFake(t, ls, ModeClosed)
		if r.Requests != 4000 || r.Errors != 1 {
			t.Fatalf("requests %d errors %d; want 4000 and 1", r.Requests, r.Errors)
		}
		if r.ThroughputRPS < 3000 {
			t.Fatalf("throughput %g req/s over %g s; want about 4,000 req/s (4,000 requests sent in about 1 s; one timeout stretched the window)",
				r.ThroughputRPS, r.DurationS)
		}
	})
}

// Open loop at 1,000/s cut short by --max-requests 1,000: the requests
// fill 1 s of the schedule, and one (due at 500 ms) times out after 5 s.
// Such a step ends at its last answer served, or at its schedule's end: a
// timeout is no answer, and must not end the window at 5.5 s (182 req/s
// for a server that answered all others at the offered 1,000/s).
func TestMaxRequestsOpenStraggler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const straggler = 500
		ls := &loadStep{
			rate: 1000, maxInFlight: 16, duration: time.Hour, maxRequests: 1000,
			newSender: stragglerSender(straggler),
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 1000 || r.Errors != 1 {
			t.Fatalf("requests %d errors %d; want 1000 and 1", r.Requests, r.Errors)
		}
		if r.ThroughputRPS < 900 {
			t.Fatalf("throughput %g req/s over %g s; want about 1,000 req/s (one timeout stretched the window)", r.ThroughputRPS, r.DurationS)
		}
	})
}

// An open-loop pacer that costs 1.1 ms a request (a client short of CPU)
// offered 1,000/s can send only about 909/s: by the window's end it has
// sent about 908 of the 1,000 requests due. SentRPS ("the rate at which
// requests actually left the client during the measured window; below
// Rate when the client fell behind") must count those, not the rest sent
// after the window (it read 1,000/s), so that the overload run's 95% check
// sees a client short of CPU.
func TestSentRPSExcludesSendsAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 64, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: constLatency(time.Millisecond)} },
			sleepUntil: func(at time.Time) {
				time.Sleep(max(time.Until(at), 0) + 1100*time.Microsecond)
			},
		}
		r := runFake(t, ls, ModeOpen)
		r.OfferedRPS, r.Overload, r.Shed = 1000, 3, &ShedStats{}
		if r.SentRPS >= minSentShare*1000 {
			t.Fatalf("sent %g/s (late %d of %d) with the pacer able to send at most 909/s; flagOverload says %q",
				r.SentRPS, r.Late, r.Requests, flagOverload(&r))
		}
	})
}

// Open loop at 1,000/s for 1 s against a server that keeps up with the
// offered rate (every answer takes 500 ms, many in flight): it answers
// 1,000 requests a second throughout, and the rate must read that, not be
// divided by the time until the last answer (1.5 s: 667 req/s). In a
// suite's overload step, whose accepted requests wait up to the queue
// bound (about 320 ms) in a 3 s window, that bias read the accepted rate
// about 10% low.
func TestOpenLoopLatencyDoesNotStretchWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 1000, maxInFlight: 1024, duration: time.Second,
			newSender: func() sender { return &fakeSender{latency: constLatency(500 * time.Millisecond)} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 1000 || r.Errors != 0 {
			t.Fatalf("requests %d errors %d; want 1000 and 0", r.Requests, r.Errors)
		}
		if r.ThroughputRPS < 950 {
			t.Fatalf("throughput %g req/s over %g s for a server answering the offered 1,000/s with 500 ms latency", r.ThroughputRPS, r.DurationS)
		}
	})
}

// A step cut short by --max-requests against a server that keeps up,
// each answer taking L: its rate must read what the same step reads
// without the limit, not be divided by the time until the last answer.
// Closed loop, 4 workers a quarter of a cycle apart, each answer 400 ms:
// 10 requests a second, and the 10 measured ones are sent in 1 s (it read
// 7.7/s). Open loop at 100/s with 500 ms answers: 50 requests fill 500 ms
// of the schedule (it read 50.5/s, half the rate offered and served).
func TestMaxRequestsLatencyDoesNotStretchWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			concurrency: 4, warmup: 400 * time.Millisecond, duration: time.Hour, maxRequests: 10,
			newSender: func() sender {
				return &fakeSender{latency: func(seq uint64) time.Duration {
					if seq < 4 {
						return time.Duration(seq+1) * 100 * time.Millisecond
					}
					return 400 * time.Millisecond
				}}
			},
		}
		r := runFake(t, ls, ModeClosed)
		if r.Requests != 10 || r.ThroughputRPS != 10 {
			t.Fatalf("closed loop: got %d requests at %g/s over %g s; want 10 at 10/s", r.Requests, r.ThroughputRPS, r.DurationS)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ls := &loadStep{
			rate: 100, maxInFlight: 1024, duration: time.Hour, maxRequests: 50,
			newSender: func() sender { return &fakeSender{latency: constLatency(500 * time.Millisecond)} },
		}
		r := runFake(t, ls, ModeOpen)
		if r.Requests != 50 || r.ThroughputRPS != 100 {
			t.Fatalf("open loop: got %d requests at %g/s over %g s; want 50 at 100/s", r.Requests, r.ThroughputRPS, r.DurationS)
		}
	})
}
