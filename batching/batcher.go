package batching

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
)

// Backend runs one batch. engine.Model implements it; it must be safe for
// as many concurrent calls as Config.Instances.
type Backend interface {
	Run(ctx context.Context, inputs []oip.Tensor, outputNames []string, dst []oip.Tensor) ([]oip.Tensor, error)
}

// Observer receives the batcher's events, for metrics. Its methods are
// called on the request path, Queued with the queue lock held: they must
// be quick and must not call back into the Batcher. Refusals and timeouts
// are not reported as executions or queue waits: the caller sees them as
// errors from Do. A request that timed out in the queue is reported to
// Woken, like every request another goroutine answered.
type Observer interface {
	// Executed follows each backend run.
	Executed(rows, requests int, compute time.Duration, err error)
	// Queued reports how long a request waited before its batch started.
	Queued(wait time.Duration)
	// Woken reports, for a request whose caller waited while another
	// goroutine ran it, how long the caller took to run again once its
	// answer was sent: the scheduler's part of its latency.
	Woken(wait time.Duration)
}

// CPUObserver is an Observer that also wants, for one backend run in
// cpuSampleEvery of its batcher (on Linux; a failed batch's runs one by
// one count as runs), the run's duration and the CPU time of the thread
// that called the backend meanwhile. When the backend computes on the
// calling thread alone (ONNX Runtime with one intra-op thread on a CPU),
// cpu falls short of compute by the time the thread was ready but waited
// for a CPU; with a thread pool or a GPU, the rest of the work is not
// counted. The batcher reads the thread's clock only for an Observer that
// implements it.
type CPUObserver interface {
	Observer
	OnCPU(compute, cpu time.Duration)
}

// Config configures a Batcher. The zero value of an optional field takes
// the default that its comment names.
type Config struct {
	// Instances is the number of workers, one per backend instance
	// (default 1).
	Instances int
	// MaxBatchSize is the most rows packed into one run. 0 or 1 turns
	// batching off: every request runs alone. A request with more rows
	// than MaxBatchSize still runs, alone.
	MaxBatchSize int
	// PreferredBatchSizes, when set, are batch sizes (rows) the batcher
	// aims for: a batch is cut at the largest preferred size that the
	// queued rows reach (with requests of several rows, at the first
	// whole request that reaches it, within MaxBatchSize), and an idle
	// worker waits up to MaxQueueDelay for the smallest one.
	PreferredBatchSizes []int
	// MaxQueueDelay is how long an idle worker may hold queued requests
	// to fill a batch; 0 (the default) dispatches at once.
	MaxQueueDelay time.Duration
	// MaxQueueSize bounds the requests waiting while every instance is
	// busy (default 1024); a request an idle instance is about to take
	// does not count.
	MaxQueueSize int
	// PriorityLevels is the number of priorities, 1 the highest
	// (default 1). DefaultPriority is used for requests that give none
	// (default: the lowest).
	PriorityLevels  int
	DefaultPriority int
	// DefaultTimeout bounds a request's time in the queue when it gives
	// no earlier deadline; 0 means no bound.
	DefaultTimeout time.Duration
	// LevelPolicies give priority levels queue policies of their own,
	// keyed by level (1 the highest); a level without one follows
	// MaxQueueSize and DefaultTimeout alone.
	LevelPolicies map[int]LevelPolicy
	// WorkerThread, when set, makes every run a worker's, each worker on
	// an OS thread of its own: a worker locks its goroutine to its thread
	// and calls WorkerThread on it before it takes work (to bind the
	// thread to CPUs reserved for the model, say), and a request that
	// finds an instance idle wakes a worker instead of running on its
	// caller's goroutine. That costs a lone request a thread wake-up; it
	// keeps the backend's thread, and its caches, apart from the callers'.
	// An error is logged, and the worker runs anyway. The worker calls
	// undo, when not nil, on the same thread as it ends. The thread then
	// ends with it, except the process's main thread, which Go keeps,
	// asleep: undo is where to put back what the hook changed.
	WorkerThread func() (undo func(), err error)
	// Observer receives events; nil ignores them.
	Observer Observer
	// Logf reports backend panics; nil discards.
	Logf func(format string, args ...any)
}

func (c *Config) withDefaults() Config {
	d := *c
	d.LevelPolicies = maps.Clone(c.LevelPolicies) // the caller's map stays the caller's
	if d.Instances == 0 {
		d.Instances = 1
	}
	if d.MaxBatchSize == 0 {
		d.MaxBatchSize = 1
	}
	if d.MaxQueueSize == 0 {
		d.MaxQueueSize = 1024
	}
	if d.PriorityLevels == 0 {
		d.PriorityLevels = 1
	}
	if d.DefaultPriority == 0 {
		d.DefaultPriority = d.PriorityLevels
	}
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Logf == nil {
		d.Logf = func(string, ...any) {}
	}
	d.PreferredBatchSizes = slices.Clone(d.PreferredBatchSizes)
	slices.Sort(d.PreferredBatchSizes)
	return d
}

// Validate reports the first bad setting of c.
func (c *Config) Validate() error {
	switch {
	case c.Instances < 0:
		return fmt.Errorf("instances must be at least 1, got %d", c.Instances)
	case c.MaxBatchSize < 0:
		return fmt.Errorf("max batch size must not be negative, got %d", c.MaxBatchSize)
	case c.MaxQueueDelay < 0:
		return fmt.Errorf("max queue delay must not be negative, got %s", c.MaxQueueDelay)
	case c.MaxQueueSize < 0:
		return fmt.Errorf("max queue size must not be negative, got %d", c.MaxQueueSize)
	case c.PriorityLevels < 0:
		return fmt.Errorf("priority levels must not be negative, got %d", c.PriorityLevels)
	case c.DefaultPriority < 0 || c.DefaultPriority > max(c.PriorityLevels, 1):
		return fmt.Errorf("default priority %d is outside 1..%d", c.DefaultPriority, max(c.PriorityLevels, 1))
	case c.DefaultTimeout < 0:
		return fmt.Errorf("default timeout must not be negative, got %s", c.DefaultTimeout)
	}
	for _, p := range c.PreferredBatchSizes {
		if p < 1 || p > max(c.MaxBatchSize, 1) {
			return fmt.Errorf("preferred batch size %d is outside 1..%d (the max batch size)", p, max(c.MaxBatchSize, 1))
		}
	}
	for level, p := range c.LevelPolicies {
		switch {
		case level < 1 || level > max(c.PriorityLevels, 1):
			return fmt.Errorf("a queue policy is given for priority %d, outside 1..%d", level, max(c.PriorityLevels, 1))
		case p.MaxQueueSize < 0:
			return fmt.Errorf("priority %d: max queue size must not be negative, got %d", level, p.MaxQueueSize)
		case p.DefaultTimeout < 0:
			return fmt.Errorf("priority %d: default timeout must not be negative, got %s", level, p.DefaultTimeout)
		}
	}
	return nil
}

// LevelPolicy is the queue policy of one priority level.
type LevelPolicy struct {
	// MaxQueueSize bounds the level's waiting requests, within
	// Config.MaxQueueSize, which bounds them all: a request of the level
	// that finds that many of it queued is refused with ErrLevelFull,
	// displacing nobody. As with Config.MaxQueueSize, the requests idle
	// instances are about to take do not count. 0 sets no bound of the
	// level's own.
	MaxQueueSize int
	// DefaultTimeout takes the place of Config.DefaultTimeout for the
	// level's requests; 0 means no bound.
	DefaultTimeout time.Duration
}

// Level returns the priority level that a request of priority p queues
// at: p itself within 1..PriorityLevels, else DefaultPriority, for 0
// (none given) and, as in Triton, for a priority above the model's
// levels, so that clients that send one priority to every model work
// with models of fewer levels. A negative p is ErrBadPriority. c must
// have its defaults filled in, as Batcher.Config's are.
func (c *Config) Level(p int64) (int, error) {
	switch {
	case p < 0:
		return 0, fmt.Errorf("%w: priority %d; priorities are 1 (highest) to %d, or 0 for the default", ErrBadPriority, p, c.PriorityLevels)
	case p == 0 || p > int64(c.PriorityLevels):
		return c.DefaultPriority, nil
	}
	return int(p), nil
}

// LevelTimeout returns the default timeout of priority level's requests.
func (c *Config) LevelTimeout(level int) time.Duration {
	if p, ok := c.LevelPolicies[level]; ok {
		return p.DefaultTimeout
	}
	return c.DefaultTimeout
}

// Request is one inference request. The caller owns it and may reuse it
// (with its buffers) once Do returns.
type Request struct {
	// Inputs carry the batch dimension first, Rows long.
	Inputs []oip.Tensor
	Rows   int
	// Priority is 1 (highest) to PriorityLevels; 0, or one above
	// PriorityLevels, means the default (see Config.Level). It is int64,
	// as the protocol's parameter is.
	Priority int64
	// Deadline, when set, is when the request gives up waiting in the
	// queue; it can only shorten its level's default timeout.
	Deadline time.Time
	// Outputs receives every model output, Rows long, on success. Its
	// buffers are reused.
	Outputs []oip.Tensor

	// What became of the request, set by Do before it returns (zero for a
	// request refused before it queued): Waited is how long it waited in
	// the queue (until its batch started, or it timed out or gave its
	// place up), BatchRows the rows of the run that answered it, and
	// Compute how long that run took. Where its batch failed and each of
	// its requests then ran alone, FailedRows is that batch's rows, Compute
	// counts the failed run too, and Waited the runs of the batch-mates
	// ahead of it. A server logs them for its slow requests.
	Waited     time.Duration
	BatchRows  int
	FailedRows int
	Compute    time.Duration

	// Fields below are guarded by Batcher.mu while the request is queued.
	state      reqState
	level      int
	enqueued   time.Time
	deadline   time.Time
	prev, next *Request

	done chan error // capacity 1: the single answer
	// answered is when another goroutine sent the answer on done; the
	// send orders it before the caller's receive.
	answered time.Time
}

type reqState uint8

const (
	stateIdle   reqState = iota
	stateQueued          // in a queue
	stateTaken           // in a batch, or answered by a worker
)

// cpuSampleEvery is how often a backend run is timed on its thread's CPU
// clock too (one in so many). The two system calls cost about 1.5 µs on
// the development VM: once in 16 they were 4% of a lone request's
// handler with a backend that costs nothing (BenchmarkHandler/fake).
const cpuSampleEvery = 64

// expirySlack is how long before a queued request's deadline an idle
// worker stops waiting for MaxQueueDelay to fill a batch: a woken
// goroutine runs some time after its timer fires (up to a few hundred µs
// on a busy machine), and the request must not expire meanwhile.
const expirySlack = time.Millisecond

// maxYieldGap is the most idle hits between two yields while nothing
// queues (see Batcher.skip): a lone request pays for one yield, a
// runtime.Gosched that finds nothing else to run, once in maxYieldGap+1.
const maxYieldGap = 64

// Batcher schedules the requests of one model version onto its instances.
type Batcher struct {
	cfg     Config
	backend Backend
	obs     Observer
	cpuObs  CPUObserver // obs, when it wants CPU samples; else nil
	// levelMax and timeouts hold each level's queue bound (0: none of its
	// own) and default timeout, from Config.LevelPolicies; set by New,
	// read-only after.
	levelMax []int
	timeouts []time.Duration

	// mu guards the queues and the fields below.
	mu         sync.Mutex
	levels     []queue // levels[0] is priority 1
	queued     int
	queuedRows int
	free       int // instances not running anything
	stopped    bool
	// hurried is set by Hurry: batches no longer wait for MaxQueueDelay.
	hurried bool
	// allFree is signaled, once stopped, when every instance is free
	// again; Stop waits on it for the runs of callers' goroutines.
	allFree sync.Cond
	// skip is how many more callers that find an instance idle run at
	// once before one yields to let others join it (see Do); gap is what
	// skip is reset to after a yield that nobody joined. A request that
	// queues sets both to 0: every idle hit yields. Each fruitless yield
	// doubles gap, up to maxYieldGap, so lone requests rarely pay for one,
	// while a server on one processor, where nothing ever queues behind a
	// short run (the run holds the processor), still finds its batches.
	skip, gap int

	// expireAt is when the expiry timer fires: no later than the earliest
	// deadline among the queued requests, zero when none has one. It may
	// be earlier (that request has left the queue since); the timer then
	// finds nothing to expire and sets itself for the next one. One timer
	// per batcher, not one per request: arming a runtime timer and
	// selecting on it cost a busy server more than the rest of Do.
	expireAt time.Time
	expiry   *time.Timer

	// panicMu guards panicLogged, when a backend panic was last logged,
	// and panicsHeld, how many came since (recoverBackend).
	panicMu     sync.Mutex
	panicLogged time.Time
	panicsHeld  int

	// full mirrors queued >= MaxQueueSize for Full, which takes no lock.
	full atomic.Bool
	// runs counts backend runs, to sample one in cpuSampleEvery.
	runs atomic.Uint32

	// runners holds one runner per instance: whoever holds an instance
	// takes one to run a batch, and gives it back before it frees the
	// instance, so one is always there. With one instance every batch
	// is gathered in the same buffers, whose ONNX Runtime values the
	// backend can keep.
	runners chan *runner
	// yield is runtime.Gosched; tests replace it.
	yield func()

	wake     chan struct{} // a token per enqueue; workers wait on it
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New starts a Batcher with cfg.Instances workers over backend.
func New(backend Backend, cfg Config) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	b := &Batcher{
		cfg:     c,
		backend: backend,
		obs:     c.Observer,
		levels:  make([]queue, c.PriorityLevels),
		free:    c.Instances,
		wake:    make(chan struct{}, c.Instances),
		stop:    make(chan struct{}),
	}
	b.levelMax = make([]int, c.PriorityLevels)
	b.timeouts = make([]time.Duration, c.PriorityLevels)
	for i := range c.PriorityLevels {
		b.levelMax[i] = c.LevelPolicies[i+1].MaxQueueSize
		b.timeouts[i] = c.LevelTimeout(i + 1)
	}
	if co, ok := c.Observer.(CPUObserver); ok && threadCPU() >= 0 {
		b.cpuObs = co
	}
	b.allFree.L = &b.mu
	b.runners = make(chan *runner, c.Instances)
	for range c.Instances {
		b.runners <- &runner{b: b}
	}
	b.yield = runtime.Gosched
	for range c.Instances {
		w := &worker{b: b}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			w.loop()
		}()
	}
	return b, nil
}

// Config returns the effective configuration, defaults filled in.
func (b *Batcher) Config() Config { return b.cfg }

// QueueLen returns the number of waiting requests.
func (b *Batcher) QueueLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}

// Do queues r and waits for its answer: nil with r.Outputs filled, or
// ErrQueueFull / ErrLevelFull / ErrBadPriority / ErrBadRequest /
// ErrStopped at once, ErrTimeout when its deadline passes in the queue,
// ErrDisplaced when a request of higher priority takes its place in the
// full queue, or the backend's error.
func (b *Batcher) Do(r *Request) error {
	r.Waited, r.BatchRows, r.FailedRows, r.Compute = 0, 0, 0, 0
	if r.Rows < 1 || len(r.Inputs) == 0 {
		return fmt.Errorf("%w: %d rows and %d inputs", ErrBadRequest, r.Rows, len(r.Inputs))
	}
	if b.cfg.MaxBatchSize > 1 {
		if err := checkRows(r); err != nil {
			return err
		}
	}
	level, err := b.cfg.Level(r.Priority)
	if err != nil {
		return err
	}
	if r.done == nil {
		r.done = make(chan error, 1)
	}
	now := time.Now()
	deadline := r.Deadline
	if t := b.timeouts[level-1]; t > 0 {
		if d := now.Add(t); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}

	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return ErrStopped
	}
	if b.queued == 0 && b.free > 0 && b.cfg.MaxQueueDelay == 0 && b.cfg.WorkerThread == nil {
		// An instance is idle and nobody waits: run on the caller's
		// goroutine, with no hand-off to a worker and back.
		b.free--
		// A request that fills a batch alone has no one to wait for.
		yield := r.Rows < b.cfg.MaxBatchSize && b.skip == 0
		if b.skip > 0 {
			b.skip--
		}
		b.mu.Unlock()
		b.obs.Queued(0)
		if yield {
			// Let the goroutines that are ready to run go first, so that
			// those about to ask for this version queue (the instance is
			// taken) and join this run. With nothing else ready it
			// returns at once.
			b.yield()
			b.mu.Lock()
			if b.queued > 0 {
				return b.runWith(r)
			}
			// Nobody came: yield again only after gap more idle hits.
			b.gap = min(max(2*b.gap, 1), maxYieldGap)
			b.skip = b.gap
			b.mu.Unlock()
		}
		start := time.Now()
		err := execute(b, r)
		r.BatchRows, r.Compute = r.Rows, time.Since(start)
		b.obs.Executed(r.Rows, 1, r.Compute, err)
		b.release()
		return err
	}
	if m := b.levelMax[level-1]; m > 0 && b.levels[level-1].n >= m+b.free {
		// As with MaxQueueSize, a request an idle instance is about to
		// take does not count.
		b.mu.Unlock()
		return ErrLevelFull
	}
	if b.queued >= b.cfg.MaxQueueSize+b.free {
		victim := b.lowestBelowLocked(level - 1)
		if victim == nil {
			b.mu.Unlock()
			return ErrQueueFull
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			// Past its deadline already: it would take a place only to
			// time out, and cost the displaced request its run.
			b.mu.Unlock()
			return ErrTimeout
		}
		// The newest request of the lowest priority gives its place up.
		b.unqueueLocked(victim)
		victim.answered = now
		victim.Waited = now.Sub(victim.enqueued)
		victim.done <- ErrDisplaced
	}
	b.skip, b.gap = 0, 0
	r.state = stateQueued
	r.level = level - 1
	r.enqueued = now
	r.deadline = deadline
	b.levels[r.level].push(r)
	b.queued++
	b.queuedRows += r.Rows
	b.setFullLocked()
	if !deadline.IsZero() && (b.expireAt.IsZero() || deadline.Before(b.expireAt)) {
		b.armExpiryLocked(deadline)
	}
	idle := b.free > 0
	b.mu.Unlock()
	if idle {
		select {
		case b.wake <- struct{}{}:
		default: // every worker has a wake-up pending already
		}
	}
	// Else whoever frees an instance wakes a worker (release). A worker
	// or the expiry timer answers, exactly once.
	return b.woken(r, <-r.done)
}

// checkRows reports an input of r whose first dimension is not r.Rows, or
// whose data does not fill its shape. Packed with other requests, its rows
// would shift theirs, and each caller would get another's answer.
func checkRows(r *Request) error {
	for i := range r.Inputs {
		in := &r.Inputs[i]
		if len(in.Shape) == 0 || in.Shape[0] != int64(r.Rows) {
			return fmt.Errorf("%w: input %q has shape %v in a request of %d rows; its first dimension must be the row count", ErrBadRequest, in.Name, in.Shape, r.Rows)
		}
		if size := in.Datatype.Size(); size > 0 {
			// n*size must not wrap: shape [1, 2^61+1] of FP64 would
			// need 8 bytes.
			if n := oip.ShapeElements(in.Shape); n < 0 || n > math.MaxInt64/int64(size) || int64(len(in.Data)) != n*int64(size) {
				return fmt.Errorf("%w: input %q holds %d bytes, not what shape %v of %s takes", ErrBadRequest, in.Name, len(in.Data), in.Shape, in.Datatype)
			}
		}
	}
	return nil
}

// armExpiryLocked sets the expiry timer to fire at t. It reads the clock
// itself: the caller may have waited for the lock since it last did.
func (b *Batcher) armExpiryLocked(t time.Time) {
	b.expireAt = t
	if b.expiry == nil {
		b.expiry = time.AfterFunc(time.Until(t), b.expire)
		return
	}
	b.expiry.Reset(time.Until(t))
}

// expire runs on the expiry timer's goroutine: it answers ErrTimeout to
// every queued request whose deadline has passed and sets the timer for
// the earliest deadline left. It scans the whole queue under the lock.
// With the default timeout alone that happens about once a timeout period
// (the earliest deadline is the oldest request's, which leaves first, so
// the timer mostly finds nothing); clients that send short timeouts of
// their own make it fire at each of them.
func (b *Batcher) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	var next time.Time
	for lvl := range b.levels {
		for r := b.levels[lvl].head; r != nil; {
			following := r.next
			switch {
			case r.deadline.IsZero():
			case expired(r, now):
				b.timeOutLocked(r, now)
			case next.IsZero() || r.deadline.Before(next):
				next = r.deadline
			}
			r = following
		}
	}
	b.expireAt = time.Time{}
	if !next.IsZero() {
		b.armExpiryLocked(next)
	}
}

// expired reports whether queued request r's deadline has passed at now.
func expired(r *Request, now time.Time) bool {
	return !r.deadline.IsZero() && !now.Before(r.deadline)
}

// timeOutLocked takes expired request r out of its queue and answers it
// ErrTimeout.
func (b *Batcher) timeOutLocked(r *Request, now time.Time) {
	b.unqueueLocked(r)
	r.answered = now
	r.Waited = now.Sub(r.enqueued)
	r.done <- ErrTimeout
}

// woken reports how long r's caller, which waited for another goroutine
// to answer it, took to run again, and returns err.
func (b *Batcher) woken(r *Request, err error) error {
	b.obs.Woken(time.Since(r.answered))
	return err
}

// runWith runs r, which holds an instance, with the requests queued
// behind it as one batch on the caller's goroutine, and returns r's
// answer. b.mu is held on entry.
func (b *Batcher) runWith(r *Request) error {
	ru := <-b.runners
	ru.batch = b.collectLocked(append(ru.batch[:0], r), time.Now())
	b.mu.Unlock()
	ru.run(ru.batch)
	clear(ru.batch)
	b.runners <- ru
	b.release()
	return <-r.done
}

// Hurry makes the workers stop waiting for MaxQueueDelay to fill a batch:
// what is queued runs at once, as it arrives. A server that is shutting
// down calls it, so that its drain does not wait out the delay. It is
// idempotent, and cannot be undone.
func (b *Batcher) Hurry() {
	b.mu.Lock()
	b.hurried = true
	b.mu.Unlock()
	for range b.cfg.Instances {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Stop refuses new requests, lets the workers finish what is queued, and
// waits for them and for every run in progress, on a worker or on a
// caller's goroutine: once it returns, nothing calls the backend. It is
// idempotent.
func (b *Batcher) Stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.stopOnce.Do(func() { close(b.stop) })
	b.wg.Wait()
	b.mu.Lock()
	for b.free < b.cfg.Instances {
		b.allFree.Wait()
	}
	if b.expiry != nil {
		// The queue is empty: nothing is left to expire.
		b.expiry.Stop()
		b.expireAt = time.Time{}
	}
	b.mu.Unlock()
}

func (b *Batcher) unqueueLocked(r *Request) {
	b.levels[r.level].remove(r)
	b.queued--
	b.queuedRows -= r.Rows
	b.setFullLocked()
	r.state = stateTaken
}

// lowestBelowLocked returns the newest queued request of the lowest
// priority level below level (0 is the highest), or nil if none is queued
// below it.
func (b *Batcher) lowestBelowLocked(level int) *Request {
	for lvl := len(b.levels) - 1; lvl > level; lvl-- {
		if t := b.levels[lvl].tail; t != nil {
			return t
		}
	}
	return nil
}

// setFullLocked sets what Full reports: as many requests wait as Do
// admits (MaxQueueSize, and one more for each idle instance about to take
// one), all of the highest priority, so that Do refuses any request,
// whatever its priority. It is called wherever queued or free changes.
func (b *Batcher) setFullLocked() {
	b.full.Store(b.queued >= b.cfg.MaxQueueSize+b.free && b.levels[0].n == b.queued)
}

// Full reports, without locking, whether the queue holds all that Do
// admits, every request of the highest priority, which no request can
// displace: a caller can refuse a request before paying to decode it. Do
// still decides for itself.
func (b *Batcher) Full() bool { return b.full.Load() }

// release returns an instance and wakes a worker for what queued
// meanwhile.
func (b *Batcher) release() {
	b.mu.Lock()
	b.free++
	b.setFullLocked()
	// Once stopped, a worker may wait for this instance with nothing
	// queued any more (the queue emptied by expiry, or into a caller's
	// run): wake it to find that out and end.
	more := b.queued > 0 || b.stopped
	if b.stopped && b.free == b.cfg.Instances {
		b.allFree.Broadcast()
	}
	b.mu.Unlock()
	if more {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// oldestLocked returns the earliest enqueue time among the queue heads.
func (b *Batcher) oldestLocked() time.Time {
	var t time.Time
	for i := range b.levels {
		if h := b.levels[i].head; h != nil && (t.IsZero() || h.enqueued.Before(t)) {
			t = h.enqueued
		}
	}
	return t
}

// budgetLocked returns the rows the next batch aims for, when it holds
// have rows already (a caller's own, in runWith) besides the queued ones.
func (b *Batcher) budgetLocked(have int) int {
	budget := b.cfg.MaxBatchSize
	if ps := b.cfg.PreferredBatchSizes; len(ps) > 0 {
		avail := min(b.queuedRows+have, budget)
		for i := len(ps) - 1; i >= 0; i-- {
			if ps[i] <= avail {
				return ps[i]
			}
		}
	}
	return budget
}

// fillTargetLocked returns the rows an idle worker waits for, up to
// MaxQueueDelay: the smallest preferred size, else MaxBatchSize.
func (b *Batcher) fillTargetLocked() int {
	if ps := b.cfg.PreferredBatchSizes; len(ps) > 0 {
		return ps[0]
	}
	return b.cfg.MaxBatchSize
}

// collectLocked moves the next batch from the queues into batch: highest
// priority first, FIFO within a priority, whole requests only, until the
// batch reaches the budget or the next request would take it past
// MaxBatchSize, and only requests whose inputs stack with the first one's.
// A batch below a preferred budget takes a request that overshoots it:
// whole requests that do not add up to the preferred size must not make
// the batch smaller than it would be without preferred sizes. Requests
// past their deadline are answered ErrTimeout on the way.
func (b *Batcher) collectLocked(batch []*Request, now time.Time) []*Request {
	rows := 0
	for _, r := range batch {
		rows += r.Rows
	}
	budget := b.budgetLocked(rows)
	for lvl := range b.levels {
		for r := b.levels[lvl].head; r != nil; {
			next := r.next
			if expired(r, now) {
				b.timeOutLocked(r, now)
				r = next
				continue
			}
			if len(batch) > 0 && (rows >= budget || rows+r.Rows > b.cfg.MaxBatchSize || !stackable(batch[0], r)) {
				return batch
			}
			b.unqueueLocked(r)
			r.Waited = now.Sub(r.enqueued)
			b.obs.Queued(r.Waited)
			batch = append(batch, r)
			rows += r.Rows
			if rows >= budget {
				return batch
			}
			r = next
		}
	}
	return batch
}

// stackable reports whether b's inputs can be concatenated after a's along
// the batch dimension: same names, datatypes and trailing dimensions.
func stackable(a, b *Request) bool {
	if len(a.Inputs) != len(b.Inputs) {
		return false
	}
	for i := range a.Inputs {
		x := &a.Inputs[i]
		y := findInput(b.Inputs, x.Name)
		if y == nil || y.Datatype != x.Datatype || len(y.Shape) != len(x.Shape) || len(x.Shape) == 0 {
			return false
		}
		if !slices.Equal(x.Shape[1:], y.Shape[1:]) {
			return false
		}
	}
	return true
}

func findInput(ts []oip.Tensor, name string) *oip.Tensor {
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i]
		}
	}
	return nil
}

// worker takes batches from the queues and runs them on a free instance.
type worker struct {
	b     *Batcher
	batch []*Request
}

func (w *worker) loop() {
	b := w.b
	if b.cfg.WorkerThread != nil {
		// Never unlocked: the thread ends with the worker, so that what
		// WorkerThread did to it is not handed on to other goroutines.
		runtime.LockOSThread()
		undo, err := b.cfg.WorkerThread()
		if err != nil {
			b.cfg.Logf(logging.Warning+"batching: worker thread: %v; the worker runs anyway", err)
		}
		if undo != nil {
			defer undo()
		}
	}
	for {
		batch := w.next()
		if batch == nil {
			return
		}
		ru := <-b.runners
		ru.run(batch)
		b.runners <- ru
		b.release()
		clear(batch)
	}
}

// runner runs one batch at a time in its own buffers.
type runner struct {
	b     *Batcher
	batch []*Request   // for runWith
	in    []oip.Tensor // batch inputs, reused
	out   []oip.Tensor // batch outputs, reused
}

// next blocks until it can return a batch, or nil once the batcher is
// stopped and the queue is empty.
func (w *worker) next() []*Request {
	b := w.b
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	b.mu.Lock()
	for {
		if b.queued == 0 {
			if b.stopped {
				b.mu.Unlock()
				return nil
			}
			// Nothing to do: whoever queues a request, or Stop, wakes us.
			b.mu.Unlock()
			select {
			case <-b.wake:
			case <-b.stop:
			}
			b.mu.Lock()
			continue
		}
		if b.free == 0 {
			// Every instance busy: whoever frees one wakes a worker. Once
			// stopped, only that can help (waiting on the closed stop
			// channel would spin).
			stop := b.stop
			if b.stopped {
				stop = nil
			}
			b.mu.Unlock()
			select {
			case <-b.wake:
			case <-stop:
			}
			b.mu.Lock()
			continue
		}
		now := time.Now()
		if d := b.cfg.MaxQueueDelay; d > 0 && !b.stopped && !b.hurried && b.queuedRows < b.fillTargetLocked() {
			until := b.oldestLocked().Add(d)
			if e := b.expireAt.Add(-expirySlack); !b.expireAt.IsZero() && e.Before(until) {
				// A queued request's deadline comes first: waiting past
				// it would time it out with an instance idle, and a
				// wait that ends at it would too, since the worker runs
				// a little after its timer fires. (expireAt may be an
				// earlier deadline, of a request gone: this batch then
				// starts early, which costs nothing but its size.)
				until = e
			}
			if wait := until.Sub(now); wait > 0 {
				b.mu.Unlock()
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-b.wake:
				case <-timer.C:
				case <-b.stop:
				}
				b.mu.Lock()
				continue
			}
		}
		w.batch = b.collectLocked(w.batch[:0], now)
		if len(w.batch) > 0 {
			b.free--
			b.setFullLocked()
			more := b.queued > 0 && b.free > 0
			b.mu.Unlock()
			if more {
				// Let an idle worker take what is left.
				select {
				case b.wake <- struct{}{}:
				default:
				}
			}
			return w.batch
		}
	}
}

// run executes one batch and answers each of its requests. The caller
// holds an instance, and frees it after.
func (w *runner) run(batch []*Request) {
	b := w.b
	rows := 0
	for _, r := range batch {
		rows += r.Rows
	}
	start := time.Now()
	err := w.execute(batch, rows)
	compute := time.Since(start)
	b.obs.Executed(rows, len(batch), compute, err)
	if err != nil && len(batch) > 1 {
		// One request's values (an index out of range, an output too
		// large) must not fail its batch-mates: run each alone, so that
		// every request gets its own answer.
		ended := start.Add(compute)
		for _, r := range batch[:len(batch)-1] {
			w.runAlone(r, rows, compute, ended)
		}
		w.runAlone(batch[len(batch)-1], rows, compute, ended)
		return
	}
	now := time.Now()
	for _, r := range batch {
		r.BatchRows, r.Compute = rows, compute
		r.answered = now
		r.done <- err
	}
}

// runAlone executes and answers one request of a batch of rows rows
// whose run failed after failed, at ended: the wait for the runs of the
// batch-mates ahead of it counts as the request's waiting, the failed run
// as its computing.
func (w *runner) runAlone(r *Request, rows int, failed time.Duration, ended time.Time) {
	start := time.Now()
	err := w.execute([]*Request{r}, r.Rows)
	own := time.Since(start)
	w.b.obs.Executed(r.Rows, 1, own, err)
	r.Waited += start.Sub(ended)
	r.BatchRows, r.FailedRows, r.Compute = r.Rows, rows, failed+own
	r.answered = time.Now()
	r.done <- err
}

// execute runs the backend, converting a panic into an error so that one
// bad batch cannot take the process down.
func (w *runner) execute(batch []*Request, rows int) (err error) {
	if len(batch) == 1 {
		return execute(w.b, batch[0])
	}
	defer recoverBackend(w.b, &err)
	w.gather(batch, rows)
	outs, err := w.b.runBackend(w.in, w.out)
	if err != nil {
		return err
	}
	w.out = outs
	return w.scatter(batch, rows)
}

// execute runs one request alone, on its own buffers: no copies.
func execute(b *Batcher, r *Request) (err error) {
	defer recoverBackend(b, &err)
	outs, err := b.runBackend(r.Inputs, r.Outputs)
	if err != nil {
		return err
	}
	r.Outputs = outs
	return nil
}

// runBackend runs the backend on the calling goroutine. For a
// CPUObserver, one call in cpuSampleEvery also reads the thread's CPU
// clock around the run.
func (b *Batcher) runBackend(inputs, dst []oip.Tensor) ([]oip.Tensor, error) {
	if b.cpuObs != nil && b.runs.Add(1)%cpuSampleEvery == 0 {
		return b.runSampled(inputs, dst)
	}
	return b.backend.Run(context.Background(), inputs, nil, dst)
}

func (b *Batcher) runSampled(inputs, dst []oip.Tensor) ([]oip.Tensor, error) {
	// Locked, the goroutine cannot move to another thread between the
	// readings (a cgo call never does; the Go code around it might).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The wall clock's interval encloses the CPU clock's, so that the
	// readings' own cost counts against the share rather than lift it
	// above 1.
	start := time.Now()
	cpu0 := threadCPU()
	outs, err := b.backend.Run(context.Background(), inputs, nil, dst)
	cpu1 := threadCPU()
	compute := time.Since(start)
	if err == nil && cpu0 >= 0 && cpu1 >= cpu0 {
		b.cpuObs.OnCPU(compute, cpu1-cpu0)
	}
	return outs, err
}

// panicLogEvery is the least time between two log lines of backend
// panics: a request that makes the backend panic, sent in a loop, would
// write a stack a request.
const panicLogEvery = 10 * time.Second

// recoverBackend turns a backend panic into *err, logged with its stack
// once in panicLogEvery at most.
func recoverBackend(b *Batcher, err *error) {
	p := recover()
	if p == nil {
		return
	}
	*err = fmt.Errorf("backend panicked: %v", p)
	now := time.Now()
	b.panicMu.Lock()
	if !b.panicLogged.IsZero() && now.Sub(b.panicLogged) < panicLogEvery {
		b.panicsHeld++
		b.panicMu.Unlock()
		return
	}
	held := b.panicsHeld
	b.panicLogged, b.panicsHeld = now, 0
	b.panicMu.Unlock()
	more := ""
	if held > 0 {
		more = fmt.Sprintf(" (and %d more since the last line)", held)
	}
	b.cfg.Logf(logging.Error+"batching: backend panicked%s: %v\n%s", more, p, debug.Stack())
}

// gather concatenates the batch's inputs, in the first request's input
// order, into the runner's buffers.
func (w *runner) gather(batch []*Request, rows int) {
	first := batch[0].Inputs
	if cap(w.in) < len(first) {
		w.in = make([]oip.Tensor, len(first))
	}
	w.in = w.in[:len(first)]
	for i := range first {
		dst := &w.in[i]
		dst.Name = first[i].Name
		dst.Datatype = first[i].Datatype
		dst.Shape = append(dst.Shape[:0], int64(rows))
		dst.Shape = append(dst.Shape, first[i].Shape[1:]...)
		dst.Data = dst.Data[:0]
		for _, r := range batch {
			dst.Data = append(dst.Data, findInput(r.Inputs, dst.Name).Data...)
		}
	}
}

// scatter copies each request's rows of every output into its Outputs.
func (w *runner) scatter(batch []*Request, rows int) error {
	for _, o := range w.out {
		if len(o.Shape) == 0 || o.Shape[0] != int64(rows) || len(o.Data)%rows != 0 {
			return fmt.Errorf("output %q has shape %v for a batch of %d rows; batching needs every output to keep the batch dimension first (set max_batch_size 1 for this model)", o.Name, o.Shape, rows)
		}
	}
	off := 0
	for _, r := range batch {
		if cap(r.Outputs) < len(w.out) {
			r.Outputs = slices.Grow(r.Outputs[:0], len(w.out))
		}
		r.Outputs = r.Outputs[:len(w.out)]
		for i := range w.out {
			o := &w.out[i]
			rowBytes := len(o.Data) / rows
			dst := &r.Outputs[i]
			dst.Name = o.Name
			dst.Datatype = o.Datatype
			dst.Shape = append(dst.Shape[:0], int64(r.Rows))
			dst.Shape = append(dst.Shape, o.Shape[1:]...)
			dst.Data = append(dst.Data[:0], o.Data[off*rowBytes:(off+r.Rows)*rowBytes]...)
		}
		off += r.Rows
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) Executed(int, int, time.Duration, error) {}
func (nopObserver) Queued(time.Duration)                    {}
func (nopObserver) Woken(time.Duration)                     {}
