package bench

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/testenv"
)

// shortQueries lowers the wait of the control calls for the test.
func shortQueries(t *testing.T, d time.Duration) {
	old := minQueryTimeout
	minQueryTimeout = d
	t.Cleanup(func() { minQueryTimeout = old })
}

// measureWithin runs Measure and fails the test unless it returns within
// limit.
func measureWithin(t *testing.T, ctx context.Context, cfg Config, limit time.Duration) (*Report, error) {
	t.Helper()
	type result struct {
		rep *Report
		err error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := Measure(ctx, cfg)
		ch <- result{rep, err}
	}()
	select {
	case r := <-ch:
		t.Logf("Measure returned after %s: %v", time.Since(start).Round(time.Millisecond), r.err)
		return r.rep, r.err
	case <-time.After(limit):
		t.Fatalf("Measure still running after %s; want it to end by itself", limit)
		return nil, nil
	}
}

// A target that accepts connections and never answers: Ctrl-C (the
// context) ends the run at once, rather than after minutes of calls that
// wait for metadata.
func TestHungTargetEndsOnCancel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Options = shortOptions()
	cfg.Target = "http://" + testenv.SilentAddr(t)
	cfg.Concurrency = []int{1}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := measureWithin(t, ctx, cfg, 5*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
}

// A target that never answers fails the run by itself, once, with a
// message that says how long it waited.
func TestHungTargetEndsByItself(t *testing.T) {
	shortQueries(t, 200*time.Millisecond)
	cfg := DefaultConfig()
	cfg.Options = shortOptions()
	cfg.Timeout = 100 * time.Millisecond
	cfg.Target = "http://" + testenv.SilentAddr(t)
	cfg.Concurrency = []int{1}
	_, err := measureWithin(t, context.Background(), cfg, 5*time.Second)
	if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("got %v; want ErrTarget saying no answer within 200ms", err)
	}
}

// A gateway that stops answering everything in the middle of a run: the
// run still ends by itself, its requests counted as timeouts, rather than
// wait minutes for each /metrics and statistics call around its steps.
func TestGatewayHungMidRunEndsByItself(t *testing.T) {
	shortQueries(t, 200*time.Millisecond)
	g := &fakeGateway{}
	var hung atomic.Bool
	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if hung.Load() {
			<-release
			return
		}
		g.handle(ctx)
		// The first infer request is the capture before the steps.
		if strings.HasSuffix(string(ctx.Path()), "/infer") {
			hung.Store(true)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	t.Cleanup(func() { close(release) })

	cfg := DefaultConfig()
	cfg.Options = shortOptions()
	cfg.Timeout = 100 * time.Millisecond
	cfg.Target = "http://" + ln.Addr().String()
	cfg.Concurrency = []int{1, 2}
	rep, err := measureWithin(t, context.Background(), cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2 {
		t.Fatalf("got %d runs; want 2", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Errors == 0 || r.ErrorKinds[ErrKindTimeout] != r.Errors || r.Flagged == "" {
			t.Fatalf("run %s: got errors %d (%v), flagged %q; want every request a timeout, flagged", r.Name, r.Errors, r.ErrorKinds, r.Flagged)
		}
	}
}
