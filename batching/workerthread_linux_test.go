package batching

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/infergate/infergate/oip"
)

// tidBackend records the thread of every run.
type tidBackend struct {
	fakeBackend
	mu   sync.Mutex
	tids map[int]int // thread id → runs
}

func (t *tidBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	t.mu.Lock()
	t.tids[syscall.Gettid()]++
	t.mu.Unlock()
	return t.fakeBackend.Run(ctx, in, names, dst)
}

// TestWorkerThread checks that with WorkerThread set every run, a lone
// request's too, happens on a worker's thread, on which the hook ran once
// per worker; and that a failing hook is logged and the worker still
// serves.
func TestWorkerThread(t *testing.T) {
	for _, instances := range []int{1, 3} {
		var mu sync.Mutex
		hooked := map[int]bool{}
		be := &tidBackend{tids: map[int]int{}}
		undone := map[int]bool{}
		b, err := New(be, Config{Instances: instances, MaxBatchSize: 8, WorkerThread: func() (func(), error) {
			mu.Lock()
			hooked[syscall.Gettid()] = true
			mu.Unlock()
			return func() {
				mu.Lock()
				undone[syscall.Gettid()] = true
				mu.Unlock()
			}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 { // one at a time: an instance is idle each time
			r := request(1, 2, float32(i))
			if err := b.Do(r); err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, r, 2, float32(i))
		}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				r := request(1+i%3, 2, float32(i))
				if err := b.Do(r); err != nil {
					t.Error(err)
					return
				}
				checkOutputs(t, r, 2, float32(i))
			})
		}
		wg.Wait()
		b.Stop()
		if len(hooked) != instances {
			t.Fatalf("%d instances: the hook ran on %d threads; want one per worker", instances, len(hooked))
		}
		if !maps.Equal(hooked, undone) {
			t.Fatalf("%d instances: hooked threads %v, undone on %v; want each undone on its own thread by Stop", instances, hooked, undone)
		}
		for tid, n := range be.tids {
			if !hooked[tid] {
				t.Fatalf("%d instances: %d runs on thread %d, which is no worker's (workers: %v)", instances, n, tid, hooked)
			}
		}
	}

	var logged []string
	var mu sync.Mutex
	b, err := New(&fakeBackend{}, Config{WorkerThread: func() (func(), error) { return nil, errors.New("no such CPU") },
		Logf: func(format string, args ...any) {
			mu.Lock()
			logged = append(logged, format)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Do(request(1, 2, 1)); err != nil {
		t.Fatalf("a worker whose hook failed: %v", err)
	}
	b.Stop()
	if len(logged) != 1 || !strings.Contains(logged[0], "the worker runs anyway") {
		t.Fatalf("logged %q", logged)
	}
}
