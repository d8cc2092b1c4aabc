package gateway

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// blockingBackend's Run waits for release, counting its runs.
type blockingBackend struct {
	release chan struct{}
	started atomic.Int64
}

func (b *blockingBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}

func (b *blockingBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}

func (b *blockingBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	b.started.Add(1)
	<-b.release
	return []oip.Tensor{{Name: "y", Datatype: oip.FP32, Shape: slicesClone(in[0].Shape), Data: append([]byte(nil), in[0].Data...)}}, nil
}

func (b *blockingBackend) Close() error { return nil }

func slicesClone(s []int64) []int64 { return append([]int64(nil), s...) }

func reviewRepo(t *testing.T, b *blockingBackend, withModel bool) *registry.Repository {
	t.Helper()
	dir := t.TempDir()
	if withModel {
		p := filepath.Join(dir, "m", "1", "model.onnx")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("m1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := registry.New(registry.Config{Dir: dir, Defaults: registry.ModelConfig{Instances: 2, MaxBatchSize: 1},
		Load: func([]byte, registry.ModelConfig) (registry.Backend, error) { return b, nil },
		Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if withModel {
		if err := r.Load("m", nil); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestShadowCloseDropsQueuedCopies: close documents that queued
// copies are dropped and that it waits only for the copies running. A
// worker that finishes its copy selects between the closed stop channel
// and a non-empty queue at random, so it goes on running queued copies
// (and close waits for them too, each up to the request timeout).
func TestShadowCloseDropsQueuedCopies(t *testing.T) {
	in := []oip.Tensor{fp32("x", []int64{1, 1}, 1)}
	for trial := range 20 {
		b := &blockingBackend{release: make(chan struct{})}
		r := reviewRepo(t, b, true)
		set := metrics.NewSet()
		sh := registry.NewShadow(set, "m", &route.Shadow{Version: 1, Percent: 100})
		w := newShadower(r, 10*time.Second, func(*registry.Version, error) registry.FailureReason { return registry.ReasonInternal }, t.Logf)
		// Two copies, one per worker, both held in Run.
		w.submit(sh, in, in, "")
		w.submit(sh, in, in, "")
		for b.started.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		for range shadowQueue {
			w.submit(sh, in, in, "") // queued behind them
		}
		closed := make(chan error, 1)
		go func() { closed <- w.close(context.Background()) }()
		time.Sleep(20 * time.Millisecond) // close has closed stop
		close(b.release)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if n := b.started.Load(); n > 2 {
			t.Fatalf("trial %d: close was called with 2 copies running and %d queued; %d copies ran before it returned (queued copies are to be dropped)", trial, shadowQueue, n)
		}
	}
}

// TestShadowSubmitRacingClose: submit checks stopped,
// then starts the workers; a close between the two finds no worker to
// wait for (wg at 0) and returns, after which submit starts workers that
// may run its copy: a copy runs after close returned nil.
func TestShadowSubmitRacingClose(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs parallelism")
	}
	r := reviewRepo(t, &blockingBackend{release: make(chan struct{})}, false) // no model: a copy counts not_ready at once
	set := metrics.NewSet()
	sh := registry.NewShadow(set, "m", &route.Shadow{Version: 1, Percent: 100})
	notReady := set.GetOrCreateCounter(`infergate_shadow_requests_total{model="m",version="1",result="not_ready"}`)
	in := []oip.Tensor{fp32("x", []int64{1, 1}, 1)}
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		w := newShadower(r, time.Second, nil, t.Logf)
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w.submit(sh, in, in, "")
		}()
		close(start)
		if err := w.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := notReady.Get()
		wg.Wait()
		w.wg.Wait()
		if final := notReady.Get(); final > after {
			t.Fatalf("iteration %d: a copy ran after close returned nil (not_ready %d at close's return, %d after)", i, after, final)
		}
	}
}
