package trafficlog

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestAppendSyncGivesUpOnAHungDisk: while the writer is stuck (a disk
// that hangs), AppendSync fails with ErrSyncTimeout after SyncTimeout
// instead of holding its caller; once the disk comes back the record is
// written after all.
func TestAppendSyncGivesUpOnAHungDisk(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SyncTimeout = 50 * time.Millisecond
	l := open(t, cfg)
	hold := make(chan struct{})
	var once sync.Once
	l.beforeBatch = func() { <-hold }
	start := time.Now()
	err := l.AppendSync(feedback(1))
	if !errors.Is(err, ErrSyncTimeout) {
		t.Fatalf("AppendSync on a hung disk: %v; want ErrSyncTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("AppendSync took %s to give up; want about SyncTimeout (50ms)", d)
	}
	once.Do(func() { close(hold) })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = nil
	l = open(t, cfg)
	if got, _, _ := readAll(t, l, 0); len(got) != 1 || got[0].ID != "req-1" {
		t.Fatalf("after the disk came back: %d events; want the feedback written after all", len(got))
	}
}

// TestAppendsRacingCloseAreWrittenOrRefused: every Append that returned
// nil while the log closed is on disk after it reopens; the rest were
// refused with ErrClosed or ErrFull (counted).
func TestAppendsRacingCloseAreWrittenOrRefused(t *testing.T) {
	for round := range 20 {
		cfg := testConfig(t, t.TempDir())
		l := open(t, cfg)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					err := l.Append(prediction(g*100000 + i))
					if errors.Is(err, ErrClosed) {
						return
					}
					if errors.Is(err, ErrFull) {
						continue // dropped and counted: the writer lags
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		cfg.Metrics = nil
		l = open(t, cfg)
		if got, _, _ := readAll(t, l, 0); len(got) != accepted {
			t.Fatalf("round %d: %d appends accepted, %d on disk after a reopen", round, accepted, len(got))
		}
		l.Close()
	}
}
