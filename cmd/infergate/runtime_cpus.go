package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"

	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/registry"
)

// cpuReservation splits the CPUs this process may use: the reserved ones
// run the models' batch workers, and with them ONNX Runtime, and nothing
// else of this process; the rest run everything else (HTTP, decoding, the
// control plane). ONNX Runtime then keeps its caches and its CPU time
// however busy the HTTP side is.
type cpuReservation struct {
	reserved, rest []int
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

// apply moves every thread of the process onto the rest, and fixes
// GOMAXPROCS at what it was (unless the environment sets it): the
// workers, on the reserved CPUs, need processors too, and Go would
// otherwise size it down to the rest.
func (r *cpuReservation) apply() (procs int, err error) {
	if err := affinity.PinProcess(r.rest); err != nil {
		return 0, err
	}
	procs = runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procs)
	}
	return procs, nil
}

// workerThread binds a batch worker's thread to the reserved CPUs: the
// registry's WorkerThread.
func (r *cpuReservation) workerThread() error { return affinity.PinThread(r.reserved) }

// load wraps a LoadFunc so that it runs on a thread bound to the reserved
// CPUs: the threads ONNX Runtime starts for a session (its intra-op pool)
// inherit them.
func (r *cpuReservation) load(f registry.LoadFunc) registry.LoadFunc {
	return func(data []byte, cfg registry.ModelConfig) (b registry.Backend, err error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := affinity.PinThread(r.reserved); err != nil {
			return nil, err
		}
		b, err = f(data, cfg)
		if perr := affinity.PinThread(r.rest); perr != nil {
			// This thread must not serve other goroutines from the
			// reserved CPUs: keep it locked, so that it ends with this
			// goroutine.
			runtime.LockOSThread()
			if b != nil {
				b.Close()
			}
			return nil, fmt.Errorf("after loading the model: %w", perr)
		}
		return b, err
	}
}
