package bench

// The JSON report. Other tools read it: fields may be added, never renamed
// or removed. Durations are in the unit their name says.

// Report is the whole output of a bench run or suite.
type Report struct {
	Env  Env   `json:"env"`
	Runs []Run `json:"runs"`
	// Sweeps are the outcomes of --max-p99 sweeps: the highest load that
	// met the latency bound.
	Sweeps []Sweep `json:"sweeps,omitempty"`
	// Targets are the suite's targets checked on its runs (CheckTargets).
	Targets []Target `json:"targets,omitempty"`
}

// Env records where and how the figures were measured.
type Env struct {
	StartedAt      string `json:"started_at"` // RFC 3339, UTC
	Host           string `json:"host"`
	OS             string `json:"os"`
	Arch           string `json:"arch"`
	CPUModel       string `json:"cpu_model"`
	CPUs           int    `json:"cpus"`
	ThreadsPerCore int    `json:"threads_per_core,omitempty"` // hardware threads per core, where the kernel says
	GOMAXPROCS     int    `json:"gomaxprocs"`
	GoVersion      string `json:"go_version"`
	ORTVersion     string `json:"ort_version,omitempty"`
	Commit         string `json:"commit,omitempty"`
	Target         string `json:"target,omitempty"` // gateway URL
	ServerVersion  string `json:"server_version,omitempty"`
	SharedCores    bool   `json:"shared_cores"`          // client and server on the same cores
	ServerCPUs     string `json:"server_cpus,omitempty"` // CPUs of the servers the suite started, e.g. "0-7"
	ClientCPUs     string `json:"client_cpus,omitempty"` // CPUs of the load generator
	// ORTFloorCPUs are the CPUs the ort floor ran on when the suite split
	// them: the servers', idle meanwhile. Reports written before it was
	// recorded ran the ort floor on ClientCPUs.
	ORTFloorCPUs string `json:"ort_floor_cpus,omitempty"`
	// RuntimeCPUs are the servers' CPUs the gateway reserved for ONNX
	// Runtime (bench suite --runtime-cpus), "" when none.
	RuntimeCPUs    string `json:"runtime_cpus,omitempty"`
	HTTPFloor      string `json:"http_floor,omitempty"` // "process" or "in-process"
	Command        string `json:"command"`
	IntraOpThreads int    `json:"intra_op_threads,omitempty"`
	Instances      int    `json:"instances,omitempty"`
	// Rounds, above 1, is the number of rounds a suite ran (--repeat):
	// every step once per round, its repetitions numbered by round.
	Rounds int `json:"rounds,omitempty"`
}

// Run is one measured step: one kind, model, mode and load level.
type Run struct {
	Name           string  `json:"name"` // e.g. "gateway-batched/ranker@c64"
	Kind           string  `json:"kind"` // KindGateway, KindHTTPFloor, KindORTFloor
	Model          string  `json:"model"`
	Batching       bool    `json:"batching"`
	Cache          bool    `json:"cache"`
	Mode           string  `json:"mode"` // ModeClosed or ModeOpen
	Concurrency    int     `json:"concurrency"`
	Rate           float64 `json:"rate"` // offered requests/s in open loop; 0 in closed loop
	Poisson        bool    `json:"poisson,omitempty"`
	RowsPerRequest int     `json:"rows_per_request"`
	BatchSize      int     `json:"batch_size"`         // ort-floor only
	Encoding       string  `json:"encoding,omitempty"` // "json" or "binary"
	Repetition     int     `json:"repetition,omitempty"`

	DurationS     float64          `json:"duration_s"`
	Requests      int64            `json:"requests"`
	Errors        int64            `json:"errors"`
	ErrorKinds    map[string]int64 `json:"error_kinds,omitempty"`
	Flagged       string           `json:"flagged,omitempty"` // why the figures are not clean, e.g. "errors 2.1% > 1%"
	ThroughputRPS float64          `json:"throughput_rps"`
	RowsPerS      float64          `json:"rows_per_s"`
	Latency       Latency          `json:"latency_us"`
	ClientCPU     float64          `json:"client_cpu"` // cores used by the load generator on average
	// ServerCPU is the cores the server's process used on average over
	// the measured window, and ServerCPUPerRequestUS its CPU time per
	// request it saw in it (answered, shed or failed; not the open-loop
	// requests the load generator could not send): read from /proc for a server process the
	// bench started (the http-floor), from process_cpu_seconds_total in
	// the gateway's /metrics otherwise; absent where neither can be read
	// (an in-process floor). Against the floors' figure, CPU per request
	// says how much the gateway's own work costs even where the load
	// generator, not the server, set the pace; but a server that waits
	// for work pays more per request (a wake-up for fewer requests each
	// time) than a saturated one, so it compares best between runs that
	// load their servers alike.
	ServerCPU             float64 `json:"server_cpu,omitempty"`
	ServerCPUPerRequestUS float64 `json:"server_cpu_us_per_request,omitempty"`

	Server *ServerStats `json:"server,omitempty"`

	// SentRPS is the rate at which requests actually left the client during
	// the measured window (open loop); below Rate when the client fell
	// behind.
	SentRPS float64 `json:"sent_rps,omitempty"`
	// Late counts open-loop requests sent 1 ms or more after their
	// intended time (their latency includes the delay).
	Late int64 `json:"late,omitempty"`
	// Config is the model configuration the gateway reported for this run
	// (GET /v2/models/{m}/config), or the one the suite asked for when the
	// gateway refused it.
	Config string `json:"config,omitempty"`
	// Repeats is the number of repetitions (--repeat) the figures above
	// summarize: each is the median over Repetitions, whose spread is in
	// Spread; Requests and Errors are totals.
	Repeats     int     `json:"repeats,omitempty"`
	Spread      *Spread `json:"spread,omitempty"`
	Repetitions []Run   `json:"repetitions,omitempty"`

	// Overload runs (`infergate bench --overload X`, and the suite's
	// gateway-overload step) offer X times the rate the gateway sustained
	// in closed loop, open loop. Answers 429 and 503 are then shed, not
	// errors: they are counted in Shed, with their latency, and must carry
	// a Retry-After header (one without counts as an error of kind
	// shed_without_retry_after). Requests counts every measured request,
	// accepted, shed or failed; Errors only the failed ones; ThroughputRPS,
	// RowsPerS and Latency only the accepted (200) answers. All these
	// fields are absent from other runs.
	//
	// Overload is X; OfferedRPS the rate offered (X × SustainableRPS, the
	// same as Rate); SustainableRPS the closed-loop rate it is a multiple
	// of, measured by the run SustainableRun just before.
	Overload       float64 `json:"overload,omitempty"`
	OfferedRPS     float64 `json:"offered_rps,omitempty"`
	SustainableRPS float64 `json:"sustainable_rps,omitempty"`
	SustainableRun string  `json:"sustainable_run,omitempty"`
	// MaxAcceptedP99US is the bound on the accepted requests' p99 that
	// the run was held to (--max-accepted-p99): above it, it is flagged.
	MaxAcceptedP99US float64 `json:"max_accepted_p99_us,omitempty"`
	// Shed counts the requests the server refused with 429 or 503 and
	// Retry-After, and their latency (from the intended send time, as for
	// the accepted ones).
	Shed *ShedStats `json:"shed,omitempty"`
	// Health is what a prober saw of GET /v2/health/ready, sent every
	// 10 ms on a connection of its own during the measured window.
	Health *HealthStats `json:"health,omitempty"`
	// Reloads is what the model's reloads did to a run measured with
	// --reload-every.
	Reloads *ReloadStats `json:"reloads,omitempty"`

	// Series and distributions for the HTML report.
	Timeline  []TimelinePoint `json:"timeline,omitempty"`  // one point per interval
	Histogram []HistogramBin  `json:"histogram,omitempty"` // latency distribution
	Batches   []BatchBin      `json:"batches,omitempty"`   // server batch-size distribution
	// ComputeBySize is the server's executions of the step by exact batch
	// size with their compute time, from the statistics extension; the
	// per-row comparison with the ort-floor weighs the floor's batch
	// sizes by it.
	ComputeBySize []SizeCompute `json:"compute_by_size,omitempty"`
}

// SizeCompute is a step's executions of one batch size: how many, and
// their compute time in all (µs).
type SizeCompute struct {
	Size      int     `json:"size"`
	Count     uint64  `json:"count"`
	ComputeUS float64 `json:"compute_us"`
}

// Run kinds and modes.
const (
	KindGateway   = "gateway"
	KindHTTPFloor = "http-floor"
	KindORTFloor  = "ort-floor"
	ModeClosed    = "closed"
	ModeOpen      = "open"
)

// Latency percentiles in microseconds. In open loop they are measured
// from each request's intended send time, so a stalled server is charged
// for the requests it delayed (no coordinated omission).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ServerStats are figures scraped from the target's /metrics before and
// after the step; zero when the target does not expose them.
type ServerStats struct {
	AvgBatch     float64 `json:"avg_batch"`
	QueueUSAvg   float64 `json:"queue_us_avg"`
	ComputeUSAvg float64 `json:"compute_us_avg"`
	// WakeUSAvg is how long, on average, a request's caller took to run
	// again after another goroutine answered it (at the end of its batch,
	// or on its expiry in the queue): the scheduler's part of the latency,
	// over the requests that were answered so (infergate's /metrics only).
	WakeUSAvg float64 `json:"wake_us_avg,omitempty"`
	// ComputeOnCPU is, over the executions the gateway sampled (one in
	// 64), the CPU time of the thread that ran the backend over their
	// duration: with one intra-op thread on a CPU, the share of ONNX
	// Runtime's time that its thread had a CPU (infergate's /metrics on
	// Linux only; 0 when absent).
	ComputeOnCPU float64 `json:"compute_on_cpu,omitempty"`
	CacheHits    float64 `json:"cache_hits"`
	CacheMisses  float64 `json:"cache_misses"`
	Rejected     float64 `json:"rejected"`
	// From says where the figures come from: "" for infergate's /metrics,
	// ServerStatsFromStatistics for the statistics extension (a Triton
	// server, say), which has no cache misses or rejections to give.
	From string `json:"from,omitempty"`
}

// ServerStatsFromStatistics is ServerStats.From for figures read from
// GET /v2/models/{m}/stats.
const ServerStatsFromStatistics = "statistics"

// TimelinePoint is one interval of a run.
type TimelinePoint struct {
	TS            float64 `json:"t_s"` // seconds since the run's start
	ThroughputRPS float64 `json:"throughput_rps"`
	P50US         float64 `json:"p50_us"`
	P99US         float64 `json:"p99_us"`
	Errors        int64   `json:"errors"`
	// Shed counts the answers of the interval that the server shed
	// (overload runs only).
	Shed int64 `json:"shed,omitempty"`
}

// ShedStats are the requests an overload run's server shed: answered 429
// or 503 with a Retry-After header. Latencies are in microseconds, from
// each request's intended send time; all zero when nothing was shed.
type ShedStats struct {
	Count int64 `json:"count"`
	// Fraction is Count over the run's Requests.
	Fraction float64 `json:"fraction"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	MaxUS    float64 `json:"max_us"`
}

// HealthStats are the readiness probes of an overload run: GET
// /v2/health/ready every 10 ms on a connection of the prober's own,
// those due in the measured window. Failures are probes answered other
// than 200, or not answered within a second. Latencies are in
// microseconds, send to answer, over every probe; a probe slower than
// 10 ms also stands for the probes it held up (HdrHistogram's
// coordinated-omission correction), so a stall of the server counts for
// as long as it lasted.
type HealthStats struct {
	Probes   int64   `json:"probes"`
	Failures int64   `json:"failures"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	MaxUS    float64 `json:"max_us"`
}

// ReloadStats says what the reloads of a --reload-every run were: Loads
// calls of POST /v2/repository/models/{m}/load, one every EveryMS through
// the measured window, alternating the model's configuration with the
// same at max_queue one higher so that each built and swapped in new
// sessions; Failures of them answered with an error (the last one is
// LastError). P50US and MaxUS are how long the load calls took: loading,
// warming and swapping in the new sessions.
type ReloadStats struct {
	EveryMS   float64 `json:"every_ms"`
	Loads     int64   `json:"loads"`
	Failures  int64   `json:"failures"`
	LastError string  `json:"last_error,omitempty"`
	P50US     float64 `json:"p50_us"`
	MaxUS     float64 `json:"max_us"`
}

// HistogramBin counts requests whose latency is at most UpToUS (and above
// the previous bin's bound).
type HistogramBin struct {
	UpToUS float64 `json:"up_to_us"`
	Count  int64   `json:"count"`
}

// Spread is the range of a step's figures over its repetitions.
type Spread struct {
	ThroughputRPS MinMax `json:"throughput_rps"`
	RowsPerS      MinMax `json:"rows_per_s"`
	P50US         MinMax `json:"p50_us"`
	P99US         MinMax `json:"p99_us"`
	P999US        MinMax `json:"p999_us"`
}

// MinMax is the smallest and largest value of a figure.
type MinMax struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Sweep is the outcome of running a series of load levels (concurrencies
// or rates, in increasing order) against a p99 bound: the series stops at
// the first run over the bound or flagged.
type Sweep struct {
	Kind     string  `json:"kind"`
	Model    string  `json:"model"`
	Mode     string  `json:"mode"`
	MaxP99US float64 `json:"max_p99_us"`
	// Best names the run with the highest load that met the bound; empty
	// when none did.
	Best string `json:"best"`
	// BestLoad is Best's offered rate (open loop) or concurrency (closed
	// loop), and BestThroughputRPS what it achieved.
	BestLoad          float64 `json:"best_load"`
	BestThroughputRPS float64 `json:"best_throughput_rps"`
	// StoppedAt names the first run that missed the bound; empty when all
	// met it.
	StoppedAt string `json:"stopped_at,omitempty"`
}

// BatchBin counts executions of one batch size on the server.
type BatchBin struct {
	Size  float64 `json:"size"` // upper bound of the bucket
	Count float64 `json:"count"`
}
