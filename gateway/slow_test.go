package gateway_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// A request that takes --slow-request-log or more is logged with where
// its time went, how it ended, its id and its client: one that timed out
// in the queue behind a run that hangs, then, a second later (one line a
// second per version), one that ran for long. Fast ones are not logged.
func TestSlowRequestLog(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.SlowRequests = 40 * time.Millisecond
	s := startFake(t, b, cfg, registry.ModelConfig{})
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))

	b.mode.Store(fakeBlock)
	hung := make(chan response, 1)
	go func() {
		hung <- s.post(t, "/v2/models/fake/infer", []byte(`{"id":"hung-1","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`),
			"X-Request-Id", "req-7", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if b.running.Load() != 1 {
			return fmt.Errorf("the first request is not running yet")
		}
		return nil
	})
	r := s.post(t, "/v2/models/fake/infer", []byte(`{"id":"late-1","parameters":{"timeout":60000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`))
	if r.code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("the request behind the hung run: %s; want 503, timed out", r)
	}
	queued := regexp.MustCompile(`slow request: model "fake" version 1 took (\S+): (\S+) in the queue, then no run; answered 503: timed out after \S+ waiting in the queue of model "fake" version 1 .*; id "late-1"; from \S+\n`)
	m := queued.FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no line for the request that timed out in the queue:\n%s", s.log.String())
	}
	if took, waited := parseDur(t, m[1]), parseDur(t, m[2]); waited < 60*time.Millisecond || took < waited {
		t.Errorf("took %s, waited %s; want at least the request's 60ms timeout in the queue, and more in all", took, waited)
	}

	time.Sleep(time.Second + 100*time.Millisecond) // the version's next line may go out
	b.unblock()
	if r := <-hung; r.code != fasthttp.StatusOK {
		t.Fatalf("the hung request, released: %s", r)
	}
	ran := regexp.MustCompile(`slow request: model "fake" version 1 took (\S+): 0s in the queue, (\S+) in a run of 1 row \(its own\), \S+ decoding and answering; answered 200; id "hung-1"; X-Request-Id "req-7"; traceparent "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; from \S+\n`)
	m = ran.FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no line for the request whose run hung:\n%s", s.log.String())
	}
	if took, compute := parseDur(t, m[1]), parseDur(t, m[2]); compute < time.Second || took < compute {
		t.Errorf("took %s, run %s; want a run of over a second, and more in all", took, compute)
	}
	if n := strings.Count(s.log.String(), "slow request:"); n != 2 {
		t.Errorf("%d slow request lines; want 2 (the first request was fast):\n%s", n, s.log.String())
	}
}

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}
