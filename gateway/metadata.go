package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// Platform is what model metadata reports as the platform, as Triton names
// ONNX models.
const Platform = "onnxruntime_onnx"

// extensions are the protocol extensions infergate implements.
var extensions = []string{"binary_tensor_data", "classification", "model_repository", "model_configuration", "parameters", "schedule_policy", "statistics", "trace"}

func (s *Server) serverMetadata(ctx *fasthttp.RequestCtx) error {
	ctx.SetContentType("application/json")
	ctx.SetBody(oip.AppendServerMetadata(nil, s.serverMetadataDoc()))
	return nil
}

// serverMetadataDoc returns what GET /v2 and gRPC's ServerMetadata say.
func (s *Server) serverMetadataDoc() *oip.ServerMetadata {
	return &oip.ServerMetadata{Name: s.cfg.Name, Version: s.cfg.Version, Extensions: s.extensions}
}

// serverExtensions returns the extensions a server of cfg serves.
func serverExtensions(cfg *Config) []string {
	ext := slices.Clone(extensions)
	if cfg.Logging != nil {
		ext = append(ext, "logging")
	}
	if cfg.SharedMemory {
		ext = append(ext, "system_shared_memory")
	}
	return ext
}

// lookup finds the version a metadata or ready request names, without
// taking a reference: metadata is immutable.
func (s *Server) lookup(name, version []byte) (*registry.Model, *registry.Version, error) {
	vnum, err := parseVersion(version)
	if err != nil {
		return nil, nil, err
	}
	m := s.repo.Model(b2s(name))
	if m == nil {
		return nil, nil, s.routeError(name, version, registry.ErrModelNotFound)
	}
	var v *registry.Version
	if vnum == 0 {
		v = m.Default()
	} else {
		v = m.Named(vnum)
	}
	if v == nil {
		if vnum == 0 {
			return m, nil, s.routeError(name, version, registry.ErrModelNotReady)
		}
		return m, nil, s.routeError(name, version, registry.ErrVersionNotFound)
	}
	return m, v, nil
}

// modelMetadata serves GET /v2/models/{name}[/versions/{version}].
func (s *Server) modelMetadata(ctx *fasthttp.RequestCtx, name, version []byte) error {
	md, v, err := s.metadataOf(name, version)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("X-Model-Version", v.Label)
	ctx.SetBody(oip.AppendModelMetadata(nil, &md))
	return nil
}

// metadataOf returns the metadata of the model version name and version
// name (version empty: the model's default), and that version.
func (s *Server) metadataOf(name, version []byte) (oip.ModelMetadata, *registry.Version, error) {
	m, v, err := s.lookup(name, version)
	if err != nil {
		return oip.ModelMetadata{}, nil, err
	}
	md := oip.ModelMetadata{
		Name:     m.Name,
		Platform: Platform,
		Inputs:   v.Inputs,
		Outputs:  v.Outputs,
	}
	if version == nil {
		hidden, _ := m.StandIn()
		for _, w := range m.Versions() {
			if w.Number != hidden {
				md.Versions = append(md.Versions, w.Label)
			}
		}
	} else {
		md.Versions = []string{v.Label}
	}
	return md, v, nil
}

// modelReady serves GET /v2/models/{name}[/versions/{version}]/ready:
// 200 with the protocol's {"name", "ready": true} when ready (KServe's
// clients read the body), otherwise the error that says why (404 or 503).
func (s *Server) modelReady(ctx *fasthttp.RequestCtx, name, version []byte) error {
	if _, _, err := s.lookup(name, version); err != nil {
		return err
	}
	return writeJSON(ctx, struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{string(name), true})
}

// repositoryIndex serves POST /v2/repository/index, body {"ready": bool}
// optional: every model in the repository with the state of each version.
func (s *Server) repositoryIndex(ctx *fasthttp.RequestCtx) error {
	var q struct {
		Ready bool `json:"ready"`
	}
	if err := s.readOptionalJSON(ctx, &q); err != nil {
		return err
	}
	idx, err := s.readyIndex(q.Ready)
	if err != nil {
		return err
	}
	return writeJSON(ctx, idx)
}

// readyIndex is the index (never nil), only its READY rows when ready is
// set: what POST /v2/repository/index and gRPC's RepositoryIndex answer.
func (s *Server) readyIndex(ready bool) ([]registry.IndexEntry, error) {
	idx, err := s.index()
	if err != nil {
		return nil, err
	}
	out := idx[:0:0]
	for _, e := range idx {
		if !ready || e.State == registry.StateReady {
			out = append(out, e)
		}
	}
	if out == nil {
		out = []registry.IndexEntry{}
	}
	return out, nil
}

// reasonRetired is the index reason of a version the cluster retired: on
// purpose, as registry.ReasonUnloaded is, so no failure.
const reasonRetired = "retired"

// reasonRemoved is the index reason of a model removed from the cluster
// (DELETE /v1/models/{name}) whose emptied directory is still in --models:
// on purpose too.
const reasonRemoved = "removed from the cluster: an upload of the name serves it again"

// index is the repository's index (registry.Repository.Index) with the
// cluster's versions this node does not serve added, as the reconciler
// reports them (cluster.Node.LocalStatus): one being fetched from a peer
// is LOADING, one that failed here (bytes on disk other than the
// registered ones, a pull that failed) UNAVAILABLE with the reason. The
// registry knows nothing of those until their files load, and an
// operator looking for why a version does not serve on this node looks
// here and on the status page.
func (s *Server) index() ([]registry.IndexEntry, error) {
	idx, err := s.repo.Index()
	if err != nil {
		return nil, err
	}
	cp := s.plane.Load()
	if cp == nil {
		return idx, nil
	}
	type key struct{ model, version string }
	at := make(map[key]int, len(idx))
	for i, e := range idx {
		at[key{e.Name, e.Version}] = i
	}
	// A version the registry unloaded because the cluster retired it
	// says so, not "unloaded", which reads as if it might come back.
	// So does the directory a removed model leaves in --models, emptied:
	// after a restart the registry finds no version in it and reports a
	// failure to load, which would send an operator after a fault there is
	// none of.
	for i, e := range idx {
		if e.Version == "" && e.State == registry.StateUnavailable && cp.node.FSM().Removed(e.Name) {
			idx[i].Reason = reasonRemoved
			continue
		}
		if e.State == registry.StateReady || e.Version == "" {
			continue
		}
		if v, err := strconv.ParseInt(e.Version, 10, 64); err == nil && v > 0 {
			if a, ok := cp.node.Absence(e.Name, v); ok && a.Stage == fsm.StageRetired {
				idx[i].Reason = reasonRetired
			}
		}
	}
	local := cp.node.LocalStatus()
	var added []registry.IndexEntry
	for name, vs := range local.Models {
		for v, st := range vs {
			e := registry.IndexEntry{Name: name, Version: v}
			switch st.State {
			case cluster.VersionFetching:
				e.State, e.Reason = registry.StateLoading, "fetching its bytes from a peer"
				if st.Reason != "" {
					e.Reason += ": " + st.Reason
				}
			case cluster.VersionFailed:
				e.State, e.Reason = registry.StateUnavailable, st.Reason
			default:
				continue // loading or ready: the registry's row says more
			}
			if i, ok := at[key{name, v}]; ok {
				if idx[i].State != registry.StateReady && idx[i].Reason == "" {
					idx[i].Reason = e.Reason
				}
				continue
			}
			added = append(added, e)
		}
	}
	if len(added) == 0 {
		return idx, nil
	}
	// A model's bare row (a directory with no version tried) gives way to
	// its versions' rows.
	out := idx[:0:0]
	for _, e := range idx {
		bare := e.Version == "" && e.State == ""
		if bare && slices.ContainsFunc(added, func(a registry.IndexEntry) bool { return a.Name == e.Name }) {
			continue
		}
		out = append(out, e)
	}
	out = append(out, added...)
	slices.SortStableFunc(out, func(a, b registry.IndexEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmpVersion(a.Version, b.Version)
	})
	return out, nil
}

// cmpVersion orders version labels by number, a model's row ("") first.
func cmpVersion(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// routeRepository handles /v2/repository/models/{name}/load|unload.
func (s *Server) routeRepository(ctx *fasthttp.RequestCtx, rest []byte) error {
	name, action, _ := cutLast(rest)
	if action != "load" && action != "unload" {
		return notFound("no such endpoint %q; use POST /v2/repository/models/{name}/load or /unload", ctx.Path())
	}
	if err := allow(ctx, fasthttp.MethodPost); err != nil {
		return err
	}
	switch action {
	case "load":
		return s.loadModel(ctx, string(name))
	case "unload":
		return s.unloadModel(ctx, string(name))
	}
	return notFound("no such endpoint %q; use POST /v2/repository/models/{name}/load or /unload", ctx.Path())
}

// unloadModel serves POST /v2/repository/models/{name}/unload. The body
// may be empty, or Triton's {"parameters": {"unload_dependents": bool}},
// which its clients send: a model here has no dependents, so the flag
// changes nothing. Anything else in it is refused, as the load API
// refuses it, so that a misspelt field is not taken for a done request.
func (s *Server) unloadModel(ctx *fasthttp.RequestCtx, name string) error {
	var q struct {
		Parameters struct {
			UnloadDependents *bool `json:"unload_dependents"`
		} `json:"parameters"`
	}
	if err := s.readOptionalJSON(ctx, &q); err != nil {
		return err
	}
	if err := s.repoUnload(ctx.RemoteIP().String(), name); err != nil {
		return err
	}
	return writeJSON(ctx, struct{}{})
}

// repoUnload unloads model name for client (its address, for the audit
// line): what POST /v2/repository/models/{name}/unload and gRPC's
// RepositoryModelUnload do once their requests are read. A model the
// cluster serves is refused (409).
func (s *Server) repoUnload(client, name string) error {
	if v := s.clusterServes(name); v != 0 {
		return &httpError{code: fasthttp.StatusConflict, msg: fmt.Sprintf(
			"model %q is the cluster's: every node serves its versions that are not retired (version %d among them) and would load it again at once, after seconds without it, so nothing was unloaded; to take a version off every node, retire it (infergate models retire %s VERSION, or DELETE /v1/models/%s/versions/VERSION: production and other aliased versions only once no alias points to them), or take the whole model off every node (infergate models remove %s --yes, or DELETE /v1/models/%s)",
			name, v, name, name, name, name)}
	}
	if err := s.repo.Unload(name); err != nil {
		return repoError(err)
	}
	s.auditFrom(client, "unloaded model %q through the repository API", name)
	return nil
}

// clusterServes returns the production version of model name in the
// cluster, or 0: every node loads the cluster's live versions, and loads
// them again when unloaded by hand.
func (s *Server) clusterServes(name string) int64 {
	p := s.plane.Load()
	if p == nil {
		return 0
	}
	// A model the cluster holds has a production version until it is
	// removed (every version retired), and production is never retired.
	v, _, _ := p.node.FSM().Stage(name, 0)
	return v
}

// loadModel serves POST /v2/repository/models/{name}/load. The optional
// body {"parameters": {"config": "<config.json text>"}} overrides the
// model's config.json, as Triton's load API does. The configuration may
// also be given as a JSON object rather than a string holding one.
func (s *Server) loadModel(ctx *fasthttp.RequestCtx, name string) error {
	var q struct {
		Parameters struct {
			Config json.RawMessage `json:"config"`
		} `json:"parameters"`
	}
	if err := s.readOptionalJSON(ctx, &q); err != nil {
		return err
	}
	var text []byte
	switch raw := bytes.TrimSpace(q.Parameters.Config); {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '{':
		text = raw
	case raw[0] == '"':
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return badRequest("parameters.config: %s", err)
		}
		text = []byte(str)
	default:
		return badRequest("parameters.config is %.40s; give the configuration as a JSON string holding config.json's text, as Triton's load API takes it, or as a JSON object", raw)
	}
	if err := s.repoLoad(ctx.RemoteIP().String(), name, text); err != nil {
		return err
	}
	return writeJSON(ctx, struct{}{})
}

// repoLoad loads (or reloads) model name for client (its address, for
// the audit line), with config, config.json's text in Triton's spelling
// or infergate's, in place of the model's own when not empty: what POST
// /v2/repository/models/{name}/load and gRPC's RepositoryModelLoad do
// once their requests are read. A configuration that does not parse is
// refused (400) before anything is loaded.
func (s *Server) repoLoad(client, name string, config []byte) error {
	var override *registry.ModelConfig
	if len(config) > 0 {
		config = withoutReportedFields(config)
		c, err := registry.ParseModelConfig(config)
		if err != nil {
			return badRequest("parameters.config: %s", err)
		}
		override = &c
	}
	if err := s.repo.Load(name, override); err != nil {
		// A deploy that failed: the log says so, not only the caller.
		s.logf(logging.Error+"load API: model %q: %v", name, err)
		return repoError(err)
	}
	with := ""
	if override != nil {
		with = " with a configuration given in the call"
	}
	s.auditFrom(client, "loaded model %q through the repository API%s", name, with)
	return nil
}

// withoutReportedFields returns the configuration text without the
// top-level "version" and "sha256" that GET .../config reports beside the
// configuration, so that what it answers loads back as it is (the usual
// way to change one setting: get, edit, load). Text that is not a JSON
// object, or has neither, is returned as it is.
func withoutReportedFields(text []byte) []byte {
	if !bytes.Contains(text, []byte(`"version"`)) && !bytes.Contains(text, []byte(`"sha256"`)) {
		return text
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(text, &m) != nil {
		return text // the parser says what is wrong with it
	}
	_, v := m["version"]
	_, h := m["sha256"]
	if !v && !h {
		return text
	}
	delete(m, "version")
	delete(m, "sha256")
	b, err := json.Marshal(m)
	if err != nil {
		return text
	}
	return b
}

// repoError maps a repository control error to a status.
func repoError(err error) error {
	switch {
	case errors.Is(err, registry.ErrBadName), errors.Is(err, registry.ErrBadConfig), errors.Is(err, registry.ErrLoadFailed), errors.Is(err, registry.ErrNoVersions):
		return badRequest("%s", err)
	case errors.Is(err, registry.ErrModelNotFound):
		return notFound("%s", err)
	case errors.Is(err, registry.ErrClosed):
		return unavailable(1, "the server is shutting down")
	}
	return err
}

func cutLast(b []byte) (head []byte, tail string, ok bool) {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return b[:i], string(b[i+1:]), true
		}
	}
	return nil, string(b), false
}

// readJSON decodes the request's JSON body (requestBody: decompressed,
// bounded) into v, as strictly as decodeStrict.
func (s *Server) readJSON(ctx *fasthttp.RequestCtx, v any) error {
	body, err := s.requestBody(ctx)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// readOptionalJSON is readJSON for an optional body: an empty one leaves
// v as it is.
func (s *Server) readOptionalJSON(ctx *fasthttp.RequestCtx, v any) error {
	body, err := s.requestBody(ctx)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeStrict(body, v)
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a response: %w", err)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// modelConfig serves GET /v2/models/{name}[/versions/{version}]/config: the
// configuration the version was loaded with, node defaults filled in, and
// Triton's fields that describe it (platform, backend, input, output,
// instance_group), which the load API takes back as they are. For a
// version that does not batch (a tensor without a variable first
// dimension, or max_batch_size 0 in its configuration) max_batch_size is
// 0, as Triton reports it: its tools (perf_analyzer) take a max_batch_size
// above 0 to mean that the metadata's first dimension is the batch. The
// preferred batch sizes, which such a version does not use, are left out:
// loaded back, they would have to fit the node's max_batch_size. A version
// that batches without a dynamic_batching block has an empty one, which
// loaded back means the same.
func (s *Server) modelConfig(ctx *fasthttp.RequestCtx, name, version []byte) error {
	v, cfg, maxBatch, err := s.configView(name, version)
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("X-Model-Version", v.Label)
	// The outer fields hide the embedded ones: name, which a load may
	// leave out, and max_batch_size, whose 0 is said, not left out.
	return writeJSON(ctx, struct {
		Name         string `json:"name"`
		Version      string `json:"version"`
		SHA256       string `json:"sha256"`
		MaxBatchSize int64  `json:"max_batch_size"`
		registry.ModelConfig
	}{v.Model, v.Label, v.SHA256, maxBatch, cfg})
}

// configView returns the version that name and version name (version
// empty: the model's default), the configuration that GET .../config and
// gRPC's ModelConfig report for it (see modelConfig), and its
// max_batch_size as reported.
func (s *Server) configView(name, version []byte) (*registry.Version, registry.ModelConfig, int64, error) {
	m, v, err := s.lookup(name, version)
	if err != nil {
		return nil, registry.ModelConfig{}, 0, err
	}
	cfg := v.Config
	if p := m.VersionPolicy(); p != nil {
		// The model's: a version a load with another policy kept
		// records the one it was loaded with.
		cfg.VersionPolicy = *p
	}
	maxBatch := max(cfg.MaxBatchSize, 1) // what the batcher takes 0 for
	if v.Batchable && cfg.DynamicBatching == nil {
		// On without a block: said, as Triton's tools read its presence,
		// and as gRPC's ModelConfig says it.
		cfg.DynamicBatching = &registry.DynamicBatching{}
	}
	if !v.Batchable {
		maxBatch = 0
		if d := cfg.DynamicBatching; d != nil && d.PreferredBatchSizes != nil {
			dc := *d
			dc.PreferredBatchSizes = nil
			cfg.DynamicBatching = &dc
		}
	}
	cfg.Platform, cfg.Backend = registry.TritonPlatform, registry.TritonBackend
	cfg.Input = registry.TensorConfigs(v.Inputs, v.Batchable)
	cfg.Output = registry.TensorConfigs(v.Outputs, v.Batchable)
	cfg.InstanceGroup = cfg.InstanceGroups()
	// Said once, in Triton's form: with instances and device beside it,
	// an edit of either would disagree with the other on the way back.
	cfg.Instances, cfg.Device = 0, ""
	return v, cfg, maxBatch, nil
}
