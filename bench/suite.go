package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/oip"
)

// Model configurations the suite loads through the repository API for its
// gateway runs (POST /v2/repository/models/{m}/load). Batching is off with
// max_batch_size 1: a gateway's default ({}) batches.
const (
	DefaultUnbatchedConfig = `{"max_batch_size":1}`
	DefaultBatchedConfig   = `{"max_batch_size":64}`
	DefaultCachedConfig    = `{"response_cache":{"enable":true}}`
)

// SuiteConfig is what `infergate bench suite` runs: for each model, the
// ort-floor at batch sizes 1..MaxBatch, the http-floor and the gateway
// with batching off at Concurrency and at 1 (idle), the gateway with
// batching on at Concurrency and at 1, and the gateway on cache hits at
// Concurrency, all in closed loop. For OverloadModel, unless Overload is
// 0, the batched runs are followed by an overload pair with OverloadRows
// rows per request: gateway-sustainable/M@cC, closed loop at Concurrency,
// measures the sustainable rate, and gateway-overload/M@Xx offers
// Overload times it in open loop (see Run.Shed).
type SuiteConfig struct {
	Options
	// Target is the gateway's base URL; "" starts one: Executable serve on
	// 127.0.0.1:0 with the models in a temporary repository, with ORTLib,
	// Instances and IntraOpThreads (0 meaning 1) and ServerArgs, stopped
	// (SIGTERM, then SIGKILL) at the end.
	Target string
	// Executable is the infergate binary that serves when Target is "".
	Executable string
	// Models are the models to run, in order.
	Models []string
	// ModelFiles maps a model to its ONNX file, for the ort-floor and, when
	// the suite starts the gateway, its repository; the demo models (ctr,
	// ranker) need none.
	ModelFiles map[string]string
	// Concurrency is the loaded level of the closed-loop runs.
	Concurrency int
	// UnbatchedConfig, BatchedConfig and CachedConfig are the model
	// configurations (config.json text) of the three gateway variants.
	UnbatchedConfig string
	BatchedConfig   string
	CachedConfig    string
	// OverloadModel is the model of the overload pair; a suite whose
	// Models do not list it has none.
	OverloadModel string
	// OverloadRows is the rows per request of the overload pair: enough
	// that the sustainable rate stays low (about 1,000 requests/s for
	// ranker on 2 vCPUs), so that the load generator can offer a multiple
	// of it without becoming the bottleneck itself.
	OverloadRows int
	// ServerArgs are added to the serve command line of the gateway the
	// suite starts.
	ServerArgs []string
	// ServerLog receives that gateway's log; nil discards it (its last
	// lines are still shown if it fails to start).
	ServerLog io.Writer
	// ServerCPUs, when Target is "", is the number of CPUs given to the
	// gateway and the http floor the suite starts, whole cores first (see
	// orderByCore); the load generator and the ort floor run on the
	// others, and RunSuite moves this process onto them for good (with
	// GOMAXPROCS set to their number). 0 lets them all share every CPU;
	// AutoServerCPUs (the default) is half of them on 8 CPUs or more, else
	// 0, and 0 with a Target.
	ServerCPUs int
	// RuntimeCPUs, above 0, reserves the last RuntimeCPUs of the servers'
	// CPUs for the gateway's ONNX Runtime (serve --runtime-cpus); the ort
	// floor then runs on them too. It needs a split (ServerCPUs) that
	// leaves the gateway at least one other CPU.
	RuntimeCPUs int
}

// AutoServerCPUs is the default of SuiteConfig.ServerCPUs: split the CPUs in
// half where there are 8 or more; below that a split starves one side.
const AutoServerCPUs = -1

// serverCPUs resolves AutoServerCPUs.
func (c *SuiteConfig) serverCPUs() int {
	if c.ServerCPUs != AutoServerCPUs {
		return c.ServerCPUs
	}
	if c.Target != "" {
		return 0
	}
	cpus, err := usableCPUs()
	if err != nil || len(cpus) < 8 {
		return 0
	}
	// Half, in whole cores.
	perCore := max(threadsPerCore(), 1)
	return len(cpus) / 2 / perCore * perCore
}

// DefaultSuiteConfig returns the defaults of `infergate bench suite`.
func DefaultSuiteConfig() SuiteConfig {
	o := DefaultOptions()
	o.Duration = 3 * time.Second
	o.Overload = 3
	return SuiteConfig{
		Options:         o,
		Models:          []string{"ctr", "ranker"},
		OverloadModel:   "ranker",
		OverloadRows:    16,
		Concurrency:     64,
		UnbatchedConfig: DefaultUnbatchedConfig,
		BatchedConfig:   DefaultBatchedConfig,
		CachedConfig:    DefaultCachedConfig,
		ServerCPUs:      AutoServerCPUs,
	}
}

// Validate reports the first setting of c that cannot run.
func (c *SuiteConfig) Validate() error {
	if err := c.Options.validate(); err != nil {
		return err
	}
	if c.ServerCPUs < AutoServerCPUs {
		return fmt.Errorf("%w: --server-cpus %d must not be negative", ErrBadConfig, c.ServerCPUs)
	}
	if c.Target != "" {
		if _, _, err := splitBaseURL(c.Target); err != nil {
			return err
		}
		if c.ServerCPUs > 0 {
			return fmt.Errorf("%w: --server-cpus applies to the gateway the suite starts, not to --target %s; pin that one yourself (taskset)", ErrBadConfig, c.Target)
		}
	} else if n := c.serverCPUs(); n > 0 {
		usable, err := usableCPUs()
		if err == nil {
			_, err = newCPUSplit(usable, n, threadsPerCore())
		}
		if err != nil {
			return fmt.Errorf("%w: --server-cpus %d: %w", ErrBadConfig, n, err)
		}
	}
	switch n := c.serverCPUs(); {
	case c.RuntimeCPUs < 0:
		return fmt.Errorf("%w: --runtime-cpus %d must not be negative", ErrBadConfig, c.RuntimeCPUs)
	case c.RuntimeCPUs > 0 && n == 0:
		return fmt.Errorf("%w: --runtime-cpus %d reserves some of the gateway's CPUs, and the suite's gateway has none of its own here (--server-cpus 0, or --target); give --server-cpus, or pass serve --runtime-cpus to a gateway you start", ErrBadConfig, c.RuntimeCPUs)
	case c.RuntimeCPUs >= n && n > 0:
		return fmt.Errorf("%w: --runtime-cpus %d of the gateway's %d CPUs leaves none for its HTTP; give at most %d", ErrBadConfig, c.RuntimeCPUs, n, n-1)
	}
	if c.Target == "" && c.Executable == "" {
		return fmt.Errorf("%w: no --target and no executable to start a gateway with", ErrBadConfig)
	}
	if len(c.Models) == 0 {
		return fmt.Errorf("%w: --models is empty", ErrBadConfig)
	}
	for _, m := range c.Models {
		if f, ok := c.ModelFiles[m]; ok {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("%w: --model-file %s=%s: %s", ErrBadConfig, m, f, err)
			}
		} else if !isDemoModel(m) {
			return fmt.Errorf("%w: model %q is not a demo model (ctr, ranker): give its file with --model-file %s=PATH", ErrBadConfig, m, m)
		}
	}
	for m := range c.ModelFiles {
		if !strings.Contains(","+strings.Join(c.Models, ",")+",", ","+m+",") {
			return fmt.Errorf("%w: --model-file names %q, which --models does not list", ErrBadConfig, m)
		}
	}
	if c.Concurrency < 1 || c.Concurrency > 1<<16 {
		return fmt.Errorf("%w: --concurrency %d must be between 1 and %d", ErrBadConfig, c.Concurrency, 1<<16)
	}
	if c.Overload > 0 && (c.OverloadRows < 1 || c.OverloadRows > 1<<20) {
		return fmt.Errorf("%w: the overload step's rows per request, %d, must be between 1 and %d", ErrBadConfig, c.OverloadRows, 1<<20)
	}
	for _, cfg := range []struct{ flag, text string }{
		{"--unbatched-config", c.UnbatchedConfig}, {"--batched-config", c.BatchedConfig}, {"--cached-config", c.CachedConfig},
	} {
		var obj map[string]any
		if err := json.Unmarshal([]byte(cfg.text), &obj); err != nil {
			return fmt.Errorf("%w: %s %q is not a JSON object: %s", ErrBadConfig, cfg.flag, cfg.text, err)
		}
	}
	return nil
}

// modelBytes returns the ONNX bytes of model m.
func (c *SuiteConfig) modelBytes(m string) ([]byte, error) {
	if f, ok := c.ModelFiles[m]; ok {
		return os.ReadFile(f)
	}
	return demoModel(m), nil
}

// RunSuite runs the standard suite (see SuiteConfig) and returns its
// report; with ctx done early, the report so far and ctx's error. A model
// configuration the gateway refuses (such as one naming a feature it does
// not have yet) does not stop the suite: the runs that needed it are
// reported with no figures and Flagged saying what the gateway answered.
func RunSuite(ctx context.Context, cfg SuiteConfig) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Read before the split narrows this process to the client's CPUs.
	perCore := threadsPerCore()
	var cpus *cpuSplit
	if n := cfg.serverCPUs(); cfg.Target == "" && n > 0 {
		usable, err := usableCPUs()
		if err == nil {
			cpus, err = newCPUSplit(usable, n, perCore)
		}
		if err == nil {
			cpus.reserve(cfg.RuntimeCPUs)
			err = pinProcess(cpus.client)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: --server-cpus %d: %w", ErrBadConfig, n, err)
		}
	}
	s := newSession(ctx, cfg.Options)
	s.cpus = cpus
	env := &s.report.Env
	env.ThreadsPerCore = perCore
	if cfg.Repeat > 1 {
		env.Rounds = cfg.Repeat
	}
	target := cfg.Target
	if target == "" {
		gw, dir, err := startSuiteGateway(ctx, &cfg, cpus)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		defer func() {
			took := gw.stop()
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "gateway stopped in %s\n", took.Round(time.Millisecond))
			}
		}()
		target = gw.url
		env.SharedCores = cpus == nil
		if cpus != nil {
			env.ServerCPUs, env.ClientCPUs = formatCPUs(cpus.server), formatCPUs(cpus.client)
			env.RuntimeCPUs = formatCPUs(cpus.runtime)
			env.ORTFloorCPUs = formatCPUs(cpus.floor())
		}
		env.HTTPFloor = floorKind(cfg.FloorExecutable)
	} else {
		env.SharedCores = isLoopback(target)
		env.HTTPFloor = floorKind(cfg.FloorExecutable)
	}
	env.Target = target
	ctl, err := newControlClient(ctx, target, &cfg.Options)
	if err != nil {
		return nil, err
	}
	if env.ServerVersion, err = ctl.serverVersion(); err != nil {
		return s.report, err
	}
	for i, m := range cfg.Models {
		if ctx.Err() != nil {
			break
		}
		if err := s.suiteModel(&cfg, ctl, target, m, i == 0); err != nil {
			return s.report, err
		}
	}
	s.report.Targets = CheckTargets(s.report)
	return s.report, ctx.Err()
}

// startSuiteGateway writes the models into a temporary repository and
// starts a gateway on it (on the servers' CPUs of cpus, when not nil); the
// caller removes dir after stopping it.
func startSuiteGateway(ctx context.Context, cfg *SuiteConfig, cpus *cpuSplit) (*gatewayProcess, string, error) {
	dir, err := os.MkdirTemp("", "infergate-bench-")
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrGatewayStart, err)
	}
	for _, m := range cfg.Models {
		data, err := cfg.modelBytes(m)
		if err == nil {
			p := filepath.Join(dir, "models", m, "1", "model.onnx")
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("%w: cannot write model %q: %w", ErrGatewayStart, m, err)
		}
	}
	lib, err := filepath.Abs(engine.ResolveLibPath(cfg.ORTLib))
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("%w: %w", ErrGatewayStart, err)
	}
	args := gatewayArgs(cfg, cpus, dir, lib)
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "starting %s %s\n", cfg.Executable, strings.Join(args, " "))
	}
	gw, err := startGateway(ctx, cfg.Executable, args, cfg.ServerLog, cpus, cfg.TLS)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return gw, dir, nil
}

// gatewayArgs returns the command line of the suite's gateway, serving
// the repository in dir with ONNX Runtime from lib.
func gatewayArgs(cfg *SuiteConfig, cpus *cpuSplit, dir, lib string) []string {
	args := []string{
		"serve", "--http", "127.0.0.1:0",
		"--models", filepath.Join(dir, "models"), "--data", filepath.Join(dir, "data"),
		"--ort-lib", lib,
		"--instances", strconv.Itoa(max(cfg.Instances, 1)),
		"--intra-op-threads", strconv.Itoa(max(cfg.IntraOpThreads, 1)),
	}
	if cpus != nil && len(cpus.runtime) > 0 {
		args = append(args, "--runtime-cpus", formatCPUs(cpus.runtime))
	}
	return append(args, cfg.ServerArgs...)
}

// suiteModel runs the suite's steps for model m: once, or with Repeat
// above 1 in as many rounds, each of which runs every step once (see
// runRounds). The overload pair follows the batched runs in a single
// round, and the rounds otherwise.
func (s *session) suiteModel(cfg *SuiteConfig, ctl *controlClient, target, m string, first bool) error {
	md, err := ctl.modelMetadata(m)
	if err != nil {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		return fmt.Errorf("%w: model %q: %w", ErrTarget, m, err)
	}
	binary := cfg.Encoding == EncodingBinary
	pool, err := newPool(md, poolOptions{rows: cfg.Rows, size: cfg.Pool, seed: cfg.Seed, binary: binary})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	hitPool, err := newPool(md, poolOptions{rows: cfg.Rows, seed: cfg.Seed, binary: binary, cacheHits: true})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	data, err := cfg.modelBytes(m)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	// What the model runs with now, to put it back at the end.
	restore := DefaultUnbatchedConfig
	if sc := ctl.modelConfig(m); sc != nil {
		if c, ok := loadableConfig(sc.raw); ok {
			restore = c
		}
	}
	// Batching off first: the floors are measured against this gateway.
	unbatchedErr := s.loadConfig(ctl, m, cfg.UnbatchedConfig)
	// Leave the model as the suite found it, whatever ends the run.
	defer func() {
		if err := s.loadConfig(ctl, m, restore); err != nil && cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "cannot restore model %q to %s: %s\n", m, restore, err)
		}
	}()
	gw, err := newHTTPTarget(target, m, pool, cfg.Timeout, cfg.Token, cfg.TLS)
	if err != nil {
		return err
	}
	captured, err := gw.capture()
	if err != nil {
		return err
	}
	sm := &suiteModelRun{
		cfg: cfg, ctl: ctl, target: target, m: m, md: md, data: data,
		pool: pool, hitPool: hitPool, captured: captured, first: first,
	}
	if n := max(cfg.Repeat, 1); n == 1 {
		err = sm.round(s, unbatchedErr, true)
	} else {
		err = s.runRounds(n, func(i int) error {
			if i > 1 {
				unbatchedErr = s.loadConfig(ctl, m, cfg.UnbatchedConfig)
			}
			return sm.round(s, unbatchedErr, false)
		})
		if err == nil && sm.overload() && s.ctx.Err() == nil {
			// A refused batched configuration has flagged the batched
			// runs of every round already, and loadConfig logs it.
			if loadErr := s.loadConfig(ctl, m, cfg.BatchedConfig); loadErr == nil {
				err = s.suiteOverload(cfg, ctl, target, m, md, ctl.configText(m, cfg.BatchedConfig))
			}
		}
	}
	return err
}

// runRounds runs round n times, numbered from 1, unless the context ends
// first, and then adds to the report, in the order of the first round,
// one run per step: the summary of its repetitions (see summarize).
// Running every step once per round, rather than each step n times in a
// row, lets the floors and the gateway see the same drift of a shared
// host, so that the ratios of one round hold in it; the targets are then
// judged on each round's own figures (see CheckTargets).
func (s *session) runRounds(n int, round func(i int) error) error {
	s.rounds = &roundRuns{reps: map[string][]Run{}}
	defer func() { s.round, s.rounds = 0, nil }()
	var err error
	for i := 1; i <= n && err == nil && s.ctx.Err() == nil; i++ {
		s.round = i
		err = round(i)
	}
	for _, name := range s.rounds.names {
		s.report.Runs = append(s.report.Runs, summarize(s.rounds.reps[name]))
	}
	return err
}

// roundRuns collects the repetitions of a suite's steps over its rounds,
// by run name.
type roundRuns struct {
	names []string // in the order of the first round
	reps  map[string][]Run
}

func (c *roundRuns) add(r Run) {
	if _, ok := c.reps[r.Name]; !ok {
		c.names = append(c.names, r.Name)
	}
	c.reps[r.Name] = append(c.reps[r.Name], r)
}

// suiteModelRun is what every round of one model's steps needs.
type suiteModelRun struct {
	cfg      *SuiteConfig
	ctl      *controlClient
	target   string
	m        string
	md       *oip.ModelMetadata
	data     []byte // the model's ONNX bytes, for the ort-floor
	pool     *requestPool
	hitPool  *requestPool
	captured *capturedResponse
	first    bool // the suite's first model: its settings go into Env
}

// overload reports whether the overload pair runs on this model.
func (sm *suiteModelRun) overload() bool {
	return sm.cfg.Overload > 0 && sm.m == sm.cfg.OverloadModel
}

// round runs the model's steps once, with the gateway serving the
// unbatched configuration (or having refused it with unbatchedErr), and
// with withOverload the overload pair after the batched runs.
func (sm *suiteModelRun) round(s *session, unbatchedErr error, withOverload bool) error {
	cfg, ctl, m := sm.cfg, sm.ctl, sm.m
	served := ctl.modelConfig(m)
	instances, threads := ortSettings(&cfg.Options, served)
	if sm.first {
		s.report.Env.Instances, s.report.Env.IntraOpThreads = instances, threads
	}
	tmpl := Run{Model: m, Mode: ModeClosed, RowsPerRequest: sm.pool.bodies[0].rows, Encoding: cfg.Encoding}
	closed := func(name, kind string, c int) Run {
		r := tmpl
		r.Name = runName(name, m, level{mode: ModeClosed, concurrency: c})
		r.Kind = kind
		r.Concurrency = c
		return r
	}
	loads := slices.Compact([]int{cfg.Concurrency, 1}) // --concurrency 1: once

	// ort-floor.
	if err := s.ortFloor(m, sm.data, instances, threads, modelMismatch(served, sm.data)); err != nil {
		return err
	}

	// http-floor.
	if s.ctx.Err() == nil {
		floor, err := startHTTPFloor(s.ctx, cfg.FloorExecutable, sm.captured, s.cpus)
		if err != nil {
			return fmt.Errorf("cannot start the http-floor: %w", err)
		}
		ft, _ := newHTTPTarget(floor.url, m, sm.pool, cfg.Timeout, cfg.Token, nil)
		for _, c := range loads {
			if s.ctx.Err() != nil {
				break
			}
			h := httpRun{tmpl: closed(KindHTTPFloor, KindHTTPFloor, c), target: ft, serverPID: floor.pid}
			s.add(s.measure(func(rep int) Run { return s.measureHTTP(h, rep) }))
		}
		floor.close()
	}

	// The gateway in each configuration.
	variants := []struct {
		name      string
		config    string
		batching  bool
		cache     bool
		loads     []int
		pool      *requestPool
		preloaded bool
		loadErr   error
		// overload: the overload pair follows, for OverloadModel.
		overload bool
	}{
		{"gateway", cfg.UnbatchedConfig, false, false, loads, sm.pool, true, unbatchedErr, false},
		{"gateway-batched", cfg.BatchedConfig, true, false, loads, sm.pool, false, nil, true},
		{"gateway-cached", cfg.CachedConfig, false, true, []int{cfg.Concurrency}, sm.hitPool, false, nil, false},
	}
	for _, v := range variants {
		if s.ctx.Err() != nil {
			break
		}
		loadErr := v.loadErr
		if !v.preloaded {
			loadErr = s.loadConfig(ctl, m, v.config)
		}
		t, err := newHTTPTarget(sm.target, m, v.pool, cfg.Timeout, cfg.Token, cfg.TLS)
		if err != nil {
			return err
		}
		config := v.config
		if loadErr == nil {
			config = ctl.configText(m, v.config)
		}
		for _, c := range v.loads {
			if s.ctx.Err() != nil {
				break
			}
			h := httpRun{tmpl: closed(v.name, KindGateway, c), target: t, control: ctl, unbatched: !v.batching}
			h.tmpl.Batching, h.tmpl.Cache, h.tmpl.Config = v.batching, v.cache, config
			if loadErr != nil {
				r := h.tmpl
				r.Flagged = fmt.Sprintf("the gateway refused the model configuration %s: %s", v.config, loadErr)
				s.add(r)
				continue
			}
			s.add(s.measure(func(rep int) Run { return s.measureHTTP(h, rep) }))
		}
		if withOverload && v.overload && loadErr == nil && sm.overload() && s.ctx.Err() == nil {
			if err := s.suiteOverload(cfg, ctl, sm.target, m, sm.md, config); err != nil {
				return err
			}
		}
	}
	return nil
}

// suiteOverload runs the overload pair of model m, of metadata md (see
// SuiteConfig), on the gateway at target, which serves it with config.
func (s *session) suiteOverload(cfg *SuiteConfig, ctl *controlClient, target, m string, md *oip.ModelMetadata, config string) error {
	pool, err := newPool(md, poolOptions{rows: cfg.OverloadRows, size: cfg.Pool, seed: cfg.Seed, binary: cfg.Encoding == EncodingBinary})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	t, err := newHTTPTarget(target, m, pool, cfg.Timeout, cfg.Token, cfg.TLS)
	if err != nil {
		return err
	}
	tmpl := Run{Model: m, Kind: KindGateway, Batching: true, RowsPerRequest: pool.bodies[0].rows, Encoding: cfg.Encoding, Config: config}
	h := httpRun{tmpl: tmpl, target: t, control: ctl}
	h.tmpl.Name = runName(sustainablePrefix, m, level{mode: ModeClosed, concurrency: cfg.Concurrency})
	h.tmpl.Mode, h.tmpl.Concurrency = ModeClosed, cfg.Concurrency
	sus := s.measure(func(rep int) Run { return s.measureHTTP(h, rep) })
	s.add(sus)
	if s.ctx.Err() != nil {
		return nil
	}
	best, found := sustainableRun([]Run{sus}, func(*Run) bool { return true })
	s.add(s.overloadStep(tmpl, t, nil, ctl, best, found, nil))
	return nil
}

// loadableConfig turns the answer of GET /v2/models/{m}/config into a
// configuration the load API takes: without the version's name, version
// and sha256.
func loadableConfig(served string) (string, bool) {
	var c map[string]json.RawMessage
	if json.Unmarshal([]byte(served), &c) != nil {
		return "", false
	}
	delete(c, "name")
	delete(c, "version")
	delete(c, "sha256")
	b, err := json.Marshal(c)
	return string(b), err == nil
}

// loadConfig loads model m with config and waits until it is ready again.
func (s *session) loadConfig(ctl *controlClient, m, config string) error {
	if err := ctl.loadModel(m, config); err != nil {
		if s.opts.Log != nil {
			fmt.Fprintf(s.opts.Log, "model %q: configuration %s refused: %s\n", m, config, err)
		}
		return err
	}
	return ctl.waitReady(m, controlTimeout)
}
