package registry

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A load that fails while the previous load of the same version still
// drains (unloaded with a request in flight) must keep its failure in the
// index once the old version finishes draining, and a poll must not retry
// the unchanged broken file.
func TestFailedReloadWhileDrainingKeepsFailure(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	held := mustAcquire(t, r, "m", 1) // a slow request in flight
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 1, "fail v1 rewritten")
	if err := r.Load("m", nil); err == nil {
		t.Fatal("broken version loaded")
	}
	held.Release() // the old version drains and closes
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !backendOf(held).closed.Load() {
			return fmt.Errorf("old version not closed yet")
		}
		return nil
	})
	// Let the retire goroutine finish its status update.
	r.wg.Wait()
	idx, _ := r.Index()
	found := false
	for _, e := range idx {
		if strings.Contains(e.Reason, "broken model") {
			found = true
		}
	}
	if !found {
		t.Errorf("index %+v after the failed load; want its reason (broken model) shown", idx)
	}
	before := l.count()
	_ = r.Poll()
	_ = r.Poll()
	if n := l.count() - before; n != 0 {
		t.Errorf("polls retried the unchanged broken file %d times; want 0", n)
	}
}

// Unload, reload and unload again while each load still holds a request:
// when the first load finishes draining, the second still drains, so
// the version is UNLOADING, not UNAVAILABLE.
func TestIndexWhileSecondUnloadDrains(t *testing.T) {
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	var drained atomic.Int64 // "unloaded model" lines: logged after the status update
	logf := func(format string, args ...any) {
		if strings.HasPrefix(format, "unloaded model") {
			drained.Add(1)
		}
		t.Logf(format, args...)
	}
	r, err := New(Config{Dir: dir, Load: l.load, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "v1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	a := mustAcquire(t, r, "m", 1)
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	b := mustAcquire(t, r, "m", 1)
	defer b.Release()
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	a.Release()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if drained.Load() != 1 {
			return fmt.Errorf("first load not done draining yet")
		}
		return nil
	})
	idx, _ := r.Index()
	if fmt.Sprint(idx) != "[{m 1 UNLOADING }]" {
		t.Fatalf("index %v while the second load still drains a request; want [{m 1 UNLOADING }]", idx)
	}
}
