package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway/cache"
	"github.com/infergate/infergate/gateway/shm"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
	"github.com/valyala/fasthttp"
)

// Config configures a Server. DefaultConfig returns working values.
type Config struct {
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int
	// MaxHeaderBytes bounds a request's line and headers, which every
	// connection keeps a buffer of; larger ones get 431.
	MaxHeaderBytes int
	// MaxConnections bounds concurrent connections.
	MaxConnections int
	// ReadTimeout and WriteTimeout bound reading one request and writing
	// one response; IdleTimeout closes idle keep-alive connections.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RequestTimeout bounds an inference (queue and compute) unless the
	// request's "timeout" parameter asks for less.
	RequestTimeout time.Duration
	// CompressResponses compresses infer responses of 1 KiB or more with
	// gzip or deflate when the request's Accept-Encoding takes them. It
	// trades server CPU (6 to 13 µs a KiB, BenchmarkSetBody) for bandwidth; many HTTP
	// libraries send Accept-Encoding: gzip by default, so it is off unless
	// asked.
	CompressResponses bool
	// Name and Version are reported by GET /v2.
	Name, Version string
	// RuntimeVersion names the ONNX Runtime in use, for the status page.
	RuntimeVersion string
	// CacheBytes is the response cache's budget for the whole node, shared
	// by the models whose config enables it; 0 disables the cache.
	CacheBytes int64
	// AdminToken, when set, is the bearer token the admin API (/v1 and
	// the repository API) requires; when empty those answer loopback
	// clients only.
	AdminToken string
	// InferenceToken, when set, is the bearer token inference and
	// metadata calls (/v2/models/...) require; empty leaves them open.
	InferenceToken string
	// TLS, when set, makes Serve speak HTTPS with it; a client speaking
	// plain HTTP to it gets a 400 saying so.
	TLS *tls.Config
	// TrafficLog, when set, receives a sample of the predictions
	// (TrafficPercent of them) and every feedback (POST
	// /v2/models/{m}/feedback), and GET /v1/traffic reads it; every infer
	// response then carries an id. The caller owns it: close it after
	// Shutdown.
	TrafficLog *trafficlog.Log
	// TrafficSink, when set instead of TrafficLog, takes the events in its
	// place (a Kafka topic, which readers read there: GET /v1/traffic
	// answers 404). The caller owns it.
	TrafficSink trafficlog.Sink
	// TrafficPercent is the share of predictions logged, 0 to 100.
	TrafficPercent float64
	// Disks are the guards of the node's directories (--data, a
	// --traffic-dir elsewhere): the status page shows their free space,
	// in red under the minimum. The caller owns them.
	Disks []Disk
	// StrictReadiness makes GET /v2/health/ready answer 503 while a model
	// this node should serve serves nothing here because it failed here
	// (as Triton's --strict-readiness): a balancer then sends its
	// requests to nodes that serve it. A model being fetched or loaded
	// does not count, nor one unloaded on purpose. Off, the node is ready
	// once its initial models are loaded, whatever fails later.
	StrictReadiness bool
	// SlowRequests, when positive, logs each inference request that takes
	// it or more, from when it was read to its answer, at most one a
	// second per version: where its time went (queue, its batch's run,
	// the rest), how it ended, its id and its client. 0 is off.
	SlowRequests time.Duration
	// SharedMemory, when set, serves Triton's system shared memory
	// extension: clients on this host register regions of their POSIX
	// shared memory objects (/dev/shm) and pass tensors through them. A
	// client may then read from and write to any object that the server's
	// user can open there, so it is off unless asked, for hosts whose
	// clients are trusted (as Triton's --allow-client-shm).
	SharedMemory bool
	// Trace is the trace extension's settings at start (trace.go).
	Trace TraceConfig
	// Logf logs; nil means Logging's Logf, or without it log.Printf. A
	// line's level is at the start of its format (logging.Warning,
	// logging.Error).
	Logf func(format string, args ...any)
	// Logging, when set, is the log behind Logf: Triton's logging
	// extension (GET and POST /v2/logging, gRPC LogSettings) reads and
	// changes its settings, and at verbose level 1 each request is
	// logged a line (logging.go). Nil: the extension is not served.
	Logging *logging.Logger
	// LogFile is the file Logging writes to, which log_file reports
	// (and a change cannot move); empty for standard error.
	LogFile string
	// MonitorOnly serves /metrics on the monitoring address alone
	// (ServeMonitoring; serve --monitor-http): the main port answers it
	// 404. The health endpoints stay on both.
	MonitorOnly bool
}

// DefaultConfig returns the settings `infergate serve` starts from.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:   64 << 20,
		MaxHeaderBytes: 4096,
		MaxConnections: 4096,
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    90 * time.Second,
		RequestTimeout: 10 * time.Second,
		SlowRequests:   time.Second,
		CacheBytes:     256 << 20,
		Trace:          TraceConfig{Level: TraceOff, Rate: 1000, Count: -1},
		Name:           "infergate",
		Version:        "dev",
	}
}

// Validate reports the first bad setting of c.
func (c *Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("max body %d bytes is too small; use at least 1024", c.MaxBodyBytes)
	case c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20:
		return fmt.Errorf("max header bytes %d: use 1024 to 1048576", c.MaxHeaderBytes)
	case c.MaxConnections < 1:
		return fmt.Errorf("max connections must be at least 1, got %d", c.MaxConnections)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("read timeout %s must be positive", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("write timeout %s must be positive", c.WriteTimeout)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("idle timeout %s must be positive", c.IdleTimeout)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request timeout must be positive, got %s", c.RequestTimeout)
	case c.SlowRequests < 0:
		return fmt.Errorf("slow request threshold %s is negative; use 0 (off) or a duration", c.SlowRequests)
	case c.CacheBytes < 0 || (c.CacheBytes > 0 && c.CacheBytes < 1<<16):
		return fmt.Errorf("cache bytes %d: use 0 (off) or at least 65536", c.CacheBytes)
	case !(c.TrafficPercent >= 0 && c.TrafficPercent <= 100):
		return fmt.Errorf("traffic percent %v is out of range; use 0 to 100", c.TrafficPercent)
	case c.TrafficPercent > 0 && c.TrafficLog == nil && c.TrafficSink == nil:
		return errors.New("traffic percent is set without a traffic log to write to")
	case c.TrafficLog != nil && c.TrafficSink != nil:
		return errors.New("set the traffic log or another sink, not both")
	}
	if err := c.Trace.Validate(); err != nil {
		return err
	}
	if c.CacheBytes > 0 {
		// More than the machine holds: New would crash allocating it.
		if err := cache.CheckBudget(c.CacheBytes); err != nil {
			return err
		}
	}
	return nil
}

// Server serves the OIP v2 API over one model repository.
type Server struct {
	cfg     Config
	repo    *registry.Repository
	metrics *metrics.Set
	// handshakes counts and logs failed TLS handshakes; nil without TLS.
	handshakes *handshakeLog
	// wrongTokens limits the log of admin calls refused for a token that
	// does not match to a line a minute.
	wrongTokens *loglimit.Limiter[struct{}]
	// slow limits the slow request log (logSlow) to a line a second per
	// version.
	slow *loglimit.Limiter[string]
	// errLog limits the log of server errors (5xx with a cause) to a
	// line per errorLogEvery per method and path.
	errLog *loglimit.Limiter[string]
	srv    *fasthttp.Server
	// monitor serves the monitoring address (ServeMonitoring).
	monitor *fasthttp.Server
	logf    func(format string, args ...any)
	started time.Time

	ready    atomic.Bool
	stopping atomic.Bool
	// lnMu guards listeners, the listeners Serve was given, for Shutdown.
	lnMu      sync.Mutex
	listeners []*limitListener

	scratch scratchPool
	// grpc is the gRPC front door, made by the first ServeGRPC under
	// grpcOnce.
	grpcOnce sync.Once
	grpc     *grpcFront
	// grpcListen is the address ServeGRPC serves (a string), for the
	// status page.
	grpcListen atomic.Value
	cache      *cache.Cache // nil when disabled
	shm        *shm.Table   // nil unless Config.SharedMemory
	trace      *tracer
	extensions []string // GET /v2's list (serverExtensions)
	// logMu serializes the changes of the log's settings
	// (updateLogSettings): each reads them, changes what it names, and
	// sets the whole, which a change at the same time must not undo.
	logMu   sync.Mutex
	shadows *shadower
	recent  *recentArms // with a traffic log: which arm answered, for feedback
	// traffic is where events go: cfg.TrafficLog or cfg.TrafficSink (nil:
	// no log).
	traffic trafficlog.Sink

	// plane serves the admin API once AttachCluster sets it.
	plane atomic.Pointer[controlPlane]

	panics     *metrics.Counter
	unrouted   [numUnrouted]*metrics.Counter
	httpErrors *metrics.Counter
}

// New returns a Server for repo; set receives its metrics and is what
// /metrics writes (with process metrics).
func New(cfg Config, repo *registry.Repository, set *metrics.Set) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		repo:    repo,
		metrics: set,
		logf:    cfg.Logf,
		started: time.Now(),
	}
	switch {
	case s.logf != nil:
	case cfg.Logging != nil:
		s.logf = cfg.Logging.Logf
	default:
		s.logf = log.Printf
	}
	switch {
	case cfg.TrafficSink != nil:
		s.traffic = cfg.TrafficSink
	case cfg.TrafficLog != nil:
		s.traffic = cfg.TrafficLog
	}
	if s.traffic != nil {
		s.recent = newRecentArms()
	}
	if cfg.TrafficLog != nil {
		// The embedded log's tail holds the arms of this node's last
		// predictions before it started. A Kafka topic's holds every
		// node's, and reading it would hold the start on the brokers:
		// feedback for those counts only when it names its arm.
		s.recent.current = func(model string) *registry.Experiment {
			if m := repo.Model(model); m != nil {
				return m.Experiment()
			}
			return nil
		}
		s.refillRecent(cfg.TrafficLog)
	}
	s.shadows = newShadower(repo, cfg.RequestTimeout, func(v *registry.Version, err error) registry.FailureReason {
		return toHTTPError(s.batchError(v, v.Batcher.Config().PriorityLevels, cfg.RequestTimeout, err)).reason
	}, s.logf)
	s.shadows.traffic = s.traffic
	if cfg.SharedMemory {
		t := shm.New(shm.Dir)
		s.shm = t
		set.NewGauge("infergate_shared_memory_regions", func() float64 { n, _ := t.Usage(); return float64(n) })
		set.NewGauge("infergate_shared_memory_bytes", func() float64 { _, b := t.Usage(); return float64(b) })
	}
	if cfg.CacheBytes > 0 {
		var err error
		if s.cache, err = cache.New(cfg.CacheBytes); err != nil {
			return nil, err
		}
		c := s.cache
		// The cache takes its memory (24 MB of counters for the default
		// 256 MiB) when the first version that enables it loads, before
		// it serves; a node whose models do not use it holds none.
		reserve := func(v *registry.Version) {
			if rc := v.Config.ResponseCache; rc != nil && rc.Enable && !c.Reserved() {
				if err := c.Reserve(); err != nil {
					s.logf(logging.Error+"model %q version %d is served without its response cache: %s", v.Model, v.Number, err)
				}
			}
		}
		repo.OnLoaded(reserve)
		for _, m := range repo.Models() { // loaded before the hook
			for _, v := range m.Versions() {
				reserve(v)
			}
		}
		// An unloaded version's entries are never asked for again: they
		// go at once, not when the next load's answers have outlived
		// them in the admission policy's counts.
		repo.OnUnloaded(func(v *registry.Version) { c.Drop(v.Generation) })
		set.NewGauge("infergate_cache_bytes", func() float64 { return float64(c.Usage().Bytes) })
		set.NewGauge("infergate_cache_max_bytes", func() float64 { return float64(cfg.CacheBytes) })
		set.NewGauge("infergate_cache_entries", func() float64 { return float64(c.Usage().Entries) })
		// Counters, typed so by writeHelp (their names end in _total).
		set.NewGauge("infergate_cache_evictions_total", func() float64 { return float64(c.Usage().Evicted) })
		set.NewGauge("infergate_cache_rejections_total", func() float64 { return float64(c.Usage().Rejected) })
	}
	if cfg.TLS != nil {
		s.handshakes = newHandshakeLog(set, s.logf)
	}
	s.trace = newTracer(cfg.Trace, set, s.logf)
	s.trace.startOTel(cfg.Version)
	s.extensions = serverExtensions(&s.cfg)
	if lg := cfg.Logging; lg != nil {
		// Counters, typed so by writeHelp (their names end in _total).
		for _, lv := range []logging.Level{logging.LevelInfo, logging.LevelWarning, logging.LevelError, logging.LevelVerbose} {
			set.NewGauge(fmt.Sprintf(`infergate_log_lines_total{level=%q}`, strings.ToLower(lv.String())), func() float64 { return float64(lg.Lines(lv)) })
		}
		set.NewGauge("infergate_log_verbose_level", func() float64 { return float64(lg.Verbose()) })
	}
	s.wrongTokens = loglimit.New[struct{}](time.Minute, 1)
	s.slow = loglimit.New[string](slowLogEvery, 1024)
	s.errLog = loglimit.New[string](errorLogEvery, 1024)
	s.panics = set.NewCounter("infergate_http_panics_total")
	s.httpErrors = set.NewCounter("infergate_http_protocol_errors_total")
	for i := range s.unrouted {
		s.unrouted[i] = set.NewCounter(fmt.Sprintf(`infergate_inference_unrouted_total{reason=%q}`, unroutedReason(i)))
	}
	// A connection keeps its request and response body buffers between
	// requests; without a limit, one that once carried a large body (a
	// model upload, a large batch) holds a buffer of its size for as long
	// as it stays open. Buffers over maxPooledBytes, as the scratch pool
	// has it (a batch of 64 rows of 256 features as JSON takes about
	// 160 KB; a model upload more), go back to the garbage collector after
	// their request. fasthttp has this limit for the whole process.
	fasthttp.SetBodySizePoolLimit(maxPooledBytes, maxPooledBytes)
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		ErrorHandler:                  s.protocolError,
		Name:                          cfg.Name,
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		Concurrency:                   cfg.MaxConnections + 64, // Serve's listener refuses first
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{logf: s.logf, conns: loglimit.New[struct{}](errorLogEvery, 1)},
	}
	s.monitor = &fasthttp.Server{
		Handler:            s.handleMonitor,
		ErrorHandler:       s.protocolError,
		Name:               cfg.Name,
		MaxRequestBodySize: 4096, // it takes GETs
		ReadBufferSize:     cfg.MaxHeaderBytes,
		Concurrency:        monitorConnections + 64,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		NoDefaultDate:      true,
		CloseOnShutdown:    true,
		Logger:             fasthttpLogger{logf: s.logf, conns: loglimit.New[struct{}](errorLogEvery, 1)},
	}
	return s, nil
}

// Disk is a guarded directory, for the status page.
type Disk struct {
	Guard *diskfree.Guard
	// Refuses says what the node refuses while the directory's disk is
	// under the minimum ("uploads and blob pulls").
	Refuses string
}

// SetReady marks the server ready (GET /v2/health/ready answers 200) once
// its initial models are loaded.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// BeginShutdown marks the server as shutting down: GET /v2/health/ready
// answers 503 saying so, while requests are still served, so that load
// balancers stop sending before Shutdown closes the listener. Shutdown
// calls it too.
func (s *Server) BeginShutdown() { s.stopping.Store(true) }

// readiness returns whether the server is ready and, when it is not, why.
func (s *Server) readiness() (bool, string) {
	switch {
	case s.stopping.Load():
		return false, "the server is shutting down"
	case !s.ready.Load():
		return false, "the server is still loading its initial models"
	}
	if p := s.plane.Load(); p != nil {
		// A fresh node that cannot join (a certificate or token its
		// members refuse, say), or is still fetching the cluster's
		// models, would answer their requests 404.
		if settling, why := p.node.Settling(); settling {
			return false, why
		}
	}
	if s.cfg.StrictReadiness {
		if why := s.failing(); why != "" {
			return false, why
		}
	}
	return true, ""
}

// failing says which models serve nothing on this node because they
// failed here, for strict readiness; "" when none does.
func (s *Server) failing() string {
	f := s.repo.Failing()
	if p := s.plane.Load(); p != nil {
		// A cluster model fails here as its production does: a staged
		// version that failed is no reason while production is on its
		// way (fetched or loaded), and production can fail before the
		// registry sees it (its pull, or a file of other bytes in its
		// place).
		local := p.node.LocalStatus()
		f = slices.DeleteFunc(f, func(e registry.IndexEntry) bool { return local.Models[e.Name] != nil })
		for _, name := range slices.Sorted(maps.Keys(local.Models)) {
			if m := s.repo.Model(name); m != nil && m.Default() != nil {
				continue
			}
			if a, ok := p.node.Absence(name, 0); ok && a.Status.State == cluster.VersionFailed {
				f = append(f, registry.IndexEntry{Name: name, Version: strconv.FormatInt(a.Version, 10), Reason: a.Status.Reason})
			}
		}
		slices.SortFunc(f, func(a, b registry.IndexEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	if len(f) == 0 {
		return ""
	}
	e := f[0]
	what := fmt.Sprintf("model %q", e.Name)
	if e.Version != "" {
		what += " version " + e.Version
	}
	why := fmt.Sprintf("%s failed here and no version of the model serves on this node (--strict-readiness): %s", what, e.Reason)
	if len(f) > 1 {
		why += fmt.Sprintf("; %d more models fail so; POST /v2/repository/index lists them", len(f)-1)
	}
	return why
}

// Serve accepts connections on ln until Shutdown, at most MaxConnections
// at once (counted per listener).
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tlsListener{Listener: ln, cfg: s.cfg.TLS, hs: s.handshakes}
	}
	l := newLimitListener(ln, s.cfg.MaxConnections, s.cfg.MaxHeaderBytes, s.logf)
	// A TLS connection's write that times out breaks it for good
	// (crypto/tls), so its write deadlines are armed as they are set,
	// never late.
	l.eagerWrites = s.cfg.TLS != nil
	s.lnMu.Lock()
	s.listeners = append(s.listeners, l)
	s.lnMu.Unlock()
	return s.srv.Serve(l)
}

// Shutdown stops accepting connections, marks the server not ready, and
// waits until in-flight requests are answered or ctx ends; then for the
// trace files being written, until ctx ends but 2 s at least
// (traceCloseGrace).
func (s *Server) Shutdown(ctx context.Context) error {
	s.BeginShutdown()
	// Connections that never sent a byte hold nothing to answer, but
	// fasthttp would wait for them: close them now, and those accepted
	// until the listeners close, while the shutdown waits.
	done := make(chan struct{})
	var closer sync.WaitGroup
	defer closer.Wait()
	defer close(done)
	closer.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			s.lnMu.Lock()
			for _, l := range s.listeners {
				l.closeUnused()
			}
			s.lnMu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	// The gRPC front door drains at the same time as HTTP.
	grpcErr := make(chan error, 1)
	go func() { grpcErr <- s.stopGRPC(ctx) }()
	err := s.srv.ShutdownWithContext(ctx)
	if gerr := <-grpcErr; err == nil {
		err = gerr
	}
	// No handler queues shadow copies any more, or those still running
	// (ctx ended) find the shadower stopped.
	if serr := s.shadows.close(ctx); err == nil {
		err = serr
	}
	if s.cache != nil && err == nil {
		s.cache.Close()
	}
	if s.shm != nil && err == nil {
		s.shm.Close() // no request uses a region any more
	}
	s.trace.close(ctx) // what requests still running trace is dropped
	// Last: scrapes and probes saw the drain (ready false) until now.
	if merr := s.monitor.ShutdownWithContext(ctx); err == nil {
		err = merr
	}
	return err
}

// health answers GET /v2/health/live and /v2/health/ready.
func (s *Server) health(ctx *fasthttp.RequestCtx) error {
	if err := allow(ctx, fasthttp.MethodGet); err != nil {
		return err
	}
	// The protocol's body, which KServe's clients read; Triton's look
	// at the status alone.
	ctx.SetContentType("application/json")
	if string(ctx.Path()) == "/v2/health/live" {
		// Live while the process answers, shutting down or not: a failed
		// liveness probe gets a process restarted, which never helps here.
		ctx.SetBodyString(`{"live":true}`)
		return nil
	}
	if ready, why := s.readiness(); !ready {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBody(append(oip.AppendJSONString([]byte(`{"ready":false,"error":`), why), '}'))
		return nil
	}
	ctx.SetBodyString(`{"ready":true}`)
	return nil
}

// serveMetrics answers GET /metrics.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) error {
	if err := allow(ctx, fasthttp.MethodGet); err != nil {
		return err
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	// Through writeHelp, which gives the # HELP lines their text.
	bb := scrapeBufs.Get().(*bytes.Buffer)
	bb.Reset()
	s.metrics.WritePrometheus(bb)
	metrics.WriteProcessMetrics(bb)
	metrics.WriteFDMetrics(bb)
	writeHelp(ctx, bb.Bytes(), helpLines)
	scrapeBufs.Put(bb)
	return nil
}

// ServeMonitoring serves /metrics, /v2/health/live and /v2/health/ready,
// and nothing else, over plain HTTP on ln, until Shutdown: an address
// for Prometheus and for probes (a kubelet's) that cannot present the
// client certificate the main port requires (--tls-client-ca), which
// network policy can keep apart from the clients' port. Call it at
// most once.
func (s *Server) ServeMonitoring(ln net.Listener) error {
	l := newLimitListenerSaying(ln, monitorConnections, s.cfg.MaxHeaderBytes, s.logf,
		fmt.Sprintf("the monitoring address (--monitor-http) has its %d connections open; retry later, or have the scrapers and probes reuse connections (keep-alive)", monitorConnections))
	s.lnMu.Lock()
	s.listeners = append(s.listeners, l)
	s.lnMu.Unlock()
	return s.monitor.Serve(l)
}

// monitorConnections bounds the monitoring address's connections: a
// few scrapers and probes.
const monitorConnections = 64

// handleMonitor is the monitoring address's handler.
func (s *Server) handleMonitor(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Inc()
			s.logf(logging.Error+"panic serving %s %s on the monitoring address: %v\n%s", ctx.Method(), ctx.Path(), p, debug.Stack())
			writeError(ctx, &httpError{code: fasthttp.StatusInternalServerError, msg: errInternalMsg})
		}
	}()
	var err error
	switch string(ctx.Path()) {
	case "/metrics":
		err = s.serveMetrics(ctx)
	case "/v2/health/live", "/v2/health/ready":
		err = s.health(ctx)
	default:
		err = notFound("no such endpoint %q: the monitoring address serves /metrics, /v2/health/live and /v2/health/ready", ctx.Path())
	}
	if err != nil {
		writeError(ctx, toHTTPError(err))
	}
}

// Handler returns the request handler, for tests that serve it themselves.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

type fasthttpLogger struct {
	logf func(string, ...any)
	// conns limits the lines about connections fasthttp could not
	// serve (mostly requests it could not read, which protocolError
	// answered and counted) to one per errorLogEvery.
	conns *loglimit.Limiter[struct{}]
}

// Printf logs what fasthttp reports, less the failed TLS handshakes
// (counted and logged by handshakeLog, at most once a minute). A line
// about a connection it could not serve goes out once per errorLogEvery,
// saying how many were held back, and without the request head fasthttp
// quotes (its Authorization header and token, a client's cookies).
func (l fasthttpLogger) Printf(format string, args ...any) {
	if quietLine(args) {
		return
	}
	if !strings.HasPrefix(format, "error when serving connection") {
		l.logf(logging.Warning+format, args...)
		return
	}
	more, ok := l.conns.Allow(struct{}{})
	if !ok {
		return
	}
	args = slices.Clone(args)
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = withoutRequestHead(err.Error())
		}
	}
	l.logf(logging.Warning+format+"%s (infergate_http_protocol_errors_total counts the requests the server could not read)", append(args, more)...)
}

// protocolError answers requests fasthttp could not parse.
func (s *Server) protocolError(ctx *fasthttp.RequestCtx, err error) {
	s.httpErrors.Inc()
	if c, ok := ctx.Conn().(*limitConn); ok {
		// What is left of the request is still coming: closing on it
		// would reset the connection and lose this answer.
		c.lingers.Store(true)
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		advice := "send fewer rows per request, or raise the server's --max-body"
		if p := ctx.Path(); bytes.HasPrefix(p, []byte("/v1/models/")) && bytes.HasSuffix(p, []byte("/versions")) {
			advice = "the model file is larger than that; raise the --max-body of the server it is uploaded to"
		}
		writeError(ctx, &httpError{code: fasthttp.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("request body exceeds the %d-byte limit; %s", s.cfg.MaxBodyBytes, advice)})
		return
	}
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		writeError(ctx, &httpError{code: fasthttp.StatusRequestHeaderFieldsTooLarge,
			msg: fmt.Sprintf("the request line and headers exceed the %d-byte limit; send a shorter URI or fewer or shorter headers, or raise the server's --max-header-bytes", s.cfg.MaxHeaderBytes)})
		return
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		writeError(ctx, &httpError{code: fasthttp.StatusRequestTimeout, msg: "timed out reading the request"})
		return
	}
	writeError(ctx, &httpError{code: fasthttp.StatusBadRequest, msg: "malformed HTTP request: " + withoutRequestHead(err.Error())})
}

// withoutRequestHead returns fasthttp's error message msg without the
// parts of the request head it quotes: the head itself ("... in \"GET /
// HTTP/1.1\r\nAuthorization: ...\"", "cannot find whitespace in the
// first line of request \"...\"" and ": buffer size=N, contents: ..."),
// a header's line ("malformed mime header line: \"...\"") or its value
// ("invalid header value \"...\""): neither the log nor the 400 answer
// (which a proxy in front may have added headers to) carries a client's
// tokens and cookies. What is left says what was wrong.
func withoutRequestHead(msg string) string {
	msg, _, _ = strings.Cut(msg, ": buffer size=")
	for _, q := range headQuotes {
		for {
			i := strings.Index(msg, q.before)
			if i < 0 {
				break
			}
			// A quoted string holds no unescaped '"': the one that
			// ends before opens the quote.
			quoted, err := strconv.QuotedPrefix(msg[i+len(q.before)-1:])
			if err != nil {
				msg = msg[:i] + q.keep // cut short: no end to find
				break
			}
			msg = msg[:i] + q.keep + msg[i+len(q.before)-1+len(quoted):]
		}
	}
	return msg
}

// headQuotes are the phrases of fasthttp's (v1.78) errors that a quoted
// part of the request head follows, and what of each phrase stays.
var headQuotes = []struct{ before, keep string }{
	{` in "`, ""}, // "unsupported http version %q in %q"
	{`first line of request "`, "first line of request"},
	{`invalid header value "`, "invalid header value"},
	{`invalid trailer value "`, "invalid trailer value"},
	{`malformed mime header: missing colon: "`, "malformed mime header: missing colon"},
	{`malformed mime header line: "`, "malformed mime header line"},
}

// handle routes one request; it recovers from panics so that one bad
// request cannot take the server down.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if s.verbose() {
		defer s.logRequest(ctx, time.Now()) // after the recovery below
	}
	defer func() {
		if p := recover(); p != nil {
			s.panics.Inc()
			s.logf(logging.Error+"panic serving %s %s: %v\n%s", ctx.Method(), ctx.Path(), p, debug.Stack())
			writeError(ctx, &httpError{code: fasthttp.StatusInternalServerError, msg: errInternalMsg})
		}
	}()
	if s.stopping.Load() {
		// Shutting down: each client closes its connection after this
		// answer, so that few keep-alive connections are left for
		// Shutdown to close under a request on its way in.
		ctx.SetConnectionClose()
	}
	if err := s.route(ctx); err != nil {
		he := toHTTPError(err)
		if he.code >= 500 && he.err != nil {
			// A failure that repeats on every request (a backend that
			// fails each run, a traffic log that cannot write) says why
			// once per period and endpoint, with how many it held back:
			// a client retrying in a loop must not fill the disk.
			if more, ok := s.errLog.Allow(string(ctx.Method()) + " " + string(ctx.Path())); ok {
				s.logf(logging.Error+"%s %s: %s%s", ctx.Method(), ctx.Path(), he.err, more)
			}
		}
		writeError(ctx, he)
	}
}

var (
	pathV2     = []byte("/v2")
	pathModels = []byte("/v2/models/")
	// traceSettingSuffix ends /v2/models/{m}/trace/setting, whose
	// checks are traceSetting's.
	traceSettingSuffix = []byte("/trace/setting")
	pathRepoModels     = []byte("/v2/repository/models/")
	pathShmRegion      = []byte("/v2/systemsharedmemory/region/")
	// infergate has no CUDA shared memory; cudaSharedMemory answers
	// the cleanups of Triton's clients.
	pathCudaShmRegion = []byte("/v2/cudasharedmemory/region/")
)

// route dispatches on the path; infer and ready checks come first.
func (s *Server) route(ctx *fasthttp.RequestCtx) error {
	path := ctx.Path()
	if rest, ok := bytes.CutPrefix(path, pathModels); ok {
		// A change of a model's trace settings takes the admin token
		// alone (traceSetting checks).
		if !bytes.HasSuffix(rest, traceSettingSuffix) {
			if err := s.authorizeInference(ctx); err != nil {
				return err
			}
		}
		return s.routeModel(ctx, rest)
	}
	switch string(path) {
	case "/v2/health/live", "/v2/health/ready":
		return s.health(ctx)
	case "/v2/systemsharedmemory/status", "/v2/systemsharedmemory/unregister":
		if err := s.authorizeInference(ctx); err != nil {
			return err
		}
		return s.sharedMemory(ctx, nil, path[len("/v2/systemsharedmemory/"):])
	case "/v2/cudasharedmemory/status", "/v2/cudasharedmemory/unregister":
		if err := s.authorizeInference(ctx); err != nil {
			return err
		}
		return s.cudaSharedMemory(ctx, nil, path[len("/v2/cudasharedmemory/"):])
	case "/v2/trace/setting":
		return s.traceSetting(ctx, nil)
	case "/v2/logging":
		return s.serveLogging(ctx)
	case "/v2", "/v2/":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.serverMetadata(ctx)
	case "/v2/repository/index":
		if err := allow(ctx, fasthttp.MethodPost, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.repositoryIndex(ctx)
	case "/metrics":
		// With a monitoring address, the main port's /metrics is for
		// the admin (the trainer reads each node's canary counts here).
		if s.cfg.MonitorOnly && s.authorizeAdmin(ctx) != nil {
			return notFound("/metrics is served on this server's monitoring address (serve --monitor-http), and here to the admin alone (its token, or, without one, a client on this host)")
		}
		return s.serveMetrics(ctx)
	case "/", "/status":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.statusPage(ctx)
	}
	if rest, ok := bytes.CutPrefix(path, pathShmRegion); ok {
		if err := s.authorizeInference(ctx); err != nil {
			return err
		}
		i := bytes.LastIndexByte(rest, '/')
		if i <= 0 {
			return notFound("no such endpoint %q; use /v2/systemsharedmemory/region/{name}/register, /unregister or /status", path)
		}
		return s.sharedMemory(ctx, rest[:i], rest[i+1:])
	}
	if rest, ok := bytes.CutPrefix(path, pathCudaShmRegion); ok {
		if err := s.authorizeInference(ctx); err != nil {
			return err
		}
		i := bytes.LastIndexByte(rest, '/')
		if i <= 0 {
			return notFound("no such endpoint %q", path)
		}
		return s.cudaSharedMemory(ctx, rest[:i], rest[i+1:])
	}
	if rest, ok := bytes.CutPrefix(path, pathRepoModels); ok {
		if err := s.authorizeAdmin(ctx); err != nil {
			return err
		}
		return s.routeRepository(ctx, rest)
	}
	if rest, ok := bytes.CutPrefix(path, pathV1); ok {
		if m, ok := bytes.CutPrefix(rest, []byte("models/")); ok && bytes.IndexByte(m, ':') >= 0 {
			// KServe's v1 protocol: no model name holds a ':'.
			if err := s.authorizeInference(ctx); err != nil {
				return err
			}
			return s.routePredict(ctx, m)
		}
		return s.routeAdmin(ctx, rest)
	}
	return notFound("no such endpoint %q; the OIP v2 endpoints live under /v2 (GET /v2 describes the server)", path)
}

// authorizeInference checks the inference token, when the server has one.
func (s *Server) authorizeInference(ctx *fasthttp.RequestCtx) error {
	if s.cfg.InferenceToken != "" && !bearerMatches(ctx, s.cfg.InferenceToken) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="infergate"`)
		return &httpError{code: fasthttp.StatusUnauthorized, msg: "this server needs the inference token: send Authorization: Bearer <token>"}
	}
	return nil
}

// routeModel handles /v2/models/{m}[/versions/{v}][/ready|/infer|/config|/stats]
// and /v2/models/stats.
func (s *Server) routeModel(ctx *fasthttp.RequestCtx, rest []byte) error {
	if string(rest) == "stats" {
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.modelStats(ctx, nil, nil)
	}
	name, rest, _ := bytes.Cut(rest, slash)
	var version []byte
	if v, ok := bytes.CutPrefix(rest, versionsPrefix); ok {
		version, rest, _ = bytes.Cut(v, slash)
		if len(version) == 0 {
			return badRequest("empty model version in %q; use /v2/models/%s/versions/<N>", ctx.Path(), name)
		}
	}
	switch string(rest) {
	case "infer":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.infer(ctx, name, version, false)
	case "ready":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.modelReady(ctx, name, version)
	case "":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.modelMetadata(ctx, name, version)
	case "config":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.modelConfig(ctx, name, version)
	case "stats":
		if err := allow(ctx, fasthttp.MethodGet); err != nil {
			return err
		}
		return s.modelStats(ctx, name, version)
	case "feedback":
		if err := allow(ctx, fasthttp.MethodPost); err != nil {
			return err
		}
		return s.feedback(ctx, name, version)
	case "trace/setting":
		if version != nil {
			if err := s.authorizeInference(ctx); err != nil {
				return err
			}
			return notFound("no such endpoint %q; trace settings are a model's, not a version's: /v2/models/%s/trace/setting", ctx.Path(), name)
		}
		return s.traceSetting(ctx, name)
	}
	return notFound("no such endpoint %q; under /v2/models/{name}[/versions/{v}] there are GET (metadata), GET /ready, GET /config, GET /stats, POST /infer and POST /feedback, and GET and POST /v2/models/{name}/trace/setting", ctx.Path())
}

var (
	slash          = []byte("/")
	versionsPrefix = []byte("versions/")
)

// allow answers 405 unless the request's method is one of methods.
func allow(ctx *fasthttp.RequestCtx, methods ...string) error {
	m := ctx.Method()
	for _, want := range methods {
		// HEAD wherever GET: fasthttp leaves the body out.
		if string(m) == want || (want == fasthttp.MethodGet && string(m) == fasthttp.MethodHead) {
			return nil
		}
	}
	if slices.Contains(methods, fasthttp.MethodGet) && !slices.Contains(methods, fasthttp.MethodHead) {
		methods = append(methods[:len(methods):len(methods)], fasthttp.MethodHead)
	}
	ctx.Response.Header.Set("Allow", joinMethods(methods))
	return &httpError{code: fasthttp.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s is not allowed here; use %s", m, joinMethods(methods))}
}

func joinMethods(ms []string) string {
	var b []byte
	for i, m := range ms {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, m...)
	}
	return string(b)
}

// WaitCache blocks until the response cache has applied the entries stored
// so far; tests use it, since the cache applies sets asynchronously.
func (s *Server) WaitCache() {
	if s.cache != nil {
		s.cache.Wait()
	}
}
