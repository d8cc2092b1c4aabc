package gateway

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// helpTexts are the HELP texts of the families on /metrics, one line
// each, unescaped: what the person paged at 3 a.m. reads in Grafana's
// metric browser. The metrics library writes "# HELP <name>" with no
// text; writeHelp adds these. A family not here keeps its bare line, and
// a test fails, naming it (TestEveryFamilyOnMetricsHasHelp for infergate_
// and nv_ families, TestHelpTextsCoverGoAndProcessMetrics, and
// cmd/infergate's TestServeTLS for those only serve registers): a new
// series gets its text here, in the words of README's "## Metrics".
//
// The go_* and process_* texts say how github.com/VictoriaMetrics/metrics
// (v1.45, go_metrics.go and process_metrics_linux.go) computes them.
var helpTexts = map[string]string{
	// Per model version (registry/metrics.go).
	"infergate_inference_request_success_total":             "Requests of the model version answered with success, cache hits and shadow copies it ran included",
	"infergate_inference_request_failure_total":             "Requests of the model version that failed, by reason: bad_request, overloaded (queue full), displaced (gave its queue place to a request of higher priority), timeout (expired in the queue), canceled, internal",
	"infergate_inference_request_duration_seconds":          "Time the gateway took over each successful request of the model version, from the start of its handling to its answer, in seconds (failures count in infergate_inference_request_failure_total)",
	"infergate_inference_count_total":                       "Rows (the batch dimension) the model version's successful executions ran; cache hits and failed executions are not counted",
	"infergate_inference_exec_count_total":                  "Successful executions (batches) of the model version; infergate_inference_compute_duration_seconds counts failed ones too",
	"infergate_inference_batch_size":                        "Rows in each successful execution of the model version",
	"infergate_inference_queue_duration_seconds":            "Time each request of the model version waited in its queue for its batch to start, in seconds",
	"infergate_inference_compute_duration_seconds":          "Time of each execution of the model version (gathering the batch's inputs, the run, scattering its outputs), failed ones included, in seconds",
	"infergate_inference_wake_duration_seconds":             "Time from another goroutine answering a request of the model version (at the end of its batch or on its expiry in the queue) to its caller running again, in seconds: the Go scheduler's share of the latency",
	"infergate_inference_compute_sampled_seconds_total":     "Time of one execution in 64 of the model version, summed, in seconds; infergate_inference_compute_sampled_cpu_seconds_total over it is the share of that time the thread had a CPU",
	"infergate_inference_compute_sampled_cpu_seconds_total": "CPU time of the thread that ran one execution in 64 of the model version, summed, in seconds (Linux); below infergate_inference_compute_sampled_seconds_total when the CPUs are oversubscribed",
	"infergate_inference_requests_in_flight":                "Requests of the model version being served now, those on loads draining after a swap included",
	"infergate_inference_queue_requests":                    "Requests of the model version waiting in its queue for an instance now",
	"infergate_inference_queue_max_requests":                "Requests the model version's queue holds at most (max_queue), plus one for each idle instance about to take one (so the queue may briefly hold more); past it, requests fail as overloaded",
	"infergate_cache_hits_total":                            "Requests of the model version that the response cache answered",
	"infergate_cache_misses_total":                          "Requests of the model version that the response cache looked up and could not answer",
	"infergate_cache_hit_duration_seconds":                  "Time the gateway took over each request of the model version that the response cache answered, in seconds",
	"infergate_cache_bytes":                                 "Bytes the node's response cache holds now, its entries' costs (their data and about 256 bytes each); at most infergate_cache_max_bytes less its admission counters",
	"infergate_cache_max_bytes":                             "The node's response cache budget (--cache-bytes)",
	"infergate_cache_entries":                               "Entries the node's response cache holds now",
	"infergate_cache_evictions_total":                       "Entries the node's response cache evicted to make room for others, or let go of (an unloaded version's among them)",
	"infergate_cache_rejections_total":                      "Answers the node's response cache did not take in: asked for less often than the entries they would have evicted (a budget too small for the requests that repeat shows here)",

	// The gateway (gateway/server.go, gateway/tls.go).
	"infergate_inference_unrouted_total":                 "Inference requests that reached no version, by reason: model_not_found, version_not_found, model_not_ready",
	"infergate_http_panics_total":                        "HTTP requests and gRPC calls whose handler panicked, answered 500 (gRPC: INTERNAL) and logged",
	"infergate_grpc_requests_total":                      "Calls of the gRPC service (--grpc), by method and status code (OK, InvalidArgument, NotFound, Unavailable, ...)",
	"infergate_grpc_connections_refused_total":           "gRPC connections closed at once because --max-connections were open on --grpc",
	"infergate_grpc_streams_open":                        "ModelStreamInfer streams open on --grpc (at most --max-connections)",
	"infergate_shared_memory_regions":                    "System shared memory regions clients have registered (--shared-memory), at most 1024",
	"infergate_log_lines_total":                          "Lines the server logged at each level, whether the log settings wrote them or not (verbose lines: those written); ERROR lines are failures of the server's own",
	"infergate_log_verbose_level":                        "The log's verbose level (log_verbose_level): 1 writes a line for each request, which costs throughput",
	"infergate_traces_total":                             "Inference requests traced by the trace extension (trace settings) and kept for the trace file, or queued for the OpenTelemetry collector (--trace-mode opentelemetry)",
	"infergate_traces_dropped_total":                     "Traces dropped: more held unwritten than the tracer keeps, the trace file's writer behind, or, in OpenTelemetry mode, the span queue full or an export that failed",
	"infergate_trace_exports_total":                      "Requests that sent spans to the OpenTelemetry collector (--trace-mode opentelemetry), by result: ok, or failed (their traces dropped)",
	"infergate_trace_spans_rejected_total":               "Spans the OpenTelemetry collector refused of exports it took (its answer's partial_success.rejected_spans); spans, not traces",
	"infergate_shared_memory_bytes":                      "Bytes of the shared memory regions registered now (each maps its object from the start to its end)",
	"infergate_http_protocol_errors_total":               "HTTP requests the server could not read: malformed, over --max-body or --max-header-bytes, or timed out while being read",
	"infergate_tls_handshake_errors_total":               "Failed TLS handshakes on --http, by reason: plain_http (a client of http://), client_refused (it does not trust the certificate), client_certificate (missing or not signed by --tls-client-ca), other",
	"infergate_tls_certificate_expiry_timestamp_seconds": "When the certificate in use (--tls-cert) expires, in Unix seconds",
	"infergate_tls_certificate_reload_failing":           "1 when the --tls-cert and --tls-key files could not be loaded at the last look (the certificate in use serves on), else 0",
	"infergate_tls_certificate_untrusted":                "1 while the certificate in use is one the other members would refuse, as --cluster-ca holds their CAs now (its CA dropped from the file before the certificate moved to another): give the node a certificate of a CA in the file, or put its CA back; else 0",
	"infergate_tls_ca_reload_failing":                    "1 while a --tls-client-ca or --cluster-ca file on disk does not load (the CAs loaded before stay in use), else 0",
	"infergate_disk_free_bytes":                          "Free bytes, for unprivileged users, of the filesystem holding path (NaN when it cannot be read)",
	"infergate_disk_free_min_bytes":                      "Free bytes this node keeps on the filesystem holding path (--min-free-disk): below it, uploads, blob pulls and the traffic log are refused",

	// A/B experiments and shadows (registry/experiment.go, registry/shadow.go).
	"infergate_experiment_requests_total":    "Requests the A/B experiment's arm got on this node",
	"infergate_experiment_fallback_total":    "Requests of the arm sent to the production version on this node, the arm's version not being ready here",
	"infergate_experiment_labels_total":      "Feedback labels this node took for predictions of the arm (the arm the feedback names, or the one this node remembers answering its id)",
	"infergate_experiment_label_sum":         "Sum of the feedback labels this node took for predictions of the arm",
	"infergate_experiment_label_square_sum":  "Sum of the squares of the feedback labels this node took for predictions of the arm",
	"infergate_experiment_rewards_total":     "Feedback rewards this node took for predictions of the arm (the arm the feedback names, or the one this node remembers answering its id)",
	"infergate_experiment_reward_sum":        "Sum of the feedback rewards this node took for predictions of the arm",
	"infergate_experiment_reward_square_sum": "Sum of the squares of the feedback rewards this node took for predictions of the arm",
	"infergate_shadow_requests_total":        "Copies of the model's requests for its shadow version, by result: compared, failed, dropped (not run: the shadow queue full or the version busy), not_ready (the version not ready on this node)",
	"infergate_shadow_max_abs_diff":          "For each compared shadow copy, the largest absolute difference between an output value of the shadow and the client's",
	"infergate_shadow_disagreements_total":   "Compared shadow copies whose outputs differ from the client's by more than the tolerance, or in names, types or shapes",

	// Loading models (registry/repository.go).
	"infergate_model_load_total":            "Loads of model versions on this node, by result: success, failure",
	"infergate_model_load_duration_seconds": "Time of each successful load of a model version (reading the file, loading it, its warm-up runs), in seconds",
	"infergate_model_load_failing":          "Versions whose last load failed, and models whose configuration is refused, now; /v2/repository/index says which and why",
	"infergate_models_ready":                "Models with a version ready to serve on this node",

	// The traffic log (trafficlog).
	"infergate_traffic_events_total":          "Events written to the traffic log, by kind: fsynced to disk, or acknowledged by Kafka",
	"infergate_traffic_dropped_total":         "Events the traffic log dropped, by reason: queue_full, too_large, write_error, closed, disk_low (free space under --min-free-disk)",
	"infergate_traffic_log_bytes":             "Bytes the traffic log's segments take on disk",
	"infergate_traffic_queued_bytes":          "Bytes of encoded events waiting for the traffic log's writer (with Kafka: the memory they take in the producer's buffer)",
	"infergate_traffic_write_errors_total":    "Failed writes of the traffic log, to disk or to Kafka",
	"infergate_traffic_sync_duration_seconds": "Time of each flush and fsync of the traffic log's active segment, in seconds",

	// The control plane (cluster/metrics.go).
	"infergate_cluster_is_leader":                "1 when this node is the raft leader, else 0",
	"infergate_cluster_known_leader":             "1 when this node knows a raft leader, else 0",
	"infergate_cluster_voters":                   "Voting members in the raft configuration (0 when it cannot be read)",
	"infergate_cluster_applied_index":            "Index of the last raft log entry this node's state machine applied",
	"infergate_cluster_commit_index":             "Index of the last raft log entry this node knows to be committed",
	"infergate_cluster_last_contact_seconds":     "Seconds since this node last heard from the raft leader: 0 on the leader, -1 when never",
	"infergate_cluster_apply_total":              "Control-plane writes this node put to raft, by result: ok, error (refused by the state machine), not_leader, unknown_outcome",
	"infergate_cluster_apply_duration_seconds":   "Time of each control-plane write this node put to raft, until its outcome, in seconds",
	"infergate_cluster_blob_fetch_total":         "Pulls of model blobs from peers, by result: ok, failed",
	"infergate_cluster_blobs_removed_total":      "Blobs no live version holds, swept from --data/blobs",
	"infergate_cluster_blob_bytes_removed_total": "Bytes of the blobs swept from --data/blobs",
	"infergate_cluster_versions_not_ready":       "Replicated model versions not ready on this node",
	"infergate_cluster_members_unreachable":      "Members not answering: on the leader, those silent to its heartbeats for 1 s or whose heartbeats fail; on a follower, the figure its leader last gave (asked every 2 s, used for up to 30 s; alert on max over the nodes, not sum); on a node that knows no leader, those whose HTTP address missed its last probe",

	// Triton's names (serve --triton-metrics, registry/triton_metrics.go).
	"nv_inference_request_success":           "Requests of the model version answered with success (Triton's name for infergate_inference_request_success_total)",
	"nv_inference_request_failure":           "Requests of the model version that failed, by Triton's reason: REJECTED (overloaded, timeout, displaced), CANCELED, BACKEND (internal), OTHER (bad request)",
	"nv_inference_count":                     "Rows (the batch dimension) the model version's executions ran",
	"nv_inference_exec_count":                "Successful executions (batches) of the model version; infergate_inference_compute_duration_seconds counts failed ones too",
	"nv_inference_pending_request_count":     "Requests of the model version waiting in its queue now",
	"nv_inference_request_duration_us":       "Time the gateway took over the model version's requests, succeeded or failed, summed, in microseconds",
	"nv_inference_queue_duration_us":         "Time the model version's requests waited in its queue, summed, in microseconds",
	"nv_inference_compute_infer_duration_us": "Time of the executions each request of the model version was part of, summed over the requests, in microseconds",
	"nv_cache_num_hits_per_model":            "Requests of the model version that the response cache answered",
	"nv_cache_num_misses_per_model":          "Requests of the model version that the response cache looked up and could not answer",
	"nv_cache_hit_duration_per_model":        "Time spent finding the response cache's entries for the model version and copying them into responses, summed, in microseconds",
	"nv_cache_miss_duration_per_model":       "Time spent on the model version's response cache misses, looking up and storing outputs, summed, in microseconds",

	// The Go runtime: runtime/metrics.
	"go_sched_latencies_seconds":          "Time goroutines waited runnable before they ran, in seconds (runtime/metrics /sched/latencies; no _sum or _count)",
	"go_mutex_wait_seconds_total":         "Time goroutines spent blocked on a sync.Mutex, a sync.RWMutex or a runtime-internal lock, approximately, in seconds",
	"go_gc_mark_assist_cpu_seconds_total": "CPU time goroutines spent helping the garbage collector mark, estimated high, in seconds",
	"go_gc_cpu_seconds_total":             "CPU time spent on garbage collection, estimated high, in seconds",
	"go_gc_pauses_seconds":                "Stop-the-world pauses of the garbage collector, in seconds (runtime/metrics /gc/pauses; no _sum or _count)",
	"go_scavenge_cpu_seconds_total":       "CPU time spent returning unused memory to the OS, estimated high, in seconds",
	"go_memlimit_bytes":                   "The Go runtime's soft memory limit (GOMEMLIMIT; math.MaxInt64 when unset), in bytes",

	// The Go runtime: runtime.MemStats, counting the Go heap only, not
	// what ONNX Runtime allocates.
	"go_memstats_alloc_bytes":          "Bytes of allocated Go heap objects (MemStats.Alloc); ONNX Runtime's memory is not in it",
	"go_memstats_alloc_bytes_total":    "Bytes allocated for Go heap objects since the process started (MemStats.TotalAlloc)",
	"go_memstats_buck_hash_sys_bytes":  "Bytes of memory in the Go runtime's profiling bucket hash tables (MemStats.BuckHashSys)",
	"go_memstats_frees_total":          "Go heap objects freed since the process started (MemStats.Frees)",
	"go_memstats_gc_cpu_fraction":      "Fraction of the available CPU time that the garbage collector used since the process started (MemStats.GCCPUFraction)",
	"go_memstats_gc_sys_bytes":         "Bytes of memory in garbage collection metadata (MemStats.GCSys)",
	"go_memstats_heap_alloc_bytes":     "Bytes of allocated Go heap objects (MemStats.HeapAlloc)",
	"go_memstats_heap_idle_bytes":      "Bytes in idle, unused Go heap spans (MemStats.HeapIdle)",
	"go_memstats_heap_inuse_bytes":     "Bytes in in-use Go heap spans (MemStats.HeapInuse)",
	"go_memstats_heap_objects":         "Allocated Go heap objects (MemStats.HeapObjects)",
	"go_memstats_heap_released_bytes":  "Bytes of Go heap memory returned to the OS (MemStats.HeapReleased)",
	"go_memstats_heap_sys_bytes":       "Bytes of Go heap memory obtained from the OS (MemStats.HeapSys)",
	"go_memstats_last_gc_time_seconds": "When the last garbage collection finished, in Unix seconds (MemStats.LastGC)",
	"go_memstats_lookups_total":        "Pointer lookups performed by the Go runtime (MemStats.Lookups)",
	"go_memstats_mallocs_total":        "Go heap objects allocated since the process started (MemStats.Mallocs)",
	"go_memstats_mcache_inuse_bytes":   "Bytes of allocated mcache structures (MemStats.MCacheInuse)",
	"go_memstats_mcache_sys_bytes":     "Bytes of memory obtained from the OS for mcache structures (MemStats.MCacheSys)",
	"go_memstats_mspan_inuse_bytes":    "Bytes of allocated mspan structures (MemStats.MSpanInuse)",
	"go_memstats_mspan_sys_bytes":      "Bytes of memory obtained from the OS for mspan structures (MemStats.MSpanSys)",
	"go_memstats_next_gc_bytes":        "Go heap size at which the next garbage collection is due, in bytes (MemStats.NextGC)",
	"go_memstats_other_sys_bytes":      "Bytes of memory in miscellaneous off-heap Go runtime allocations (MemStats.OtherSys)",
	"go_memstats_stack_inuse_bytes":    "Bytes in goroutine stack spans (MemStats.StackInuse)",
	"go_memstats_stack_sys_bytes":      "Bytes of stack memory obtained from the OS (MemStats.StackSys)",
	"go_memstats_sys_bytes":            "Bytes of memory the Go runtime obtained from the OS (MemStats.Sys); ONNX Runtime's memory is not in it",

	// The Go runtime: the rest.
	"go_cgo_calls_count":     "Cgo calls the process made, ONNX Runtime's included (runtime.NumCgoCall)",
	"go_cpu_count":           "Logical CPUs the process may use (runtime.NumCPU)",
	"go_gc_duration_seconds": "Stop-the-world pauses of the garbage collector, in seconds: quantiles over the last 256 (MemStats.PauseNs, slots not used yet count as 0), sum and count over all",
	"go_gc_forced_count":     "Garbage collections the program forced by calling runtime.GC (MemStats.NumForcedGC)",
	"go_gomaxprocs":          "GOMAXPROCS: how many OS threads may run Go code at once",
	"go_goroutines":          "Goroutines that exist now",
	"go_threads":             "OS threads the Go runtime created (runtime.ThreadCreateProfile)",
	"go_info":                "The Go version that built the binary, in the version label; always 1",
	"go_info_ext":            "The compiler, GOARCH, GOOS and GOROOT that built the binary, in labels; always 1",

	// The process: /proc/self (Linux) and its cgroup.
	"process_cpu_seconds_system_total":              "CPU time the process spent in the kernel, in seconds (/proc/self/stat stime)",
	"process_cpu_seconds_total":                     "CPU time the process spent, in user mode and in the kernel, in seconds",
	"process_cpu_seconds_user_total":                "CPU time the process spent in user mode, in seconds (/proc/self/stat utime)",
	"process_major_pagefaults_total":                "Page faults of the process that read a page from disk",
	"process_minor_pagefaults_total":                "Page faults of the process served without reading from disk",
	"process_num_threads":                           "OS threads of the process, ONNX Runtime's included",
	"process_open_fds":                              "File descriptors the process has open: connections (clients', peers', raft's), segment and model files",
	"process_max_fds":                               "The process's limit of open file descriptors (RLIMIT_NOFILE); past it, connections are refused: keep process_open_fds well below it",
	"process_resident_memory_bytes":                 "Resident set size of the process, ONNX Runtime's memory included, in bytes",
	"process_start_time_seconds":                    "When the process started, in Unix seconds",
	"process_virtual_memory_bytes":                  "Virtual memory size of the process, in bytes",
	"process_virtual_memory_peak_bytes":             "Peak virtual memory size of the process, in bytes (VmPeak)",
	"process_resident_memory_peak_bytes":            "Peak resident set size of the process, in bytes (VmHWM)",
	"process_resident_memory_anon_bytes":            "Resident anonymous memory of the process (heaps, stacks), in bytes (RssAnon)",
	"process_resident_memory_file_bytes":            "Resident file-backed memory of the process (mapped files and libraries), in bytes (RssFile)",
	"process_resident_memory_shared_bytes":          "Resident shared memory of the process, in bytes (RssShmem)",
	"process_io_read_bytes_total":                   "Bytes the process read through read system calls, page cache hits included (/proc/self/io rchar)",
	"process_io_written_bytes_total":                "Bytes the process wrote through write system calls (/proc/self/io wchar)",
	"process_io_read_syscalls_total":                "Read system calls of the process (/proc/self/io syscr)",
	"process_io_write_syscalls_total":               "Write system calls of the process (/proc/self/io syscw)",
	"process_io_storage_read_bytes_total":           "Bytes the process caused to be read from storage (/proc/self/io read_bytes)",
	"process_io_storage_written_bytes_total":        "Bytes the process caused to be written to storage (/proc/self/io write_bytes)",
	"process_pressure_cpu_waiting_seconds_total":    "Time some tasks of the process's cgroup waited for a CPU, since the process started, in seconds (PSI cpu some)",
	"process_pressure_cpu_stalled_seconds_total":    "Time all non-idle tasks of the process's cgroup waited for a CPU at once, since the process started, in seconds (PSI cpu full)",
	"process_pressure_io_waiting_seconds_total":     "Time some tasks of the process's cgroup waited for I/O, since the process started, in seconds (PSI io some)",
	"process_pressure_io_stalled_seconds_total":     "Time all non-idle tasks of the process's cgroup waited for I/O at once, since the process started, in seconds (PSI io full)",
	"process_pressure_memory_waiting_seconds_total": "Time some tasks of the process's cgroup waited for memory, since the process started, in seconds (PSI memory some)",
	"process_pressure_memory_stalled_seconds_total": "Time all non-idle tasks of the process's cgroup waited for memory at once, since the process started, in seconds (PSI memory full)",
	"process_cgroup_cpu_throttled_seconds_total":    "Time the process's cgroup was throttled by its CPU quota, since the process started, in seconds (cpu.stat)",
}

// helpLines maps each family of helpTexts to what writeHelp puts after
// its name: a space and the text, escaped.
var helpLines = escapeHelp(helpTexts)

// escapeHelp returns texts as writeHelp takes them: each text after a
// space, with backslashes and line feeds escaped as the Prometheus text
// format wants in a HELP line.
func escapeHelp(texts map[string]string) map[string]string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	m := make(map[string]string, len(texts))
	for name, text := range texts {
		m[name] = " " + r.Replace(text)
	}
	return m
}

var (
	commentPrefix = []byte("# ")
	helpPrefix    = []byte("# HELP ")
	typePrefix    = []byte("# TYPE ")
	gaugeTotal    = []byte("_total gauge")
)

// writeHelp writes src, Prometheus text, to w with help's text after the
// name of each "# HELP <name>" line that has no text of its own; help
// maps a family to what escapeHelp makes of its text. A "# TYPE
// <name>_total gauge" line says counter: the metrics library types the
// process_io_*_total counters (/proc/self/io) as gauges, on which a
// collector that converts by type computes no rate. Everything else,
// families help lacks included, goes to w byte for byte.
func writeHelp(w io.Writer, src []byte, help map[string]string) {
	done := 0 // src[:done] has gone to w
	for i := 0; ; {
		j := bytes.Index(src[i:], commentPrefix)
		if j < 0 {
			break
		}
		j += i
		line := src[j:]
		if n := bytes.IndexByte(line, '\n'); n >= 0 {
			line = line[:n]
		}
		i = j + len(line) // the line's end
		if j > 0 && src[j-1] != '\n' {
			i = j + len(commentPrefix)
			continue // inside a line, in a label value say
		}
		if bytes.HasPrefix(line, typePrefix) {
			if bytes.HasSuffix(line, gaugeTotal) {
				w.Write(src[done : i-len("gauge")])
				io.WriteString(w, "counter")
				done = i
			}
			continue
		}
		name, ok := bytes.CutPrefix(line, helpPrefix)
		if !ok || bytes.IndexByte(name, ' ') >= 0 {
			continue // another comment, or a text already
		}
		text, ok := help[string(name)] // no allocation: Go looks up []byte keys in place
		if !ok {
			continue
		}
		w.Write(src[done:i])
		io.WriteString(w, text)
		done = i
	}
	w.Write(src[done:])
}

// scrapeBufs holds the buffers /metrics writes the metrics library's text
// into before writeHelp copies it into the response. Pooled, a scrape
// allocates no more than it did before writeHelp; a new buffer each time
// costs about 50 KB more a scrape (BenchmarkMetricsScrape).
var scrapeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
