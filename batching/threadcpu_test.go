package batching

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
)

// cpuObserver records the OnCPU samples.
type cpuObserver struct {
	nopObserver
	mu      sync.Mutex
	samples [][2]time.Duration // compute, cpu
}

func (o *cpuObserver) OnCPU(compute, cpu time.Duration) {
	o.mu.Lock()
	o.samples = append(o.samples, [2]time.Duration{compute, cpu})
	o.mu.Unlock()
}

// spinBackend wraps a backend: before each run it burns the calling
// thread's CPU until its clock advanced by burn.
type spinBackend struct {
	Backend
	burn time.Duration
}

func (s spinBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	runtime.LockOSThread()
	for c0 := threadCPU(); threadCPU()-c0 < s.burn; {
	}
	runtime.UnlockOSThread()
	return s.Backend.Run(ctx, in, names, dst)
}

// TestOnCPU checks the sampling of the backend thread's CPU time: one run
// in cpuSampleEvery, on the batch worker and on the caller's goroutine, a
// backend that burns CPU shows at least what it burned, and one that
// sleeps next to none of its time.
func TestOnCPU(t *testing.T) {
	if threadCPU() < 0 {
		t.Skip("no thread CPU clock on this platform: OnCPU is never called")
	}
	const burn = time.Millisecond
	f := func(name string, backend Backend, check func(compute, cpu time.Duration) bool, want string) {
		t.Helper()
		obs := &cpuObserver{}
		b, err := New(backend, Config{MaxBatchSize: 8, Observer: obs})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Stop()
		// Callers one at a time run on their own goroutines; a burst
		// queues behind a held instance, for the worker.
		for i := range 2 * cpuSampleEvery {
			r := request(1, 3, float32(i))
			if err := b.Do(r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		var wg sync.WaitGroup
		for i := range 2 * cpuSampleEvery {
			wg.Go(func() {
				if err := b.Do(request(1, 3, float32(i))); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			})
		}
		wg.Wait()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		runs := int(b.runs.Load())
		if len(obs.samples) != runs/cpuSampleEvery || runs < 2*cpuSampleEvery+1 {
			t.Fatalf("%s: %d samples of %d runs; want one in %d", name, len(obs.samples), runs, cpuSampleEvery)
		}
		for _, s := range obs.samples {
			if !check(s[0], s[1]) || s[1] > s[0] {
				t.Fatalf("%s: sampled compute %s, CPU %s; want %s, and the CPU time within the compute", name, s[0], s[1], want)
			}
		}
	}
	f("burning", spinBackend{Backend: &fakeBackend{}, burn: burn},
		func(compute, cpu time.Duration) bool { return cpu >= burn }, "CPU of at least 1ms")
	f("sleeping", &fakeBackend{compute: 3 * time.Millisecond},
		func(compute, cpu time.Duration) bool {
			return compute >= 3*time.Millisecond && cpu < 1500*time.Microsecond
		},
		"3ms or more of compute with under 1.5ms of CPU")
}
