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
// in cpuSampleEvery, on the caller's goroutine and on the batch workers
// (all of them with WorkerThread set); a backend that burns CPU shows at
// least what it burned, one that sleeps next to none of its time; and an
// Observer that is no CPUObserver costs no clock readings.
func TestOnCPU(t *testing.T) {
	if threadCPU() < 0 {
		t.Skip("no thread CPU clock on this platform: OnCPU is never called")
	}
	const burn = time.Millisecond
	f := func(name string, backend Backend, workers bool, check func(compute, cpu time.Duration) bool, want string) {
		t.Helper()
		obs := &cpuObserver{}
		cfg := Config{MaxBatchSize: 8, Observer: obs}
		if workers {
			cfg.WorkerThread = func() (func(), error) { return nil, nil }
		}
		b, err := New(backend, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Stop()
		// One at a time, then a burst.
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
	burning := func(compute, cpu time.Duration) bool { return cpu >= burn }
	f("burning", spinBackend{Backend: &fakeBackend{}, burn: burn}, false, burning, "CPU of at least 1ms")
	f("burning on workers", spinBackend{Backend: &fakeBackend{}, burn: burn}, true, burning, "CPU of at least 1ms")
	f("sleeping", &fakeBackend{compute: 3 * time.Millisecond}, false,
		func(compute, cpu time.Duration) bool {
			return compute >= 3*time.Millisecond && cpu < 1500*time.Microsecond
		},
		"3ms or more of compute with under 1.5ms of CPU")

	b, err := New(&fakeBackend{}, Config{Observer: &countingObserver{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	for range 2 * cpuSampleEvery {
		if err := b.Do(request(1, 3, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.runs.Load(); n != 0 {
		t.Fatalf("%d runs counted for sampling with an Observer that wants no samples", n)
	}
}
