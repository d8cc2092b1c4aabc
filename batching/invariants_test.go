package batching

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infergate/infergate/oip"
)

// strictBackend checks its own invariants: no more concurrent calls than
// instances, no call after stopped is set, every row's identity. Input
// "x" is FP32 [n,2]: column 0 the request id, column 1 the row index.
// Output "y" is [n,2]: id*2, row*2.
type strictBackend struct {
	instances int
	compute   time.Duration
	inFlight  atomic.Int32
	maxSeen   atomic.Int32
	stopped   atomic.Bool
	errs      chan string
	mu        sync.Mutex
	ran       map[uint32]int // request id → runs
}

func (s *strictBackend) fail(format string, args ...any) {
	select {
	case s.errs <- fmt.Sprintf(format, args...):
	default:
	}
}

func (s *strictBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if int(n) > s.instances {
		s.fail("%d concurrent backend calls with %d instances", n, s.instances)
	}
	if s.stopped.Load() {
		s.fail("backend called after Stop returned")
	}
	x := in[0]
	rows := int(x.Shape[0])
	if len(x.Data) != rows*8 {
		s.fail("input of %d rows holds %d bytes", rows, len(x.Data))
	}
	s.mu.Lock()
	for r := range rows {
		id := uint32(math.Float32frombits(binary.LittleEndian.Uint32(x.Data[r*8:])))
		s.ran[id]++
	}
	s.mu.Unlock()
	if s.compute > 0 {
		time.Sleep(s.compute)
	}
	out := make([]byte, len(x.Data))
	for i := 0; i < len(x.Data); i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(x.Data[i:]))
		binary.LittleEndian.PutUint32(out[i:], math.Float32bits(v*2))
	}
	return []oip.Tensor{{Name: "y", Datatype: oip.FP32, Shape: []int64{int64(rows), 2}, Data: out}}, nil
}

func idRequest(id uint32, rows int) *Request {
	data := make([]byte, 0, rows*8)
	for r := range rows {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(id)))
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(r)))
	}
	return &Request{Rows: rows, Inputs: []oip.Tensor{{Name: "x", Datatype: oip.FP32, Shape: []int64{int64(rows), 2}, Data: data}}}
}

func checkID(r *Request, id uint32) error {
	if len(r.Outputs) != 1 || len(r.Outputs[0].Data) != r.Rows*8 || r.Outputs[0].Shape[0] != int64(r.Rows) {
		return fmt.Errorf("request %d: outputs %v", id, r.Outputs)
	}
	for row := range r.Rows {
		a := math.Float32frombits(binary.LittleEndian.Uint32(r.Outputs[0].Data[row*8:]))
		b := math.Float32frombits(binary.LittleEndian.Uint32(r.Outputs[0].Data[row*8+4:]))
		if a != float32(id)*2 || b != float32(row)*2 {
			return fmt.Errorf("request %d row %d: got (%g, %g)", id, row, a, b)
		}
	}
	return nil
}

// TestRandomConfigsKeepInvariants runs random configurations and loads, with
// deadlines, priorities, level bounds, Hurry and Stop mid-load, and checks
// every invariant the strict backend and the callers can see.
func TestRandomConfigsKeepInvariants(t *testing.T) {
	seed := uint64(1)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for round := range 30 {
		inst := 1 + rng.IntN(3)
		maxBatch := 1 + rng.IntN(8)
		cfg := Config{
			Instances:      inst,
			MaxBatchSize:   maxBatch,
			MaxQueueSize:   1 + rng.IntN(8),
			PriorityLevels: 1 + rng.IntN(3),
		}
		if maxBatch > 2 && rng.IntN(2) == 0 {
			cfg.PreferredBatchSizes = []int{2, maxBatch}
		}
		if rng.IntN(3) == 0 {
			cfg.MaxQueueDelay = time.Duration(rng.IntN(300)) * time.Microsecond
		}
		if rng.IntN(3) == 0 {
			cfg.DefaultTimeout = time.Duration(100+rng.IntN(500)) * time.Microsecond
		}
		if cfg.PriorityLevels > 1 && rng.IntN(2) == 0 {
			cfg.LevelPolicies = map[int]LevelPolicy{2: {MaxQueueSize: 1 + rng.IntN(2), DefaultTimeout: time.Duration(rng.IntN(400)) * time.Microsecond}}
		}
		be := &strictBackend{instances: inst, compute: time.Duration(rng.IntN(50)) * time.Microsecond, errs: make(chan string, 1), ran: map[uint32]int{}}
		b, err := New(be, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var nextID atomic.Uint32
		var mu sync.Mutex
		refused := map[uint32]error{}
		var wg sync.WaitGroup
		stopAt := time.Now().Add(20 * time.Millisecond)
		var callerErr atomic.Value
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lrng := rand.New(rand.NewPCG(seed+uint64(round), uint64(g)))
				for {
					id := nextID.Add(1)
					rows := 1 + lrng.IntN(maxBatch+1)
					r := idRequest(id, rows)
					r.Priority = int64(lrng.IntN(cfg.PriorityLevels + 1))
					if lrng.IntN(3) == 0 {
						r.Deadline = time.Now().Add(time.Duration(lrng.IntN(300)) * time.Microsecond)
					}
					start := time.Now()
					err := b.Do(r)
					eff := r.Deadline
					bc := b.Config()
					if lvl, e := bc.Level(r.Priority); e == nil {
						if t := bc.LevelTimeout(lvl); t > 0 && (eff.IsZero() || start.Add(t).Before(eff)) {
							eff = start.Add(t)
						}
					}
					switch {
					case err == nil:
						if e := checkID(r, id); e != nil {
							callerErr.Store(e.Error())
						}
					case errors.Is(err, ErrStopped):
						return
					case errors.Is(err, ErrTimeout), errors.Is(err, ErrDisplaced), errors.Is(err, ErrQueueFull), errors.Is(err, ErrLevelFull):
						if errors.Is(err, ErrTimeout) && (eff.IsZero() || time.Now().Before(eff)) {
							callerErr.Store(fmt.Sprintf("request %d timed out before its deadline", id))
						}
						mu.Lock()
						refused[id] = err
						mu.Unlock()
					default:
						callerErr.Store(err.Error())
					}
				}
			}()
		}
		go func() {
			time.Sleep(time.Until(stopAt) / 2)
			b.Hurry()
		}()
		time.Sleep(time.Until(stopAt))
		done := make(chan struct{})
		go func() { b.Stop(); be.stopped.Store(true); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d %+v: Stop did not return", round, cfg)
		}
		wgDone := make(chan struct{})
		go func() { wg.Wait(); close(wgDone) }()
		select {
		case <-wgDone:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d %+v: callers blocked", round, cfg)
		}
		select {
		case e := <-be.errs:
			t.Fatalf("round %d %+v: %s", round, cfg, e)
		default:
		}
		if e := callerErr.Load(); e != nil {
			t.Fatalf("round %d %+v: %s", round, cfg, e)
		}
		for id, err := range refused {
			if be.ran[id] > 0 {
				t.Fatalf("round %d %+v: request %d answered %v yet ran", round, cfg, id, err)
			}
		}
		b.mu.Lock()
		q, qr, free, full := b.queued, b.queuedRows, b.free, b.full.Load()
		b.mu.Unlock()
		if q != 0 || qr != 0 || free != inst || full {
			t.Fatalf("round %d: after Stop queued %d rows %d free %d full %v", round, q, qr, free, full)
		}
	}
}

// Eight requests ready together, the first on an idle instance yielding so
// that the other seven queue and join its run, with preferred batch sizes
// 4 and 8 (max 8): all eight rows are there, and 8 is preferred, so they
// should run as one batch of 8, as they do when a worker gathers them.
// The caller that yielded counts its own rows with the queued ones (it
// once saw 7, whose largest preferred size is 4, and ran [4 4]).
func TestYieldedBatchReachesPreferredSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}})
		b.yield = synctest.Wait
		var reqs []*Request
		var chs []<-chan error
		for i := range 8 {
			r := request(1, 2, float32(i*10))
			reqs = append(reqs, r)
			chs = append(chs, goDo(b, r))
		}
		for i, ch := range chs {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, reqs[i], 2, float32(i*10))
		}
		if got := fmt.Sprint(f.runs()); got != "[8]" {
			t.Fatalf("runs %s; want [8]: eight rows ready together reach the preferred size 8", got)
		}
	})
}

// The same eight requests gathered by a worker, behind a busy instance, run
// as one batch of 8: the reference for the test above.
func TestWorkerBatchReachesPreferredSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}})
		b.skip, b.gap = maxYieldGap, maxYieldGap // the busy one does not yield
		busy := goDo(b, request(1, 2, 0))
		synctest.Wait()
		var chs []<-chan error
		for i := range 8 {
			chs = append(chs, goDo(b, request(1, 2, float32(i))))
		}
		for _, ch := range append(chs, busy) {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if got := fmt.Sprint(f.runs()); got != "[1 8]" {
			t.Fatalf("runs %s; want [1 8]", got)
		}
	})
}

// A priority level bounded at 1, with the shared bound 1 too, on an idle
// instance that holds its first request for the queue delay: the shared
// bound does not count a request an idle instance is about to take (a
// second one queues, and both run in one batch; TestFullAgreesWithDo), and
// the level's bound must not count it either: the second request joins
// the first's batch rather than getting ErrLevelFull.
func TestLevelBoundSparesIdleInstancesRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{}
		b := newBatcher(t, f, Config{Instances: 1, MaxBatchSize: 8, MaxQueueSize: 1, MaxQueueDelay: time.Second,
			LevelPolicies: map[int]LevelPolicy{1: {MaxQueueSize: 1}}})
		first := goDo(b, request(1, 2, 1))
		synctest.Wait()
		if b.Full() {
			t.Fatal("Full with the idle instance's request waiting")
		}
		second := request(1, 2, 5)
		if err := b.Do(second); err != nil {
			t.Fatalf("second request of a level bounded at 1, while the only instance is idle holding the first for the queue delay: got %v; want it batched with the first, as with the shared bound of 1 alone", err)
		}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	})
}

// A default queue timeout equal to the queue delay (say both 10ms): a lone
// request on an idle batcher has its deadline at the very instant the idle
// worker's wait for more requests ends. The worker must end its wait
// before the deadline (expirySlack before it), not at it: the request
// runs, and is not answered ErrTimeout with the only instance idle.
func TestDelayEqualToTimeoutRunsLoneRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBackend{compute: time.Millisecond}
		b := newBatcher(t, f, Config{MaxBatchSize: 8, MaxQueueDelay: 10 * time.Millisecond, DefaultTimeout: 10 * time.Millisecond})
		r := request(1, 2, 3)
		start := time.Now()
		if err := b.Do(r); err != nil {
			t.Fatalf("lone request, idle instance, max queue delay 10ms = default timeout 10ms: got %v after %s; want it run", err, time.Since(start))
		}
		checkOutputs(t, r, 2, 3)
	})
}

// A timeout a little longer than the queue delay still runs the lone
// request, up to expirySlack before its deadline; a much longer one
// leaves the delay whole.
func TestDelayEndsBeforeDeadline(t *testing.T) {
	f := func(timeout, wantWait time.Duration) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			b := newBatcher(t, &fakeBackend{}, Config{MaxBatchSize: 8, MaxQueueDelay: 10 * time.Millisecond, DefaultTimeout: timeout})
			r := request(1, 2, 3)
			start := time.Now()
			if err := b.Do(r); err != nil {
				t.Fatalf("timeout %s: got %v; want it run", timeout, err)
			}
			if got := time.Since(start); got != wantWait {
				t.Fatalf("timeout %s: ran after %s; want %s", timeout, got, wantWait)
			}
			checkOutputs(t, r, 2, 3)
		})
	}
	f(10*time.Millisecond+500*time.Microsecond, 9500*time.Microsecond)
	f(10*time.Millisecond, 9*time.Millisecond)
	f(100*time.Millisecond, 10*time.Millisecond)
	f(500*time.Microsecond, 0)
}

// Multi-row requests whose sizes do not add up to a preferred size, queued
// behind a busy instance: a preferred size only says where to cut a batch
// that reaches it, so the batch must not stop short of it while the next
// whole request still fits max_batch_size. Three requests of 3 rows with
// preferred size 4 (max 8) once ran as 3, 3 and 3, three runs where the
// same batcher without preferred sizes makes two (6 and 3); 3, 2 and 3
// rows ran as 3, 2 and 3.
func TestPreferredSizeDoesNotShrinkMultiRowBatches(t *testing.T) {
	f := func(pref, rows []int, want string) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			be := &fakeBackend{compute: time.Millisecond}
			b := newBatcher(t, be, Config{MaxBatchSize: 8, PreferredBatchSizes: pref})
			b.skip, b.gap = maxYieldGap, maxYieldGap // the busy one does not yield
			busy := goDo(b, request(1, 2, 0))
			synctest.Wait()
			var reqs []*Request
			var chs []<-chan error
			for i, n := range rows {
				r := request(n, 2, float32(i*100))
				reqs = append(reqs, r)
				chs = append(chs, goDo(b, r))
				synctest.Wait() // keep the arrival order
			}
			if err := <-busy; err != nil {
				t.Fatal(err)
			}
			for i, ch := range chs {
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
				checkOutputs(t, reqs[i], 2, float32(i*100))
			}
			if got := fmt.Sprint(be.runs()); got != want {
				t.Fatalf("preferred %v, requests of %v rows behind a busy instance: runs %s; want %s", pref, rows, got, want)
			}
		})
	}
	f(nil, []int{3, 3, 3}, "[1 6 3]")
	f([]int{4}, []int{3, 3, 3}, "[1 6 3]")
	f([]int{4}, []int{3, 2, 3}, "[1 5 3]")
	f([]int{2, 8}, []int{1, 3, 3}, "[1 4 3]")
	// Sizes that land on a preferred size are still cut there.
	f([]int{4}, []int{1, 3, 3}, "[1 4 3]")
	f([]int{4, 8}, []int{2, 2, 2, 2, 2}, "[1 8 2]")
}
