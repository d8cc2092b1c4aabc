package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// TestBrokenRewriteNotRetriedByPoll rewrites the file of the serving
// version with a broken model: the old backend keeps serving, the index
// says why the new file is not, and polls do not reload the unchanged
// broken file (for ONNX Runtime that would build and warm every instance
// again on every poll).
func TestBrokenRewriteNotRetriedByPoll(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 1, "fail-rewrite")
	if err := r.Load("m", nil); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load of a broken rewrite: got %v; want ErrLoadFailed", err)
	}
	v := mustAcquire(t, r, "m", 1)
	if backendOf(v).tag != "m1" {
		t.Fatalf("serving %q; want the old m1", backendOf(v).tag)
	}
	v.Release()

	idx, _ := r.Index()
	if len(idx) != 1 || idx[0].State != StateReady || !strings.Contains(idx[0].Reason, "the new one failed to load") {
		t.Fatalf("index after a broken rewrite: got %+v; want READY with the reason the new file is not served", idx)
	}
	n := l.count()
	for range 3 {
		_ = r.Poll()
	}
	if got := l.count() - n; got != 0 {
		idx, _ := r.Index()
		t.Fatalf("3 polls loaded the unchanged broken file %d more times; want 0 (index %+v)", got, idx)
	}
}

// TestReloadWhileDrainingKeepsMetrics unloads a model while a request
// still holds its version, then loads it again (a rollback to a version
// still draining takes the same path), and lets the old version finish
// draining before the new one is routable: the new version must keep its
// metric series, which the two share.
func TestReloadWhileDrainingKeepsMetrics(t *testing.T) {
	set := metrics.NewSet()
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	loaded := make(chan struct{}, 1)
	proceed := make(chan struct{})
	unloaded := make(chan struct{}, 4)
	var armed sync.Once
	var arm bool
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		a := arm
		mu.Unlock()
		switch {
		case strings.HasPrefix(format, "unloaded model"):
			unloaded <- struct{}{}
		case a && strings.HasPrefix(format, "loaded model"):
			// The new version is loaded, its metrics picked, not yet routable.
			armed.Do(func() { loaded <- struct{}{}; <-proceed })
		}
		t.Logf(format, args...)
	}
	r, err := New(Config{Dir: dir, Load: l.load, Metrics: set, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeModel(t, dir, "a", 1, "a1")
	if err := r.Load("a", nil); err != nil {
		t.Fatal(err)
	}
	held := mustAcquire(t, r, "a", 1) // a slow request in flight
	if err := r.Unload("a"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	arm = true
	mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- r.Load("a", nil) }()
	<-loaded
	held.Release() // the slow request ends: the old version drains and closes
	select {
	case <-unloaded:
	case <-time.After(5 * time.Second):
		t.Fatal("the old version did not finish draining")
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	v := mustAcquire(t, r, "a", 1)
	v.Metrics.Success.Inc()
	v.Release()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	series := `infergate_inference_request_success_total{model="a",version="1"}`
	if !strings.Contains(buf.String(), series) {
		t.Fatalf("version 1 serves again but %s is gone from /metrics:\n%s", series, buf.String())
	}
	idx, _ := r.Index()
	if fmt.Sprint(idx) != "[{a 1 READY }]" {
		t.Fatalf("index: got %v; want [{a 1 READY }]", idx)
	}
}
