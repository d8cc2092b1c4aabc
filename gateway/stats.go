package gateway

import (
	"encoding/json"
	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// modelStats serves GET /v2/models[/{name}[/versions/{version}]]/stats,
// Triton's statistics extension: the cumulative activity of every ready
// version of every model (name nil), of one model, or of one version.
// Like Triton, it takes /v2/models/stats for the statistics of all models,
// so a model named "stats" has its metadata at
// /v2/models/stats/versions/{v} only.
func (s *Server) modelStats(ctx *fasthttp.RequestCtx, name, version []byte) error {
	stats, err := s.statsOf(name, version)
	if err != nil {
		return err
	}
	return writeJSON(ctx, stats)
}

// statsOf returns the statistics of every ready version of every model
// (name nil), of model name's (version nil), or of one version: what GET
// .../stats and gRPC's ModelStatistics answer.
func (s *Server) statsOf(name, version []byte) (oip.ModelStatistics, error) {
	var vs []*registry.Version
	switch {
	case name == nil:
		for _, m := range s.repo.Models() {
			vs = append(vs, m.Versions()...)
		}
	case version == nil:
		m := s.repo.Model(b2s(name))
		if m == nil {
			return oip.ModelStatistics{}, s.routeError(name, nil, registry.ErrModelNotFound)
		}
		vs = m.Versions()
	default:
		_, v, err := s.lookup(name, version)
		if err != nil {
			return oip.ModelStatistics{}, err
		}
		vs = []*registry.Version{v}
	}
	out := oip.ModelStatistics{ModelStats: make([]oip.ModelStat, 0, len(vs))}
	for _, v := range vs {
		out.ModelStats = append(out.ModelStats, modelStat(v))
	}
	return out, nil
}

// modelStat turns v's statistics into the extension's form. The engine
// times gathering the inputs, running the model and scattering the
// outputs as one: all of it is compute_infer, and compute_input and
// compute_output count the same executions with no time.
func modelStat(v *registry.Version) oip.ModelStat {
	st := v.Metrics.Statistics()
	d := func(sv registry.StatValue) oip.DurationStat { return oip.DurationStat{Count: sv.Count, NS: sv.NS} }
	none := func(sv registry.StatValue) oip.DurationStat { return oip.DurationStat{Count: sv.Count} }
	ms := oip.ModelStat{
		Name:           v.Model,
		Version:        v.Label,
		LastInference:  st.LastInference,
		InferenceCount: st.InferenceCount,
		ExecutionCount: st.ExecutionCount,
		InferenceStats: oip.InferenceStats{
			Success:       d(st.Success),
			Fail:          d(st.Fail),
			Queue:         d(st.Queue),
			ComputeInput:  none(st.ComputeInfer),
			ComputeInfer:  d(st.ComputeInfer),
			ComputeOutput: none(st.ComputeInfer),
			CacheHit:      d(st.CacheHit),
			CacheMiss:     d(st.CacheMiss),
		},
		BatchStats:    make([]oip.BatchStats, 0, len(st.Batches)),
		ResponseStats: map[string]json.RawMessage{},
		MemoryUsage:   []json.RawMessage{},
	}
	for _, b := range st.Batches {
		ms.BatchStats = append(ms.BatchStats, oip.BatchStats{
			BatchSize: b.Rows, ComputeInput: none(b.StatValue), ComputeInfer: d(b.StatValue), ComputeOutput: none(b.StatValue),
		})
	}
	return ms
}
