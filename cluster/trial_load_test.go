package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// A node runs at most maxTrialLoads trial loads at once: uploads beyond
// them wait their turn, and all go through once the loads end. Before,
// every upload loaded its model at once, each holding a session.
func TestTrialLoadsBounded(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{})
	var running, most atomic.Int32
	release := make(chan struct{})
	check := n.cfg.Check
	n.cfg.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		if !bytes.HasSuffix(b, []byte("quick")) {
			<-release
		}
		return check(b)
	}
	const uploads = 5
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	for i := range uploads {
		wg.Go(func() {
			if _, _, err := n.Upload(context.Background(), fmt.Sprintf("m%d", i), []byte("narrow"), false, nil); err != nil {
				errs <- err
			}
		})
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if r := running.Load(); r != maxTrialLoads {
			return fmt.Errorf("%d trial loads running; want %d", r, maxTrialLoads)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // room for more to start, were they let
	if m := most.Load(); m != maxTrialLoads {
		t.Fatalf("%d trial loads ran at once; want at most %d", m, maxTrialLoads)
	}
	// A waiting upload whose context ends gives up, saying why.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := n.Upload(ctx, "late", []byte("narrow quick"), false, nil); err == nil || ctx.Err() == nil {
		t.Fatalf("an upload waiting past its context: %v; want its context's error", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("upload: %v", err)
	}
	if m := most.Load(); m != maxTrialLoads {
		t.Fatalf("%d trial loads ran at once; want at most %d", m, maxTrialLoads)
	}
}

// A request waits Config.TrialLoadWait at most for a trial load, then is told
// to come back (ErrTrialLoadsBusy, a 429): an upload or a promotion does
// not wait on other loads for as long as they take.
func TestTrialLoadWaitBounded(t *testing.T) {
	n := checkedNode(t, registry.ModelConfig{})
	n.cfg.TrialLoadWait = 300 * time.Millisecond
	var running atomic.Int32
	release := make(chan struct{})
	// free ends the held loads, once: at the end, or when a check fails.
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free)
	check := n.cfg.Check
	n.cfg.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
		running.Add(1)
		defer running.Add(-1)
		if !bytes.HasSuffix(b, []byte("quick")) {
			<-release
		}
		return check(b)
	}
	res, _, err := n.Upload(context.Background(), "q", []byte("narrow quick"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range maxTrialLoads {
		wg.Go(func() {
			if _, _, err := n.Upload(context.Background(), fmt.Sprintf("m%d", i), []byte("narrow"), false, nil); err != nil {
				t.Errorf("upload m%d: %v", i, err)
			}
		})
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if r := running.Load(); r != maxTrialLoads {
			return fmt.Errorf("%d trial loads running; want %d", r, maxTrialLoads)
		}
		return nil
	})
	start := time.Now()
	_, _, err = n.Upload(context.Background(), "late", []byte("narrow quick"), false, nil)
	if waited := time.Since(start); !errors.Is(err, ErrTrialLoadsBusy) || waited < n.cfg.TrialLoadWait {
		t.Fatalf("an upload with every trial load taken: %v after %s; want ErrTrialLoadsBusy after %s", err, waited, n.cfg.TrialLoadWait)
	}
	if _, _, _, err := n.VersionSignature("q", res.Version); !errors.Is(err, ErrTrialLoadsBusy) {
		t.Fatalf("the signature of a version not loaded, every trial load taken: %v; want ErrTrialLoadsBusy", err)
	}
	free()
	wg.Wait()
	if in, _, ok, err := n.VersionSignature("q", res.Version); !ok || err != nil || len(in) == 0 {
		t.Fatalf("the signature once the loads are done: %v, ok %v, %v; want the inputs", in, ok, err)
	}
}
