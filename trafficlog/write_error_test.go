package trafficlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// failAfter passes n bytes to w, then fails.
type failAfter struct {
	w io.Writer
	n int
}

var errInjected = errors.New("injected write error")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	k, _ := f.w.Write(p[:f.n])
	f.n = 0
	return k, errInjected
}

// TestWriteErrorMidBatch: a batch of an Append, an
// AppendSync of two events and another Append fails part way through its
// flush (a few bytes of the AppendSync'd batch reach the file). The
// AppendSync gets the error, nothing of the batch is readable or survives
// a restart, and the next AppendSync lands at the last synced position.
func TestWriteErrorMidBatch(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SyncInterval = time.Hour
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	hold := make(chan struct{})
	calls := 0
	first := len(AppendRecord(nil, prediction(1)))
	l.beforeBatch = func() {
		calls++
		if calls == 2 {
			<-hold
			l.w.Reset(&failAfter{w: l.f, n: first + 10})
		}
	}
	if err := l.AppendSync(prediction(0)); err != nil {
		t.Fatal(err)
	}
	synced := l.Stats().Next
	l.Append(prediction(1)) // the writer takes it and waits in beforeBatch
	time.Sleep(20 * time.Millisecond)
	res := make(chan error, 1)
	go func() { res <- l.AppendSync(feedback(2), feedback(3)) }()
	for len(l.queue) < 1 {
		time.Sleep(time.Millisecond)
	}
	l.Append(prediction(4))
	if len(l.queue) != 2 {
		t.Fatalf("%d queued; the test needs the AppendSync and the Append behind the held batch", len(l.queue))
	}
	close(hold)
	if err := <-res; !errors.Is(err, errInjected) {
		t.Fatalf("AppendSync in the failed batch: %v; want the write error", err)
	}
	if err := l.AppendSync(feedback(5)); err != nil {
		t.Fatal(err)
	}
	evs, poss, _ := readAll(t, l, 0)
	ids := fmt.Sprint(len(evs), " ", poss)
	if len(evs) != 2 || evs[1].ID != "req-5" || poss[1] != synced {
		t.Fatalf("after the failed batch: %s %+v; want req-0, then req-5 at %d", ids, evs, synced)
	}
	l.Close()
	info, _ := os.Stat(dir + "/" + segName(0))
	l2 := open(t, cfg)
	if st := l2.Stats(); st.Next != info.Size() {
		t.Fatalf("after a restart: %+v; file %d bytes", st, info.Size())
	}
	evs2, _, _ := readAll(t, l2, 0)
	if len(evs2) != 2 {
		t.Fatalf("after a restart: %d events; want 2", len(evs2))
	}
}
