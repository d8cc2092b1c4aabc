// Package bench measures infergate the way a performance engineer would
// trust: closed- and open-loop load timed from each request's intended send
// time, one HDR histogram per worker merged at the end, every response
// checked, the client's own CPU use reported, server-side figures scraped
// from /metrics, and the floors (a bare HTTP server, ONNX Runtime
// in-process) measured in the same run so that ratios mean something.
//
// bench is a client: it talks to gateways over HTTP through oip and never
// imports gateway. It imports engine only for the ort-floor, and
// trainer/onnx for the bytes of the demo models.
//
// # Entry points
//
// Measure runs one model of one gateway at a list of load levels (and the
// floors at the same levels); RunSuite runs the standard suite, starting
// its own gateway unless given one. Both return a Report (report.go, whose
// JSON names are fixed), which WriteTable, SaveJSON and SaveHTML write out.
// With Options.Repeat above 1, Measure repeats each step in a row, while
// RunSuite runs all its steps once per round (runRounds; its overload pair
// follows the rounds, repeated in a row), and CheckTargets judges each
// target on each round's own figures, by the round with the median margin.
//
// # Load
//
// A step warms up, then measures for a fixed window; each is bounded in
// time (and optionally in requests) and ends by itself. In closed loop, N
// workers each send a request and wait for its answer. In open loop, a
// pacer releases each request at its intended time (evenly spaced, or with
// exponential gaps) to a free worker, starting workers as needed up to
// the in-flight bound; latency is measured from the intended time, so
// when the client or the server falls behind the delay is charged to the
// requests it held up (no coordinated omission). Requests sent a
// millisecond or more late are counted (Run.Late); those still due when
// the window closes with every in-flight slot taken are errors of kind
// not_sent. The pacer sleeps its last stretch with nanosleep(2): Go's
// timers wake about a millisecond late on Linux, which would bunch the
// schedule into bursts.
//
// Rates count the requests sent in the window. In closed loop they are
// divided by the window's length: each answer sends the next request, so
// those are the requests its answers started, and one that takes long
// (a timeout) does not stretch the window. In open loop they are divided
// by the span of their answers served (answered or shed), from the first
// to the last, when that is longer than the window: a server slower than
// the offered rate is measured at its own pace while it works off its
// backlog, and one that keeps up is not charged for its latency. A step
// cut short by --max-requests is measured the same way up to where it was
// cut: in closed loop until the limit was reached, in open loop until the
// next request would have been due, or over its answers' span when that
// is longer. A request that failed stretches no window.
//
// Each worker records into a recorder (an HDR histogram of µs, 1 µs to
// 60 s, 3 significant figures, plus one 8-byte sample per request for the
// timeline); beyond 64 workers, workers share recorders round-robin so
// that 4,096 requests in flight do not cost 4,096 histograms. Latency
// counts successful requests only; errors are counted by kind. Request
// bodies are encoded before the step and cycled through; the answer's time
// is taken before it is decoded and checked, so checking stays out of the
// latency (in closed loop it is still part of each worker's cycle). A run
// with more than 1% errors is flagged (Run.Flagged) and never reported as
// clean.
//
// Client CPU is getrusage over the step divided by its wall time, in
// cores. The ort-floor runs in this process, and so does the http-floor
// when there is no executable to start it as a process of its own: for
// them it includes the server's share. Server CPU is the server process's
// CPU time over the measured window, in cores and per request: from
// /proc for an http-floor process, from process_cpu_seconds_total in the
// gateway's /metrics (so also for a --target elsewhere). Where the load
// generator sets the pace, throughput ratios understate the gateway's
// efficiency and CPU per request against the http-floor's shows it; an
// idle-waiting server pays more per request than a saturated one, so the
// comparison is fairest between servers loaded alike (the server CPU
// column says how loaded each was).
//
// # Overload
//
// With Options.Overload at X, the closed-loop steps first measure the rate
// the gateway sustains (the highest req/s of a clean closed-loop run);
// then an open-loop step offers X times it (gateway-overload/model@Xx).
// There a 429 or 503 answer is shed, not an error: it is counted apart,
// with its latency in an HDR histogram of its own per recorder, and must
// carry a Retry-After header (else it is an error of kind
// shed_without_retry_after). The accepted (200) answers keep the usual
// figures. A prober on a connection of its own GETs /v2/health/ready every
// 10 ms through the step and records the probes of the measured window. The
// run is flagged when errors other than shedding exceed 1%, the shed p99
// exceeds 10 ms, a probe fails or the probes' p99 exceeds 50 ms, the
// accepted p99 exceeds Options.MaxAcceptedP99, or the client sent less
// than 95% of the offered rate (Run.Shed, Run.Health, flagOverload).
//
// # Server figures
//
// The target's /metrics is read when the measured window opens and after
// the step; the counters' growth, each series from its own value before
// and summed over the model's versions, gives the average batch (rows
// per execution), queue and compute time per execution, cache hits and
// misses, overload rejections and the batch size distribution. A version
// reloaded during the step (its series made again: one of its counters
// went down) counts all of its values after as growth. A run meant to
// miss the cache that was answered from it, or a run meant to be
// unbatched that the server batched, is flagged.
//
// # Floors
//
// The http-floor replays one real answer of the gateway (same body and
// headers) from a bare fasthttp server on loopback, driven by the same
// client code; the ort-floor runs the same model bytes through engine at
// batch sizes 1, 2, 4, ... with the gateway's instances and intra-op
// threads, one goroutine per instance. When the gateway reports the
// sha256 of the model it serves, a differing file flags the ort-floor.
//
// # HTML
//
// SaveHTML calls the writer that html.go installs in the package variable
// writeHTML; without it SaveHTML returns ErrNoHTML.
package bench
