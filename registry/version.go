package registry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

	size    int64
	modTime time.Time
	limit   int64 // most requests in flight: instances + max queue

	refs      atomic.Int64
	draining  atomic.Bool
	drainOnce sync.Once
	drained   chan struct{}
}

func newVersion(model string, number int64, cfg ModelConfig, b Backend) *Version {
	return &Version{
		Model:    model,
		Number:   number,
		Label:    strconv.FormatInt(number, 10),
		Config:   cfg,
		Inputs:   b.Inputs(),
		Outputs:  b.Outputs(),
		Backend:  b,
		LoadedAt: time.Now(),
		limit:    int64(max(cfg.Instances, 1) + cfg.MaxQueue),
		drained:  make(chan struct{}),
	}
}

// acquire takes a reference unless v is draining or full.
func (v *Version) acquire() error {
	n := v.refs.Add(1)
	if v.draining.Load() {
		v.Release()
		return errRetry
	}
	if v.limit > 0 && n > v.limit {
		v.Release()
		v.Metrics.Failure[ReasonOverloaded].Inc()
		return &OverloadError{Model: v.Model, Version: v.Label, InFlight: v.limit, Instances: v.Config.Instances, MaxQueue: v.Config.MaxQueue}
	}
	return nil
}

// Release gives back the reference taken by Repository.Acquire.
func (v *Version) Release() {
	if v.refs.Add(-1) == 0 && v.draining.Load() {
		v.drainOnce.Do(func() { close(v.drained) })
	}
}

// InFlight returns the number of requests holding v.
func (v *Version) InFlight() int64 {
	return v.refs.Load()
}

// drain stops new acquisitions and waits until in-flight requests are done.
func (v *Version) drain() {
	v.draining.Store(true)
	if v.refs.Load() == 0 {
		v.drainOnce.Do(func() { close(v.drained) })
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
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("model %q version %s is overloaded: %d requests in flight (instances %d + max_queue %d); retry later, or raise instances or max_queue in the model's config.json",
		e.Model, e.Version, e.InFlight, e.Instances, e.MaxQueue)
}

// Model is a served model: its ready versions, swapped as a whole.
type Model struct {
	Name string
	// versions holds the ready versions in ascending order; a new slice
	// is stored on every change and never mutated after.
	versions atomic.Pointer[[]*Version]
}

// Versions returns the ready versions in ascending order. The caller must
// not modify the slice.
func (m *Model) Versions() []*Version {
	if p := m.versions.Load(); p != nil {
		return *p
	}
	return nil
}

// Latest returns the highest ready version, or nil.
func (m *Model) Latest() *Version {
	vs := m.Versions()
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
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
