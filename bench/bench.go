package bench

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// Floors that Config.Floors may name.
const (
	FloorHTTP = "http"
	FloorORT  = "ort"
)

// Config is what `infergate bench` measures: one model of one gateway at
// a list of load levels, and optionally the floors at the same levels.
type Config struct {
	Options
	// Target is the gateway's base URL.
	Target string
	// Model is the model to load.
	Model string
	// GRPC, when set, is the address (host:port) of the gateway's gRPC
	// service (serve --grpc): the gateway steps send their requests there
	// as ModelInfer calls, over TLS when Target is https; metadata and the
	// server's statistics still come from Target.
	GRPC string
	// GRPCStream sends the gateway's requests over Triton's
	// ModelStreamInfer at GRPC: each sender keeps a stream open, with one
	// request on it at a time.
	GRPCStream bool
	// Concurrency lists the closed-loop levels: requests outstanding.
	Concurrency []int
	// Rates lists the open-loop levels: requests per second.
	Rates []float64
	// Poisson spaces open-loop requests with exponential gaps instead of
	// evenly.
	Poisson bool
	// MaxP99 turns the levels into a sweep: each series runs in increasing
	// order and stops after the first level whose p99 exceeds MaxP99 (or
	// that is flagged); the report names the highest level that met it.
	MaxP99 time.Duration
	// CacheHits sends one body over and over without cache_bypass, to
	// measure the gateway's response cache; otherwise Pool distinct bodies
	// carry cache_bypass, so that a cache is not hit by accident.
	CacheHits bool
	// InputFile, when set, holds the request bodies, one OIP JSON request
	// a line, instead of generated ones; they are re-encoded with Encoding.
	InputFile string
	// Priority, when above 0, is the "priority" parameter of every request
	// (1 is the highest), over any an InputFile body has.
	Priority int64
	// Floors lists the floors to measure too: FloorHTTP, FloorORT.
	Floors []string
	// ModelFile is the model the ort-floor runs; "" means the demo model
	// of the same name.
	ModelFile string
	// ReloadEvery, when set, reloads the model through the repository API
	// this often during the measured window of every gateway step (see
	// Run.Reloads): the step then measures what reloads cost, and any
	// failed request flags it.
	ReloadEvery time.Duration
}

// DefaultConfig returns the defaults of `infergate bench`.
func DefaultConfig() Config {
	return Config{
		Options: DefaultOptions(),
		Target:  "http://127.0.0.1:8080",
		Model:   "ctr",
	}
}

// Validate reports the first setting of c that cannot run.
func (c *Config) Validate() error {
	if err := c.Options.validate(); err != nil {
		return err
	}
	if _, _, err := splitBaseURL(c.Target); err != nil {
		return err
	}
	if c.Model == "" {
		return fmt.Errorf("%w: --model is empty", ErrBadConfig)
	}
	if c.Priority < 0 {
		return fmt.Errorf("%w: --priority %d must not be negative (1 is the highest; 0 sends none)", ErrBadConfig, c.Priority)
	}
	if c.Overload > 0 {
		switch {
		case len(c.Rates) > 0:
			return fmt.Errorf("%w: --overload sets the open-loop rate itself (%g × the rate sustained in closed loop); drop --rate, or drop --overload and choose the rates yourself",
				ErrBadConfig, c.Overload)
		case len(c.Concurrency) == 0:
			return fmt.Errorf("%w: --overload needs a closed-loop level to measure the sustainable rate: give --concurrency (64 is a good start)", ErrBadConfig)
		}
	}
	if len(c.Concurrency) == 0 && len(c.Rates) == 0 {
		return fmt.Errorf("%w: give --concurrency or --rate", ErrBadConfig)
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 1<<16 {
			return fmt.Errorf("%w: --concurrency %d must be between 1 and %d", ErrBadConfig, n, 1<<16)
		}
	}
	for _, r := range c.Rates {
		if !(r >= 0.1 && r <= 1e7) {
			return fmt.Errorf("%w: --rate %g must be between 0.1 and 10000000 requests/s", ErrBadConfig, r)
		}
	}
	if c.ReloadEvery != 0 && (c.ReloadEvery < minReloadEvery || c.ReloadEvery > maxReloadEvery) {
		return fmt.Errorf("%w: --reload-every %s must be between %s and %s (each reload builds and warms new sessions)",
			ErrBadConfig, c.ReloadEvery, minReloadEvery, maxReloadEvery)
	}
	if c.ReloadEvery > 0 && c.Overload > 0 {
		return fmt.Errorf("%w: --reload-every and --overload measure different things; run them apart", ErrBadConfig)
	}
	if c.MaxP99 < 0 {
		return fmt.Errorf("%w: --max-p99 %s must not be negative", ErrBadConfig, c.MaxP99)
	}
	for _, f := range c.Floors {
		if f != FloorHTTP && f != FloorORT {
			return fmt.Errorf("%w: --floors: unknown floor %q; use %q, %q or both", ErrBadConfig, f, FloorHTTP, FloorORT)
		}
	}
	if c.InputFile != "" {
		if _, err := os.Stat(c.InputFile); err != nil {
			return fmt.Errorf("%w: --input: %s", ErrBadConfig, err)
		}
	}
	if c.GRPCStream && c.GRPC == "" {
		return fmt.Errorf("%w: --grpc-stream needs --grpc, the gateway's gRPC address", ErrBadConfig)
	}
	if c.GRPC != "" {
		if _, _, err := net.SplitHostPort(c.GRPC); err != nil {
			return fmt.Errorf("%w: --grpc %q must be host:port: %s", ErrBadConfig, c.GRPC, err)
		}
		if slices.Contains(c.Floors, FloorHTTP) {
			return fmt.Errorf("%w: the http-floor speaks HTTP, not gRPC; drop --floors http, or run it apart without --grpc", ErrBadConfig)
		}
		if c.Encoding != EncodingJSON {
			return fmt.Errorf("%w: --encoding %s is HTTP's; gRPC always sends its tensors raw", ErrBadConfig, c.Encoding)
		}
	}
	if slices.Contains(c.Floors, FloorORT) {
		if c.ModelFile == "" && !isDemoModel(c.Model) {
			return fmt.Errorf("%w: the ort floor needs the model's file: pass --model-file (only the demo models ctr and ranker are built in)", ErrBadConfig)
		}
		if c.ModelFile != "" {
			if _, err := os.Stat(c.ModelFile); err != nil {
				return fmt.Errorf("%w: --model-file: %s", ErrBadConfig, err)
			}
		}
	}
	return nil
}

// levels returns the closed-loop and open-loop series, in increasing
// order when sweeping.
func (c *Config) levels() (closed, open []level) {
	for _, n := range c.Concurrency {
		closed = append(closed, level{mode: ModeClosed, concurrency: n})
	}
	for _, r := range c.Rates {
		open = append(open, level{mode: ModeOpen, rate: r})
	}
	if c.MaxP99 > 0 {
		slices.SortFunc(closed, func(a, b level) int { return a.concurrency - b.concurrency })
		slices.SortFunc(open, func(a, b level) int { return cmp.Compare(a.rate, b.rate) })
	}
	return closed, open
}

// Measure measures cfg.Model on the gateway at cfg.Target at every level, then
// the floors asked for at the same levels (the ort-floor at batch sizes
// 1..MaxBatch). It returns the report so far with ctx's error when ctx is
// done early.
//
// In this mode the runs' Batching and Cache fields say what the server was
// seen doing (more rows per execution than per request; answers from its
// cache), since the bench did not configure it.
//
// With Options.Overload at X, the highest throughput of the closed-loop
// levels that is not flagged is the sustainable rate, and the overload
// step (gateway-overload/model@Xx) follows them at X times it, before the
// floors. Rates cannot be given with it: the overload step picks its own.
func Measure(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newSession(ctx, cfg.Options)
	env := &s.report.Env
	env.Target = cfg.Target
	env.SharedCores = isLoopback(cfg.Target)
	env.HTTPFloor = floorKind(cfg.FloorExecutable)

	ctl, err := newControlClient(ctx, cfg.Target, &cfg.Options)
	if err != nil {
		return nil, err
	}
	if env.ServerVersion, err = ctl.serverVersion(); err != nil {
		return nil, err
	}
	md, err := ctl.modelMetadata(cfg.Model)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: model %q: %w", ErrTarget, cfg.Model, err)
	}
	pool, err := newPool(md, poolOptions{
		rows: cfg.Rows, size: cfg.Pool, seed: cfg.Seed,
		binary: cfg.Encoding == EncodingBinary, cacheHits: cfg.CacheHits, inputFile: cfg.InputFile,
		priority: cfg.Priority, grpc: cfg.GRPC != "",
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	served := ctl.modelConfig(cfg.Model)
	env.Instances, env.IntraOpThreads = ortSettings(&cfg.Options, served)

	gw, err := newHTTPTarget(cfg.Target, cfg.Model, pool, cfg.Timeout, cfg.Token, cfg.TLS)
	if err != nil {
		return nil, err
	}
	var gt *grpcTarget
	var captured *capturedResponse
	if cfg.GRPC != "" {
		gt = &grpcTarget{addr: cfg.GRPC, pool: pool, timeout: cfg.Timeout, token: cfg.Token, stream: cfg.GRPCStream}
		if strings.HasPrefix(cfg.Target, "https:") {
			gt.tls = cfg.TLS
			if gt.tls == nil {
				gt.tls = func(serverName string) *tls.Config { return &tls.Config{ServerName: serverName} }
			}
		}
		if err := gt.check(); err != nil {
			return nil, err
		}
	} else if captured, err = gw.capture(); err != nil {
		return nil, err
	}
	tmpl := Run{
		Model:          cfg.Model,
		Cache:          cfg.CacheHits, // a run meant to hit the cache is not flagged for it
		Poisson:        cfg.Poisson,
		RowsPerRequest: pool.bodies[0].rows,
		Encoding:       cfg.Encoding,
	}
	if gt != nil {
		tmpl.Encoding = EncodingGRPC
		if gt.stream {
			tmpl.Encoding = EncodingGRPCStream
		}
	}
	if served != nil {
		tmpl.Config = served.raw
	}
	closed, open := cfg.levels()
	// observe records what the gateway was seen doing.
	observe := func(r *Run) {
		if st := r.Server; st != nil {
			r.Batching = st.AvgBatch > 1.05*float64(max(r.RowsPerRequest, 1))
			r.Cache = st.CacheHits > 0
		}
	}
	runLevels := func(kind string, target *httpTarget, control *controlClient, serverPID int) {
		for _, ls := range [][]level{closed, open} {
			s.series(kind, cfg.Model, ls, cfg.MaxP99, func(l level) Run {
				h := httpRun{tmpl: tmpl, target: target, control: control, serverPID: serverPID}
				if kind == KindGateway {
					h.reloadEvery = cfg.ReloadEvery
					h.grpc = gt
				}
				h.tmpl.Name = runName(kind, cfg.Model, l)
				h.tmpl.Kind = kind
				h.tmpl.Mode, h.tmpl.Concurrency, h.tmpl.Rate = l.mode, l.concurrency, l.rate
				if kind != KindGateway {
					h.tmpl.Config = ""
				}
				return s.measure(func(rep int) Run {
					r := s.measureHTTP(h, rep)
					observe(&r)
					return r
				})
			})
		}
	}
	runLevels(KindGateway, gw, ctl, 0)
	if cfg.Overload > 0 && ctx.Err() == nil {
		sus, found := sustainableRun(s.report.Runs, func(r *Run) bool { return r.Kind == KindGateway })
		s.add(s.overloadStep(tmpl, gw, gt, ctl, sus, found, observe))
	}

	if slices.Contains(cfg.Floors, FloorHTTP) && ctx.Err() == nil {
		floor, err := startHTTPFloor(ctx, cfg.FloorExecutable, captured, nil)
		if err != nil {
			return s.report, fmt.Errorf("cannot start the http-floor: %w", err)
		}
		ft, _ := newHTTPTarget(floor.url, cfg.Model, pool, cfg.Timeout, cfg.Token, nil)
		runLevels(KindHTTPFloor, ft, nil, floor.pid)
		floor.close()
	}
	if slices.Contains(cfg.Floors, FloorORT) && ctx.Err() == nil {
		modelBytes := demoModel(cfg.Model)
		if cfg.ModelFile != "" {
			if modelBytes, err = os.ReadFile(cfg.ModelFile); err != nil {
				return s.report, fmt.Errorf("%w: --model-file: %w", ErrBadConfig, err)
			}
		}
		if err := s.ortFloor(cfg.Model, modelBytes, env.Instances, env.IntraOpThreads, modelMismatch(served, modelBytes)); err != nil {
			return s.report, err
		}
	}
	return s.report, ctx.Err()
}
