package registry

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway/route"
)

// ShadowResult is what became of one copy of a request sent to a shadow,
// as the "result" label of infergate_shadow_requests_total.
type ShadowResult uint8

// The results of a shadow copy.
const (
	// ShadowCompared is a copy the shadow answered; its answer was
	// compared with the client's.
	ShadowCompared ShadowResult = iota
	// ShadowFailed is a copy the shadow version failed to answer.
	ShadowFailed
	// ShadowDropped is a copy not run: the node's shadow queue was full.
	ShadowDropped
	// ShadowNotReady is a copy not run: the shadow version is not ready
	// on this node.
	ShadowNotReady
	numShadowResults
)

var shadowResultNames = [numShadowResults]string{"compared", "failed", "dropped", "not_ready"}

// diffBuckets are the upper bounds of the largest absolute difference
// between a shadow's output values and the client's.
var diffBuckets = []float64{0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100}

// Shadow is a model's shadow as the data plane uses it: what to copy, and
// the series that say how the shadow compares. It is immutable; a change
// replaces it (Repository.SetShadow).
type Shadow struct {
	route.Shadow
	// Model is the model whose requests are copied.
	Model   string
	results [numShadowResults]*metrics.Counter
	// MaxDiff is, per compared copy, the largest absolute difference
	// between an output value of the shadow and the client's.
	MaxDiff *metrics.PrometheusHistogram
	// Disagreements counts the compared copies whose outputs differ by
	// more than the tolerance, or in names, types or shapes.
	Disagreements *metrics.Counter
	series        []string
}

// Count counts one copy's result.
func (s *Shadow) Count(r ShadowResult) { s.results[r].Inc() }

// NewShadow returns the Shadow of model for sh, with its series in set
// (created, or found when they exist). Repository.SetShadow builds its
// shadows with it; sh must be valid.
func NewShadow(set *metrics.Set, model string, sh *route.Shadow) *Shadow {
	x := &Shadow{Shadow: *sh.Clone(), Model: model}
	labels := fmt.Sprintf(`model=%q,version="%d"`, model, sh.Version)
	for i := range x.results {
		name := fmt.Sprintf(`infergate_shadow_requests_total{%s,result=%q}`, labels, shadowResultNames[i])
		x.results[i] = set.GetOrCreateCounter(name)
		x.series = append(x.series, name)
	}
	name := fmt.Sprintf(`infergate_shadow_max_abs_diff{%s}`, labels)
	x.MaxDiff = set.GetOrCreatePrometheusHistogramExt(name, diffBuckets)
	x.series = append(x.series, name)
	name = fmt.Sprintf(`infergate_shadow_disagreements_total{%s}`, labels)
	x.Disagreements = set.GetOrCreateCounter(name)
	x.series = append(x.series, name)
	return x
}

// SetShadow makes a sample of model name's requests go, copied, to a
// shadow version too, or, with sh nil, stops that. Like SetExperiment, it
// may come before the model loads and outlives its loads; a change of
// version drops the old version's series, a change of the sample or the
// tolerance keeps them counting. sh must be valid.
func (r *Repository) SetShadow(name string, sh *route.Shadow) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	old := r.shadows[name]
	if old == nil && sh == nil || old != nil && old.Equal(sh) {
		return
	}
	var x *Shadow
	if sh != nil {
		x = NewShadow(r.cfg.Metrics, name, sh)
		r.shadows[name] = x
	} else {
		delete(r.shadows, name)
	}
	if m := r.table.load()[name]; m != nil {
		m.shadow.Store(x)
	}
	if old != nil && (x == nil || x.Version != old.Version) {
		for _, s := range old.series {
			r.cfg.Metrics.UnregisterMetric(s)
		}
	}
}

// ShadowOf returns what SetShadow last set for model name, loaded or not,
// or nil.
func (r *Repository) ShadowOf(name string) *Shadow {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	return r.shadows[name]
}

// Shadow returns model m's shadow, or nil.
func (m *Model) Shadow() *Shadow { return m.shadow.Load() }
