package registry

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadIdleTestVersion loads model m version 1 and lowers its in-flight
// limit to limit, before anything else touches it.
func loadIdleTestVersion(t *testing.T, limit int64) (*Repository, *Version) {
	t.Helper()
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1, MaxBatchSize: 1})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	v.Release()
	v.limit = limit // before any goroutine below starts
	return r, v
}

// idleLoop takes and gives back background references until stop closes.
func idleLoop(r *Repository, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if v, err := r.AcquireIdle("m", 1); err == nil {
			v.ReleaseIdle()
		}
	}
}

// TestIdleHoldersNeverOverAdmitClients: with limit 1, two clients never
// hold the version at once, whatever background holders do meanwhile
// (found by a reviewing helper when background holders were left out of
// the limit: a client's check subtracted holders that held nothing).
func TestIdleHoldersNeverOverAdmitClients(t *testing.T) {
	r, _ := loadIdleTestVersion(t, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go idleLoop(r, stop, &wg)
	go idleLoop(r, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	var active, maxActive atomic.Int64
	var cw sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for range 2 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for time.Now().Before(deadline) && maxActive.Load() < 2 {
				v, err := r.Acquire("m", 1)
				if err != nil {
					continue
				}
				n := active.Add(1)
				for {
					m := maxActive.Load()
					if n <= m || maxActive.CompareAndSwap(m, n) {
						break
					}
				}
				active.Add(-1)
				v.Release()
			}
		}()
	}
	cw.Wait()
	if m := maxActive.Load(); m > 1 {
		t.Fatalf("%d clients held a version whose in-flight limit is 1", m)
	}
}
