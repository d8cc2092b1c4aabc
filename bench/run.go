package bench

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// Options are the settings that Config and SuiteConfig share. The zero
// value is not useful; start from DefaultOptions.
type Options struct {
	// Warmup runs before each step's measured window; its requests are not
	// counted (the ort-floor warms up for at most 250 ms per batch size:
	// loading the model already warmed its sessions).
	Warmup time.Duration
	// Duration is each step's measured window.
	Duration time.Duration
	// Repeat runs each step this many times and reports the median, with
	// the spread and every repetition.
	Repeat int
	// MaxRequests ends a step once it sent this many measured requests;
	// 0 means only Duration bounds it.
	MaxRequests int64
	// Timeout bounds each request; an answer later than that is an error
	// of kind "timeout". It also bounds how long a step waits for its last
	// requests.
	Timeout time.Duration
	// MaxInFlight bounds the requests outstanding in open loop.
	MaxInFlight int
	// Rows is the batch dimension of each generated request.
	Rows int
	// Seed fixes the generated data and the Poisson schedule.
	Seed uint64
	// Pool is the number of distinct request bodies a step cycles through.
	Pool int
	// Encoding is EncodingJSON or EncodingBinary (Triton's binary tensor
	// extension, for inputs and outputs).
	Encoding string
	// MaxBatch is the largest ort-floor batch size: the floor runs 1, 2,
	// 4, ... up to it.
	MaxBatch int
	// ORTLib is the ONNX Runtime library for the ort-floor ("" resolves as
	// engine.ResolveLibPath does).
	ORTLib string
	// Instances and IntraOpThreads are the gateway's settings, which the
	// ort-floor copies; 0 takes what GET /v2/models/{m}/config reports,
	// else 1.
	Instances      int
	IntraOpThreads int
	// Token is the bearer token of the inference and metadata calls
	// (/v2/models/...), for a gateway started with --inference-token;
	// the http-floor gets the same header, so that both read the same
	// requests. AdminToken is the repository API's (--admin-token). ""
	// sends none.
	Token, AdminToken string
	// TLS returns the configuration of a connection to an https target
	// named serverName; nil trusts the system's CAs and presents no
	// client certificate. It is called at every new connection, so that
	// one that follows its files (certs.Client.Config) applies to the
	// connections a run opens after they change.
	TLS func(serverName string) *tls.Config
	// FloorExecutable is the infergate binary that runs the http-floor as
	// a separate process, as the gateway is (`infergate bench
	// floor-server`); empty runs the floor in this process.
	FloorExecutable string
	// Overload, when above 1, adds an overload step after the closed-loop
	// steps that measure the sustainable rate: open loop at Overload times
	// that rate, where 429 and 503 answers are shed rather than errors and
	// a prober watches /v2/health/ready (see Run.Shed, Run.Health). 0 is
	// off.
	Overload float64
	// MaxAcceptedP99 is the bound on the p99 of the requests an overload
	// step's server accepted; a step above it is flagged. Set it from the
	// model's queue bound: about (what its instances run at once plus
	// max_queue) divided by the sustainable rate, plus a margin.
	MaxAcceptedP99 time.Duration
	// Command is recorded in the report's environment.
	Command string
	// Version is the build's own name for itself (infergate's version,
	// which `make build` sets from git describe), recorded as the report's
	// commit when Go stamped no VCS information into the binary; "" falls
	// back to the working directory's git head.
	Version string
	// Progress receives a live progress bar when it is a terminal; nil
	// for none.
	Progress io.Writer
	// Log receives one line per finished run; nil for none.
	Log io.Writer
}

// DefaultOptions returns the defaults of the command line.
func DefaultOptions() Options {
	return Options{
		Warmup:      time.Second,
		Duration:    5 * time.Second,
		Repeat:      1,
		Timeout:     5 * time.Second,
		MaxInFlight: 4096,
		Rows:        1,
		Seed:        1,
		Pool:        64,
		Encoding:    EncodingJSON,
		MaxBatch:    64,

		MaxAcceptedP99: time.Second,
	}
}

// maxOverload is the largest Options.Overload.
const maxOverload = 100

// validate reports the first setting of o that cannot run.
func (o *Options) validate() error {
	switch {
	case o.Warmup < 0:
		return fmt.Errorf("%w: --warmup %s must not be negative", ErrBadConfig, o.Warmup)
	case o.Duration <= 0:
		return fmt.Errorf("%w: --duration %s must be positive", ErrBadConfig, o.Duration)
	case o.Repeat < 1 || o.Repeat > 100:
		return fmt.Errorf("%w: --repeat %d must be between 1 and 100", ErrBadConfig, o.Repeat)
	case o.MaxRequests < 0:
		return fmt.Errorf("%w: --max-requests %d must not be negative (0 means no bound)", ErrBadConfig, o.MaxRequests)
	case o.Timeout <= 0:
		return fmt.Errorf("%w: --timeout %s must be positive", ErrBadConfig, o.Timeout)
	case o.Timeout > histMaxUS*time.Microsecond:
		return fmt.Errorf("%w: --timeout %s: latencies are recorded up to %s; give at most that", ErrBadConfig, o.Timeout, histMaxUS*time.Microsecond)
	case o.MaxInFlight < 1 || o.MaxInFlight > 1<<20:
		return fmt.Errorf("%w: --max-inflight %d must be between 1 and %d", ErrBadConfig, o.MaxInFlight, 1<<20)
	case o.Rows < 1 || o.Rows > 1<<20:
		return fmt.Errorf("%w: --rows %d must be between 1 and %d", ErrBadConfig, o.Rows, 1<<20)
	case o.Pool < 1 || o.Pool > 1<<16:
		return fmt.Errorf("%w: --pool %d must be between 1 and %d", ErrBadConfig, o.Pool, 1<<16)
	case o.Encoding != EncodingJSON && o.Encoding != EncodingBinary:
		return fmt.Errorf("%w: --encoding %q: use %q or %q", ErrBadConfig, o.Encoding, EncodingJSON, EncodingBinary)
	case o.MaxBatch < 1 || o.MaxBatch > 1<<16:
		return fmt.Errorf("%w: --max-batch %d must be between 1 and %d", ErrBadConfig, o.MaxBatch, 1<<16)
	case o.Instances < 0 || o.Instances > 256:
		return fmt.Errorf("%w: --instances %d must be between 1 and 256 (0: the gateway's)", ErrBadConfig, o.Instances)
	case o.IntraOpThreads < 0 || o.IntraOpThreads > 1024:
		return fmt.Errorf("%w: --intra-op-threads %d must be between 1 and 1024 (0: the gateway's)", ErrBadConfig, o.IntraOpThreads)
	case !(o.Overload == 0 || (o.Overload > 1 && o.Overload <= maxOverload)):
		return fmt.Errorf("%w: --overload %g must be 0 (off) or above 1 and at most %d: it multiplies the sustainable rate, and at 1 or below the gateway is not overloaded",
			ErrBadConfig, o.Overload, maxOverload)
	case o.Overload > 0 && o.MaxAcceptedP99 <= 0:
		return fmt.Errorf("%w: --max-accepted-p99 %s must be positive", ErrBadConfig, o.MaxAcceptedP99)
	}
	return nil
}

// session is the state of one Run or RunSuite: the report it fills and
// the helpers that measure steps into it.
type session struct {
	ctx      context.Context
	opts     Options
	report   *Report
	progress *progress
	// cpus, when not nil, splits the CPUs between the servers this session
	// starts and itself.
	cpus *cpuSplit
	// round, while a suite runs its steps in rounds (--repeat above 1), is
	// the round under way, from 1: measure then runs one repetition, so
	// numbered, and add collects runs into rounds instead of the report.
	round  int
	rounds *roundRuns
}

func newSession(ctx context.Context, opts Options) *session {
	return &session{
		ctx:      ctx,
		opts:     opts,
		report:   &Report{Env: collectEnv(opts.Command, opts.Version), Runs: []Run{}},
		progress: newProgress(opts.Progress),
	}
}

// add appends r to the report, or to the round's runs while a suite runs
// in rounds, and logs it.
func (s *session) add(r Run) {
	if s.rounds != nil {
		r.Repetition = s.round
		s.rounds.add(r)
	} else {
		s.report.Runs = append(s.report.Runs, r)
	}
	s.logRun(r)
}

// logRun writes one line about r to the log, if any.
func (s *session) logRun(r Run) {
	if s.opts.Log == nil {
		return
	}
	fmt.Fprintf(s.opts.Log, "%-34s %12s req/s %12s rows/s  p50 %8s  p99 %8s  errors %s  cpu %.2f",
		repName(r.Name, r.Repetition), groupThousands(r.ThroughputRPS), groupThousands(r.RowsPerS),
		formatUS(r.Latency.P50), formatUS(r.Latency.P99), formatErrors(r.Errors, r.Requests), r.ClientCPU)
	if r.Shed != nil {
		fmt.Fprintf(s.opts.Log, "  offered %s/s  shed %s", groupThousands(r.OfferedRPS), formatShed(r.Shed))
	}
	if r.Health != nil {
		fmt.Fprintf(s.opts.Log, "  ready %s", formatHealth(r.Health))
	}
	if r.Flagged != "" {
		fmt.Fprintf(s.opts.Log, "  FLAGGED: %s", r.Flagged)
	}
	fmt.Fprintln(s.opts.Log)
}

// measure runs one step Repeat times through one and returns the run, or
// the summary of the repetitions. one is given the repetition number, 0
// when there is a single one. In a suite's round it runs one repetition,
// numbered by the round.
func (s *session) measure(one func(rep int) Run) Run {
	if s.round > 0 {
		r := one(s.round)
		r.Repetition = s.round
		return r
	}
	n := max(s.opts.Repeat, 1)
	if n == 1 {
		return one(0)
	}
	var reps []Run
	for i := 1; i <= n; i++ {
		r := one(i)
		r.Repetition = i
		reps = append(reps, r)
		if s.ctx.Err() != nil {
			break
		}
	}
	return summarize(reps)
}

// httpRun is one HTTP step: the run's description, where to send, and
// the gateway to scrape (nil for the http-floor).
type httpRun struct {
	tmpl    Run
	target  *httpTarget
	control *controlClient
	// serverPID, when not 0, is the server's process on this machine,
	// whose CPU time the step reads from /proc; without it the server's
	// CPU time comes from process_cpu_seconds_total in control's
	// /metrics.
	serverPID int
	// unbatched asks flagRun to check that the server did not batch.
	unbatched bool
	// overload makes it an overload step: 429 and 503 are shed, not
	// errors, and a prober watches the gateway's readiness (through
	// control's address).
	overload bool
	// reloadEvery, when set, reloads the model through control's
	// repository API this often in the measured window (see reloader).
	reloadEvery time.Duration
	// grpc, when set, takes the requests in target's place, as gRPC
	// calls.
	grpc *grpcTarget
}

// measureHTTP runs one repetition of h.
func (s *session) measureHTTP(h httpRun, rep int) Run {
	r := h.tmpl
	maxConns := r.Concurrency
	if r.Mode == ModeOpen {
		maxConns = s.opts.MaxInFlight
	}
	hc := h.target.newClient(maxConns)
	defer hc.CloseIdleConnections()
	newSender := func() sender {
		snd := newHTTPSender(h.target, hc)
		snd.shedding = h.overload
		return snd
	}
	if h.grpc != nil {
		conns, err := h.grpc.dial(maxConns)
		if err != nil {
			r.Flagged = err.Error()
			return r
		}
		defer conns.close()
		newSender = func() sender {
			if h.grpc.stream {
				snd := newGRPCStreamSender(h.grpc, conns)
				snd.shedding = h.overload
				return snd
			}
			snd := newGRPCSender(h.grpc, conns)
			snd.shedding = h.overload
			return snd
		}
	}
	ls := &loadStep{
		mode:        r.Mode,
		concurrency: r.Concurrency,
		rate:        r.Rate,
		poisson:     r.Poisson,
		seed:        s.opts.Seed + uint64(rep),
		maxInFlight: s.opts.MaxInFlight,
		warmup:      s.opts.Warmup,
		duration:    s.opts.Duration,
		maxRequests: s.opts.MaxRequests,
		newSender:   newSender,
		shedding:    h.overload,
	}
	if h.overload && h.control != nil {
		ls.health = newHealthProber(h.control.base, h.control.host, h.control.prefix, s.opts.TLS)
	}
	if h.reloadEvery > 0 && h.control != nil {
		rl, err := newReloader(h.control, r.Model, h.reloadEvery)
		if err != nil {
			r.Flagged = err.Error()
			return r
		}
		ls.reload = rl
	}
	// The server's counters and CPU time are read when the measured
	// window opens and after the step.
	before := make(chan *serverSnapshot, 1)
	if s.opts.Warmup == 0 {
		before <- h.snapshot()
	} else {
		go func() {
			t := time.NewTimer(s.opts.Warmup)
			defer t.Stop()
			select {
			case <-t.C:
				before <- h.snapshot()
			case <-s.ctx.Done():
				before <- nil
			}
		}()
	}
	stop := s.progress.start(repName(r.Name, rep), s.opts.Warmup+s.opts.Duration, ls.live)
	res := ls.run(s.ctx)
	stop()
	res.fill(&r, 0)
	if b := <-before; b != nil {
		a := h.snapshot()
		if b.samples != nil && a.samples != nil {
			d := &scrapeDelta{before: b.samples, after: a.samples, model: r.Model}
			r.Server = d.stats()
			r.Batches = d.batches()
		}
		if b.stats != nil && a.stats != nil {
			d := statsDelta{before: b.stats, after: a.stats}
			r.ComputeBySize = d.computeBySize()
			if r.Server == nil {
				r.Server = d.stats()
				r.Batches = batchBins(r.ComputeBySize)
			}
		}
		serverCPU(&r, b, a)
	}
	if ls.reload != nil {
		if err := ls.reload.restore(); err != nil {
			// The next step would take the altered configuration for
			// the served one.
			r.Flagged = err.Error()
		}
	}
	flagRun(&r, h.unbatched)
	return r
}

// serverSnapshot is what the step reads of the server at the start of
// its measured window and after it.
type serverSnapshot struct {
	samples []Sample // its /metrics; nil without a control client
	// stats is the model's statistics (GET /v2/models/{m}/stats): the
	// server figures when samples has none of infergate's inference
	// series, and the compute time by batch size either way.
	stats *oip.ModelStatistics
	cpu   float64 // CPU seconds it has used so far
	cpuOK bool
	at    time.Time
}

// snapshot reads the server's metrics and CPU time now.
func (h *httpRun) snapshot() *serverSnapshot {
	sn := &serverSnapshot{}
	if h.control != nil {
		sn.samples = h.control.scrape()
		sn.stats, _ = h.control.modelStatistics(h.tmpl.Model)
	}
	if h.serverPID != 0 {
		sn.cpu, sn.cpuOK = processCPU(h.serverPID)
	} else {
		sn.cpu, sn.cpuOK = processCPUOf(sn.samples)
	}
	sn.at = time.Now()
	return sn
}

// processCPUOf returns the process_cpu_seconds_total of a scrape.
func processCPUOf(ss []Sample) (float64, bool) {
	for i := range ss {
		if ss[i].Name == metricProcessCPU {
			return ss[i].Value, true
		}
	}
	return 0, false
}

// serverCPU sets r's server CPU figures from the snapshots taken before
// and after its measured window, when both have the CPU time.
func serverCPU(r *Run, before, after *serverSnapshot) {
	wall := after.at.Sub(before.at).Seconds()
	used := after.cpu - before.cpu
	if !before.cpuOK || !after.cpuOK || wall <= 0 || used < 0 {
		return
	}
	r.ServerCPU = round2(used / wall)
	// Per request the server saw: answered, shed or failed there, not
	// those the load generator could not send.
	if n := r.Requests - r.ErrorKinds[ErrKindNotSent]; n > 0 {
		r.ServerCPUPerRequestUS = round1(used * 1e6 / float64(n))
	}
}

func repName(name string, rep int) string {
	if rep == 0 {
		return name
	}
	return name + " #" + strconv.Itoa(rep)
}

// ortFloor measures the model in this process at batch sizes 1, 2, 4, ...
// up to MaxBatch, with instances sessions of intraOpThreads threads, one
// goroutine per instance in closed loop. flag, when set, is added to every
// run's Flagged (a model file that differs from the one served).
//
// With the CPUs split, it runs on the servers' CPUs (those reserved for
// ONNX Runtime, if any), which are idle meanwhile: the gateway runs ONNX
// Runtime there, and the client's CPUs may be slower or faster ones
// (another socket, other cores' neighbors).
// It returns an error only when it cannot move this process back onto the
// client's CPUs, which would leave the load generator on the servers'.
func (s *session) ortFloor(model string, modelBytes []byte, instances, intraOpThreads int, flag string) error {
	return s.onServerCPUs(func(pinErr error) { s.ortFloorHere(model, modelBytes, instances, intraOpThreads, flag, pinErr) })
}

// onServerCPUs calls f with this process on the servers' CPUs where the
// gateway runs ONNX Runtime (cpuSplit.floor) when the CPUs are split
// (pinErr says why it could not move there), and moves it back onto the
// client's. Its error is a failure to move back.
func (s *session) onServerCPUs(f func(pinErr error)) error {
	if s.cpus == nil {
		f(nil)
		return nil
	}
	f(pinProcess(s.cpus.floor()))
	if err := pinProcess(s.cpus.client); err != nil {
		return fmt.Errorf("cannot move the load generator back onto its CPUs: %w", err)
	}
	return nil
}

func (s *session) ortFloorHere(model string, modelBytes []byte, instances, intraOpThreads int, flag string, pinErr error) {
	base := Run{Kind: KindORTFloor, Model: model, Mode: ModeClosed, Concurrency: instances}
	fail := func(err error) {
		r := base
		r.Name = KindORTFloor + "/" + model
		r.Flagged = err.Error()
		s.add(r)
	}
	if pinErr != nil {
		fail(fmt.Errorf("cannot run on the gateway's CPUs: %w", pinErr))
		return
	}
	if err := engine.Init(engine.ResolveLibPath(s.opts.ORTLib)); err != nil {
		fail(err)
		return
	}
	s.report.Env.ORTVersion = engine.RuntimeVersion()
	m, err := engine.Load(modelBytes, engine.Options{Instances: instances, IntraOpThreads: intraOpThreads})
	if err != nil {
		fail(fmt.Errorf("cannot load the model into ONNX Runtime: %w", err))
		return
	}
	defer m.Close()
	for i, b := range batchSizes(s.opts.MaxBatch) {
		if s.ctx.Err() != nil {
			return
		}
		tmpl := base
		tmpl.Name = fmt.Sprintf("%s/%s@b%d", KindORTFloor, model, b)
		tmpl.RowsPerRequest = b
		tmpl.BatchSize = b
		if _, err := newORTSender(s.ctx, m, b, 0); err != nil {
			fail(err)
			return
		}
		r := s.measure(func(rep int) Run {
			r := tmpl
			seed := s.opts.Seed + uint64(i)<<32
			k := uint64(0)
			ls := &loadStep{
				mode:        ModeClosed,
				concurrency: instances,
				seed:        seed,
				warmup:      min(s.opts.Warmup, 250*time.Millisecond),
				duration:    s.opts.Duration,
				maxRequests: s.opts.MaxRequests,
				newSender: func() sender {
					k++
					snd, _ := newORTSender(s.ctx, m, b, seed+k)
					return snd
				},
			}
			stop := s.progress.start(repName(r.Name, rep), ls.warmup+ls.duration, ls.live)
			res := ls.run(s.ctx)
			stop()
			res.fill(&r, 0)
			r.Flagged = flag
			flagRun(&r, false)
			return r
		})
		s.add(r)
	}
}

// Bounds of an overload run (see flagOverload).
const (
	// maxShedP99US bounds the p99 of the shed requests: refusing must be
	// cheap.
	maxShedP99US = 10_000
	// maxHealthP99US bounds the p99 of the readiness probes.
	maxHealthP99US = 50_000
	// minSentShare is the share of the offered rate the client must have
	// sent for the run to show the gateway overloaded.
	minSentShare = 0.95
)

// flagRun sets r.Flagged when its figures cannot be taken as they are:
// nothing measured, more than 1% errors, or a server that did what the
// run was meant to avoid (answering from its cache, or batching when
// unbatched is set); an overload run is held to flagOverload's bounds
// too. Reasons already in r.Flagged are kept.
func flagRun(r *Run, unbatched bool) {
	var why []string
	if r.Flagged != "" {
		why = append(why, r.Flagged)
	}
	switch {
	case r.Requests == 0:
		why = append(why, "no requests were measured")
	case r.Errors*100 > r.Requests:
		why = append(why, fmt.Sprintf("errors %.1f%% > 1%% (%s)", float64(r.Errors)*100/float64(r.Requests), formatKinds(r.ErrorKinds)))
	}
	if st := r.Server; st != nil && r.Kind == KindGateway {
		if !r.Cache && st.CacheHits > 0.01*float64(r.Requests) {
			why = append(why, fmt.Sprintf("the server answered %.0f%% of the requests from its response cache in a run meant to miss it",
				st.CacheHits*100/float64(max(r.Requests, 1))))
		}
		if r.Cache && r.Requests > 0 && st.CacheHits < 0.9*float64(r.Requests) {
			why = append(why, fmt.Sprintf("the server answered %.0f%% of the requests from its response cache in a run meant to hit it: is the cache on for the model (response_cache), and large enough for one answer (--cache-bytes)?",
				st.CacheHits*100/float64(r.Requests)))
		}
		if unbatched && st.AvgBatch > 1.05*float64(max(r.RowsPerRequest, 1)) {
			why = append(why, fmt.Sprintf("the server batched (%.2f rows per execution, %d per request) in a run meant to be unbatched",
				st.AvgBatch, r.RowsPerRequest))
		}
	}
	if r.Requests > 0 {
		why = append(why, flagOverload(r)...)
	}
	if rl := r.Reloads; rl != nil {
		switch {
		case rl.Loads == 0:
			why = append(why, "no reload fell in the measured window: lengthen --duration or shorten --reload-every")
		case rl.Failures > 0:
			why = append(why, fmt.Sprintf("%d of %d reloads failed: %s", rl.Failures, rl.Loads, rl.LastError))
		}
		// A reload must lose nothing: any error counts, not only above 1%.
		if r.Errors > 0 && r.Errors*100 <= r.Requests {
			why = append(why, fmt.Sprintf("%d requests failed while the model reloaded (%s)", r.Errors, formatKinds(r.ErrorKinds)))
		}
	}
	r.Flagged = strings.Join(why, "; ")
}

// flagOverload returns why overload run r does not show the gateway
// shedding well: the shed requests' p99 above 10 ms, a readiness probe
// that failed or a probe p99 above 50 ms, an accepted p99 above
// r.MaxAcceptedP99US, or a client that sent less than 95% of the offered
// rate (then the gateway was not offered what the run says: the client
// ran short of CPU, or every --max-inflight slot was taken). Errors other
// than shedding are flagRun's. Nothing for other runs.
func flagOverload(r *Run) []string {
	if r.Shed == nil {
		return nil
	}
	var why []string
	if r.Shed.Count > 0 && r.Shed.P99US > maxShedP99US {
		why = append(why, fmt.Sprintf("shedding is slow: shed p99 %s > %s", formatUS(r.Shed.P99US), formatUS(maxShedP99US)))
	}
	if h := r.Health; h != nil {
		switch {
		case h.Probes == 0:
			why = append(why, "no readiness probe was measured")
		case h.Failures > 0:
			why = append(why, fmt.Sprintf("%s failed %d of %d probes", healthPath, h.Failures, h.Probes))
		}
		if h.P99US > maxHealthP99US {
			why = append(why, fmt.Sprintf("%s is slow: p99 %s > %s", healthPath, formatUS(h.P99US), formatUS(maxHealthP99US)))
		}
	}
	if b := r.MaxAcceptedP99US; b > 0 && r.Latency.P99 > b {
		why = append(why, fmt.Sprintf("accepted p99 %s > %s (--max-accepted-p99)", formatUS(r.Latency.P99), formatUS(b)))
	}
	if r.OfferedRPS > 0 && r.SentRPS < minSentShare*r.OfferedRPS {
		why = append(why, fmt.Sprintf("the load generator sent %s/s of the %s/s offered (short of CPU, or of --max-inflight): the gateway was not offered %sx",
			groupThousands(r.SentRPS), groupThousands(r.OfferedRPS), strconv.FormatFloat(r.Overload, 'f', -1, 64)))
	}
	return why
}

// formatKinds writes error counts by kind, largest first.
func formatKinds(kinds map[string]int64) string {
	keys := slices.Collect(maps.Keys(kinds))
	sort.Slice(keys, func(i, j int) bool {
		if kinds[keys[i]] != kinds[keys[j]] {
			return kinds[keys[i]] > kinds[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, kinds[k])
	}
	return strings.Join(parts, ", ")
}

// summarize returns the run that stands for reps: each figure is the
// median over the repetitions, Requests, Errors, Late and DurationS are
// totals, and so are the counts of shed requests, readiness probes and
// reloads (with the shed fraction of the total); the series (timeline,
// histogram, batches) and the latencies of shed requests, probes and
// reloads are those of the repetition with the median throughput, and
// Flagged collects the repetitions' reasons.
func summarize(reps []Run) Run {
	byRate := slices.Clone(reps)
	slices.SortStableFunc(byRate, func(a, b Run) int { return cmp.Compare(a.ThroughputRPS, b.ThroughputRPS) })
	r := byRate[(len(byRate)-1)/2]
	r.Repetition = 0
	r.Repeats = len(reps)
	r.Repetitions = reps
	med := func(f func(*Run) float64) float64 {
		v := make([]float64, len(reps))
		for i := range reps {
			v[i] = f(&reps[i])
		}
		return median(v)
	}
	spread := func(f func(*Run) float64) MinMax {
		mm := MinMax{Min: f(&reps[0]), Max: f(&reps[0])}
		for i := range reps {
			mm.Min = min(mm.Min, f(&reps[i]))
			mm.Max = max(mm.Max, f(&reps[i]))
		}
		return mm
	}
	r.ThroughputRPS = round1(med(func(r *Run) float64 { return r.ThroughputRPS }))
	r.RowsPerS = round1(med(func(r *Run) float64 { return r.RowsPerS }))
	r.SentRPS = round1(med(func(r *Run) float64 { return r.SentRPS }))
	r.ClientCPU = med(func(r *Run) float64 { return r.ClientCPU })
	// The server's CPU over the repetitions that could read it.
	measured := func(f func(*Run) float64) float64 {
		var v []float64
		for i := range reps {
			if x := f(&reps[i]); x > 0 {
				v = append(v, x)
			}
		}
		return median(v)
	}
	r.ServerCPU = round2(measured(func(r *Run) float64 { return r.ServerCPU }))
	r.ServerCPUPerRequestUS = round1(measured(func(r *Run) float64 { return r.ServerCPUPerRequestUS }))
	r.Latency = Latency{
		P50:  med(func(r *Run) float64 { return r.Latency.P50 }),
		P90:  med(func(r *Run) float64 { return r.Latency.P90 }),
		P99:  med(func(r *Run) float64 { return r.Latency.P99 }),
		P999: med(func(r *Run) float64 { return r.Latency.P999 }),
		Max:  med(func(r *Run) float64 { return r.Latency.Max }),
		Mean: med(func(r *Run) float64 { return r.Latency.Mean }),
	}
	r.Spread = &Spread{
		ThroughputRPS: spread(func(r *Run) float64 { return r.ThroughputRPS }),
		RowsPerS:      spread(func(r *Run) float64 { return r.RowsPerS }),
		P50US:         spread(func(r *Run) float64 { return r.Latency.P50 }),
		P99US:         spread(func(r *Run) float64 { return r.Latency.P99 }),
		P999US:        spread(func(r *Run) float64 { return r.Latency.P999 }),
	}
	allServer := true
	for i := range reps {
		allServer = allServer && reps[i].Server != nil
	}
	if allServer {
		r.Server = &ServerStats{
			AvgBatch:     med(func(r *Run) float64 { return r.Server.AvgBatch }),
			QueueUSAvg:   med(func(r *Run) float64 { return r.Server.QueueUSAvg }),
			WakeUSAvg:    med(func(r *Run) float64 { return r.Server.WakeUSAvg }),
			ComputeUSAvg: med(func(r *Run) float64 { return r.Server.ComputeUSAvg }),
			ComputeOnCPU: med(func(r *Run) float64 { return r.Server.ComputeOnCPU }),
			CacheHits:    med(func(r *Run) float64 { return r.Server.CacheHits }),
			CacheMisses:  med(func(r *Run) float64 { return r.Server.CacheMisses }),
			Rejected:     med(func(r *Run) float64 { return r.Server.Rejected }),
		}
	}
	r.Requests, r.Errors, r.Late, r.DurationS = 0, 0, 0, 0
	r.ErrorKinds = nil
	// Copies: the median repetition's own figures stay as they were.
	if r.Shed != nil {
		sh := *r.Shed
		sh.Count = 0
		r.Shed = &sh
	}
	if r.Health != nil {
		h := *r.Health
		h.Probes, h.Failures = 0, 0
		r.Health = &h
	}
	if r.Reloads != nil {
		rl := *r.Reloads
		rl.Loads, rl.Failures = 0, 0
		r.Reloads = &rl
	}
	var flags []string
	for i := range reps {
		p := &reps[i]
		r.Requests += p.Requests
		r.Errors += p.Errors
		r.Late += p.Late
		if r.Shed != nil && p.Shed != nil {
			r.Shed.Count += p.Shed.Count
		}
		if r.Health != nil && p.Health != nil {
			r.Health.Probes += p.Health.Probes
			r.Health.Failures += p.Health.Failures
		}
		if r.Reloads != nil && p.Reloads != nil {
			r.Reloads.Loads += p.Reloads.Loads
			r.Reloads.Failures += p.Reloads.Failures
		}
		r.DurationS = round3(r.DurationS + p.DurationS)
		for k, v := range p.ErrorKinds {
			if r.ErrorKinds == nil {
				r.ErrorKinds = map[string]int64{}
			}
			r.ErrorKinds[k] += v
		}
		if p.Flagged != "" {
			flags = append(flags, fmt.Sprintf("#%d: %s", p.Repetition, p.Flagged))
		}
	}
	r.Flagged = strings.Join(flags, "; ")
	if r.Shed != nil && r.Requests > 0 {
		r.Shed.Fraction = math.Round(float64(r.Shed.Count)/float64(r.Requests)*1e4) / 1e4
	}
	return r
}

// median returns the median of v (the mean of the middle two for an even
// count), reordering v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// level is one load level of a series.
type level struct {
	mode        string
	concurrency int
	rate        float64
}

// load returns the level's concurrency (closed) or rate (open).
func (l level) load() float64 {
	if l.mode == ModeOpen {
		return l.rate
	}
	return float64(l.concurrency)
}

// Name prefixes of the overload runs: the closed-loop step of the suite
// that measures the sustainable rate, and the overload step.
const (
	sustainablePrefix = "gateway-sustainable"
	overloadPrefix    = "gateway-overload"
)

// overloadName names an overload run: "gateway-overload/model@3x".
func overloadName(model string, x float64) string {
	return fmt.Sprintf("%s/%s@%sx", overloadPrefix, model, strconv.FormatFloat(x, 'f', -1, 64))
}

// sustainableRun returns the run that gives the sustainable rate among
// those ok accepts: the closed-loop one with the highest throughput that
// is not flagged. ok is false when there is none.
func sustainableRun(runs []Run, ok func(*Run) bool) (Run, bool) {
	var best *Run
	for i := range runs {
		r := &runs[i]
		if r.Mode != ModeClosed || r.Flagged != "" || r.ThroughputRPS <= 0 || !ok(r) {
			continue
		}
		if best == nil || r.ThroughputRPS > best.ThroughputRPS {
			best = r
		}
	}
	if best == nil {
		return Run{}, false
	}
	return *best, true
}

// overloadStep measures tmpl's model on target at Options.Overload times
// the throughput of sustainable, in open loop, as an overload run (see
// httpRun.overload), and returns it after passing each repetition through
// observe (nil for none); over gRPC to gt when it is set. Without a
// sustainable run (found is false) it returns the run flagged, with no
// figures.
func (s *session) overloadStep(tmpl Run, target *httpTarget, gt *grpcTarget, control *controlClient, sustainable Run, found bool, observe func(*Run)) Run {
	x := s.opts.Overload
	r := tmpl
	r.Name = overloadName(r.Model, x)
	r.Kind = KindGateway
	r.Mode, r.Concurrency = ModeOpen, 0
	r.Overload = x
	r.MaxAcceptedP99US = float64(s.opts.MaxAcceptedP99.Microseconds())
	if !found {
		r.Flagged = "no sustainable rate to overload: no closed-loop run of the gateway before it was measured without being flagged"
		return r
	}
	r.SustainableRPS = sustainable.ThroughputRPS
	r.SustainableRun = sustainable.Name
	r.Rate = round1(x * sustainable.ThroughputRPS)
	r.OfferedRPS = r.Rate
	h := httpRun{tmpl: r, target: target, control: control, overload: true, grpc: gt}
	return s.measure(func(rep int) Run {
		r := s.measureHTTP(h, rep)
		if observe != nil {
			observe(&r)
		}
		return r
	})
}

// runName names a run: "kind/model@c64", "kind/model@r2000".
func runName(kind, model string, l level) string {
	if l.mode == ModeOpen {
		return fmt.Sprintf("%s/%s@r%s", kind, model, strconv.FormatFloat(l.rate, 'f', -1, 64))
	}
	return fmt.Sprintf("%s/%s@c%d", kind, model, l.concurrency)
}

// series runs the levels in order, one run each through one; with
// maxP99 > 0 it stops after the first run whose p99 is above maxP99 or
// that is flagged, and records the sweep's outcome.
func (s *session) series(kind, model string, levels []level, maxP99 time.Duration, one func(l level) Run) {
	var sw *Sweep
	for _, l := range levels {
		if s.ctx.Err() != nil {
			return
		}
		r := one(l)
		s.add(r)
		if maxP99 <= 0 {
			continue
		}
		if sw == nil {
			sw = &Sweep{Kind: kind, Model: model, Mode: l.mode, MaxP99US: float64(maxP99.Microseconds())}
		}
		if r.Flagged != "" || r.Latency.P99 > sw.MaxP99US {
			sw.StoppedAt = r.Name
			break
		}
		sw.Best, sw.BestLoad, sw.BestThroughputRPS = r.Name, l.load(), r.ThroughputRPS
	}
	if sw != nil {
		s.report.Sweeps = append(s.report.Sweeps, *sw)
	}
}

// isDemoModel says whether name is a model demoModel builds, without
// building it.
func isDemoModel(name string) bool { return name == "ctr" || name == "ranker" }

// demoModel returns the ONNX bytes of a demo model ("ctr", "ranker") as
// `infergate demo-models` writes them, or nil for another name.
func demoModel(name string) []byte {
	switch name {
	case "ctr":
		return onnx.DemoCTR().Model().Marshal()
	case "ranker":
		return onnx.DemoRanker().Model().Marshal()
	}
	return nil
}

// sha256Hex returns the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// modelMismatch returns why the ort-floor's model bytes are not what the
// gateway serves, or "" when they are or the gateway does not say.
func modelMismatch(served *servedConfig, modelBytes []byte) string {
	if served == nil || served.SHA256 == "" {
		return ""
	}
	if got := sha256Hex(modelBytes); !strings.EqualFold(got, served.SHA256) {
		return fmt.Sprintf("the ort-floor's model (sha256 %.12s) is not the one the gateway serves (sha256 %.12s); pass the served file with --model-file", got, served.SHA256)
	}
	return ""
}

// ortSettings picks the ort-floor's instances and threads: the flags when
// set, else the gateway's reported configuration, else 1.
func ortSettings(opts *Options, served *servedConfig) (instances, threads int) {
	instances, threads = opts.Instances, opts.IntraOpThreads
	if instances == 0 && served != nil {
		instances = served.Instances
	}
	if threads == 0 && served != nil {
		threads = served.IntraOpThreads
	}
	return max(instances, 1), max(threads, 1)
}
