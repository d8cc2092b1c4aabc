package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/logging"
)

// Config configures a Repository.
type Config struct {
	// Dir is the model repository in Triton layout.
	Dir string
	// Defaults fill the fields a model's config.json leaves unset.
	Defaults ModelConfig
	// Load loads one version; required.
	Load LoadFunc
	// Metrics receives the registry's and the versions' metrics; nil
	// means a private set.
	Metrics *metrics.Set
	// Logf logs control-plane events; nil means log.Printf.
	Logf func(format string, args ...any)
	// WorkerThread, when set, runs every version's batches on worker
	// threads of their own, and is called on each (see
	// batching.Config.WorkerThread): the gateway binds them to the CPUs
	// it reserves for ONNX Runtime.
	WorkerThread func() (undo func(), err error)
	// TritonMetrics adds, for every version, the series Triton exports
	// under its own names (nv_inference_*, nv_cache_*), so that
	// dashboards and alerts written for Triton read infergate.
	TritonMetrics bool
}

// Version states reported by Index, as Triton names them.
const (
	StateLoading     = "LOADING"
	StateReady       = "READY"
	StateUnloading   = "UNLOADING"
	StateUnavailable = "UNAVAILABLE"
)

// ReasonUnloaded is the reason of a version that was unloaded on purpose
// (retired by a newer one, an unload, its directory removed), not for a
// failure. One the server unloaded on its own says "unloaded: " and why
// (see UnloadBecause).
const ReasonUnloaded = "unloaded"

// IndexEntry is one row of the repository index.
type IndexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// versionStatus is the last known state of one version on this node.
type versionStatus struct {
	state  string
	reason string
	// failed marks a file whose load failed (the version may still serve
	// an earlier file); file identifies it, and config is the
	// configuration it failed with, so that polling does not retry an
	// unchanged broken file forever, but does once either changes.
	failed bool
	file   os.FileInfo
	config ModelConfig
	// gen is, while UNLOADING, the Generation of the load that drains.
	gen uint64
}

// vmEntry is a version's metric series with the number of Version objects
// using them: a reload or a rollback to a version still draining shares
// the series, which are removed only when the last user is closed.
type vmEntry struct {
	vm   *VersionMetrics
	refs int
}

// Repository serves the versions of the models in one directory.
type Repository struct {
	cfg  Config
	logf func(format string, args ...any)

	// table maps model names to served models; it is replaced, never
	// mutated, under loadMu, and read without locks by Acquire.
	table atomicTable

	// loadMu serializes Load, Unload, Poll and Close.
	loadMu    sync.Mutex
	closed    bool                    // guarded by loadMu
	overrides map[string]*ModelConfig // guarded by loadMu
	pollErrs  map[string]string       // guarded by loadMu: last poll error per model
	unloaded  map[string]bool         // unloaded by Unload, which polls leave alone; written holding loadMu and mu (setUnloaded), read holding either

	// routeMu protects defVersion, experiments, carried and shadows: how a model's
	// unversioned requests are routed, which SetDefault, SetExperiment and
	// SetShadow change without waiting for a load that runs (they take
	// effect in a second, a load may take minutes). A load that adds a
	// model to the table holds it while it copies them into the new Model
	// and publishes it, so that a change either finds the Model in the
	// table or is in the maps the Model is made from. Never take loadMu
	// while holding it.
	routeMu     sync.Mutex
	defVersion  map[string]*defaultRoute     // SetDefault's and HandOver's routes
	experiments map[string]*Experiment       // SetExperiment's experiments
	carried     map[string]*ExperimentCounts // CarryExperimentCounts' counts, until taken
	shadows     map[string]*Shadow           // SetShadow's shadows

	// mu protects status, modelErrs, vmetrics and draining, which Index
	// and /metrics read while a load runs, and loadedFuncs and
	// unloadedFuncs.
	mu     sync.Mutex
	status map[string]map[int64]versionStatus
	// modelErrs holds, per model, why its last load failed before any
	// version was tried (its directory, its configuration, its version
	// policy): Index reports it, as no version's status can.
	modelErrs map[string]string
	vmetrics  map[string]*vmEntry // by model + "/" + version
	// draining holds the versions retired and not closed yet: their
	// requests in flight count with their number's (DrainingInFlight).
	draining map[*Version]struct{}
	// loadedFuncs are OnLoaded's functions, unloadedFuncs OnUnloaded's.
	loadedFuncs, unloadedFuncs []func(*Version)

	loads        *metrics.Counter
	loadFailures *metrics.Counter
	loadDuration *metrics.PrometheusHistogram
	// hurried is set by Hurry: versions loaded after it are hurried too.
	hurried atomic.Bool

	// wg tracks the goroutines that drain and close retired versions.
	wg sync.WaitGroup
}

// New returns an empty Repository; call LoadAll or Load to serve models.
func New(cfg Config) (*Repository, error) {
	if cfg.Load == nil {
		return nil, errors.New("registry: Config.Load is nil")
	}
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("model repository %q is not a readable directory; create it or point --models at one (infergate demo-models --out DIR writes an example)", cfg.Dir)
	}
	if err := cfg.Defaults.Validate(); err != nil {
		return nil, fmt.Errorf("node defaults: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	r := &Repository{
		cfg:         cfg,
		logf:        cfg.Logf,
		overrides:   make(map[string]*ModelConfig),
		unloaded:    make(map[string]bool),
		defVersion:  make(map[string]*defaultRoute),
		experiments: make(map[string]*Experiment),
		carried:     make(map[string]*ExperimentCounts),
		shadows:     make(map[string]*Shadow),
		pollErrs:    make(map[string]string),
		status:      make(map[string]map[int64]versionStatus),
		modelErrs:   make(map[string]string),
		draining:    make(map[*Version]struct{}),
		vmetrics:    make(map[string]*vmEntry),
	}
	if r.logf == nil {
		r.logf = log.Printf
	}
	if cfg.TritonMetrics {
		cfg.Metrics.RegisterMetricsWriter(r.writeTritonMetrics)
	}
	r.loads = cfg.Metrics.NewCounter(`infergate_model_load_total{result="success"}`)
	r.loadFailures = cfg.Metrics.NewCounter(`infergate_model_load_total{result="failure"}`)
	r.loadDuration = cfg.Metrics.NewPrometheusHistogramExt(`infergate_model_load_duration_seconds`, loadBuckets)
	// What is failing now, not what failed once: a fixed file or
	// configuration takes its entry away.
	cfg.Metrics.NewGauge(`infergate_model_load_failing`, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := len(r.modelErrs)
		for _, vs := range r.status {
			for _, s := range vs {
				if s.failed {
					n++
				}
			}
		}
		return float64(n)
	})
	cfg.Metrics.NewGauge(`infergate_models_ready`, func() float64 {
		n := 0
		for _, m := range r.table.load() {
			if m.Latest() != nil {
				n++
			}
		}
		return float64(n)
	})
	r.table.store(map[string]*Model{})
	return r, nil
}

// Dir returns the repository directory.
func (r *Repository) Dir() string { return r.cfg.Dir }

// Acquire returns the requested version of model name with a reference
// held; the caller must call Release on it. version 0 means the model's default
// version (Model.Default). It fails with ErrModelNotFound, ErrModelNotReady,
// ErrVersionNotFound or an *OverloadError, and never blocks.
func (r *Repository) Acquire(name string, version int64) (*Version, error) {
	for {
		m := r.table.load()[name]
		if m == nil {
			return nil, ErrModelNotFound
		}
		var v *Version
		if version == 0 {
			if v = m.Default(); v == nil {
				return nil, ErrModelNotReady
			}
		} else if v = m.Named(version); v == nil {
			return nil, ErrVersionNotFound
		}
		err := v.acquire()
		if err != errRetry {
			if err != nil {
				return nil, err
			}
			return v, nil
		}
		// v was retired between the table read and acquire; the table
		// has been replaced already, so the next look finds its successor.
	}
}

// AcquireIdle is Acquire of version n (not 0) of model name for work in
// the background, like a shadow's copy of a request: it succeeds only
// while no client holds the version (other background holders may), and
// fails with ErrVersionBusy otherwise, or as Acquire fails. While held,
// it takes one of the version's in-flight places, as a client does. The
// caller must call ReleaseIdle on it.
func (r *Repository) AcquireIdle(name string, n int64) (*Version, error) {
	for {
		m := r.table.load()[name]
		if m == nil {
			return nil, ErrModelNotFound
		}
		v := m.Named(n)
		if v == nil {
			return nil, ErrVersionNotFound
		}
		if err := v.acquireIdle(); err != errRetry {
			if err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

// Model returns the served model called name, or nil.
func (r *Repository) Model(name string) *Model {
	return r.table.load()[name]
}

// Models returns the served models sorted by name.
func (r *Repository) Models() []*Model {
	t := r.table.load()
	out := make([]*Model, 0, len(t))
	for _, m := range t {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LoadRestored loads each model in restored with its configuration
// (Load's override), in name order: a cluster node that restarts loads
// the versions it served before, with the cluster's configuration, as
// cluster.RestoredLoads returns them. A model none of whose recorded
// versions' files are there loads without it, by its directory's own
// configuration, so that it serves what it can until the cluster's
// reconciler takes over. A model whose configuration is nil loads
// nothing here (cluster.CheckRestoredFiles found none of its files
// sound). It returns the joined errors.
func (r *Repository) LoadRestored(restored map[string]*ModelConfig) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(restored)) {
		if restored[name] == nil {
			continue
		}
		err := r.Load(name, restored[name])
		if errors.Is(err, ErrNoVersions) && r.Model(name) == nil {
			// None of the recorded versions' files is there.
			if err2 := r.Load(name, nil); err2 != nil {
				err = errors.Join(err, err2)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ModelNames lists the model directories in the repository, sorted.
func (r *Repository) ModelNames() ([]string, error) {
	return listModels(r.cfg.Dir)
}

// CheckLayout reports the .onnx files at the top of the repository, where
// only model directories belong, each with where it would serve from; nil
// when there are none. Reading every model (LoadAll, Check of all) reports
// them too.
func (r *Repository) CheckLayout() error {
	return strayModelFiles(r.cfg.Dir)
}

// LoadAll loads every model in the repository. It returns the joined
// errors of the models that failed, and of the files at the top that are
// not model directories (CheckLayout); the others serve.
func (r *Repository) LoadAll() error {
	names, err := listModels(r.cfg.Dir)
	if err != nil {
		return err
	}
	errs := []error{strayModelFiles(r.cfg.Dir)}
	for _, n := range names {
		if err := r.Load(n, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Check reads the named models' directories and configurations, every
// model's when names is empty, as Load would, and reports what Load would
// refuse before it loads anything: a missing model, a configuration that
// does not parse or validate against the node's defaults, no version its
// policy selects. It loads nothing; what only ONNX Runtime can tell (a
// model that does not fit its configuration) shows at Load.
func (r *Repository) Check(names ...string) error {
	var errs []error
	if len(names) == 0 {
		all, err := listModels(r.cfg.Dir)
		if err != nil {
			return err
		}
		names = all
		errs = append(errs, strayModelFiles(r.cfg.Dir))
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	for _, name := range names {
		if err := CheckName(name); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, _, _, err := r.selectLocked(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Load (re)reads model name from the repository and makes the versions its
// policy selects ready: new or changed versions are loaded and warmed
// beside the serving ones, then swapped in at once; versions the policy no
// longer selects are retired and closed after their in-flight requests.
// If any selected version fails to load, nothing is retired, so what
// served before keeps serving, and the error says which version failed
// and why. A non-nil override replaces the model's config.json until the
// next Load with an override.
func (r *Repository) Load(name string, override *ModelConfig) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if override != nil {
		// An override built in Go, not parsed, is held to the same rules,
		// on a copy: folding clears the Triton spellings it reads.
		o := *override
		if d := o.DynamicBatching; d != nil {
			dc := *d
			o.DynamicBatching = &dc
		}
		if err := o.fromTriton(func(string) string { return "" }); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		override = &o
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if r.closed {
		return ErrClosed
	}
	// A load asks for the model again, but one that serves nothing
	// leaves an unloaded model unloaded: polls must not bring it back
	// with a configuration nobody asked for.
	wasUnloaded := r.unloaded[name]
	r.setUnloaded(name, false)
	defer func() {
		if wasUnloaded && r.table.load()[name] == nil {
			r.setUnloaded(name, true)
		}
	}()
	if override == nil {
		return r.loadLocked(name, true)
	}
	prev, had := r.overrides[name]
	r.overrides[name] = override
	err := r.loadLocked(name, true)
	if err != nil && !r.servesWith(name, override.withDefaults(r.cfg.Defaults)) {
		// A configuration with which no version loaded is not kept: later
		// loads and polls go on from the one before it. (One with which
		// some did stays, or the next poll would reload those with
		// another.)
		if had {
			r.overrides[name] = prev
		} else {
			delete(r.overrides, name)
		}
	}
	return err
}

// loadLocked does Load's work; explicit is false when a poll asks, which
// skips files whose last load failed and that have not changed since.
func (r *Repository) loadLocked(name string, explicit bool) error {
	cfg, want, older, err := r.selectLocked(name)
	r.mu.Lock()
	switch {
	case errors.Is(err, ErrModelNotFound) && r.table.load()[name] == nil:
		// No directory and nothing served: a name that is not the
		// repository's fails nothing that goes on failing.
		delete(r.modelErrs, name)
	case err != nil:
		r.modelErrs[name] = err.Error()
		r.supersedeVersionRowsLocked(name)
	default:
		delete(r.modelErrs, name)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}

	old := r.table.load()[name]
	var current []*Version
	if old != nil {
		current = old.Versions()
	}
	var next []*Version
	var errs []error
	// failed holds this round's failures, and the recorded ones it kept.
	failed := make(map[int64]versionStatus)
	// try loads version n into next, or reuses its serving load when its
	// file and configuration did not change, or records why it failed.
	try := func(n int64) {
		prev := findVersion(current, n)
		path := filepath.Join(r.cfg.Dir, name, strconv.FormatInt(n, 10), "model.onnx")
		st, err := os.Stat(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot load model %q version %d: %w", name, n, err))
			return
		}
		if prev != nil && sameFile(prev.file, st) && sameLoadConfig(prev.Config, cfg) {
			// What the configuration says of the model is checked again:
			// it may have changed without changing how the version runs.
			if err := cfg.CheckModel(name, prev.Inputs, prev.Outputs); err != nil {
				err = fmt.Errorf("cannot load model %q version %d: %w", name, n, err)
				fs := versionStatus{state: StateReady, reason: "serving the earlier configuration; the new one does not fit the model: " + err.Error()}
				failed[n] = fs
				r.setStatus(name, n, fs)
				errs = append(errs, err)
			}
			next = append(next, prev)
			return
		}
		if !explicit && r.unchangedFailure(name, n, st, cfg) {
			failed[n] = versionStatus{} // keep the recorded failure
			errs = append(errs, fmt.Errorf("model %q version %d: an earlier load failed and the file has not changed", name, n))
			return
		}
		v, err := r.loadVersion(name, n, path, cfg)
		if err != nil {
			fs := versionStatus{state: StateUnavailable, reason: err.Error(), failed: true, file: st, config: cfg}
			if prev != nil {
				fs.state = StateReady
				fs.reason = "serving the earlier file; the new one failed to load: " + err.Error()
			}
			failed[n] = fs
			r.setStatus(name, n, fs)
			errs = append(errs, err)
			return
		}
		next = append(next, v)
	}
	for _, n := range want {
		try(n)
	}

	// A version whose new file failed keeps serving its earlier one. The
	// places that are left empty go, under the latest policy, to the next
	// older versions on disk, newest first: a broken new version copied
	// in leaves the one before it serving, after a restart as before it.
	kept := func(n int64) bool {
		if findVersion(next, n) != nil {
			return true
		}
		if prev := findVersion(current, n); prev != nil {
			next = append(next, prev)
			return true
		}
		return false
	}
	var lost []string
	for _, n := range want {
		if !kept(n) {
			lost = append(lost, strconv.FormatInt(n, 10))
		}
	}
	stands := make(map[int64]string) // a stand-in version: whose place it takes
	for _, n := range older {
		if len(next) >= len(want) {
			break
		}
		try(n)
		if kept(n) {
			stands[n] = strings.Join(lost, ", ")
		}
	}
	if len(errs) > 0 {
		// A load that failed anywhere retires nothing that serves: what
		// served before keeps serving (unversioned requests go to the
		// highest, or to the default set).
		for _, v := range current {
			if findVersion(next, v.Number) == nil {
				next = append(next, v)
			}
		}
	}
	// A failure of a version that this round neither selected nor tried
	// is nobody's concern now: it leaves the index.
	r.mu.Lock()
	for n, s := range r.status[name] {
		if _, tried := failed[n]; s.failed && s.state == StateUnavailable && !tried && !slices.Contains(want, n) {
			delete(r.status[name], n)
		}
	}
	r.mu.Unlock()

	var retire []*Version
	for _, v := range current {
		if w := findVersion(next, v.Number); w != v {
			retire = append(retire, v)
		}
	}
	sort.Slice(next, func(i, j int) bool { return next[i].Number < next[j].Number })
	if len(next) > 0 {
		m := old
		if m == nil {
			m = &Model{Name: name}
		}
		m.versions.Store(&next)
		if old == nil || len(errs) == 0 || slices.ContainsFunc(next, func(v *Version) bool { return reflect.DeepEqual(v.Config, cfg) }) {
			// The policy that selected them, as Load keeps a configuration
			// (see servesWith): versions kept as loaded keep an earlier one
			// in their Config.
			p := cfg.VersionPolicy
			m.policy.Store(&p)
		}
		if r.hurried.Load() {
			// Hurry may have come while this round loaded, after a
			// version checked and before it was here to be found.
			for _, v := range next {
				v.Batcher.Hurry()
			}
		}
		if old == nil {
			r.routeMu.Lock()
			m.def.Store(r.defVersion[name])
			m.exp.Store(r.experiments[name])
			m.shadow.Store(r.shadows[name])
			r.table.with(name, m)
			r.routeMu.Unlock()
		}
		for _, v := range next {
			if _, ok := failed[v.Number]; !ok {
				fs := versionStatus{state: StateReady}
				if lost, ok := stands[v.Number]; ok {
					fs.reason = "serving in place of version " + lost + ", which failed to load (the version policy picks the newest)"
				}
				r.setStatus(name, v.Number, fs)
			}
		}
	}
	r.retire(retire, next, ReasonUnloaded)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrLoadFailed, errors.Join(errs...))
	}
	return nil
}

// supersedeVersionRowsLocked makes a load of model name that failed
// before it tried any version the model's latest outcome in the index:
// what earlier loads recorded of its versions' files belongs to them. A
// failed version's row goes, as that of a version a load did not try
// does (its directory may be gone, and the next load, with a configuration
// that reads, tries it again); a serving version's reason goes (a
// stand-in's names versions whose rows went, a refused new file or
// configuration belongs to the earlier load), and Index gives it this
// failure instead. Rows of versions unloaded or unloading stay. r.mu is
// held.
func (r *Repository) supersedeVersionRowsLocked(name string) {
	vs := r.status[name]
	for n, s := range vs {
		switch {
		case s.failed && s.state == StateUnavailable:
			delete(vs, n)
		case s.state == StateReady:
			vs[n] = versionStatus{state: StateReady}
		}
	}
}

// selectLocked reads model name's directory and configuration and
// returns the configuration, node defaults filled in, the versions its
// policy selects, and under the latest policy the older versions on
// disk, newest first, to stand in for selected ones that fail to load.
func (r *Repository) selectLocked(name string) (cfg ModelConfig, want, older []int64, err error) {
	disk, err := scanModel(r.cfg.Dir, name)
	if err != nil {
		return ModelConfig{}, nil, nil, fmt.Errorf("cannot load model %q: %w", name, err)
	}
	own := disk.config
	if o := r.overrides[name]; o != nil {
		own = *o
	} else if disk.configErr != nil {
		return ModelConfig{}, nil, nil, fmt.Errorf("cannot load model %q: %w", name, disk.configErr)
	}
	cfg = own.withDefaults(r.cfg.Defaults)
	if err := cfg.checkMerged(own); err != nil {
		return ModelConfig{}, nil, nil, fmt.Errorf("cannot load model %q: %w", name, err)
	}
	want = selectVersions(cfg.VersionPolicy, disk.versions)
	if len(want) == 0 {
		mdir := filepath.Join(r.cfg.Dir, name)
		msg := fmt.Sprintf("no version directory under %s holds a model.onnx that its version policy selects", mdir)
		if hints := layoutHints(mdir); len(hints) > 0 {
			msg += " (" + strings.Join(hints, "; ") + ")"
		}
		return ModelConfig{}, nil, nil, fmt.Errorf("cannot load model %q: %w: %s", name, ErrNoVersions, msg)
	}
	if p := cfg.VersionPolicy; p.All == nil && p.Specific == nil {
		for i := len(disk.versions) - len(want) - 1; i >= 0; i-- {
			older = append(older, disk.versions[i])
		}
	}
	return cfg, want, older, nil
}

// sameLoadConfig reports whether a version loaded with a would load the
// same with b: the version policy picks versions and does not change how
// one loads.
func sameLoadConfig(a, b ModelConfig) bool {
	a.VersionPolicy, b.VersionPolicy = VersionPolicy{}, VersionPolicy{}
	// Checks of the model, not settings: CheckModel runs them again.
	a.Name, a.Input, a.Output = "", nil, nil
	b.Name, b.Input, b.Output = "", nil, nil
	return reflect.DeepEqual(a, b)
}

// loadVersion reads, hashes and loads one version file.
func (r *Repository) loadVersion(name string, n int64, path string, cfg ModelConfig) (*Version, error) {
	loading := versionStatus{state: StateLoading}
	if r.routable(name, n) {
		// It serves while its replacement loads: ready, and saying so,
		// not LOADING (a readiness check would drop a model that serves).
		loading = versionStatus{state: StateReady, reason: "serving while a new load of it (file or configuration) runs"}
	}
	r.setStatus(name, n, loading)
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		r.loadFailures.Inc()
		return nil, fmt.Errorf("cannot load model %q version %d: %w", name, n, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		r.loadFailures.Inc()
		return nil, fmt.Errorf("cannot load model %q version %d: %w", name, n, err)
	}
	data := make([]byte, st.Size())
	_, err = io.ReadFull(f, data)
	f.Close()
	if err != nil {
		r.loadFailures.Inc()
		return nil, fmt.Errorf("cannot read model %q version %d from %s: %w", name, n, path, err)
	}
	// The LoadFunc's copy says where the warm-up files are; the version
	// keeps the configuration as given, which the next load compares.
	loadCfg := cfg
	loadCfg.warmupDir = filepath.Join(r.cfg.Dir, name, "warmup")
	b, err := r.cfg.Load(data, loadCfg)
	if err != nil {
		r.loadFailures.Inc()
		return nil, fmt.Errorf("cannot load model %q version %d from %s: %w", name, n, path, err)
	}
	sum := sha256.Sum256(data)
	label := strconv.FormatInt(n, 10)
	vm := r.takeMetrics(name, n, label)
	v, err := newVersion(name, n, cfg, b, vm, r.logf, r.cfg.WorkerThread)
	if err != nil {
		r.releaseMetrics(name, label)
		b.Close()
		r.loadFailures.Inc()
		return nil, fmt.Errorf("cannot load model %q version %d: %w", name, n, err)
	}
	v.SHA256 = hex.EncodeToString(sum[:])
	v.file = st
	if r.hurried.Load() {
		v.Batcher.Hurry()
	}
	r.mu.Lock()
	fs := r.loadedFuncs
	r.mu.Unlock()
	for _, f := range fs {
		f(v)
	}
	r.loads.Inc()
	r.loadDuration.UpdateDuration(start)
	r.logf("loaded model %q version %d (sha256 %.12s, %d bytes) in %s", name, n, v.SHA256, st.Size(), time.Since(start).Round(time.Millisecond))
	return v, nil
}

// retire drains and closes versions in the background; keep lists the
// versions that stay routable, whose metrics must survive. The others'
// index rows then give reason.
func (r *Repository) retire(vs []*Version, keep []*Version, reason string) {
	for _, v := range vs {
		replaced := findVersion(keep, v.Number) != nil
		if !replaced {
			r.setStatus(v.Model, v.Number, versionStatus{state: StateUnloading, gen: v.Generation})
		}
		r.mu.Lock()
		r.draining[v] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() {
				r.mu.Lock()
				delete(r.draining, v)
				r.mu.Unlock()
			}()
			start := time.Now()
			v.drain()
			v.Batcher.Stop()
			if err := v.Backend.Close(); err != nil {
				r.logf(logging.Warning+"closing model %q version %d: %s", v.Model, v.Number, err)
			}
			r.releaseMetrics(v.Model, v.Label)
			r.mu.Lock()
			fs := r.unloadedFuncs
			r.mu.Unlock()
			for _, f := range fs {
				f(v)
			}
			if !replaced {
				r.mu.Lock()
				if s := r.status[v.Model][v.Number]; s.state == StateUnloading && s.gen == v.Generation && !r.routable(v.Model, v.Number) {
					r.setStatusLocked(v.Model, v.Number, versionStatus{state: StateUnavailable, reason: reason})
				}
				r.mu.Unlock()
			}
			r.logf("unloaded model %q version %d after draining for %s", v.Model, v.Number, time.Since(start).Round(time.Millisecond))
		}()
	}
}

// OnLoaded adds f to the functions called with every version loaded
// from now on, on the goroutine that loads it, before any request can
// reach it. The gateway reserves its response cache's memory there for
// the first version that enables the cache.
func (r *Repository) OnLoaded(f func(v *Version)) {
	r.mu.Lock()
	r.loadedFuncs = append(slices.Clip(r.loadedFuncs), f)
	r.mu.Unlock()
}

// OnUnloaded adds f to the functions called with every version unloaded
// from now on (replaced by a reload or by a newer version, unloaded, its
// model's directory removed, the repository closed): once no request
// holds it and it is closed, so that nothing it does follows the call. f
// runs on a goroutine of the repository's, which Close waits for. The gateway's response cache
// drops the version's entries (its Generation's) there.
func (r *Repository) OnUnloaded(f func(v *Version)) {
	r.mu.Lock()
	r.unloadedFuncs = append(slices.Clip(r.unloadedFuncs), f)
	r.mu.Unlock()
}

// takeMetrics returns the metric series of version n of model, creating
// them for its first user.
func (r *Repository) takeMetrics(model string, n int64, label string) *VersionMetrics {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := model + "/" + label
	e := r.vmetrics[key]
	if e == nil {
		// The series outlive the loads of the version they count: they
		// read whichever load serves it now.
		current := func(f func(*Version) int) func() float64 {
			return func() float64 {
				if m := r.Model(model); m != nil {
					if cur := m.Version(n); cur != nil {
						return float64(f(cur))
					}
				}
				return 0
			}
		}
		// In flight counts the requests still running on loads of the
		// version that are draining, too.
		inFlight := func() float64 {
			return current(func(v *Version) int { return int(v.InFlight()) })() + float64(r.DrainingInFlight(model, n))
		}
		vm := newVersionMetrics(r.cfg.Metrics, model, label,
			inFlight,
			current(func(v *Version) int { return v.Batcher.QueueLen() }),
			current(func(v *Version) int { return v.Batcher.Config().MaxQueueSize }))
		if r.cfg.TritonMetrics {
			vm.addTritonSeries(fmt.Sprintf(`model=%q,version=%q`, model, label), current(func(v *Version) int { return v.Batcher.QueueLen() }))
		}
		e = &vmEntry{vm: vm}
		r.vmetrics[key] = e
	}
	e.refs++
	return e.vm
}

// DrainingInFlight returns the requests in flight on loads of model's
// version n that were retired and are draining (after a swap or an
// unload), which the serving load's InFlight does not count.
func (r *Repository) DrainingInFlight(model string, n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total int64
	for v := range r.draining {
		if v.Model == model && v.Number == n {
			total += v.InFlight()
		}
	}
	return total
}

// releaseMetrics drops one user of a version's series; the last removes
// them from /metrics.
func (r *Repository) releaseMetrics(model, label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := model + "/" + label
	e := r.vmetrics[key]
	if e == nil {
		panic("BUG: releasing metrics of " + key + " that nobody holds")
	}
	if e.refs--; e.refs == 0 {
		e.vm.unregister(r.cfg.Metrics)
		delete(r.vmetrics, key)
	}
}

// routable reports whether version n of model is in the routing table.
func (r *Repository) routable(model string, n int64) bool {
	m := r.table.load()[model]
	return m != nil && m.Version(n) != nil
}

// SetDefault makes version n the one unversioned requests for model name
// get (a cluster points it at the production alias); while n is not
// ready they get ErrModelNotReady. 0 goes back to the latest ready
// version. It holds across reloads and may name a version that is not
// loaded yet. It does not wait for a load that runs.
func (r *Repository) SetDefault(name string, n int64) {
	var d *defaultRoute
	if n != 0 {
		d = &defaultRoute{cur: n}
	}
	r.setDefault(name, d)
}

// HandOver makes version from the one unversioned requests for model
// name get until version to is ready, and to from then on: the load that
// makes to ready routes them to it in the step that swaps it in, even
// one that retires from in the same step, so that no request finds
// neither (as it would between that load and a SetDefault(name, to)
// after it). A cluster calls it when production moves to a version that
// is not ready yet, with the version that serves in its place. With
// retired, from answers only those requests meanwhile: requests that
// name it, shadows and arms find no version (a cluster keeps a version it
// retired so, instead of leaving the model not served). Neither version
// may be 0.
func (r *Repository) HandOver(name string, from, to int64, retired bool) {
	if from == 0 || to == 0 {
		panic(fmt.Sprintf("BUG: HandOver(%q, %d, %d) with a zero version", name, from, to))
	}
	r.setDefault(name, &defaultRoute{cur: from, next: to, retired: retired})
}

func (r *Repository) setDefault(name string, d *defaultRoute) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	if old := r.defVersion[name]; d == old || d != nil && old != nil && *d == *old {
		return
	}
	if d == nil {
		delete(r.defVersion, name)
	} else {
		r.defVersion[name] = d
	}
	if m := r.table.load()[name]; m != nil {
		m.def.Store(d)
	}
}

// Hurry makes every loaded version's batcher run what it queues at once,
// without waiting to fill a batch (batching.Batcher.Hurry): a server that
// shuts down calls it, so that its drain does not wait out queue delays.
func (r *Repository) Hurry() {
	r.hurried.Store(true) // and the versions loaded from now on
	for _, m := range r.table.load() {
		for _, v := range m.Versions() {
			v.Batcher.Hurry()
		}
	}
}

// DefaultVersion returns the version SetDefault last named for model
// name, or 0 for none; after HandOver, the version handed over to once it
// is ready, and the one it takes over from until then.
func (r *Repository) DefaultVersion(name string) int64 {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	d := r.defVersion[name]
	if d == nil {
		return 0
	}
	if d.next != 0 {
		if m := r.table.load()[name]; m != nil && m.Version(d.next) != nil {
			return d.next
		}
	}
	return d.cur
}

// Unload stops serving every version of model name. In-flight requests
// finish first; Unload returns without waiting for them. A model of the
// repository that is not loaded unloads without error (as in Triton);
// ErrModelNotFound is for a name the repository does not know.
func (r *Repository) Unload(name string) error { return r.UnloadBecause(name, "") }

// UnloadBecause is Unload for an unload the server decides on, not a
// person: the versions' index rows say "unloaded: why", which counts as
// a version not serving (see ReasonUnloaded), where Unload's say
// ReasonUnloaded alone.
func (r *Repository) UnloadBecause(name, why string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if r.closed {
		return ErrClosed
	}
	reason := ReasonUnloaded
	if why != "" {
		reason += ": " + why
	}
	if err := r.unloadLocked(name, reason); err != nil {
		if !errors.Is(err, ErrModelNotFound) || !r.knownLocked(name) {
			return err
		}
		// The repository's model, not loaded: unloading it changes
		// nothing and succeeds, as in Triton, so that teardown scripts
		// may repeat it (and a model whose load failed stays unloaded).
	}
	// Polls leave it unloaded until a Load asks for it again.
	r.setUnloaded(name, true)
	return nil
}

// setUnloaded marks model name unloaded on purpose, or not. r.loadMu is
// held.
func (r *Repository) setUnloaded(name string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.unloaded[name] = true
	} else {
		delete(r.unloaded, name)
	}
}

// knownLocked reports whether model name has a directory in the
// repository or a row in the index. r.loadMu is held.
func (r *Repository) knownLocked(name string) bool {
	if st, err := os.Stat(filepath.Join(r.cfg.Dir, name)); err == nil && st.IsDir() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.status[name]) > 0
}

func (r *Repository) unloadLocked(name, reason string) error {
	m := r.table.load()[name]
	if m == nil {
		return fmt.Errorf("cannot unload model %q: %w", name, ErrModelNotFound)
	}
	r.table.without(name)
	r.mu.Lock()
	delete(r.modelErrs, name) // its last load's failure is history now
	r.mu.Unlock()
	vs := m.Versions()
	empty := []*Version{}
	m.versions.Store(&empty)
	r.retire(vs, nil, reason)
	return nil
}

// Poll rescans the repository: models that appeared or changed are
// loaded, models whose directory is gone are unloaded. Errors are logged
// once per distinct message and returned joined.
func (r *Repository) Poll() error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if r.closed {
		return ErrClosed
	}
	names, err := listModels(r.cfg.Dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	for name := range r.modelErrs {
		if !slices.Contains(names, name) {
			delete(r.modelErrs, name) // gone with its directory
		}
	}
	for name, vs := range r.status {
		if slices.Contains(names, name) {
			continue
		}
		for n, st := range vs {
			if st.failed && st.state == StateUnavailable {
				delete(vs, n) // a failure gone with its directory
			}
		}
	}
	r.mu.Unlock()
	var errs []error
	for name := range r.table.load() {
		if !slices.Contains(names, name) {
			r.logf("model %q left the repository; unloading it", name)
			if err := r.unloadLocked(name, ReasonUnloaded); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range names {
		if r.unloaded[name] {
			continue
		}
		err := r.loadLocked(name, false)
		msg := ""
		if err != nil {
			msg = err.Error()
			errs = append(errs, err)
		}
		if msg != r.pollErrs[name] {
			if msg != "" {
				r.logf(logging.Error+"poll: %s", msg)
			}
			r.pollErrs[name] = msg
		}
	}
	return errors.Join(errs...)
}

// Failing returns the models that serve no requests here and whose
// configuration, or a version, failed to load, each with why (the newest
// failed version's), sorted by name: a model that still serves a
// version, one that has failed nothing (loading, say), and one unloaded
// on purpose are not failing. It reads only what this node has tried,
// without touching the disk, so a readiness probe may call it.
func (r *Repository) Failing() []IndexEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []IndexEntry
	seen := make(map[string]bool)
	add := func(name, version, reason string) {
		if seen[name] || r.unloaded[name] {
			return
		}
		if m := r.Model(name); m != nil && m.Default() != nil {
			return
		}
		seen[name] = true
		out = append(out, IndexEntry{Name: name, Version: version, State: StateUnavailable, Reason: reason})
	}
	for name, why := range r.modelErrs {
		add(name, "", why)
	}
	for name, vs := range r.status {
		var newest int64
		for n, s := range vs {
			if s.failed && n > newest {
				newest = n
			}
		}
		if newest > 0 {
			add(name, strconv.FormatInt(newest, 10), vs[newest].reason)
		}
	}
	slices.SortFunc(out, func(a, b IndexEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Index lists every model directory in the repository and every version
// this node has tried to load, with its state.
func (r *Repository) Index() ([]IndexEntry, error) {
	names, err := listModels(r.cfg.Dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(names))
	var out []IndexEntry
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		vs := r.status[name]
		failed := r.modelErrs[name]
		ready := false
		for _, s := range vs {
			ready = ready || s.state == StateReady
		}
		switch {
		case failed != "" && !ready:
			// Nothing serves: the failure is the model's state, beside
			// whatever its versions last were.
			out = append(out, IndexEntry{Name: name, State: StateUnavailable, Reason: failed})
		case len(vs) == 0:
			out = append(out, IndexEntry{Name: name})
			return
		}
		nums := make([]int64, 0, len(vs))
		for n := range vs {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		for _, n := range nums {
			s := vs[n]
			if failed != "" && s.state == StateReady && s.reason == "" {
				s.reason = "serving as loaded before; the model's latest load failed: " + failed
			}
			out = append(out, IndexEntry{Name: name, Version: strconv.FormatInt(n, 10), State: s.state, Reason: s.reason})
		}
	}
	for _, n := range names {
		add(n)
	}
	for n := range r.status {
		add(n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Close unloads everything and waits until every retired version has
// drained and closed. It is idempotent.
func (r *Repository) Close() {
	r.loadMu.Lock()
	if !r.closed {
		r.closed = true
		for name := range r.table.load() {
			_ = r.unloadLocked(name, ReasonUnloaded)
		}
	}
	r.loadMu.Unlock()
	r.wg.Wait()
}

// sameFile reports whether st is the file that was, described by was: the
// same size and modification time, and the same file, so that one
// renamed into place counts as new even with both kept (as cp -p, rsync
// -a and archives keep them).
func sameFile(was, st os.FileInfo) bool {
	return was != nil && was.Size() == st.Size() && was.ModTime().Equal(st.ModTime()) && os.SameFile(was, st)
}

func (r *Repository) unchangedFailure(name string, n int64, st os.FileInfo, cfg ModelConfig) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.status[name][n]
	// The whole configuration: a load may have failed on its checks of
	// the model (name, input, output), which sameLoadConfig leaves out.
	return ok && s.failed && sameFile(s.file, st) && sameLoadConfig(s.config, cfg) &&
		s.config.Name == cfg.Name && reflect.DeepEqual(s.config.Input, cfg.Input) && reflect.DeepEqual(s.config.Output, cfg.Output)
}

func (r *Repository) setStatus(name string, n int64, s versionStatus) {
	r.mu.Lock()
	r.setStatusLocked(name, n, s)
	r.mu.Unlock()
}

func (r *Repository) setStatusLocked(name string, n int64, s versionStatus) {
	m := r.status[name]
	if m == nil {
		m = make(map[int64]versionStatus)
		r.status[name] = m
	}
	m[n] = s
	if unloadedOnPurpose(s) {
		pruneUnloaded(m)
	}
}

// keptUnloaded is how many rows of versions unloaded on purpose (retired,
// replaced, unloaded) the index keeps per model, the newest: a model
// replaced every hour would otherwise add a row for as long as the node
// runs.
const keptUnloaded = 32

// unloadedOnPurpose reports whether s is the row of a version that was
// unloaded on purpose: not serving, and not a failure (whose row also
// keeps polling from retrying an unchanged file).
func unloadedOnPurpose(s versionStatus) bool {
	return s.state == StateUnavailable && !s.failed
}

// pruneUnloaded deletes from m, one model's rows, those of the versions
// unloaded on purpose beyond the newest keptUnloaded.
func pruneUnloaded(m map[int64]versionStatus) {
	var nums []int64
	for n, s := range m {
		if unloadedOnPurpose(s) {
			nums = append(nums, n)
		}
	}
	if len(nums) <= keptUnloaded {
		return
	}
	slices.Sort(nums)
	for _, n := range nums[:len(nums)-keptUnloaded] {
		delete(m, n)
	}
}

func findVersion(vs []*Version, n int64) *Version {
	for _, v := range vs {
		if v.Number == n {
			return v
		}
	}
	return nil
}

// servesWith reports whether a version of model name serves with
// configuration cfg, version policy included: one kept from an earlier
// configuration that differs only in its policy does not count.
func (r *Repository) servesWith(name string, cfg ModelConfig) bool {
	m := r.table.load()[name]
	if m == nil {
		return false
	}
	for _, v := range m.Versions() {
		if reflect.DeepEqual(v.Config, cfg) {
			return true
		}
	}
	return false
}
