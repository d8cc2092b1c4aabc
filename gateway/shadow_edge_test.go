package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// startTwoFakes serves model "fake" versions 1 (b1) and 2 (b2), one
// instance each, at most maxQueue waiting requests per version.
func startTwoFakes(t *testing.T, cfg gateway.Config, b1, b2 *fakeBackend, maxQueue int) *testServer {
	t.Helper()
	load := func(data []byte, _ registry.ModelConfig) (registry.Backend, error) {
		if string(data) == "two" {
			return b2, nil
		}
		return b1, nil
	}
	s := startServer(t, serverOptions{cfg: cfg, load: load,
		defaults: registry.ModelConfig{Instances: 1, MaxQueue: maxQueue, VersionPolicy: registry.VersionPolicy{All: &struct{}{}}},
		files:    map[string][]byte{"fake/1": []byte("one"), "fake/2": []byte("two")}})
	t.Cleanup(b1.unblock)
	t.Cleanup(b2.unblock)
	testenv.CheckFor(t, 5*time.Second, func() error {
		for _, v := range []int64{1, 2} {
			x, err := s.repo.Acquire("fake", v)
			if err != nil {
				return err
			}
			x.Release()
		}
		return nil
	})
	return s
}

// TestShutdownBoundsShadowCopies: Shutdown(ctx) returns when ctx ends even
// while a shadow copy's run hangs (found by a reviewing helper: it waited
// for the copy, whatever ctx said).
func TestShutdownBoundsShadowCopies(t *testing.T) {
	b1, b2 := newFakeBackend(), newFakeBackend()
	b2.mode.Store(fakeBlock)
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = 4 * time.Second
	s := startTwoFakes(t, cfg, b1, b2, 0)
	s.repo.SetShadow("fake", &route.Shadow{Version: 2, Percent: 100})
	if r := s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest); r.code != 200 {
		t.Fatalf("client: %s", r)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := b2.running.Load(); n != 1 {
			return fmt.Errorf("%d copies running", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown with a copy still running returned %v; want ctx's error", err)
		}
	case <-time.After(3 * time.Second):
		b2.unblock()
		err := <-done
		t.Fatalf("Shutdown with a 200ms context had not returned after 3s; it returned %v only once the shadow copy's backend run was let go (%s): a copy whose run hangs keeps Shutdown, and the process, waiting for ever", err, time.Since(start).Round(time.Millisecond))
	}
}

// TestShadowCopyTakesNoClientPlace: a copy runs only on a shadow version
// that no client is using, so it never waits in their queue (found by a
// reviewing helper: copies queued at the clients' priority and took their
// places, so a client of the shadow version got a 503).
func TestShadowCopyTakesNoClientPlace(t *testing.T) {
	type fixture struct {
		s     *testServer
		b2    *fakeBackend
		count func(result string) float64
		post2 func() chan response
	}
	setup := func(t *testing.T) fixture {
		b1, b2 := newFakeBackend(), newFakeBackend()
		b2.mode.Store(fakeBlock)
		cfg := gateway.DefaultConfig()
		cfg.RequestTimeout = 10 * time.Second
		s := startTwoFakes(t, cfg, b1, b2, 1)
		s.repo.SetShadow("fake", &route.Shadow{Version: 2, Percent: 100})
		return fixture{s: s, b2: b2,
			count: func(result string) float64 {
				v, _ := metricValue(s.metricsText(t), fmt.Sprintf(`infergate_shadow_requests_total{model="fake",version="2",result=%q}`, result))
				return v
			},
			post2: func() chan response {
				c := make(chan response, 1)
				go func() {
					r, _ := s.send(fasthttp.MethodPost, "/v2/models/fake/versions/2/infer", fakeRequest)
					c <- r
				}()
				return c
			}}
	}
	waitCount := func(t *testing.T, x fixture, result string, want float64) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, func() error {
			if n := x.count(result); n != want {
				return fmt.Errorf("%s copies: %v; want %v", result, n, want)
			}
			return nil
		})
	}
	waitRunning := func(t *testing.T, b *fakeBackend) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, func() error {
			if n := b.running.Load(); n != 1 {
				return fmt.Errorf("%d runs; want 1", n)
			}
			return nil
		})
	}

	// Busy: a client of version 2 runs; a copy is dropped, and the next
	// client of version 2 gets the queue's one place.
	t.Run("busy", func(t *testing.T) {
		x := setup(t)
		first := x.post2()
		waitRunning(t, x.b2)
		if r := x.s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest); r.code != 200 {
			t.Fatalf("client of version 1: %s", r)
		}
		waitCount(t, x, "dropped", 1)
		second := x.post2()
		time.Sleep(100 * time.Millisecond)
		x.b2.unblock()
		for i, c := range []chan response{first, second} {
			if r := <-c; r.code != 200 {
				t.Fatalf("client %d of version 2 with a busy shadow: %s", i+1, r)
			}
		}
	})

	// Idle: the copy runs, holding the one instance for its run; a client
	// who comes meanwhile waits for that run, as it would for another
	// client's.
	t.Run("idle", func(t *testing.T) {
		x := setup(t)
		if r := x.s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest); r.code != 200 {
			t.Fatalf("client of version 1: %s", r)
		}
		waitRunning(t, x.b2) // the copy
		client := x.post2()
		time.Sleep(200 * time.Millisecond)
		x.b2.unblock()
		if r := <-client; r.code != 200 {
			t.Fatalf("a client of version 2 while a copy ran: %s", r)
		}
		waitCount(t, x, "compared", 1)
	})
}

// TestBusyShadowCountsDropped: a copy that finds the loaded shadow version
// at its in-flight bound is dropped, not counted not_ready, which means
// "not loaded on this node" (found by a reviewing helper).
func TestBusyShadowCountsDropped(t *testing.T) {
	b1, b2 := newFakeBackend(), newFakeBackend()
	b2.mode.Store(fakeBlock)
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = 10 * time.Second
	s := startTwoFakes(t, cfg, b1, b2, 1)
	done := make(chan response, 2)
	for range 2 { // one runs, one waits: version 2 is at instances + max_queue
		go func() {
			r, _ := s.send(fasthttp.MethodPost, "/v2/models/fake/versions/2/infer", fakeRequest)
			done <- r
		}()
	}
	v2 := s.repo.Model("fake").Version(2)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := v2.Batcher.QueueLen(); n != 1 || b2.running.Load() != 1 {
			return fmt.Errorf("queue %d running %d", n, b2.running.Load())
		}
		return nil
	})
	s.repo.SetShadow("fake", &route.Shadow{Version: 2, Percent: 100})
	if r := s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest); r.code != 200 {
		t.Fatalf("client of version 1: %s", r)
	}
	series := func(result string) string {
		return fmt.Sprintf(`infergate_shadow_requests_total{model="fake",version="2",result=%q}`, result)
	}
	var text string
	testenv.CheckFor(t, 5*time.Second, func() error {
		text = s.metricsText(t)
		for _, r := range []string{"compared", "failed", "dropped", "not_ready"} {
			if v, _ := metricValue(text, series(r)); v > 0 {
				return nil
			}
		}
		return fmt.Errorf("copy not counted yet")
	})
	b2.unblock()
	<-done
	<-done
	if v, _ := metricValue(text, series("dropped")); v != 1 {
		t.Fatalf("%s = %v; want 1:\n%s", series("dropped"), v, grepLines(text, "infergate_shadow_requests_total"))
	}
	if v, _ := metricValue(text, series("not_ready")); v != 0 {
		t.Fatalf("a copy refused because ready version 2 was at its in-flight bound was counted %s %v (version 2 is loaded and ready):\n%s", series("not_ready"), v, grepLines(text, "infergate_shadow_requests_total"))
	}
}

// TestFailedShutdownStopsShadowWorkers: a Shutdown that returns ctx's
// error (a request still in flight) stops the shadow workers too, so that
// no copy runs while serve closes the repository (found by a reviewing
// helper).
func TestFailedShutdownStopsShadowWorkers(t *testing.T) {
	b1, b2 := newFakeBackend(), newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = 10 * time.Second
	s := startTwoFakes(t, cfg, b1, b2, 0)
	s.repo.SetShadow("fake", &route.Shadow{Version: 2, Percent: 100})
	if r := s.post(t, "/v2/models/fake/versions/1/infer", fakeRequest); r.code != 200 {
		t.Fatalf("client: %s", r)
	}
	b1.mode.Store(fakeBlock)
	inflight := make(chan response, 1)
	go func() {
		r, _ := s.send(fasthttp.MethodPost, "/v2/models/fake/versions/1/infer", fakeRequest)
		inflight <- r
	}()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if b1.running.Load() != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown: want ctx's error with a request in flight")
	}
	b1.unblock()
	<-inflight
	time.Sleep(500 * time.Millisecond)
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if n := strings.Count(stacks, "gateway.(*shadower).work("); n > 0 {
		t.Fatalf("%d shadow workers still running 500ms after Shutdown returned and the last handler ended", n)
	}
}
