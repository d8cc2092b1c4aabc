package registry

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/batching"
	"github.com/infergate/infergate/oip"
)

// Backend runs one loaded model version. engine.Model implements it.
type Backend interface {
	Inputs() []oip.TensorMetadata
	Outputs() []oip.TensorMetadata
	Run(ctx context.Context, inputs []oip.Tensor, outputNames []string, dst []oip.Tensor) ([]oip.Tensor, error)
	Close() error
}

// LoadFunc loads and warms one version from its ONNX bytes. It is called
// by the control plane only, one call at a time.
type LoadFunc func(onnx []byte, cfg ModelConfig) (Backend, error)

// Version is one loaded, warmed version of a model. Its fields are
// immutable once it is routable; a request holds it between Acquire and
// Release, and it is closed only after the last Release once retired.
type Version struct {
	Model  string
	Number int64
	// Label is Number in decimal, for headers, metric labels and JSON.
	Label string
	// SHA256 is the hex digest of the model file it was loaded from.
	SHA256   string
	Config   ModelConfig
	Inputs   []oip.TensorMetadata
	Outputs  []oip.TensorMetadata
	Backend  Backend
	Metrics  *VersionMetrics
	LoadedAt time.Time
	// Batcher queues the version's requests and runs them on Backend, in
	// batches when Batched.
	Batcher *batching.Batcher
	// Generation is unique to this load in the process: a response cache
	// keyed on it never answers from another load's results.
	Generation uint64
	// Batchable reports whether every input and output has a variable
	// leading (batch) dimension, so that requests can be stacked.
	Batchable bool

	file  os.FileInfo // the model file as loaded (see sameFile)
	limit int64       // most requests in flight: instances + max queue

	// refs counts the requests holding v in its low bits, and has
	// drainingBit set once v drains: one word, so that a holder's release
	// to zero and the start of a drain cannot interleave (see Release).
	refs atomic.Int64
	// idle counts the holders that AcquireIdle admitted, to tell them
	// from clients; they count under the in-flight limit like clients.
	idle      atomic.Int64
	drainOnce sync.Once
	drained   chan struct{}
}

// drainingBit marks Version.refs of a version that drains.
const drainingBit = 1 << 62

func newVersion(model string, number int64, cfg ModelConfig, b Backend, vm *VersionMetrics, logf func(string, ...any), workerThread func() (func(), error)) (*Version, error) {
	v := &Version{
		Model:    model,
		Number:   number,
		Label:    strconv.FormatInt(number, 10),
		Config:   cfg,
		Inputs:   b.Inputs(),
		Outputs:  b.Outputs(),
		Backend:  b,
		Metrics:  vm,
		LoadedAt: time.Now(),
		drained:  make(chan struct{}),
	}
	v.Generation = generations.Add(1)
	v.Batchable = cfg.Batched(v.Inputs, v.Outputs)
	if err := cfg.CheckModel(model, v.Inputs, v.Outputs); err != nil {
		return nil, err
	}
	bc := batcherConfig(cfg, v.Batchable)
	bc.Observer = vm
	bc.Logf = logf
	bc.WorkerThread = workerThread
	var err error
	if v.Batcher, err = batching.New(b, bc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	// Admission before decoding: what may run plus what may wait.
	v.limit = int64(bc.Instances*max(bc.MaxBatchSize, 1) + bc.MaxQueueSize)
	if bc.PriorityLevels > 1 {
		// A request of higher priority may take the place of a queued one
		// (batching.ErrDisplaced), which it can do only once decoded:
		// room for max_queue more requests to decode meanwhile.
		v.limit += int64(bc.MaxQueueSize)
	}
	return v, nil
}

// generations numbers the loads of this process.
var generations atomic.Uint64

// batchable reports whether every tensor's leading dimension is variable.
func batchable(ts []oip.TensorMetadata) bool {
	for _, t := range ts {
		if len(t.Shape) == 0 || t.Shape[0] >= 0 {
			return false
		}
	}
	return len(ts) > 0
}

// batcherConfig maps a model's configuration onto the batcher's.
func batcherConfig(cfg ModelConfig, batchable bool) batching.Config {
	bc := batching.Config{
		Instances:    max(cfg.Instances, 1),
		MaxBatchSize: 1,
		MaxQueueSize: cfg.MaxQueue,
	}
	if bc.MaxQueueSize == 0 {
		bc.MaxQueueSize = 1024
	}
	d := cfg.DynamicBatching
	if batchable && d.On() && cfg.MaxBatchSize > 1 {
		bc.MaxBatchSize = int(cfg.MaxBatchSize)
		if d != nil {
			if d.MaxQueueDelayUS != nil {
				bc.MaxQueueDelay = time.Duration(*d.MaxQueueDelayUS) * time.Microsecond
			}
			bc.PreferredBatchSizes = d.PreferredBatchSizes
		}
	}
	if d != nil {
		bc.PriorityLevels = d.PriorityLevels
		bc.DefaultPriority = d.DefaultPriorityLevel
		bc.DefaultTimeout = time.Duration(d.DefaultQueueTimeoutUS) * time.Microsecond
		bc.LevelPolicies = d.levelPolicies()
	}
	return bc
}

// levelPolicies returns d's priority queue policies as the batcher takes
// them, the fields a policy leaves out filled in from d.
func (d *DynamicBatching) levelPolicies() map[int]batching.LevelPolicy {
	if d == nil || len(d.PriorityQueuePolicy) == 0 {
		return nil
	}
	m := make(map[int]batching.LevelPolicy, len(d.PriorityQueuePolicy))
	for k, q := range d.PriorityQueuePolicy {
		level, _ := strconv.Atoi(k) // checked by Validate
		p := batching.LevelPolicy{DefaultTimeout: time.Duration(d.DefaultQueueTimeoutUS) * time.Microsecond}
		if q.MaxQueueSize != nil {
			p.MaxQueueSize = int(*q.MaxQueueSize)
		}
		if q.DefaultTimeoutMicroseconds != nil {
			p.DefaultTimeout = time.Duration(*q.DefaultTimeoutMicroseconds) * time.Microsecond
		}
		m[level] = p
	}
	return m
}

// acquire takes a reference unless v is draining or full.
func (v *Version) acquire() error {
	n := v.refs.Add(1)
	if n&drainingBit != 0 {
		v.Release()
		return errRetry
	}
	if v.limit > 0 && n > v.limit {
		v.Release()
		v.Metrics.Failure[ReasonOverloaded].Inc()
		return &OverloadError{Model: v.Model, Version: v.Label, InFlight: v.limit, Instances: v.Config.Instances, MaxQueue: v.Config.MaxQueue,
			Priorities: v.Batcher.Config().PriorityLevels > 1}
	}
	return nil
}

// Release gives back the reference taken by Repository.Acquire.
func (v *Version) Release() {
	// The count and the draining mark are read in the same operation:
	// with a separate flag, a release to zero before a drain began could
	// read the flag after it began, and end the drain of a version that
	// a new request had meanwhile taken.
	if v.refs.Add(-1) == drainingBit {
		v.drainOnce.Do(func() { close(v.drained) })
	}
}

// acquireIdle takes a reference to v, as acquire does, only while no
// client holds one (other idle holders may); ReleaseIdle gives it back.
// Which holders are clients is read apart from the reference count, so a
// client may go unseen or a copy be turned away in a race: it decides
// only whether background work runs, never who is admitted.
func (v *Version) acquireIdle() error {
	v.idle.Add(1)
	if err := v.acquire(); err != nil {
		v.idle.Add(-1)
		return err
	}
	if v.InFlight() > v.idle.Load() {
		v.ReleaseIdle()
		return ErrVersionBusy
	}
	return nil
}

// ReleaseIdle gives back the reference taken by Repository.AcquireIdle.
func (v *Version) ReleaseIdle() {
	v.Release()
	v.idle.Add(-1)
}

// InFlight returns the number of requests holding v.
func (v *Version) InFlight() int64 {
	return v.refs.Load() &^ drainingBit
}

// drain stops new acquisitions and waits until in-flight requests are done.
func (v *Version) drain() {
	for {
		n := v.refs.Load()
		if n&drainingBit != 0 {
			break // draining already
		}
		if v.refs.CompareAndSwap(n, n|drainingBit) {
			if n == 0 {
				v.drainOnce.Do(func() { close(v.drained) })
			}
			break
		}
	}
	<-v.drained
}

// errRetry tells Acquire that it raced with a swap and should look again.
var errRetry = fmt.Errorf("version retired; retry")

// OverloadError means a version has as many requests in flight as it may.
type OverloadError struct {
	Model, Version      string
	InFlight            int64
	Instances, MaxQueue int
	// Priorities is set when the version has priority levels, which let
	// max_queue more requests in to be decoded.
	Priorities bool
}

func (e *OverloadError) Error() string {
	also := ""
	if e.Priorities {
		also = ", twice over with priority levels"
	}
	return fmt.Sprintf("model %q version %s is overloaded: %d requests in flight (what its instances %d can run plus max_queue %d%s); retry later, or raise instances or max_queue in the model's config.json",
		e.Model, e.Version, e.InFlight, e.Instances, e.MaxQueue, also)
}

// Model is a served model: its ready versions, swapped as a whole.
type Model struct {
	Name string
	// def is where unversioned requests go (nil: the latest version); see
	// Repository.SetDefault and Repository.HandOver. It is never mutated
	// after it is stored.
	def atomic.Pointer[defaultRoute]
	// exp is the experiment unversioned requests split by, or nil; see
	// Repository.SetExperiment.
	exp atomic.Pointer[Experiment]
	// shadow is the shadow a sample of requests is copied to, or nil; see
	// Repository.SetShadow.
	shadow atomic.Pointer[Shadow]
	// versions holds the ready versions in ascending order; a new slice
	// is stored on every change and never mutated after.
	versions atomic.Pointer[[]*Version]
	// policy is the version policy that selected versions, which a
	// version kept from a load with another policy does not record in
	// its Config (see Repository.Load); never mutated after it is stored.
	policy atomic.Pointer[VersionPolicy]
}

// VersionPolicy returns the version policy of the configuration the
// model's versions serve by, or nil before a load stored one. A version's
// Config may hold an earlier one: a load that changes only the policy
// keeps the versions it still selects as they were loaded.
func (m *Model) VersionPolicy() *VersionPolicy { return m.policy.Load() }

// Versions returns the ready versions in ascending order. The caller must
// not modify the slice.
func (m *Model) Versions() []*Version {
	if p := m.versions.Load(); p != nil {
		return *p
	}
	return nil
}

// defaultRoute is where a model's unversioned requests go: version cur,
// or version next (when not 0) as soon as it is ready. A retired cur
// takes only those: requests that name it find no version (see
// Model.Named).
type defaultRoute struct {
	cur, next int64
	retired   bool
}

// Default returns the version unversioned requests get: the one
// Repository.SetDefault named, or nil while that one is not ready (never
// another: a cluster's staged versions take no unversioned traffic);
// after Repository.HandOver, the version handed over to once it is
// ready, and the one it takes over from until then; without either, the
// latest ready version.
func (m *Model) Default() *Version {
	d := m.def.Load()
	if d == nil {
		return m.Latest()
	}
	// One read of the versions: a load that swaps next in for cur is
	// seen whole, never as neither.
	vs := m.Versions()
	if d.next != 0 {
		if v := findVersion(vs, d.next); v != nil {
			return v
		}
	}
	return findVersion(vs, d.cur)
}

// Latest returns the highest ready version, or nil.
func (m *Model) Latest() *Version {
	vs := m.Versions()
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// Named returns ready version n for a request that names it, or nil: it
// is Version(n), except for a retired version kept only to answer the
// unversioned requests until the version they are handed over to is
// ready (see Repository.HandOver).
func (m *Model) Named(n int64) *Version {
	if d := m.def.Load(); d != nil && d.retired && d.cur == n {
		return nil
	}
	return m.Version(n)
}

// StandIn returns the retired version that answers the model's
// unversioned requests, and the version they go to once it is ready, or
// 0, 0 when there is none or that version is ready.
func (m *Model) StandIn() (retired, until int64) {
	d := m.def.Load()
	if d == nil || !d.retired || m.Version(d.next) != nil {
		return 0, 0
	}
	return d.cur, d.next
}

// Version returns ready version n, or nil.
func (m *Model) Version(n int64) *Version {
	for _, v := range m.Versions() {
		if v.Number == n {
			return v
		}
	}
	return nil
}
