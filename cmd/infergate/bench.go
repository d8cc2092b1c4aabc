package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"

	"github.com/infergate/infergate/bench"
	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/certs"
)

func runBench(args []string) error {
	if len(args) > 0 && args[0] == "suite" {
		return runBenchSuite(args[1:])
	}
	if len(args) > 0 && args[0] == "floor-server" {
		return runFloorServer(args[1:])
	}
	if len(args) > 0 && args[0] == "report" {
		return runBenchReport(args[1:])
	}
	if len(args) > 0 && args[0] == "neighbors" {
		return runBenchNeighbors(args[1:])
	}
	fs := newFlagSet("bench", "[flags]   or   infergate bench suite [flags]   or   infergate bench report [--html FILE] REPORT.json",
		`Load-test one model of a running gateway over the Open Inference Protocol v2,
and optionally the floors at the same load: a bare HTTP server answering the
gateway's own response (--floors http) and the model run in-process through ONNX
Runtime at batch sizes 1, 2, 4, ... (--floors ort).

Closed loop (--concurrency 1,8,64) keeps N requests outstanding; open loop
(--rate 1000,5000) sends at a fixed rate, evenly or as a Poisson process, and
times each request from its intended send time, so a server (or client) that
falls behind is charged for the delay. Each step warms up (--warmup), then
measures for --duration. Every answer is checked (status 200, output names,
types and shapes); a step with more than 1% errors is flagged and not reported
as clean. Server figures (batch size, queue and compute time, cache, rejections)
come from the gateway's /metrics before and after each step.

Overload (--overload 3) shows how the gateway sheds what it cannot take: after
the closed-loop levels, which measure the rate it sustains, it offers 3 times
that rate in open loop (run gateway-overload/MODEL@3x). There 429 and 503
answers are shed requests, not errors, and each must carry Retry-After; the
accepted (200) requests keep the latency and req/s columns; a prober GETs
/v2/health/ready every 10ms on a connection of its own. The run is flagged
when errors other than shedding exceed 1%, the shed p99 exceeds 10ms, a probe
fails or the probes' p99 exceeds 50ms, the accepted p99 exceeds
--max-accepted-p99, or the load generator sent less than 95% of the offered
rate.

Without --concurrency and --rate, runs --concurrency 1,8,64 (64 with
--overload).
"infergate bench suite --help" describes the standard suite; "infergate bench
report out.json" prints a saved report again (--html to draw its page);
"infergate bench neighbors --help" measures which CPUs slow ONNX Runtime on
another when busy.`)
	cfg := bench.DefaultConfig()
	tf := commonBenchFlags(fs, &cfg.Options)
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:8080", "base URL of the gateway to load; without a scheme, https:// when --ca-cert or --client-cert (or their variables) are given, else http://")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model to load; its metadata (GET /v2/models/{model}) shapes the generated requests")
	fs.BoolVar(&cfg.GRPCStream, "grpc-stream", false, "with --grpc, send the requests over Triton's ModelStreamInfer: each connection of the closed loop (or each request slot of the open loop) keeps a stream open, with one request on it at a time")
	fs.StringVar(&cfg.GRPC, "grpc", "", "send the gateway's requests as gRPC ModelInfer calls to this host:port (serve --grpc), over TLS when --target is https; metadata and the server's counters still come from --target; off when empty")
	conc := intList{}
	fs.Var(&conc, "concurrency", "closed-loop levels: `N,...` requests kept outstanding, one worker each (e.g. 1,8,64)")
	rates := floatList{}
	fs.Var(&rates, "rate", "open-loop levels: `RATE,...` requests per second (e.g. 1000,5000)")
	fs.BoolVar(&cfg.Poisson, "poisson", false, "open loop: exponentially distributed gaps (a Poisson process) instead of even spacing")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "open loop: most requests outstanding; a request due while this many are out waits (and its latency counts the wait), and those still waiting when the step ends count as errors of kind not_sent")
	fs.DurationVar(&cfg.MaxP99, "max-p99", 0, "sweep: run each series of levels in increasing order, stop after the first whose p99 exceeds this (or that is flagged), and report the highest level that met it (0: no sweep)")
	fs.BoolVar(&cfg.CacheHits, "cache-hits", false, "send one request body over and over, without cache_bypass, to measure the gateway's response cache (otherwise --pool distinct bodies carry cache_bypass)")
	fs.StringVar(&cfg.InputFile, "input", "", "read the request bodies from this file, one OIP JSON infer request a line, instead of generating them; they are re-encoded with --encoding")
	fs.Int64Var(&cfg.Priority, "priority", 0, "send every request with this priority parameter (1 is the highest; 0 sends none): two runs at once at different priorities, against a model with dynamic_batching.priority_levels, show what each gets when the queue is full")
	floors := stringList{}
	fs.Var(&floors, "floors", "`FLOOR,...` to measure too: http (a bare fasthttp server in a process of its own, infergate bench floor-server, replaying the gateway's response, at the same levels), ort (the model through ONNX Runtime in this process at batch sizes 1..--max-batch)")
	fs.StringVar(&cfg.ModelFile, "model-file", "", "ONNX file of the model for the ort floor (default: the demo model of the same name; it is checked against the sha256 the gateway reports)")
	fs.DurationVar(&cfg.ReloadEvery, "reload-every", 0, "reload the model through POST /v2/repository/models/{model}/load this often during each gateway step's measured window, alternating its configuration with the same at max_queue one higher, so that every load builds, warms and swaps in new sessions; the step then measures what reloads cost the requests in flight, and any failed request flags it; the last load puts the served configuration back, which the gateway then keeps in place of config.json until it restarts, as after any load with a configuration (needs the admin API: loopback, or a gateway without --admin-token)")
	overloadFlags(fs, &cfg.Options, "after the closed-loop levels (--concurrency, 64 by default with it), offer `X` times the highest rate they sustained, in open loop for --duration, as run gateway-overload/MODEL@Xx: 429 and 503 count as shed, not errors, and must carry Retry-After, and /v2/health/ready is probed every 10ms (see above); 0 is off, else above 1, e.g. 3. Not with --rate: it picks the rate itself")
	out := outputFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOverloadFlags(fs, cfg.Overload); err != nil {
		return err
	}
	if err := benchClient(&cfg.Options, tf, &cfg.Target); err != nil {
		return err
	}
	cfg.Concurrency, cfg.Rates, cfg.Floors = conc, rates, floors
	if len(cfg.Concurrency) == 0 && len(cfg.Rates) == 0 {
		cfg.Concurrency = []int{1, 8, 64}
		if cfg.Overload > 0 {
			cfg.Concurrency = []int{64}
		}
	}
	cfg.Command = commandLine("bench", args)
	cfg.Version = builtVersion()
	out.apply(&cfg.Options)
	if exe, err := os.Executable(); err == nil {
		cfg.FloorExecutable = exe
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if out.dryRun {
		fmt.Println("configuration is valid")
		return nil
	}
	stopProfile, err := out.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := interruptContext()
	defer stop()
	report, err := bench.Measure(ctx, cfg)
	if err != nil {
		err = fmt.Errorf("%w%s", err, benchTLSHint(cfg.Target, err))
	}
	return out.finish(report, err)
}

func runBenchSuite(args []string) error {
	fs := newFlagSet("bench suite", "[flags]",
		`Run the standard benchmark suite. Unless --target is given, start a gateway
(this binary's serve, on 127.0.0.1, over a temporary repository holding the
demo models) and stop it at the end. For each model (--models):

  ort-floor/M@bN         the model in-process through ONNX Runtime, batch
                         sizes 1, 2, 4, ... --max-batch, with the gateway's
                         instances and intra-op threads (on the gateway's
                         CPUs, idle meanwhile, with --server-cpus; on those
                         it reserves for ONNX Runtime with --runtime-cpus)
  http-floor/M@cC, @c1   a bare HTTP server replaying the gateway's response
  gateway/M@cC, @c1      the gateway with batching off (--unbatched-config)
  gateway-batched/M@cC, @c1   with batching on (--batched-config)
  gateway-cached/M@cC    on response-cache hits (--cached-config)

all in closed loop at --concurrency C and at 1 (idle). For ranker, after its
batched runs, with the batched configuration and 16 rows per request (so that
the rate stays low enough for the load generator to offer a multiple of it):

  gateway-sustainable/ranker@cC   closed loop at C: the rate it sustains
  gateway-overload/ranker@Xx      X (--overload) times that rate, open loop:
                         429/503 are shed, not errors, and /v2/health/ready
                         is probed every 10ms (see "infergate bench --help")

The gateway's model configuration is switched between runs with POST
/v2/repository/models/{m}/load; a configuration the gateway refuses is
recorded as flagged runs with its error, and the suite goes on.`)
	cfg := bench.DefaultSuiteConfig()
	tf := commonBenchFlags(fs, &cfg.Options)
	fs.Lookup("repeat").Usage = "run the suite this many rounds, each step once per round, so that the floors and the gateway share the host's drift; " +
		"each figure is the median over the rounds, with the spread and every round in the JSON, and each target is judged on the median of the rounds' own ratios (the idle target on each round's p50 against that round's floors). " +
		"The overload pair runs after the rounds, its steps repeated in a row"
	fs.StringVar(&cfg.Target, "target", "", "base URL of a running gateway to measure instead of starting one (its models are reconfigured through the repository API); without a scheme, https:// when --ca-cert or --client-cert (or their variables) are given, else http://")
	models := stringList(cfg.Models)
	fs.Var(&models, "models", "`MODEL,...` to run")
	modelFiles := keyValueList{}
	fs.Var(&modelFiles, "model-file", "`NAME=PATH`: the ONNX file of model NAME, for the ort floor and for the gateway the suite starts; repeatable or comma-separated (the demo models ctr and ranker are built in)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "the loaded level: requests kept outstanding")
	fs.StringVar(&cfg.UnbatchedConfig, "unbatched-config", cfg.UnbatchedConfig, "model configuration (config.json) of the gateway runs with batching off")
	fs.StringVar(&cfg.BatchedConfig, "batched-config", cfg.BatchedConfig, "model configuration of the gateway-batched runs")
	fs.StringVar(&cfg.CachedConfig, "cached-config", cfg.CachedConfig, "model configuration of the gateway-cached runs")
	serverArgs := repeatedList{}
	fs.Var(&serverArgs, "server-arg", "extra `FLAG` for the gateway the suite starts, e.g. --server-arg=--max-queue=1024; repeatable")
	serverLog := fs.String("server-log", "", "write the log of the gateway the suite starts to this file")
	fs.IntVar(&cfg.ServerCPUs, "server-cpus", cfg.ServerCPUs, "CPUs given to the gateway and the http floor the suite starts, whole cores first; the load generator gets the others (and GOMAXPROCS their number), so that neither measures the other, and the ort floor runs on the gateway's CPUs while they are idle. 0 shares them all; -1: half of them on 8 CPUs or more, else 0, and 0 with --target")
	fs.IntVar(&cfg.RuntimeCPUs, "runtime-cpus", 0, "reserve the last `N` of the gateway's CPUs (--server-cpus) in core order for its ONNX Runtime (serve --runtime-cpus), where the ort floor then runs too; a multiple of the threads per core reserves whole cores; 0 reserves none")
	overloadFlags(fs, &cfg.Options, "after ranker's batched runs, measure its sustainable rate with 16 rows per request in closed loop at --concurrency, then offer `X` times it in open loop (gateway-overload/ranker@Xx), where 429 and 503 are shed rather than errors and /v2/health/ready is probed; 0 skips the pair")
	out := outputFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOverloadFlags(fs, cfg.Overload); err != nil {
		return err
	}
	if err := benchClient(&cfg.Options, tf, &cfg.Target); err != nil {
		return err
	}
	cfg.Models, cfg.ModelFiles, cfg.ServerArgs = models, modelFiles, serverArgs
	if flagSet(fs, "overload") && cfg.Overload > 0 && !slices.Contains(cfg.Models, cfg.OverloadModel) {
		return fmt.Errorf("--overload %g: the overload step runs on %s, which --models %s does not list; add it, or drop --overload",
			cfg.Overload, cfg.OverloadModel, strings.Join(cfg.Models, ","))
	}
	cfg.Command = commandLine("bench suite", args)
	cfg.Version = builtVersion()
	out.apply(&cfg.Options)
	if exe, err := os.Executable(); err == nil {
		cfg.FloorExecutable = exe
	}
	if cfg.Target == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot find this executable to start a gateway: %w; pass --target", err)
		}
		cfg.Executable = exe
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if out.dryRun {
		fmt.Println("configuration is valid")
		return nil
	}
	stopProfile, err := out.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	if *serverLog != "" {
		f, err := os.Create(*serverLog)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.ServerLog = f
	}
	ctx, stop := interruptContext()
	defer stop()
	report, err := bench.RunSuite(ctx, cfg)
	return out.finish(report, err)
}

// commonBenchFlags defines the flags of bench.Options; those of its TLS
// come back for benchClient.
func commonBenchFlags(fs *flag.FlagSet, o *bench.Options) *tlsClientFlags {
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before each step's measured window, not counted (the ort floor warms up for at most 250ms per batch size)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "measured window of each step")
	fs.IntVar(&o.Repeat, "repeat", o.Repeat, "run each step this many times; the figures are the medians, with the spread (min/max) and every repetition in the JSON")
	fs.Int64Var(&o.MaxRequests, "max-requests", 0, "end a step once it has sent this many measured requests (0: only --duration bounds it)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "longest wait for one answer; later ones count as errors of kind timeout")
	fs.IntVar(&o.Rows, "rows", o.Rows, "rows (the batch dimension) of each generated request")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the generated data and of the Poisson schedule")
	fs.IntVar(&o.Pool, "pool", o.Pool, "distinct request bodies, encoded before the step, that it cycles through")
	fs.StringVar(&o.Encoding, "encoding", o.Encoding, "request encoding: json, or binary (Triton's binary tensor extension, for the inputs and, asked with binary_data_output, the outputs)")
	fs.IntVar(&o.MaxBatch, "max-batch", o.MaxBatch, "largest ort floor batch size: it runs 1, 2, 4, ... up to this")
	fs.StringVar(&o.ORTLib, "ort-lib", "", "path of libonnxruntime.so for the ort floor (and the gateway the suite starts) (default: $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 from \"make setup\")")
	fs.IntVar(&o.Instances, "instances", 0, "ONNX Runtime sessions of the gateway, which the ort floor copies (0: what GET /v2/models/{m}/config reports, else 1; the suite starts its gateway with it)")
	fs.IntVar(&o.IntraOpThreads, "intra-op-threads", 0, "ONNX Runtime intra-op threads per session, as --instances")
	// Tokens come from the environment, as serve's do: a default would print
	// them in --help.
	fs.StringVar(&o.Token, "token", "", "bearer token of the inference and metadata calls, for a gateway started with --inference-token (default $INFERGATE_INFERENCE_TOKEN); a gateway the suite starts needs none")
	fs.StringVar(&o.AdminToken, "admin-token", "", "bearer token of the repository API (configuration switches), for a gateway started with --admin-token (default $INFERGATE_ADMIN_TOKEN)")
	return addTLSClientFlags(fs)
}

// benchClient sets o's TLS and tokens from the flags and the
// environment, and gives *target (--target; "" for a gateway the suite
// starts) its scheme as the other commands give --addr theirs.
func benchClient(o *bench.Options, tf *tlsClientFlags, target *string) error {
	tc, err := tf.config()
	if err != nil {
		return err
	}
	if *target != "" {
		if *target, err = tf.baseURL("--target", *target); err != nil {
			return err
		}
	}
	if tc != nil {
		o.TLS = tc.Config
	}
	if o.Token == "" {
		o.Token = os.Getenv("INFERGATE_INFERENCE_TOKEN")
	}
	if o.AdminToken == "" {
		o.AdminToken = os.Getenv("INFERGATE_ADMIN_TOKEN")
	}
	return nil
}

// overloadFlags defines --overload, described by usage, and
// --max-accepted-p99.
func overloadFlags(fs *flag.FlagSet, o *bench.Options, usage string) {
	fs.Float64Var(&o.Overload, "overload", o.Overload, "overload mode: "+usage)
	fs.DurationVar(&o.MaxAcceptedP99, "max-accepted-p99", o.MaxAcceptedP99,
		"with --overload: flag the overload run when the p99 of the requests the gateway accepted (200) exceeds this. "+
			"Set it from the model's queue bound: a version admits max_batch_size × instances + max_queue requests "+
			"(64 × 1 + 256 = 320 by default), which wait about that many over the rate it sustains under overload "+
			"(320 ms at 1,000/s), so give that plus a margin")
}

// checkOverloadFlags refuses --max-accepted-p99 without an overload run
// to apply it to.
func checkOverloadFlags(fs *flag.FlagSet, overload float64) error {
	if overload == 0 && flagSet(fs, "max-accepted-p99") {
		return errors.New("--max-accepted-p99 applies to the overload run only: add --overload (e.g. 3), or drop it")
	}
	return nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// benchOutput holds the flags about what to write.
type benchOutput struct {
	json, html string
	cpuProfile string
	quiet      bool
	dryRun     bool
}

func outputFlags(fs *flag.FlagSet) *benchOutput {
	o := &benchOutput{}
	fs.StringVar(&o.json, "json", "", "write the report as JSON to this file (schema: bench/report.go)")
	fs.StringVar(&o.html, "html", "", "write the report as one self-contained HTML page with charts to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar and no line per finished run on stderr; only the table")
	fs.BoolVar(&o.dryRun, "dry-run", false, "validate the flags, then exit")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator to this file (go tool pprof), to see what the client costs")
	return o
}

// check refuses, before anything runs, an output file whose directory
// does not exist: a run learns it only once it has measured.
func (o *benchOutput) check() error {
	for _, f := range []struct{ flag, path string }{{"--json", o.json}, {"--html", o.html}, {"--cpuprofile", o.cpuProfile}} {
		if f.path == "" {
			continue
		}
		dir := filepath.Dir(f.path)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s %s: directory %s does not exist; create it first", f.flag, f.path, dir)
		}
	}
	return nil
}

// startProfile starts the CPU profile if asked; the returned func stops it.
func (o *benchOutput) startProfile() (stop func(), err error) {
	if o.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(o.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// apply sets where progress and run lines go.
func (o *benchOutput) apply(opts *bench.Options) {
	if !o.quiet {
		opts.Progress = os.Stderr
		opts.Log = os.Stderr
	}
}

// finish prints the table and writes the files of whatever report there
// is, then returns the run's error.
func (o *benchOutput) finish(report *bench.Report, runErr error) error {
	if report == nil {
		return runErr
	}
	if errors.Is(runErr, context.Canceled) {
		fmt.Fprintln(os.Stderr, "interrupted; reporting the runs so far")
	}
	fmt.Println()
	bench.WriteTable(os.Stdout, report)
	var errs []error
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		errs = append(errs, runErr)
	}
	if o.json != "" {
		errs = append(errs, bench.SaveJSON(o.json, report))
	}
	if o.html != "" {
		errs = append(errs, bench.SaveHTML(o.html, report))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if runErr != nil {
		return errors.New("interrupted")
	}
	return nil
}

// commandLine returns the command as typed, for the report.
func commandLine(cmd string, args []string) string {
	return strings.TrimSpace("infergate " + cmd + " " + strings.Join(redactTokens(args), " "))
}

// redactTokens returns args with the values of --token and --admin-token
// (either form, --flag v or --flag=v, one dash or two) replaced: a report
// or a log must never hold them.
func redactTokens(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "token" && name != "admin-token") {
			continue
		}
		if hasValue {
			out[i] = a[:strings.Index(a, "=")+1] + "REDACTED"
		} else if i+1 < len(out) {
			out[i+1] = "REDACTED"
		}
	}
	return out
}

// intList is a comma-separated list of positive integers.
type intList []int

func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return fmt.Errorf("%q is not a positive integer", p)
		}
		*l = append(*l, v)
	}
	return nil
}

// floatList is a comma-separated list of positive numbers.
type floatList []float64

func (l *floatList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strings.Join(parts, ",")
}

func (l *floatList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v > 0) {
			return fmt.Errorf("%q is not a positive number", p)
		}
		*l = append(*l, v)
	}
	return nil
}

// stringList is a comma-separated list of names.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// repeatedList collects every use of a flag.
type repeatedList []string

func (l *repeatedList) String() string { return strings.Join(*l, " ") }

func (l *repeatedList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// keyValueList collects NAME=VALUE pairs, repeated or comma-separated.
type keyValueList map[string]string

func (l *keyValueList) String() string {
	var parts []string
	for k, v := range *l {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (l *keyValueList) Set(s string) error {
	if *l == nil {
		*l = keyValueList{}
	}
	for _, p := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("%q: want NAME=PATH", p)
		}
		(*l)[k] = v
	}
	return nil
}

// runFloorServer is `infergate bench floor-server`, which the bench starts
// to serve the http-floor in a process of its own; not for people.
func runFloorServer(args []string) error {
	fs := newFlagSet("bench floor-server", "--spec FILE",
		`Serve the http-floor that FILE (written by infergate bench) describes: every
request gets the same captured gateway answer. The bench starts and stops it.`)
	spec := fs.String("spec", "", "floor specification (JSON) written by the bench")
	addr := fs.String("http", "127.0.0.1:0", "address to listen on")
	if err := parse(fs, args); err != nil {
		return err
	}
	return bench.ServeFloor(*spec, *addr)
}

// runBenchReport prints a saved report again, and writes it as HTML if
// asked: the text and the page of an older run, drawn by this binary.
func runBenchReport(args []string) error {
	fs := newFlagSet("bench report", "[--html FILE] REPORT.json",
		`Print the table of a report that --json saved, as this binary prints it
(with the summaries it adds after the targets), and with --html write its
page. The targets are those the report recorded when it ran.`)
	html := fs.String("html", "", "write the report as one self-contained HTML page with charts to this file")
	pos, err := parseArgs(fs, args, "REPORT.json")
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		return err
	}
	r, err := bench.LoadJSON(pos[0])
	if err != nil {
		return err
	}
	if err := bench.WriteTable(os.Stdout, r); err != nil {
		return err
	}
	if *html != "" {
		return bench.SaveHTML(*html, r)
	}
	return nil
}

// runBenchNeighbors measures how busy neighbor CPUs slow ONNX Runtime on
// one CPU.
func runBenchNeighbors(args []string) error {
	fs := newFlagSet("bench neighbors", "[flags]",
		`Run the model through ONNX Runtime in closed loop on one CPU (one session,
one intra-op thread, its thread bound to the CPU, every other thread of the
process kept off it) and measure its rows/s with each other CPU busy in
turn, then with all of them busy at once, and alone before and after each of
those, to which each is compared. A busy neighbor that slows it shares
something with it: on a VM, two vCPUs that are the hardware threads of one
physical core (which the guest's CPU topology may not show); on any machine,
a cache or memory bandwidth, and with all CPUs busy, the power budget that
sets the clock.

Use it to choose the CPUs of a gateway and of what runs beside it (bench
suite --server-cpus keeps the load generator off the gateway's CPUs, which
helps only if those CPUs do not slow each other), and to read a gateway
whose ONNX Runtime runs slower per row than the ort-floor. It runs for
about (2 x neighbors + 3) x (--warmup + --duration); nothing else should be
busy.`)
	cfg := bench.DefaultNeighborConfig()
	fs.StringVar(&cfg.Model, "model", cfg.Model, "demo model to run (ctr, ranker), or any name with --model-file")
	fs.StringVar(&cfg.ModelFile, "model-file", "", "ONNX file to run instead of the demo model")
	fs.StringVar(&cfg.ORTLib, "ort-lib", "", "path of libonnxruntime.so (default: $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 from \"make setup\")")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "rows of each run; use the batch size the gateway reaches under load (its batch column)")
	fs.IntVar(&cfg.CPU, "cpu", cfg.CPU, "CPU to measure; -1 is the first this process may use")
	fs.Func("neighbors", "`CPUs` to make busy, one at a time and then all at once, in the kernel's notation (0-7,12) (default: every other CPU this process may use)", func(s string) error {
		cpus, err := affinity.Parse(s)
		cfg.Neighbors = cpus
		return err
	})
	fs.StringVar(&cfg.Load, "load", cfg.Load, "what a busy neighbor runs: ort (the same model and batch: vector units, caches, memory), spin (an integer loop in registers: a core's execution units only) or http (round trips over a loopback TCP connection, both ends on the neighbor: system calls and the kernel's network path, as a gateway's HTTP)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured window of each step")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "time each step runs before its window")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	dryRun := fs.Bool("dry-run", false, "validate the flags, then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *dryRun {
		fmt.Println("configuration is valid")
		return nil
	}
	ctx, stop := interruptContext()
	defer stop()
	r, err := bench.MeasureNeighbors(ctx, cfg)
	if err != nil {
		return err
	}
	if err := bench.WriteNeighbors(os.Stdout, r); err != nil {
		return err
	}
	if *jsonOut != "" {
		return bench.SaveNeighborsJSON(*jsonOut, r)
	}
	return nil
}

// benchTLSHint is certs.Hint, and for an https target whose server closed
// the connection before answering, the likeliest cause: over TLS 1.3 a
// server that refuses the client's certificate says so only after the
// client's handshake, and fasthttp reports just the close.
func benchTLSHint(target string, err error) string {
	if h := certs.Hint(err); h != "" {
		return h
	}
	if strings.HasPrefix(target, "https://") && strings.Contains(err.Error(), "server closed connection before returning the first response byte") {
		return "; over https that is often a server that refused this client's certificate, or asked for one (serve --tls-client-ca): give --client-cert and --client-key"
	}
	return ""
}
