package gateway

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/batching"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// Shadow copies run apart from the requests they copy: a bounded queue
// feeds a few workers, and a copy that finds the queue full, or its
// version busy, is dropped (counted), so that a shadow never changes an
// answer nor delays one of the version it copies.
const (
	shadowQueue   = 64
	shadowWorkers = 2
)

// shadowJob is one copied request: its inputs and the outputs the client
// got, owned by the job; logID is the request's id when the traffic log
// sampled the request (the shadow's outputs are logged under it).
type shadowJob struct {
	sh      *registry.Shadow
	inputs  []oip.Tensor
	outputs []oip.Tensor
	logID   string
}

// shadower runs the copies. Its workers start with the first copy;
// close stops them.
type shadower struct {
	repo    *registry.Repository
	timeout time.Duration
	// reason classifies a failed run for the version's metrics.
	reason func(v *registry.Version, err error) registry.FailureReason

	logf func(format string, args ...any)
	// traffic, when set (before the first submit), logs what the shadow
	// answered to the copies of the predictions it logged.
	traffic trafficlog.Sink

	// failures limits the lines about each shadow's failed copies.
	failures *loglimit.Limiter[*registry.Shadow]

	queue   chan *shadowJob
	start   sync.Once
	stop    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup
	closeMu sync.Once
}

func newShadower(repo *registry.Repository, timeout time.Duration, reason func(*registry.Version, error) registry.FailureReason, logf func(string, ...any)) *shadower {
	return &shadower{repo: repo, timeout: timeout, reason: reason, logf: logf,
		failures: loglimit.New[*registry.Shadow](shadowLogEvery, 4*shadowQueue),
		queue:    make(chan *shadowJob, shadowQueue), stop: make(chan struct{})}
}

// shadowLogEvery bounds how often one shadow's failed copies are logged.
const shadowLogEvery = time.Minute

// logFailure logs why a copy for sh failed: the first failure, then at
// most one line a minute with how many failed in between, so that a
// shadow that fails every copy (inputs that differ from the model's, say)
// says why once without flooding the log.
func (w *shadower) logFailure(sh *registry.Shadow, err error) {
	suffix, ok := w.failures.Allow(sh)
	if !ok {
		return
	}
	w.logf(logging.Warning+"shadow: a copy of a request of model %q failed on its shadow, version %d: %v%s", sh.Model, sh.Version, err, suffix)
}

// submit queues a copy of a request, with the outputs outs its client
// got, for sh's version, unless the queue is full. logID, when not empty,
// is the id under which the traffic log logged the request: the shadow's
// outputs are logged under it too. It copies what it keeps: the caller's
// tensors are its own again once submit returns.
func (w *shadower) submit(sh *registry.Shadow, inputs, outs []oip.Tensor, logID string) {
	if w.stopped.Load() {
		return
	}
	w.start.Do(func() {
		for range shadowWorkers {
			w.wg.Go(w.work)
		}
	})
	j := &shadowJob{sh: sh, inputs: cloneTensors(inputs), outputs: cloneTensors(outs)}
	if logID != "" && w.traffic != nil {
		j.logID = strings.Clone(logID)
	}
	select {
	case w.queue <- j:
	default:
		sh.Count(registry.ShadowDropped)
	}
}

// close stops the workers: queued copies are dropped, and it waits for
// the copies they are running until ctx ends, then leaves them behind
// (their run holds a reference to its version, which the version's drain
// waits for). It is idempotent; a second call does not wait.
func (w *shadower) close(ctx context.Context) error {
	// A submit that is starting the workers finishes that first, so
	// that the wait below covers them; none starts after this.
	w.start.Do(func() {})
	first := false
	w.closeMu.Do(func() {
		first = true
		w.stopped.Store(true)
		close(w.stop)
	})
	if !first {
		return nil
	}
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *shadower) work() {
	for {
		select {
		case <-w.stop:
			return
		case j := <-w.queue:
			if w.stopped.Load() {
				return // close drops what is queued
			}
			w.run(j)
		}
	}
}

// run sends j to its shadow version and compares the answers.
func (w *shadower) run(j *shadowJob) {
	sh := j.sh
	// Only a shadow version that no client is using runs a copy: a copy
	// never waits in a queue its clients wait in. (While it runs, it
	// holds one of the version's places, as a client would.)
	v, err := w.repo.AcquireIdle(sh.Model, sh.Version)
	switch {
	case errors.Is(err, registry.ErrVersionNotFound) || errors.Is(err, registry.ErrModelNotFound):
		sh.Count(registry.ShadowNotReady)
		w.logFailure(sh, errors.New("the shadow version is not loaded on this node (POST /v2/repository/index says why)"))
		return
	case err != nil:
		sh.Count(registry.ShadowDropped)
		return
	}
	defer v.ReleaseIdle()
	start := time.Now()
	v.Metrics.Arrived(start)
	noBatchDim, rows := int64(0), 1
	if !v.Batchable {
		noBatchDim = -1
	}
	if err := oip.CheckInputs(j.inputs, v.Inputs, noBatchDim); err != nil {
		// A shadow whose inputs differ from the model's: every copy fails
		// the same way, which its series show.
		v.Metrics.Failed(registry.ReasonBadRequest, time.Since(start))
		sh.Count(registry.ShadowFailed)
		w.logFailure(sh, err)
		return
	}
	if v.Batchable {
		rows = int(j.inputs[0].Shape[0])
	}
	bc := v.Batcher.Config()
	r := &batching.Request{
		Inputs:   j.inputs,
		Rows:     rows,
		Priority: int64(bc.PriorityLevels), // the lowest
		Deadline: start.Add(w.timeout),
	}
	if err := v.Batcher.Do(r); err != nil {
		v.Metrics.Failed(w.reason(v, err), time.Since(start))
		sh.Count(registry.ShadowFailed)
		w.logFailure(sh, err)
		return
	}
	v.Metrics.Succeeded(time.Since(start))
	sh.Count(registry.ShadowCompared)
	if j.logID != "" {
		// Dropped and counted by the log when it lags, as predictions are.
		w.traffic.Append(&trafficlog.Event{Kind: trafficlog.Shadow, Time: time.Now(), ID: j.logID,
			Model: sh.Model, Version: sh.Version, Outputs: r.Outputs})
	}
	diff, same := compareOutputs(j.outputs, r.Outputs)
	if same {
		sh.MaxDiff.Update(diff)
	}
	if !same || diff > sh.Limit() {
		sh.Disagreements.Inc()
	}
}

// compareOutputs returns the largest absolute difference between the
// values of client's outputs and the shadow's, matched by name; same is
// false when an output is missing or differs in type or shape. Values of
// type BYTES count as 0 apart when equal, else as +Inf; a NaN against a
// number is +Inf apart, two NaNs are equal.
func compareOutputs(client, shadow []oip.Tensor) (diff float64, same bool) {
	for i := range client {
		c := &client[i]
		j := slices.IndexFunc(shadow, func(t oip.Tensor) bool { return t.Name == c.Name })
		if j < 0 {
			return 0, false
		}
		s := &shadow[j]
		if s.Datatype != c.Datatype || !slices.Equal(s.Shape, c.Shape) {
			return 0, false
		}
		if c.Datatype.Size() == 0 { // BYTES: strings of any length
			if !bytes.Equal(s.Data, c.Data) {
				diff = math.Inf(1)
			}
			continue
		}
		if len(s.Data) != len(c.Data) {
			return 0, false
		}
		n := len(c.Data) / c.Datatype.Size()
		for k := range n {
			a, _ := oip.Float64At(c.Datatype, c.Data, k)
			b, _ := oip.Float64At(s.Datatype, s.Data, k)
			d := math.Abs(a - b)
			switch {
			case a == b, math.IsNaN(a) && math.IsNaN(b): // equal infinities too
				d = 0
			case math.IsNaN(d):
				d = math.Inf(1)
			}
			diff = max(diff, d)
		}
	}
	return diff, true
}

// cloneTensors returns a deep copy of ts, its data in one allocation.
func cloneTensors(ts []oip.Tensor) []oip.Tensor {
	size := 0
	for i := range ts {
		size += len(ts[i].Data)
	}
	data := make([]byte, 0, size)
	out := make([]oip.Tensor, len(ts))
	for i, t := range ts {
		start := len(data)
		data = append(data, t.Data...)
		out[i] = oip.Tensor{Name: t.Name, Datatype: t.Datatype, Shape: slices.Clone(t.Shape), Data: data[start:len(data):len(data)]}
	}
	return out
}
