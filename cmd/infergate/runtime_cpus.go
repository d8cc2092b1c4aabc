package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
)

// cpuReservation splits the CPUs this process may use: the reserved ones
// run the models' batch workers, and with them ONNX Runtime, and nothing
// else of this process; the rest run everything else (HTTP, decoding, the
// control plane). ONNX Runtime then keeps its caches and its CPU time
// however busy the HTTP side is.
type cpuReservation struct {
	reserved, rest []int
	// pinMu keeps a sweep from moving a thread between reading its CPUs
	// and setting them while a worker or a load binds it to the reserved
	// ones.
	pinMu sync.Mutex
}

// reserveCPUs checks list (the kernel's notation) against the CPUs this
// process may use; it changes nothing yet.
func reserveCPUs(list string) (*cpuReservation, error) {
	cpus, err := affinity.Parse(list)
	if err != nil {
		return nil, fmt.Errorf("--runtime-cpus: %w", err)
	}
	allowed, err := affinity.Allowed()
	if err != nil {
		return nil, fmt.Errorf("--runtime-cpus: %w", err)
	}
	r := &cpuReservation{}
	for _, c := range cpus {
		if !slices.Contains(allowed, c) {
			return nil, fmt.Errorf("--runtime-cpus %s: CPU %d is not one this process may use (%s)", list, c, affinity.Format(allowed))
		}
		if !slices.Contains(r.reserved, c) {
			r.reserved = append(r.reserved, c)
		}
	}
	slices.Sort(r.reserved)
	for _, c := range allowed {
		if !slices.Contains(r.reserved, c) {
			r.rest = append(r.rest, c)
		}
	}
	if len(r.rest) == 0 {
		return nil, fmt.Errorf("--runtime-cpus %s reserves every CPU this process may use (%s); leave at least one for HTTP", list, affinity.Format(allowed))
	}
	return r, nil
}

// apply fixes GOMAXPROCS at what it is (unless the environment sets it)
// and moves every thread of the process onto the rest. The workers, on
// the reserved CPUs, need processors too, and Go would otherwise size
// GOMAXPROCS down to the rest within a second of the move; setting it
// first leaves no such moment.
func (r *cpuReservation) apply() (procs int, err error) {
	procs = runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procs)
	}
	if err := affinity.PinProcess(r.rest); err != nil {
		return 0, err
	}
	return procs, nil
}

// sweepEvery is how often a reservation moves onto the rest the threads
// that its move missed (see sweep).
const sweepEvery = 2 * time.Second

// sweep moves onto the rest the threads that are on neither the rest nor
// the reserved CPUs: one that a thread not yet moved started while apply
// moved the process keeps the old CPUs, and so does every thread it
// starts, which would let HTTP work run on the reserved CPUs for good.
// serve runs it every sweepEvery. Each sweep costs two system calls a
// thread. It logs what it moves.
func (r *cpuReservation) sweep(logf func(string, ...any)) {
	n, err := r.sweepOnce()
	switch {
	case err != nil:
		logf(logging.Warning+"--runtime-cpus: %v", err)
	case n > 0:
		logf("--runtime-cpus: moved %d threads that were still on the reserved CPUs onto %s", n, affinity.Format(r.rest))
	}
}

// workerThread binds a batch worker's thread to the reserved CPUs, and
// its undo moves it back as the worker ends: the registry's WorkerThread.
// Go ends a locked thread with its goroutine, except the main thread,
// which it keeps asleep; main's init keeps that thread from workers, and
// undo keeps the binding from outliving a worker all the same.
func (r *cpuReservation) workerThread() (undo func(), err error) {
	if err := r.pin(); err != nil {
		return nil, err
	}
	return r.unpin, nil
}

// sweepOnce is one sweep, apart from any pin.
func (r *cpuReservation) sweepOnce() (int, error) {
	r.pinMu.Lock()
	defer r.pinMu.Unlock()
	return affinity.Sweep(r.rest, r.reserved)
}

// pin binds the calling thread, locked, to the reserved CPUs, apart from
// any sweep.
func (r *cpuReservation) pin() error {
	r.pinMu.Lock()
	defer r.pinMu.Unlock()
	return affinity.PinThread(r.reserved)
}

// unpin moves the calling thread back onto the rest. The thread is about
// to end, so a failure is not reported.
func (r *cpuReservation) unpin() { affinity.PinThread(r.rest) }

// load wraps a LoadFunc so that it runs on a thread bound to the reserved
// CPUs: the threads ONNX Runtime starts for a session (its intra-op pool)
// inherit them. The load runs on a goroutine of its own that never
// unlocks its thread, so that the thread ends with it, whatever f does,
// rather than serve other goroutines from the reserved CPUs; it moves the
// thread back first all the same (see workerThread).
// Building and warming a session there, during a reload, takes time from
// the serving workers; that is the price of its threads landing there.
func (r *cpuReservation) load(f registry.LoadFunc) registry.LoadFunc {
	type result struct {
		b   registry.Backend
		err error
	}
	return func(data []byte, cfg registry.ModelConfig) (registry.Backend, error) {
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			if err := r.pin(); err != nil {
				done <- result{err: err}
				return
			}
			defer func() {
				r.unpin()
				if p := recover(); p != nil {
					done <- result{err: fmt.Errorf("loading the model panicked: %v", p)}
				}
			}()
			b, err := f(data, cfg)
			done <- result{b, err}
		}()
		res := <-done
		return res.b, res.err
	}
}
