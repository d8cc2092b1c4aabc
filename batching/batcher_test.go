package batching

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infergate/infergate/oip"
)

// fakeBackend sums each row of input "x" (FP32 [n,k]) into output "sum"
// (FP32 [n,1]) and copies each row's first element into "first" (FP32
// [n]), taking compute time per run. It records every batch it ran.
type fakeBackend struct {
	compute time.Duration
	gate    chan struct{} // when set, each run waits for a token
	mu      sync.Mutex
	batches []int // rows per run
	// gathered holds the first byte of the input of every run of more
	// than one row.
	gathered []*byte
	panicOn  int  // rows that make it panic
	failOn   int  // rows that make it fail
	noBatch  bool // answer without the batch dimension
	// failOnValue, when not 0, fails runs whose input holds it.
	failOnValue float32
}

func (f *fakeBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	x := in[0]
	rows := int(x.Shape[0])
	f.mu.Lock()
	f.batches = append(f.batches, rows)
	if rows > 1 && len(x.Data) > 0 {
		f.gathered = append(f.gathered, &x.Data[0])
	}
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	if f.compute > 0 {
		time.Sleep(f.compute)
	}
	if rows == f.panicOn {
		panic("fake backend panic")
	}
	if rows == f.failOn {
		return nil, errors.New("fake backend failure")
	}
	if f.failOnValue != 0 {
		for i := 0; i < len(x.Data); i += 4 {
			if math.Float32frombits(binary.LittleEndian.Uint32(x.Data[i:])) == f.failOnValue {
				return nil, fmt.Errorf("fake backend rejects value %g", f.failOnValue)
			}
		}
	}
	k := int(x.Shape[1])
	sum := make([]byte, 0, rows*4)
	first := make([]byte, 0, rows*4)
	for r := range rows {
		var s float32
		for c := range k {
			s += math.Float32frombits(binary.LittleEndian.Uint32(x.Data[(r*k+c)*4:]))
		}
		sum = binary.LittleEndian.AppendUint32(sum, math.Float32bits(s))
		first = append(first, x.Data[r*k*4:r*k*4+4]...)
	}
	if f.noBatch {
		return []oip.Tensor{{Name: "sum", Datatype: oip.FP32, Shape: []int64{1}, Data: sum[:4]}}, nil
	}
	return []oip.Tensor{
		{Name: "sum", Datatype: oip.FP32, Shape: []int64{int64(rows), 1}, Data: sum},
		{Name: "first", Datatype: oip.FP32, Shape: []int64{int64(rows)}, Data: first},
	}, nil
}

func (f *fakeBackend) runs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

// request returns a request of rows rows, k columns, whose row i holds
// base+i in every column.
func request(rows, k int, base float32) *Request {
	data := make([]byte, 0, rows*k*4)
	for i := range rows {
		for range k {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(base+float32(i)))
		}
	}
	return &Request{
		Rows:   rows,
		Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{int64(rows), int64(k)}, Data: data}},
	}
}

// checkOutputs verifies r's outputs are its own rows' results.
func checkOutputs(t *testing.T, r *Request, k int, base float32) {
	t.Helper()
	if len(r.Outputs) != 2 {
		t.Fatalf("got %d outputs; want 2", len(r.Outputs))
	}
	sum, first := r.Outputs[0], r.Outputs[1]
	if fmt.Sprint(sum.Shape) != fmt.Sprintf("[%d 1]", r.Rows) || fmt.Sprint(first.Shape) != fmt.Sprintf("[%d]", r.Rows) {
		t.Fatalf("output shapes %v and %v for %d rows", sum.Shape, first.Shape, r.Rows)
	}
	for i := range r.Rows {
		v := base + float32(i)
		got := math.Float32frombits(binary.LittleEndian.Uint32(sum.Data[i*4:]))
		if got != v*float32(k) {
			t.Fatalf("row %d sum: got %g; want %g", i, got, v*float32(k))
		}
		if f := math.Float32frombits(binary.LittleEndian.Uint32(first.Data[i*4:])); f != v {
			t.Fatalf("row %d first: got %g; want %g", i, f, v)
		}
	}
}

type countingObserver struct {
	executed, queued, woken, rows atomic.Int64
	maxWake                       atomic.Int64 // ns
}

func (o *countingObserver) Executed(rows, n int, d time.Duration, err error) {
	o.executed.Add(1)
	o.rows.Add(int64(rows))
}
func (o *countingObserver) Queued(time.Duration) { o.queued.Add(1) }
func (o *countingObserver) Woken(d time.Duration) {
	o.woken.Add(1)
	for {
		old := o.maxWake.Load()
		if int64(d) <= old || o.maxWake.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func newBatcher(t *testing.T, f *fakeBackend, cfg Config) *Batcher {
	t.Helper()
	b, err := New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// goDo runs b.Do(r) in a goroutine and returns its result channel.
func goDo(b *Batcher, r *Request) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.Do(r) }()
	return ch
}

func TestLoneRequestRunsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: 3 * time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 64, MaxQueueDelay: 0})
		r := request(1, 4, 1)
		start := time.Now()
		if err := b.Do(r); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 3*time.Millisecond {
			t.Fatalf("a lone request took %s; want exactly the compute time, 3ms", d)
		}
		checkOutputs(t, r, 4, 1)
		if got := f.runs(); fmt.Sprint(got) != "[1]" {
			t.Fatalf("runs: got %v; want [1]", got)
		}
	})
}

func TestGathersWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: 10 * time.Millisecond}
		obs := &countingObserver{}
		b := newBatcher(t, f, Config{MaxBatchSize: 64, Observer: obs})
		first := goDo(b, request(1, 2, 100))
		synctest.Wait() // the first runs alone
		var reqs []*Request
		var chs []<-chan error
		for i := range 5 {
			r := request(1, 2, float32(i*10))
			reqs = append(reqs, r)
			chs = append(chs, goDo(b, r))
		}
		synctest.Wait()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for i, ch := range chs {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, reqs[i], 2, float32(i*10))
		}
		if got := f.runs(); fmt.Sprint(got) != "[1 5]" {
			t.Fatalf("runs: got %v; want [1 5]: the five queued while busy form one batch", got)
		}
		if obs.executed.Load() != 2 || obs.queued.Load() != 6 || obs.rows.Load() != 6 {
			t.Fatalf("observer: executed %d, queued %d, rows %d; want 2, 6, 6", obs.executed.Load(), obs.queued.Load(), obs.rows.Load())
		}
		// The first ran on its caller's goroutine; the worker answered
		// the five, whose callers were woken at once on synctest's clock
		// (an answer time left unset would read as centuries).
		if obs.woken.Load() != 5 || obs.maxWake.Load() != 0 {
			t.Fatalf("observer: woken %d, longest wake %s; want 5, 0s", obs.woken.Load(), time.Duration(obs.maxWake.Load()))
		}
	})
}

// TestYieldGathersReadyRequests: a request that finds the instance idle
// may first let the goroutines that are ready to run go first, and then
// runs with those that queued meanwhile. It does so at every idle hit once
// requests have queued, and while nothing queues, after gaps of idle hits
// that double up to maxYieldGap: on one processor, where nothing can queue
// behind a short run, that is how batches start at all. The yield waits
// until every other goroutine is blocked, which is what runtime.Gosched
// does on one processor most of the time.
func TestYieldGathersReadyRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		yields := 0
		b.yield = func() {
			yields++
			synctest.Wait()
		}
		startTogether := func(n int, base float32) {
			t.Helper()
			var reqs []*Request
			var chs []<-chan error
			for i := range n {
				r := request(1, 2, base+float32(i))
				reqs = append(reqs, r)
				chs = append(chs, goDo(b, r))
			}
			for i, ch := range chs {
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
				checkOutputs(t, reqs[i], 2, base+float32(i))
			}
		}
		// The first request ever yields: three started together run as
		// one batch.
		startTogether(3, 100)
		if got := f.runs(); fmt.Sprint(got) != "[3]" || yields != 1 {
			t.Fatalf("runs: got %v after %d yields; want [3] after 1: the three ready together form one batch", got, yields)
		}
		// A request that fills a batch alone does not yield.
		if err := b.Do(request(8, 2, 0)); err != nil || yields != 1 {
			t.Fatalf("a request of max_batch_size rows: %v after %d yields; want none more", err, yields)
		}
		// Lone requests: each yield finds nobody and doubles the gap.
		var yielded []int
		for i := range 200 {
			before := yields
			if err := b.Do(request(1, 2, 0)); err != nil {
				t.Fatal(err)
			}
			if yields != before {
				yielded = append(yielded, i)
			}
		}
		if got, want := fmt.Sprint(yielded), "[0 2 5 10 19 36 69 134 199]"; got != want {
			t.Fatalf("lone requests that yielded: got %v; want %v (gaps 1, 2, 4, ... %d)", got, want, maxYieldGap)
		}
		// Deep in a gap, three started together: the first runs at once,
		// the other two queue behind it, and queueing ends the gap.
		f.mu.Lock()
		f.batches = nil
		f.mu.Unlock()
		yields = 0
		startTogether(3, 200)
		// The worker that ran the two frees the instance after it has
		// answered them: let it, or the next three can all find it busy
		// and queue, without a yield (seen once in a clean-clone CI run).
		synctest.Wait()
		startTogether(3, 300)
		if got := f.runs(); fmt.Sprint(got) != "[1 2 3]" || yields != 1 {
			t.Fatalf("runs: got %v after %d yields; want [1 2 3] after 1", got, yields)
		}
	})
}

// TestOneGatherBufferPerInstance: with one instance, the batches a worker
// gathers and those a yielding caller gathers use the same buffer, so the
// backend sees one input buffer and can keep what it made for it.
func TestOneGatherBufferPerInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		b.yield = synctest.Wait
		// Start as after many lone requests: the first runs at once.
		b.skip, b.gap = maxYieldGap, maxYieldGap
		wait := func(chs ...<-chan error) {
			for _, ch := range chs {
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
			}
		}
		// A worker gathers: one runs, three queue behind it.
		busy := goDo(b, request(1, 2, 0))
		synctest.Wait()
		wait(busy, goDo(b, request(1, 2, 1)), goDo(b, request(1, 2, 2)), goDo(b, request(1, 2, 3)))
		// Contended now: three started together run as one batch on the
		// caller that yielded.
		wait(goDo(b, request(1, 2, 4)), goDo(b, request(1, 2, 5)), goDo(b, request(1, 2, 6)))
		// And the worker again. (The first yields, finds nobody and
		// runs alone; the test sleeps rather than waits, since the yield
		// waits.)
		busy = goDo(b, request(1, 2, 0))
		time.Sleep(100 * time.Microsecond)
		wait(busy, goDo(b, request(1, 2, 7)), goDo(b, request(1, 2, 8)))
		if got := f.runs(); fmt.Sprint(got) != "[1 3 3 1 2]" {
			t.Fatalf("runs: got %v; want [1 3 3 1 2]", got)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.gathered) != 3 || f.gathered[0] != f.gathered[1] || f.gathered[1] != f.gathered[2] {
			t.Fatalf("gathered batches used %d inputs at %v; want 3 in one buffer", len(f.gathered), f.gathered)
		}
	})
}

func TestMultiRowRequestsPackedWhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		busy := goDo(b, request(1, 1, 0))
		synctest.Wait()
		rows := []int{3, 3, 3, 20, 2}
		var reqs []*Request
		var chs []<-chan error
		for i, n := range rows {
			r := request(n, 3, float32(i*100))
			reqs = append(reqs, r)
			chs = append(chs, goDo(b, r))
			synctest.Wait() // keep the arrival order
		}
		<-busy
		for i, ch := range chs {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, reqs[i], 3, float32(i*100))
		}
		// 3+3 fit in 8, the third 3 starts the next batch; 20 rows exceed
		// the max and run alone; then the 2.
		if got := f.runs(); fmt.Sprint(got) != "[1 6 3 20 2]" {
			t.Fatalf("runs: got %v; want [1 6 3 20 2]", got)
		}
	})
}

func TestPriorities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, PriorityLevels: 2})
		busy := goDo(b, request(1, 1, 0))
		synctest.Wait()
		low1, low2, high := request(2, 1, 0), request(3, 1, 0), request(4, 1, 0)
		high.Priority = 1
		c1 := goDo(b, low1)
		synctest.Wait()
		c2 := goDo(b, low2)
		synctest.Wait()
		c3 := goDo(b, high)
		for _, c := range []<-chan error{busy, c1, c2, c3} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		// Rows identify the requests: the high-priority one (4) overtakes.
		if got := f.runs(); fmt.Sprint(got) != "[1 4 2 3]" {
			t.Fatalf("runs: got %v; want [1 4 2 3]", got)
		}
		// As in Triton, a priority above the levels runs at the default
		// level; a negative one is refused.
		above := request(1, 1, 0)
		above.Priority = 3
		if err := b.Do(above); err != nil {
			t.Fatalf("priority 3 of 2: got %v; want it run at the default level", err)
		}
		bad := request(1, 1, 0)
		bad.Priority = -1
		if err := b.Do(bad); !errors.Is(err, ErrBadPriority) || !strings.Contains(err.Error(), "priorities are 1 (highest) to 2") {
			t.Fatalf("priority -1: got %v; want ErrBadPriority naming the range", err)
		}
	})
}

func TestLevel(t *testing.T) {
	c := Config{PriorityLevels: 3, DefaultPriority: 2}
	f := func(p int64, want int, wantErr bool) {
		t.Helper()
		got, err := c.Level(p)
		if got != want || (err != nil) != wantErr {
			t.Fatalf("Level(%d): got %d, %v; want %d, error %v", p, got, err, want, wantErr)
		}
	}
	f(0, 2, false)
	f(1, 1, false)
	f(3, 3, false)
	f(4, 2, false)
	f(1<<62, 2, false)
	f(-1, 0, true)
}

func TestTimeoutBeforeCompute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: 100 * time.Millisecond}
		obs := &countingObserver{}
		b := newBatcher(t, f, Config{MaxBatchSize: 8, Observer: obs, DefaultTimeout: time.Second})
		busy := goDo(b, request(1, 1, 0))
		synctest.Wait()
		start := time.Now()
		r := request(5, 1, 0)
		r.Deadline = start.Add(10 * time.Millisecond)
		if err := b.Do(r); !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v; want ErrTimeout", err)
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Fatalf("timed out after %s; want exactly the 10ms deadline", d)
		}
		// The default timeout bounds a request without a deadline.
		start = time.Now()
		slow := &fakeBackend{compute: 5 * time.Second}
		b2 := newBatcher(t, slow, Config{DefaultTimeout: 50 * time.Millisecond})
		hog := goDo(b2, request(1, 1, 0))
		synctest.Wait()
		if err := b2.Do(request(2, 1, 0)); !errors.Is(err, ErrTimeout) || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("default timeout: got %v after %s; want ErrTimeout after 50ms", err, time.Since(start))
		}
		<-busy
		<-hog
		for _, rows := range append(f.runs(), slow.runs()...) {
			if rows != 1 {
				t.Fatalf("a timed-out request reached the backend: runs %v %v", f.runs(), slow.runs())
			}
		}
		if obs.queued.Load() != 1 {
			t.Fatalf("taken from the queue: got %d; want 1 (the timed-out request never left it for a batch)", obs.queued.Load())
		}
	})
}

// TestExpiryTimer checks the one timer that expires queued requests: each
// times out at its own deadline whatever order the deadlines came in, one
// whose batch started first is not answered twice, and the timer goes on
// to the next deadline after a request that set it left the queue.
func TestExpiryTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{gate: make(chan struct{})}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, MaxQueueSize: 8, PriorityLevels: 2})
		busy := goDo(b, request(1, 1, 0)) // holds the only instance
		synctest.Wait()
		start := time.Now()
		type waiter struct {
			after time.Duration // deadline from start; 0: none
			ch    <-chan error
			at    time.Duration // when it was answered
		}
		// Deadlines out of order, the earliest one on the high priority
		// (which the next batch takes), and one request with none.
		ws := []*waiter{{after: 30 * time.Millisecond}, {after: 10 * time.Millisecond}, {}, {after: 20 * time.Millisecond}}
		for i, w := range ws {
			r := request(1, 1, float32(i))
			if w.after > 0 {
				r.Deadline = start.Add(w.after)
			}
			if i == 1 {
				r.Priority = 1
			}
			ch := make(chan error, 1)
			w.ch = ch
			go func() {
				err := b.Do(r)
				w.at = time.Since(start)
				ch <- err
			}()
			synctest.Wait()
		}
		// Free the instance at 5ms: the high-priority request (deadline
		// 10ms) runs, and holds the instance with its own gate token.
		time.Sleep(5 * time.Millisecond)
		f.gate <- struct{}{}
		if err := <-busy; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(40 * time.Millisecond)
		synctest.Wait()
		for i, want := range []time.Duration{30 * time.Millisecond, 20 * time.Millisecond} {
			w := ws[[]int{0, 3}[i]]
			select {
			case err := <-w.ch:
				if !errors.Is(err, ErrTimeout) || w.at != want {
					t.Fatalf("request with deadline %s: got %v at %s; want ErrTimeout at %s", w.after, err, w.at, want)
				}
			default:
				t.Fatalf("request with deadline %s: not answered at 45ms", w.after)
			}
		}
		// The request that ran before its deadline gets its own answer
		// once its run ends, and the one without a deadline still waits.
		select {
		case err := <-ws[1].ch:
			t.Fatalf("running request answered %v before its run ended", err)
		case err := <-ws[2].ch:
			t.Fatalf("request without a deadline answered %v", err)
		default:
		}
		f.gate <- struct{}{}
		if err := <-ws[1].ch; err != nil {
			t.Fatalf("request taken before its deadline: got %v; want its result", err)
		}
		f.gate <- struct{}{}
		if err := <-ws[2].ch; err != nil {
			t.Fatalf("request without a deadline: got %v; want its result", err)
		}
		if got := f.runs(); !slices.Equal(got, []int{1, 1, 1}) {
			t.Fatalf("runs %v; want three single rows (the expired requests never ran)", got)
		}
	})
}

func TestQueueFullRefusesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Second}
		obs := &countingObserver{}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, MaxQueueSize: 2, Observer: obs})
		var chs []<-chan error
		for i := range 3 { // one runs, two wait
			if b.Full() {
				t.Fatalf("Full with %d requests in, one of them running; want not full", i)
			}
			chs = append(chs, goDo(b, request(1, 1, 0)))
			synctest.Wait()
		}
		if !b.Full() {
			t.Fatal("Full with two requests waiting in a queue of two: got false")
		}
		start := time.Now()
		if err := b.Do(request(1, 1, 0)); !errors.Is(err, ErrQueueFull) || time.Since(start) != 0 {
			t.Fatalf("full queue: got %v after %s; want ErrQueueFull at once", err, time.Since(start))
		}
		if b.QueueLen() != 2 || obs.queued.Load() != 1 {
			t.Fatalf("queue %d, taken %d; want 2, 1", b.QueueLen(), obs.queued.Load())
		}
		for _, c := range chs {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if b.Full() {
			t.Fatal("Full after the queue drained: got true")
		}
	})
}

// A request of higher priority that finds the queue full takes the place
// of the newest request of the lowest priority below its own, which is
// answered ErrDisplaced at once; Full stays false while a place could be
// taken so, and a request that cannot take one is refused.
func TestHigherPriorityDisplacesLower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Second}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, MaxQueueSize: 2, PriorityLevels: 3})
		do := func(rows int, priority int64) <-chan error {
			r := request(rows, 1, 0)
			r.Priority = priority
			ch := goDo(b, r)
			synctest.Wait()
			return ch
		}
		pending := func(ch <-chan error) bool {
			select {
			case err := <-ch:
				t.Fatalf("answered early: %v", err)
			default:
			}
			return true
		}
		busy := do(1, 3) // runs
		low2 := do(2, 3) // lowest priority
		low3 := do(3, 3) // lowest priority, newer
		if b.Full() {
			t.Fatal("Full with lowest-priority requests queued: got true; a higher priority can take a place")
		}
		mid := do(4, 2) // displaces 3, the newest of the lowest
		if err := <-low3; !errors.Is(err, ErrDisplaced) {
			t.Fatalf("newest lowest-priority request: got %v; want ErrDisplaced", err)
		}
		pending(low2)
		// Priority 3 cannot displace anyone: refused.
		if err := b.Do(request(5, 1, 0)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("lowest priority into a full queue: got %v; want ErrQueueFull", err)
		}
		r6 := request(6, 1, 0)
		r6.Priority = 2
		// Priority 2 displaces the priority-3 request 2, not its equal 4.
		high6 := goDo(b, r6)
		synctest.Wait()
		if err := <-low2; !errors.Is(err, ErrDisplaced) {
			t.Fatalf("last lowest-priority request: got %v; want ErrDisplaced", err)
		}
		pending(mid)
		pending(high6)
		if b.Full() {
			t.Fatal("Full with priority-2 requests queued: got true; priority 1 can take a place")
		}
		top := do(7, 1) // displaces 6, the newest priority 2
		if err := <-high6; !errors.Is(err, ErrDisplaced) {
			t.Fatalf("newest priority-2 request: got %v; want ErrDisplaced", err)
		}
		top8 := do(8, 1) // displaces 4
		if err := <-mid; !errors.Is(err, ErrDisplaced) {
			t.Fatalf("priority-2 request: got %v; want ErrDisplaced", err)
		}
		if !b.Full() {
			t.Fatal("Full with the queue full of priority 1: got false")
		}
		r9 := request(9, 1, 0)
		r9.Priority = 1
		if err := b.Do(r9); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("priority 1 into a queue full of priority 1: got %v; want ErrQueueFull", err)
		}
		for _, c := range []<-chan error{busy, top, top8} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if got := f.runs(); fmt.Sprint(got) != "[1 7 8]" {
			t.Fatalf("runs: got %v; want [1 7 8]", got)
		}
		if b.Full() || b.QueueLen() != 0 {
			t.Fatalf("after the queue drained: Full %v, %d queued; want false, 0", b.Full(), b.QueueLen())
		}
	})
}

func TestMaxQueueDelayFillsPreferredBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 16, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: 5 * time.Millisecond})
		// Alone, a request waits the delay, then runs.
		start := time.Now()
		if err := b.Do(request(1, 1, 0)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 6*time.Millisecond {
			t.Fatalf("lone request with a 5ms delay took %s; want 6ms (delay + compute)", d)
		}
		// Four arriving within the delay run as one preferred batch.
		var chs []<-chan error
		for i := range 4 {
			chs = append(chs, goDo(b, request(1, 1, float32(i))))
			time.Sleep(time.Millisecond)
		}
		for _, c := range chs {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		// Ten queued behind a busy worker are cut at the preferred 8.
		busy := goDo(b, request(4, 1, 0))
		synctest.Wait()
		chs = chs[:0]
		for i := range 10 {
			chs = append(chs, goDo(b, request(1, 1, float32(i))))
		}
		<-busy
		for _, c := range chs {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		got := f.runs()
		if fmt.Sprint(got[:3]) != "[1 4 4]" || got[3] != 8 {
			t.Fatalf("runs: got %v; want [1 4 4 8 ...]", got)
		}
	})
}

func TestNonStackableInputsSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 64})
		busy := goDo(b, request(1, 2, 0))
		synctest.Wait()
		a, c, d := request(1, 2, 0), request(1, 3, 10), request(1, 2, 20)
		ca := goDo(b, a)
		synctest.Wait()
		cd := goDo(b, d)
		synctest.Wait()
		cc := goDo(b, c)
		for _, ch := range []<-chan error{busy, ca, cc, cd} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		checkOutputs(t, c, 3, 10)
		checkOutputs(t, d, 2, 20)
		// a and d stack; c's [1,3] cannot join them and runs next.
		if got := f.runs(); fmt.Sprint(got) != "[1 2 1]" {
			t.Fatalf("runs: got %v; want [1 2 1]", got)
		}
	})
}

func TestStopFinishesQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b, err := New(f, Config{MaxBatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		var chs []<-chan error
		for range 5 {
			chs = append(chs, goDo(b, request(1, 1, 0)))
		}
		synctest.Wait()
		b.Stop()
		for _, c := range chs {
			if err := <-c; err != nil {
				t.Fatalf("queued before Stop: %v", err)
			}
		}
		if err := b.Do(request(1, 1, 0)); !errors.Is(err, ErrStopped) {
			t.Fatalf("after Stop: got %v; want ErrStopped", err)
		}
		b.Stop() // idempotent
	})
}

func TestBackendErrorsAndPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond, failOn: 2, panicOn: 3}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		if err := b.Do(request(2, 1, 0)); err == nil || !strings.Contains(err.Error(), "fake backend failure") {
			t.Fatalf("failing run: got %v", err)
		}
		if err := b.Do(request(3, 1, 0)); err == nil || !strings.Contains(err.Error(), "backend panicked") {
			t.Fatalf("panicking run: got %v", err)
		}
		r := request(1, 1, 7)
		if err := b.Do(r); err != nil {
			t.Fatalf("after a panic the batcher must still serve: %v", err)
		}
		checkOutputs(t, r, 1, 7)

		// A backend whose outputs lose the batch dimension cannot be
		// scattered: the batch fails, and each request runs alone.
		nb := &fakeBackend{noBatch: true, gate: make(chan struct{}, 8)}
		b2 := newBatcher(t, nb, Config{MaxBatchSize: 8})
		busy := goDo(b2, request(1, 1, 0))
		synctest.Wait() // busy holds the only worker, blocked on the gate
		c1, c2 := goDo(b2, request(1, 1, 0)), goDo(b2, request(1, 1, 0))
		synctest.Wait()
		for range 4 { // busy; c1 and c2 batched; each again alone
			nb.gate <- struct{}{}
		}
		for _, c := range []<-chan error{busy, c1, c2} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if got := nb.runs(); fmt.Sprint(got) != "[1 2 1 1]" {
			t.Fatalf("runs: got %v; want [1 2 1 1]", got)
		}
	})
}

// TestFailedBatchIsolatesRequests checks that one request whose values
// the backend rejects fails alone, not with its batch-mates.
func TestFailedBatchIsolatesRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond, failOnValue: 666}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		busy := goDo(b, request(1, 1, 0))
		synctest.Wait()
		good1, bad, good2 := request(1, 2, 1), request(1, 2, 666), request(2, 2, 3)
		c1, c2, c3 := goDo(b, good1), goDo(b, bad), goDo(b, good2)
		synctest.Wait()
		if err := <-busy; err != nil {
			t.Fatal(err)
		}
		if err := <-c2; err == nil || !strings.Contains(err.Error(), "rejects value 666") {
			t.Fatalf("the poisoned request: got %v; want the backend's error", err)
		}
		for i, c := range []<-chan error{c1, c3} {
			if err := <-c; err != nil {
				t.Fatalf("batch-mate %d of a poisoned request: %v", i, err)
			}
		}
		checkOutputs(t, good1, 2, 1)
		checkOutputs(t, good2, 2, 3)
		got := f.runs()
		if len(got) == 5 {
			slices.Sort(got[2:]) // the three arrived in any order
		}
		if fmt.Sprint(got) != "[1 4 1 1 2]" {
			t.Fatalf("runs: got %v; want 1, the batch of 4, then 1, 1 and 2 alone", got)
		}
	})
}

func TestValidate(t *testing.T) {
	f := func(c Config, want string) {
		t.Helper()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate(%+v): %s", c, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(%+v): got %v; want %q", c, err, want)
		}
	}
	f(Config{}, "")
	f(Config{MaxBatchSize: 8, PreferredBatchSizes: []int{2, 8}}, "")
	f(Config{MaxBatchSize: 8, PreferredBatchSizes: []int{16}}, "preferred batch size 16 is outside 1..8")
	f(Config{PreferredBatchSizes: []int{4}}, "preferred batch size 4 is outside 1..1") // batching off
	f(Config{MaxQueueDelay: -1}, "max queue delay must not be negative")
	f(Config{PriorityLevels: 2, DefaultPriority: 3}, "default priority 3 is outside 1..2")
	f(Config{Instances: -1}, "instances must be at least 1")
}

// TestStress runs many concurrent requests of different sizes on two
// instances in real time under the race detector; every caller must get
// its own rows back.
func TestStress(t *testing.T) {
	f := &fakeBackend{}
	b := newBatcher(t, f, Config{Instances: 2, MaxBatchSize: 32, MaxQueueSize: 4096, PriorityLevels: 2})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				rows := 1 + (g+i)%5
				base := float32(g*1000 + i)
				r := request(rows, 4, base)
				r.Priority = int64(1 + i%2)
				if err := b.Do(r); err != nil {
					t.Error(err)
					return
				}
				checkOutputs(t, r, 4, base)
			}
		}()
	}
	wg.Wait()
	batched := 0
	for _, n := range f.runs() {
		if n > 5 {
			batched++
		}
	}
	t.Logf("%d runs, %d of them larger than any single request", len(f.runs()), batched)
}

// TestStressDisplacement runs three priorities into a queue too small for
// them, priority 2 with a bound of its own: every request is answered,
// with its own rows or at once with ErrQueueFull, ErrLevelFull (priority 2
// alone) or ErrDisplaced, and the queue is empty at the end.
func TestStressDisplacement(t *testing.T) {
	f := &fakeBackend{compute: 20 * time.Microsecond}
	b := newBatcher(t, f, Config{Instances: 2, MaxBatchSize: 8, MaxQueueSize: 8, PriorityLevels: 3,
		LevelPolicies: map[int]LevelPolicy{2: {MaxQueueSize: 2}}})
	var wg sync.WaitGroup
	var ok, full, levelFull, displaced [3]atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				rows := 1 + (g+i)%3
				base := float32(g*1000 + i)
				r := request(rows, 4, base)
				p := (g + i) % 3
				r.Priority = int64(1 + p)
				switch err := b.Do(r); {
				case err == nil:
					checkOutputs(t, r, 4, base)
					ok[p].Add(1)
				case errors.Is(err, ErrQueueFull):
					full[p].Add(1)
				case errors.Is(err, ErrLevelFull):
					if p != 1 {
						t.Errorf("priority %d, which has no bound of its own: ErrLevelFull", p+1)
					}
					levelFull[p].Add(1)
				case errors.Is(err, ErrDisplaced):
					if p == 0 {
						t.Error("a request of the highest priority was displaced")
					}
					displaced[p].Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := b.QueueLen(); n != 0 || b.Full() {
		t.Fatalf("after every caller returned: %d queued, Full %v; want 0, false", n, b.Full())
	}
	for p := range 3 {
		t.Logf("priority %d: %d answered, %d refused, %d refused by its level's bound, %d displaced", p+1, ok[p].Load(), full[p].Load(), levelFull[p].Load(), displaced[p].Load())
	}
	if displaced[1].Load()+displaced[2].Load() == 0 {
		t.Fatal("no request was displaced: the test did not fill the queue")
	}
	if levelFull[1].Load() == 0 {
		t.Fatal("no priority-2 request met its level's bound: the test did not fill it")
	}
}

// stopReturns reports whether the Stop that closes stopped has returned
// after an hour of synctest time. When it has not, it unblocks a worker
// stuck on the wake channel with a spare token, so that the bubble can end.
func stopReturns(t *testing.T, b *Batcher, stopped <-chan struct{}) bool {
	t.Helper()
	time.Sleep(time.Hour)
	synctest.Wait()
	select {
	case <-stopped:
		return true
	default:
	}
	b.wake <- struct{}{} // rescue the parked worker
	<-stopped
	return false
}

// Stop is called while a caller's goroutine holds the only instance and a
// request waits. The worker, stopped with no instance free, waits for a
// release; the request then leaves the queue by expiring. The release that
// follows must still wake the worker, though nothing is queued, or Stop
// never returns.
func TestStopAfterQueueExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{gate: make(chan struct{})}
		b := newBatcher(t, f, Config{MaxBatchSize: 1})
		busy := goDo(b, request(1, 1, 0)) // fast path: holds the only instance
		synctest.Wait()
		r := request(1, 1, 1)
		r.Deadline = time.Now().Add(10 * time.Millisecond)
		queued := goDo(b, r)
		synctest.Wait()
		stopped := make(chan struct{})
		go func() { b.Stop(); close(stopped) }()
		synctest.Wait()
		time.Sleep(20 * time.Millisecond)
		if err := <-queued; !errors.Is(err, ErrTimeout) {
			t.Fatalf("queued request: got %v; want ErrTimeout", err)
		}
		f.gate <- struct{}{}
		if err := <-busy; err != nil {
			t.Fatal(err)
		}
		if !stopReturns(t, b, stopped) {
			t.Fatal("Stop never returned: the release found the queue empty and woke no worker")
		}
	})
}

// As TestStopAfterQueueExpires, with the queue emptied by the caller that
// yielded, which takes the queued request into its own run.
func TestStopAfterCallerTakesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		inYield, resume := make(chan struct{}), make(chan struct{})
		b.yield = func() {
			close(inYield)
			<-resume
		}
		first := goDo(b, request(1, 1, 0)) // takes the instance, yields
		<-inYield
		second := request(1, 1, 5)
		queued := goDo(b, second)
		synctest.Wait() // second is queued (instance taken)
		if b.QueueLen() != 1 {
			t.Fatalf("queue %d; want 1", b.QueueLen())
		}
		stopped := make(chan struct{})
		go func() { b.Stop(); close(stopped) }()
		synctest.Wait() // the worker now waits on wake alone
		close(resume)
		for _, ch := range []<-chan error{first, queued} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		checkOutputs(t, second, 1, 5)
		if !stopReturns(t, b, stopped) {
			t.Fatal("Stop never returned after the yielding caller took the queued request")
		}
	})
}

// A request whose inputs do not hold the rows it claims is refused: packed
// with another, a request claiming 1 row but carrying 2 would shift its
// batch-mate's rows, which would get its answer.
func TestRowsMustMatchShapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8})
		busy := goDo(b, request(1, 2, 0))
		synctest.Wait()
		liar := request(2, 2, 100) // two rows of data and shape [2,2] ...
		liar.Rows = 1              // ... but claims one row
		victim := request(1, 2, 500)
		cl := goDo(b, liar)
		synctest.Wait()
		cv := goDo(b, victim)
		synctest.Wait()
		<-busy
		errLiar, errVictim := <-cl, <-cv
		if errVictim != nil {
			t.Fatal(errVictim)
		}
		if !errors.Is(errLiar, ErrBadRequest) {
			t.Errorf("request with Rows 1 and input shape [2 2]: got %v; want ErrBadRequest", errLiar)
		}
		checkOutputs(t, victim, 2, 500)
		short := request(1, 2, 7)
		short.Inputs[0].Data = short.Inputs[0].Data[:4] // half a row
		if err := b.Do(short); !errors.Is(err, ErrBadRequest) {
			t.Errorf("request with 4 bytes for shape [1 2] of FP32: got %v; want ErrBadRequest", err)
		}
	})
}

// An idle worker waiting MaxQueueDelay to fill a batch does not hold a
// request past its deadline: the request runs, and in time.
func TestQueueDelayYieldsToDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8, MaxQueueDelay: 10 * time.Millisecond})
		start := time.Now()
		r := request(1, 2, 3)
		r.Deadline = start.Add(2 * time.Millisecond)
		if err := b.Do(r); err != nil {
			t.Fatalf("lone request with a 2ms deadline on an idle batcher (10ms max queue delay): got %v; want it run", err)
		}
		checkOutputs(t, r, 2, 3)
		if d := time.Since(start); d > 2*time.Millisecond {
			t.Errorf("the request was answered after %s; want within its 2ms deadline", d)
		}
	})
}

// gatedBackend blocks in Run until released, and says when it entered.
type gatedBackend struct {
	fakeBackend
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.fakeBackend.Run(ctx, in, names, dst)
}

// Stop waits for a run on a caller's goroutine, here of a request that
// had queued, so that an owner may close the backend once it returns.
func TestStopWaitsForCallerRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedBackend{entered: make(chan struct{}, 4), release: make(chan struct{})}
		b, err := New(g, Config{MaxBatchSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		inYield, resume := make(chan struct{}), make(chan struct{})
		b.yield = func() {
			close(inYield)
			<-resume
		}
		first := goDo(b, request(1, 1, 0))
		<-inYield
		queued := goDo(b, request(1, 1, 1))
		synctest.Wait()
		close(resume)
		<-g.entered // the batch of both, queued one included, is in the backend
		stopped := make(chan struct{})
		go func() { b.Stop(); close(stopped) }()
		synctest.Wait()
		returnedEarly := false
		select {
		case <-stopped:
			returnedEarly = true
		default:
		}
		close(g.release)
		<-first
		<-queued
		<-stopped
		if returnedEarly {
			t.Fatal("Stop returned while a request that had queued was still running in the backend")
		}
	})
}

// A request already past its deadline when it finds the queue full is
// answered ErrTimeout and displaces nobody: it could never run, and the
// request it displaced would have. (Through the gateway: a tiny "timeout"
// parameter, or a decode that outlasted the request's timeout.)
func TestExpiredRequestDisplacesNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Second}
		b := newBatcher(t, f, Config{MaxBatchSize: 1, MaxQueueSize: 1, PriorityLevels: 2})
		low := func(base float32) <-chan error {
			r := request(1, 1, base)
			r.Priority = 2
			ch := goDo(b, r)
			synctest.Wait()
			return ch
		}
		busy := low(1)   // runs
		queued := low(2) // fills the queue

		late := request(1, 1, 3)
		late.Priority = 1
		late.Deadline = time.Now().Add(-time.Millisecond)
		if err := b.Do(late); !errors.Is(err, ErrTimeout) {
			t.Fatalf("request already past its deadline: got %v; want ErrTimeout", err)
		}
		for _, c := range []<-chan error{busy, queued} {
			if err := <-c; err != nil {
				t.Fatalf("got %v; want the queued request to run", err)
			}
		}
	})
}

// Full agrees with Do: a request waiting for its batch to fill while the
// only instance is idle (a queue delay) leaves room for one more, which
// Do takes, so Full must not say the queue is full.
func TestFullAgreesWithDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{}
		b := newBatcher(t, f, Config{Instances: 1, MaxBatchSize: 8, MaxQueueSize: 1, MaxQueueDelay: time.Second})
		first := goDo(b, request(1, 2, 1))
		synctest.Wait()
		if b.Full() {
			t.Fatal("Full with one request waiting for an idle instance: got true; Do takes one more")
		}
		second := goDo(b, request(1, 2, 5))
		synctest.Wait()
		if !b.Full() {
			t.Fatal("Full with the idle instance's request and max queue size 1 waiting: got false")
		}
		if err := b.Do(request(1, 2, 9)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("a third request: got %v; want ErrQueueFull, as Full said", err)
		}
		for _, ch := range []<-chan error{first, second} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if got := fmt.Sprint(f.runs()); got != "[2]" {
			t.Fatalf("runs %s; want [2]: both in one batch", got)
		}
		if b.Full() {
			t.Fatal("Full after the batch ran: got true")
		}
	})
}

// Hurry ends a wait for the queue delay at once, and later requests run as
// they come: a server that shuts down does not wait out the delay.
func TestHurry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 16, MaxQueueDelay: time.Hour})
		start := time.Now()
		c := goDo(b, request(1, 1, 0))
		time.Sleep(10 * time.Millisecond)
		b.Hurry()
		if err := <-c; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 11*time.Millisecond {
			t.Fatalf("a request waiting out an hour's delay, hurried after 10ms: took %s; want 11ms", d)
		}
		start = time.Now()
		if err := b.Do(request(1, 1, 0)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Millisecond {
			t.Fatalf("a request after Hurry took %s; want 1ms, its compute alone", d)
		}
	})
}

// Do says what became of each request (Waited, BatchRows, Compute), which
// a server logs for its slow requests: exactly, on synctest's clock. One
// runs alone at once; two queue behind it and run as one batch; one times
// out in the queue; a reused request starts from zero.
func TestRequestSaysWhereItsTimeWent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: 10 * time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 64})
		lone := request(1, 2, 0)
		first := goDo(b, lone)
		synctest.Wait()
		time.Sleep(4 * time.Millisecond)
		a, c := request(2, 2, 0), request(3, 2, 0)
		chA, chC := goDo(b, a), goDo(b, c)
		late := request(1, 2, 0)
		late.Deadline = time.Now().Add(time.Millisecond)
		chLate := goDo(b, late)
		for _, ch := range []<-chan error{first, chA, chC} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if err := <-chLate; !errors.Is(err, ErrTimeout) {
			t.Fatalf("late: %v; want ErrTimeout", err)
		}
		check := func(name string, r *Request, waited time.Duration, rows int, compute time.Duration) {
			t.Helper()
			if r.Waited != waited || r.BatchRows != rows || r.Compute != compute {
				t.Errorf("%s: waited %s, batch of %d rows, compute %s; want %s, %d, %s", name, r.Waited, r.BatchRows, r.Compute, waited, rows, compute)
			}
		}
		check("lone", lone, 0, 1, 10*time.Millisecond)
		check("queued a", a, 6*time.Millisecond, 5, 10*time.Millisecond)
		check("queued c", c, 6*time.Millisecond, 5, 10*time.Millisecond)
		check("timed out", late, time.Millisecond, 0, 0)
		if err := b.Do(late); err != nil {
			t.Fatal(err)
		}
		check("late again, alone", late, 0, 1, 10*time.Millisecond)
	})
}

// Where a batch fails and its requests then run alone, each request's
// time adds up still: the failed run counts as computing (FailedRows says
// it was one), the runs of the batch-mates ahead of it as waiting (found
// by a reviewing helper: the alone run overwrote both, and a slow request
// log put the rest under decoding).
func TestFailedBatchTimeAddsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: 10 * time.Millisecond, failOnValue: 99}
		b := newBatcher(t, f, Config{MaxBatchSize: 64})
		busy := goDo(b, request(1, 2, 0))
		synctest.Wait()
		a, poison, c := request(2, 2, 0), request(1, 2, 99), request(3, 2, 0)
		chA := goDo(b, a)
		synctest.Wait()
		chP := goDo(b, poison)
		synctest.Wait()
		chC := goDo(b, c)
		start := time.Now()
		for _, ch := range []<-chan error{busy, chA, chC} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if err := <-chP; err == nil {
			t.Fatal("the poisoned request succeeded")
		}
		if got := fmt.Sprint(f.runs()); got != "[1 6 2 1 3]" {
			t.Fatalf("runs %s; want [1 6 2 1 3]: the batch of 6 fails, then each runs alone", got)
		}
		if took := time.Since(start); c.Waited+c.Compute != took {
			t.Errorf("the last request: waited %s and computed %s, which make %s; want all of its %s", c.Waited, c.Compute, c.Waited+c.Compute, took)
		}
		if c.Waited != 30*time.Millisecond || c.Compute != 20*time.Millisecond || c.BatchRows != 3 || c.FailedRows != 6 {
			t.Errorf("the last request: waited %s, computed %s, batch %d rows, failed batch %d rows; want 30ms (10 in the queue, 20 behind its batch-mates), 20ms (the failed run and its own), 3, 6", c.Waited, c.Compute, c.BatchRows, c.FailedRows)
		}
		if a.Waited != 10*time.Millisecond || a.Compute != 20*time.Millisecond || a.FailedRows != 6 {
			t.Errorf("the first request: waited %s, computed %s, failed batch %d rows; want 10ms, 20ms, 6", a.Waited, a.Compute, a.FailedRows)
		}
	})
}

// A request whose shape's byte size overflows int64 is refused: shape
// [1, 2^61+1] of FP64 needs 2^64+8 bytes, which wrapped to the 8 it
// carried, and checkRows let it through to be stacked with others of
// that shape and handed to the backend as a batch of 2^62 elements in 16
// bytes.
func TestRowsCheckDoesNotOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBatcher(t, &fakeBackend{}, Config{MaxBatchSize: 8})
		r := &Request{Rows: 1, Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP64, Shape: []int64{1, 1<<61 + 1}, Data: make([]byte, 8)}}}
		if err := b.Do(r); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("shape [1 2^61+1] of FP64 in 8 bytes: got %v; want ErrBadRequest", err)
		}
	})
}
