package registry

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestIdleHolderAcrossSwaps (passes): reloads swap version 1 of m
// while background and client holders take and give it back; no holder
// ever sees its backend closed, AcquireIdle never returns a retired
// (errRetry) error, and every drain ends.
func TestIdleHolderAcrossSwaps(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{Instances: 1, MaxBatchSize: 1})
	writeModel(t, dir, "m", 1, "m1-0")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var v *Version
				var err error
				if g < 2 {
					v, err = r.AcquireIdle("m", 1)
				} else {
					v, err = r.Acquire("m", 1)
				}
				if err != nil {
					if errors.Is(err, ErrVersionBusy) || errors.Is(err, ErrModelNotFound) || errors.Is(err, ErrVersionNotFound) {
						continue
					}
					var oe *OverloadError
					if errors.As(err, &oe) {
						continue
					}
					errc <- err
					return
				}
				if backendOf(v).closed.Load() {
					errc <- fmt.Errorf("holder got a closed backend %q", backendOf(v).tag)
				}
				if g < 2 {
					v.ReleaseIdle()
				} else {
					v.Release()
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for i := 1; time.Now().Before(deadline); i++ {
		writeModel(t, dir, "m", 1, fmt.Sprintf("m1-%d%s", i, string(make([]byte, i%7))))
		if err := r.Load("m", nil); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if l.count() < 10 {
		t.Fatalf("only %d loads: the test swapped nothing", l.count())
	}
	t.Logf("%d loads", l.count())
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: a drain never ended")
	}
}
