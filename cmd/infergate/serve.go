package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with --pprof-addr
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
	"github.com/infergate/infergate/trafficlog"
	"github.com/infergate/infergate/trafficlog/kafka"
)

// serveConfig is everything `infergate serve` is told by its flags.
type serveConfig struct {
	httpAddr        string
	grpcAddr        string
	modelsDir       string
	dataDir         string
	ortLib          string
	load            string
	pollInterval    time.Duration
	shutdownTimeout time.Duration
	shutdownDelay   time.Duration
	dryRun          bool
	maxQueueDelay   time.Duration
	pprofAddr       string
	monitorAddr     string
	runtimeCPUs     string
	tritonMetrics   bool
	reservation     *cpuReservation // from runtimeCPUs
	defaults        registry.ModelConfig
	gateway         gateway.Config
	traffic         trafficlog.Config
	kafka           kafka.Config
	kafkaBrokers    string
	kafkaSec        *kafkaSecurityFlags
	minFreeDisk     int64

	nodeID string
	// traceOTelResource is --trace-otel-resource's key=value pairs.
	traceOTelResource repeatedList
	raftAddr          string
	join              string
	advertiseHTTP     string
	cluster           cluster.Config

	// TLS: the files named by the flags, and what validate loads from them.
	tlsCert, tlsKey, tlsClientCA, clusterCA string
	certs                                   *certs.Reloader // nil: plain HTTP
	// The CA files, each read again when it changes: --cluster-ca's and
	// --tls-client-ca's (nil when not given), and the pool of the CAs
	// that clients of --http must chain to, the members' included (nil:
	// no client certificates asked for).
	clusterCAs, tlsClientCAs *certs.CAs
	clientCAs                func() *x509.CertPool
	logf                     func(format string, args ...any)
	// log is what the log writes at start (the --log- flags; logVerbose
	// is --log-verbose, checked into it), which POST /v2/logging changes
	// at run time.
	log        logging.Settings
	logVerbose uint
}

func serveFlags(fs *flag.FlagSet) *serveConfig {
	c := &serveConfig{gateway: gateway.DefaultConfig()}
	fs.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "address to serve HTTP on (OIP v2, repository API, /metrics, status page at /)")
	fs.StringVar(&c.modelsDir, "models", "models", "model repository in Triton layout: DIR/<model>/<version>/model.onnx, optional DIR/<model>/config.json or config.pbtxt")
	fs.StringVar(&c.dataDir, "data", "data", "directory for this node's state; one server per directory")
	fs.StringVar(&c.ortLib, "ort-lib", "", "path of libonnxruntime.so (default: $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 from \"make setup\")")
	fs.StringVar(&c.load, "load", "*", "models to load at start: \"*\" for every model in the repository, or a comma-separated list (not with --poll-interval, which loads every model); others load through POST /v2/repository/models/{name}/load")
	fs.DurationVar(&c.pollInterval, "poll-interval", 0, "rescan the repository this often and load new or changed versions, unload removed models (0 disables; then use the repository API); a model unloaded through the API stays unloaded until the API loads it")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to wait for in-flight requests before cutting them off (and exiting 1), and again for the models to unload")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long to keep serving while /v2/health/ready reports 503, so load balancers stop sending first")
	fs.BoolVar(&c.dryRun, "dry-run", false, "validate flags, the library and the repository, then exit")
	fs.StringVar(&c.grpcAddr, "grpc", "", "also serve the protocol's gRPC service (inference.GRPCInferenceService, as KServe and Triton clients speak it) and gRPC's health service on this address (e.g. 127.0.0.1:8081); over TLS with the --tls-* flags, like --http; off when empty")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "serve Go's /debug/pprof profiles on this separate address (e.g. 127.0.0.1:6060); off when empty")
	fs.StringVar(&c.monitorAddr, "monitor-http", "", "serve /metrics, /v2/health/live and /v2/health/ready over plain HTTP on this separate address (as Triton's metrics port), for Prometheus and probes that cannot present --tls-client-ca's certificates; /metrics then leaves --http. Keep it where only they reach it")
	fs.StringVar(&c.runtimeCPUs, "runtime-cpus", "", "CPUs to reserve for ONNX Runtime, in the kernel's notation (e.g. 7 or 6-7; Linux): every batch then runs on a worker thread bound to them, and nothing else of this process runs there, so that HTTP work neither takes their time nor evicts the model from their caches. A lone request pays a thread wake-up for it. Size it to the sum over the models of instances × intra-op threads")

	fs.StringVar(&c.defaults.Device, "device", "cpu", "execution provider for models whose config.json sets none: \"cpu\" or \"cuda:N\"")
	fs.IntVar(&c.defaults.Instances, "instances", 1, "ONNX Runtime sessions per model version run in parallel (config.json: instances)")
	fs.IntVar(&c.defaults.IntraOpThreads, "intra-op-threads", 1, "ONNX Runtime intra-op threads per session (config.json: intra_op_threads)")
	fs.IntVar(&c.defaults.InterOpThreads, "inter-op-threads", 1, "ONNX Runtime inter-op threads per session (config.json: inter_op_threads)")
	fs.Int64Var(&c.defaults.MaxBatchSize, "max-batch-size", 64, "most rows the dynamic batcher packs into one execution; 1 turns batching off; a larger request runs alone (config.json: max_batch_size)")
	fs.DurationVar(&c.maxQueueDelay, "max-queue-delay", 0, "how long an idle instance may wait to fill a batch; 0 dispatches at once, best on CPUs (config.json: dynamic_batching.max_queue_delay_us)")
	fs.Int64Var(&c.defaults.MaxOutputBytes, "max-output-bytes", 256<<20, "most bytes the outputs of one execution may take; a request whose outputs would be larger gets 413 (config.json: max_output_bytes)")
	fs.IntVar(&c.defaults.MaxQueue, "max-queue", 256, "requests per model version that may wait for an instance; beyond it requests get 503 with Retry-After (config.json: max_queue)")

	fs.IntVar(&c.gateway.MaxBodyBytes, "max-body", c.gateway.MaxBodyBytes, "largest request body in bytes; larger ones get 413")
	fs.IntVar(&c.gateway.MaxHeaderBytes, "max-header-bytes", c.gateway.MaxHeaderBytes, "largest request line and headers in bytes, which every connection keeps a buffer of; larger ones get 431")
	fs.BoolVar(&c.tritonMetrics, "triton-metrics", false, "also export each version's series under Triton's names on /metrics (nv_inference_request_success, nv_inference_request_failure, nv_inference_count, nv_inference_exec_count, nv_inference_pending_request_count, nv_inference_*_duration_us, nv_cache_*), so that dashboards and alerts written for Triton read this gateway; computed when scraped, at no cost to requests")
	fs.BoolVar(&c.gateway.StrictReadiness, "strict-readiness", false, "report not ready (GET /v2/health/ready 503, naming it) while a model this node should serve serves nothing here because it failed here, as Triton's --strict-readiness does, so that a load balancer sends its requests to nodes that serve it; models being fetched or loaded, or unloaded on purpose, do not count. Beware: a model that fails on every node then takes every node out")
	fs.BoolVar(&c.gateway.SharedMemory, "shared-memory", false, "serve Triton's system shared memory extension (/v2/systemsharedmemory, and over gRPC): clients on this host pass tensors through regions of their /dev/shm objects, which the server maps read-write; any client allowed to infer may then read and write any /dev/shm object this server's user can open, so turn it on only where the clients are trusted (as Triton's --allow-client-shm)")
	fs.BoolVar(&c.gateway.CompressResponses, "compress-responses", false, "compress infer responses of 1 KiB or more with gzip or deflate when the request's Accept-Encoding takes them, as Triton does: less bandwidth for large outputs, at 6 to 13 µs of server CPU a KiB (many HTTP libraries send Accept-Encoding: gzip unasked, hence off by default)")
	fs.Int64Var(&c.gateway.CacheBytes, "cache-bytes", c.gateway.CacheBytes, "response cache budget for the node, shared by the models whose config.json sets response_cache.enable, from 64 KiB up to the machine's memory; 0 disables it")
	fs.IntVar(&c.gateway.MaxConnections, "max-connections", c.gateway.MaxConnections, "most concurrent client connections")
	fs.DurationVar(&c.gateway.RequestTimeout, "request-timeout", c.gateway.RequestTimeout, "longest an inference may wait and run, unless the request's timeout parameter asks for less")
	fs.StringVar(&c.gateway.Trace.File, "trace-file", "", "write the traces of Triton's trace extension to this file (with --trace-log-frequency N, to FILE.0, FILE.1, ... of N traces each); without it the trace settings can be read but tracing cannot be turned on")
	fs.StringVar(&c.gateway.Trace.Level, "trace-level", c.gateway.Trace.Level, "trace inference requests from the start: OFF or TIMESTAMPS (needs --trace-file, or --trace-mode opentelemetry); POST /v2/trace/setting changes it at run time")
	fs.Int64Var(&c.gateway.Trace.Rate, "trace-rate", c.gateway.Trace.Rate, "trace one inference request in this many (the first included); with --trace-mode opentelemetry, the requests whose caller sampled them (traceparent) are traced at any rate, and 0 traces only those")
	fs.StringVar(&c.gateway.Trace.Mode, "trace-mode", gateway.TraceModeTriton, "where traces go: triton (--trace-file, Triton's trace format) or opentelemetry (spans sent to the OpenTelemetry collector at --trace-otel-url over OTLP/HTTP, a request that carries a W3C traceparent joining its caller's trace)")
	fs.StringVar(&c.gateway.Trace.OTelURL, "trace-otel-url", "", "with --trace-mode opentelemetry: the collector's OTLP/HTTP traces endpoint (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else "+gateway.DefaultOTelURL+"); OTEL_EXPORTER_OTLP_[TRACES_]HEADERS and _COMPRESSION (gzip) are read too")
	fs.Var(traceConfigFlag{trace: &c.gateway.Trace, resource: &c.traceOTelResource}, "trace-config", "Triton's spelling of the trace settings, SETTING=VALUE: rate, level, count, mode, triton,file, triton,log-frequency, opentelemetry,url, opentelemetry,resource (repeat the flag for more); each sets what its --trace- flag does, a later flag winning")
	fs.Var(&c.traceOTelResource, "trace-otel-resource", "with --trace-mode opentelemetry: a resource attribute of the spans, key=value (repeat the flag for more), beyond service.name=infergate, service.version and host.name; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read too, the flag winning")
	fs.Int64Var(&c.gateway.Trace.Count, "trace-count", c.gateway.Trace.Count, "stop tracing after this many traces; -1 (or 0) is no limit")
	fs.Int64Var(&c.gateway.Trace.LogFrequency, "trace-log-frequency", c.gateway.Trace.LogFrequency, "write the traces to --trace-file.N every this many traces, at most 65536; 0 writes them all to --trace-file when --trace-count runs out, when the settings change through the API, and at shutdown")
	c.log = logging.DefaultSettings()
	fs.BoolVar(&c.log.Info, "log-info", c.log.Info, "write the log's INFO lines (what the server does: loads, joins, shutdown steps, admin changes); POST /v2/logging changes it at run time, as --log-warning, --log-error, --log-verbose and --log-format")
	fs.BoolVar(&c.log.Warning, "log-warning", c.log.Warning, "write the log's WARNING lines (what degrades the service or will, each saying what to do)")
	fs.BoolVar(&c.log.Error, "log-error", c.log.Error, "write the log's ERROR lines (failures of the server's own: a request it failed, a write that lost data)")
	fs.UintVar(&c.logVerbose, "log-verbose", 0, "1 writes a VERBOSE line for each HTTP request and gRPC call (client, method, path, status, time taken, bytes, and the version that answered), at some cost in throughput; 0 none")
	fs.StringVar(&c.gateway.LogFile, "log-file", "", "append the log to this file instead of writing it to standard error (opened once: a rotation that moves the file needs a restart, one that copies and truncates it does not); /v2/logging reports it as log_file and cannot move it")
	fs.StringVar(&c.log.Format, "log-format", c.log.Format, "the time stamp of log lines: default (local time, 2006/01/02 15:04:05.000000) or ISO8601 (UTC, 2006-01-02T15:04:05.000000Z)")
	fs.DurationVar(&c.gateway.SlowRequests, "slow-request-log", c.gateway.SlowRequests, "log each inference request that takes this long or more (from when the request has been read until its answer is ready to send), at most one line a second per model version, saying how many more there were: its time in the queue, in its batch's run (and the batch's rows), and the rest (decoding, checks, the response), how it ended, its id (and X-Request-Id and traceparent headers) and its client; 0 turns it off")
	fs.DurationVar(&c.gateway.ReadTimeout, "read-timeout", c.gateway.ReadTimeout, "longest time to read one request")
	fs.DurationVar(&c.gateway.WriteTimeout, "write-timeout", c.gateway.WriteTimeout, "longest time to write one response; on a backup's stream (GET /v1/cluster/backup), longest time one write may wait for the client to read")
	fs.DurationVar(&c.gateway.IdleTimeout, "idle-timeout", c.gateway.IdleTimeout, "close keep-alive connections idle this long")
	fs.Int64Var(&c.minFreeDisk, "min-free-disk", 64<<20, "free space in bytes this node keeps on the filesystems of --data and --traffic-dir: below it, model uploads, blob pulls from peers and the traffic log are refused (507, or dropped and counted), so that raft's log and the node's state can still be written; 0 disables the check (infergate_disk_free_bytes reports the free space either way)")
	c.traffic = trafficlog.DefaultConfig()
	fs.Float64Var(&c.gateway.TrafficPercent, "traffic-percent", 0, "log this percentage (0 to 100) of the predictions, inputs and outputs, in the traffic log, for the trainer; above 0 it also takes clients' feedback (POST /v2/models/{m}/feedback) and gives every infer response an id (0: no traffic log)")
	fs.StringVar(&c.traffic.Dir, "traffic-dir", "", "directory of the traffic log (default: <--data>/traffic)")
	fs.Int64Var(&c.traffic.MaxBytes, "traffic-max-bytes", c.traffic.MaxBytes, "the traffic log's byte budget on disk: its oldest segments are deleted beyond it")
	fs.Int64Var(&c.traffic.SegmentBytes, "traffic-segment-bytes", c.traffic.SegmentBytes, "size of one traffic log segment file, the unit of deletion (64 KiB or more); a sampled request or a feedback call larger than min(4 MiB, this) is not logged")
	c.kafka = kafka.DefaultConfig()
	fs.StringVar(&c.kafkaBrokers, "traffic-kafka-brokers", "", "keep the traffic log in a Kafka topic instead of --traffic-dir: seed brokers, host:port, comma-separated; every node may write the same topic (TLS and SASL: --traffic-kafka-tls, --traffic-kafka-sasl)")
	fs.StringVar(&c.kafka.Topic, "traffic-kafka-topic", "infergate-traffic", "the Kafka topic of the traffic log, which must exist")
	c.kafkaSec = addKafkaSecurityFlags(fs, "traffic-kafka-")

	c.cluster = cluster.DefaultConfig()
	fs.StringVar(&c.nodeID, "node-id", "", "this node's name in the cluster (default: the one stored in --data, else a new random one)")
	fs.StringVar(&c.raftAddr, "cluster", "", "raft address (IP:port) peers reach this node on; empty: a lone node on a loopback port chosen at start (give a fixed address before other nodes join it)")
	fs.StringVar(&c.join, "join", "", "base URL of a cluster member to join through on first start (e.g. http://10.0.0.5:8080, https:// in a cluster over TLS); without it a fresh --data bootstraps a new one-node cluster")
	fs.StringVar(&c.advertiseHTTP, "advertise-http", "", "base URL peers reach this node's HTTP on (default: http://<--http address>, https:// with --tls-cert; required when --http listens on 0.0.0.0)")
	fs.StringVar(&c.gateway.AdminToken, "admin-token", "", "bearer token required by the admin API (/v1, repository load/unload) and by cluster peers (default $INFERGATE_ADMIN_TOKEN); without it the admin API answers loopback clients only")
	fs.StringVar(&c.gateway.InferenceToken, "inference-token", "", "bearer token required by /v2/models/... calls (default $INFERGATE_INFERENCE_TOKEN); empty leaves inference open")
	fs.BoolVar(&c.cluster.RegisterLocal, "register-local-models", false, "when this node bootstraps a new cluster, register the models it serves from --models in it, so that nodes joining later serve them too (the versions each model's version_policy serves; the highest becomes production, which after a lost --data may be a version the cluster rolled back: restore --data from a backup instead); otherwise they stay local to this node (files, polling and the repository API manage them) and only models uploaded through /v1 are the cluster's")
	fs.IntVar(&c.cluster.MaxVoters, "max-voters", c.cluster.MaxVoters, "voters the cluster admits, 1 to 9 (3 or 5 are the usual: a majority of them must answer for writes); nodes joining beyond them are non-voters, which serve all the same")

	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS on --http with this PEM certificate (the chain after the leaf; with --tls-key); the files are read again when they change, so a rotated certificate takes effect at the next handshake")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "require every client of --http to present a certificate signed by one of the CAs in this PEM file (mutual TLS): inference, admin tools, peers and health probes alike; the file is read again when it changes, so a CA added or dropped applies to the next handshakes")
	fs.StringVar(&c.clusterCA, "cluster-ca", "", "run the cluster over mutual TLS: raft and the calls between peers present --tls-cert and accept only members whose certificate a CA in this PEM file signed; each member's certificate must name its --cluster IP and its --advertise-http host. Needed with --tls-cert whenever other nodes may join. The file is read again when it changes, so a CA added or dropped applies to the next connections")
	return c
}

// checkLog checks the --log- flags, before the log is made with them.
func (c *serveConfig) checkLog() error {
	if err := c.log.Validate(); err != nil {
		return fmt.Errorf("--log-format: %w", err)
	}
	if c.logVerbose > 1 {
		return fmt.Errorf("--log-verbose %d: use 0 (no verbose lines) or 1 (a line for each request)", c.logVerbose)
	}
	c.log.VerboseLevel = uint32(c.logVerbose)
	return nil
}

func (c *serveConfig) validate() error {
	if err := checkListenAddr(c.httpAddr); err != nil {
		return fmt.Errorf("--http %q: %w", c.httpAddr, err)
	}
	if c.monitorAddr != "" {
		if err := checkListenAddr(c.monitorAddr); err != nil {
			return fmt.Errorf("--monitor-http %q: %w", c.monitorAddr, err)
		}
		c.gateway.MonitorOnly = true
	}
	if c.pprofAddr != "" {
		if err := checkListenAddr(c.pprofAddr); err != nil {
			return fmt.Errorf("--pprof-addr %q: %w", c.pprofAddr, err)
		}
	}
	if c.grpcAddr != "" {
		if err := checkListenAddr(c.grpcAddr); err != nil {
			return fmt.Errorf("--grpc %q: %w", c.grpcAddr, err)
		}
		if _, port, _ := net.SplitHostPort(c.grpcAddr); c.grpcAddr == c.httpAddr && port != "0" {
			return fmt.Errorf("--grpc %q is --http's address too; give gRPC a port of its own", c.grpcAddr)
		}
	}
	// In config.json 0 stands for the node's value; the node's own
	// values are counts and sizes, so 0 (or less) is a mistake to name,
	// not a default to take in silence. Earlier releases took 0 (the
	// traffic sizes: anything below 1) for the default, so a command line
	// carried over in an upgrade is told how to keep what it ran with.
	def := serveFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	for _, f := range []struct {
		flag   string
		v, def int64
	}{
		{"instances", int64(c.defaults.Instances), int64(def.defaults.Instances)},
		{"intra-op-threads", int64(c.defaults.IntraOpThreads), int64(def.defaults.IntraOpThreads)},
		{"inter-op-threads", int64(c.defaults.InterOpThreads), int64(def.defaults.InterOpThreads)},
		{"max-batch-size", c.defaults.MaxBatchSize, def.defaults.MaxBatchSize},
		{"max-output-bytes", c.defaults.MaxOutputBytes, def.defaults.MaxOutputBytes},
		{"traffic-max-bytes", c.traffic.MaxBytes, def.traffic.MaxBytes},
		{"traffic-segment-bytes", c.traffic.SegmentBytes, def.traffic.SegmentBytes},
	} {
		if f.v < 1 {
			msg := fmt.Sprintf("--%s %d: use 1 or more, or leave the flag out for its default, %d (earlier releases took 0 for it)", f.flag, f.v, f.def)
			if f.flag == "intra-op-threads" {
				msg += "; Triton's 0, ONNX Runtime's own choice, is a thread per core: give their number"
			}
			return errors.New(msg)
		}
	}
	if st, err := os.Stat(c.dataDir); err == nil && !st.IsDir() {
		return fmt.Errorf("--data %s is a file; give a directory for this node's state", c.dataDir)
	}
	if c.defaults.MaxQueue < 1 {
		// In config.json 0 means "take the node's"; the node's own
		// bound must be one.
		return fmt.Errorf("--max-queue %d: use 1 to 1048576", c.defaults.MaxQueue)
	}
	if c.pollInterval < 0 || (c.pollInterval > 0 && c.pollInterval < 100*time.Millisecond) {
		return fmt.Errorf("--poll-interval %s: use 0 (off) or at least 100ms", c.pollInterval)
	}
	if c.shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout %s must be positive", c.shutdownTimeout)
	}
	if c.shutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay %s is negative; use 0 (none) or a duration", c.shutdownDelay)
	}
	if c.maxQueueDelay < 0 || c.maxQueueDelay > 10*time.Second {
		return fmt.Errorf("--max-queue-delay %s: use 0 to 10s", c.maxQueueDelay)
	}
	if c.maxQueueDelay > 0 {
		c.defaults.DynamicBatching = &registry.DynamicBatching{MaxQueueDelayUS: new(c.maxQueueDelay.Microseconds())}
	}
	if err := c.defaults.Validate(); err != nil {
		return fmt.Errorf("model defaults: %w", err)
	}
	// Tokens come from the environment unless given: a default would
	// print them in --help.
	if c.gateway.AdminToken == "" {
		c.gateway.AdminToken = os.Getenv("INFERGATE_ADMIN_TOKEN")
	}
	if c.gateway.InferenceToken == "" {
		c.gateway.InferenceToken = os.Getenv("INFERGATE_INFERENCE_TOKEN")
	}
	if c.runtimeCPUs != "" {
		r, err := reserveCPUs(c.runtimeCPUs)
		if err != nil {
			return err
		}
		c.reservation = r
	}
	if err := c.loadTLS(); err != nil {
		return err
	}
	if c.join != "" && c.raftAddr == "" {
		return errors.New("--join needs --cluster: the raft address (IP:port) the other nodes reach this one on")
	}
	if c.join != "" && c.gateway.AdminToken == "" {
		return errors.New("--join needs --admin-token (or INFERGATE_ADMIN_TOKEN): nodes authenticate each other with it")
	}
	if c.join != "" && c.cluster.RegisterLocal {
		return errors.New("--register-local-models acts only when a node bootstraps a new cluster, which a node given --join never does; drop one of them")
	}
	if c.pollInterval > 0 && c.load != "*" {
		return fmt.Errorf("--load %q with --poll-interval: polling loads every model in the repository; use --load '*' with polling, or load the others through the repository API without it", c.load)
	}
	if err := c.clusterAddrs().ValidateAddrs(); err != nil {
		return err
	}
	if err := c.kafkaSec.check(c.kafkaBrokers); err != nil {
		return err
	}
	if c.kafkaBrokers != "" {
		if c.gateway.TrafficPercent <= 0 {
			return errors.New("--traffic-kafka-brokers needs --traffic-percent above 0")
		}
		if c.traffic.Dir != "" {
			return errors.New("--traffic-kafka-brokers and --traffic-dir: the log goes to one of them; drop one")
		}
		d := trafficlog.DefaultConfig()
		if c.traffic.MaxBytes != d.MaxBytes || c.traffic.SegmentBytes != d.SegmentBytes {
			return errors.New("--traffic-max-bytes and --traffic-segment-bytes apply to the log on disk; with --traffic-kafka-brokers the topic's own retention and max.message.bytes govern")
		}
		c.kafka.Brokers = splitAddrs(c.kafkaBrokers)
		logf := c.logf
		if logf == nil {
			logf = cliLog.Logf
		}
		sec, err := c.kafkaSec.security(logf)
		if err != nil {
			return err
		}
		c.kafka.Security = sec
		if err := c.kafka.Validate(); err != nil {
			return fmt.Errorf("--traffic-kafka-*: %w", err)
		}
	} else if c.gateway.TrafficPercent > 0 {
		if c.traffic.Dir == "" {
			c.traffic.Dir = filepath.Join(c.dataDir, "traffic")
		}
		// A record (a sampled request, or one feedback call) fits a
		// segment: smaller segments take smaller records.
		c.traffic.MaxRecordBytes = int(min(int64(c.traffic.MaxRecordBytes), c.traffic.SegmentBytes))
		if err := c.traffic.Validate(); err != nil {
			return fmt.Errorf("--traffic-*: %w", err)
		}
	}
	if c.minFreeDisk < 0 {
		return fmt.Errorf("--min-free-disk %d is negative; give the bytes to keep free, or 0 for no check", c.minFreeDisk)
	}
	if !(c.gateway.TrafficPercent >= 0 && c.gateway.TrafficPercent <= 100) {
		return fmt.Errorf("--traffic-percent %v is out of range; use 0 (no traffic log) to 100", c.gateway.TrafficPercent)
	}
	res, err := gateway.ParseOTelResource(c.traceOTelResource)
	if err != nil {
		return fmt.Errorf("--trace-otel-resource: %w", err)
	}
	c.gateway.Trace.OTelResource = res
	if tc := &c.gateway.Trace; tc.Mode != gateway.TraceModeOpenTelemetry {
		// TraceConfig takes rate 0 for 1,000, its zero value's.
		if tc.Rate == 0 {
			return errors.New("--trace-rate 0 traces only the requests whose caller sampled them, with --trace-mode opentelemetry; in the trace file's mode give 1 or more")
		}
	} else if tc.File != "" && c.logf != nil {
		c.logf(logging.Warning+"--trace-file %s is not written with --trace-mode opentelemetry: the traces go to the collector at %s", tc.File, tc.CollectorURL())
	}
	// The traffic log is opened later, once the data directory is ours.
	g := c.gateway
	g.TrafficPercent = 0
	return g.Validate()
}

// checkListenAddr checks addr, an address to listen on, as far as it can
// without listening: host:port, with a port from 0 to 65535 (0: any).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8080")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(p, 10) {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// clusterAddrs is the control plane's configuration as far as the flags
// give it, for validate: the addresses a node given no --cluster picks, a
// loopback one, and the one it advertises from --http.
func (c *serveConfig) clusterAddrs() *cluster.Config {
	cc := c.cluster
	cc.NodeID = c.nodeID
	cc.RaftAddr = c.raftAddr
	if cc.RaftAddr == "" {
		cc.RaftAddr = "127.0.0.1:1"
	}
	cc.HTTPAddr = c.advertiseHTTP
	if cc.HTTPAddr == "" {
		host, port, _ := net.SplitHostPort(c.httpAddr)
		if host == "" {
			host = "0.0.0.0" // what listening on all addresses looks like
		}
		cc.HTTPAddr = c.scheme() + "://" + net.JoinHostPort(host, port)
	}
	cc.Join = c.join
	return &cc
}

// loadTLS checks the TLS flags and loads their files.
func (c *serveConfig) loadTLS() error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
	}
	if c.tlsCert == "" {
		switch {
		case c.tlsClientCA != "":
			return errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for in a TLS handshake")
		case c.clusterCA != "":
			return errors.New("--cluster-ca needs --tls-cert and --tls-key: each member presents its certificate to the others")
		}
		return nil
	}
	if c.clusterCA == "" && (c.join != "" || !loopbackAddr(c.raftAddr)) {
		return errors.New("--tls-cert on a node other nodes may join needs --cluster-ca, the CA that signed every member's certificate: without it raft would speak plain TCP beside an HTTPS port")
	}
	logf := c.logf
	if logf == nil {
		logf = cliLog.Logf
	}
	r, err := certs.NewReloader(c.tlsCert, c.tlsKey, logf)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	c.certs = r
	if c.clusterCA != "" {
		if c.clusterCAs, err = certs.NewCAs(c.clusterCA, logf); err != nil {
			return fmt.Errorf("--cluster-ca: %w", err)
		}
		c.cluster.TLS = &cluster.TLS{Cert: r, CAs: c.clusterCAs.Pool}
		if err := r.SetCheck(c.memberCheck(c.clusterCAs.Pool)); err != nil {
			return fmt.Errorf("--tls-cert %s: %w", c.tlsCert, err)
		}
	}
	if c.tlsClientCA != "" {
		if c.tlsClientCAs, err = certs.NewCAs(c.tlsClientCA, logf); err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		c.clientCAs = c.tlsClientCAs.Pool
		if c.clusterCAs != nil {
			// Peers present their member certificates to this port too.
			c.clientCAs = certs.Union(c.tlsClientCAs, c.clusterCAs)
		}
	}
	return nil
}

// memberCheck returns the check of a member's certificate, at start and
// at every reload: one the other members would refuse (not signed by a
// CA of --cluster-ca, as pool returns it then, not fit to be both a
// server and a client, as raft dials both ways, or not naming the
// --cluster IP and the --advertise-http host, which peers check) is
// refused.
func (c *serveConfig) memberCheck(pool func() *x509.CertPool) func(*tls.Certificate) error {
	raftHost, _, _ := net.SplitHostPort(c.raftAddr)
	httpHost, _, _ := net.SplitHostPort(c.httpAddr)
	if u, err := url.Parse(c.advertiseHTTP); err == nil && c.advertiseHTTP != "" {
		httpHost = u.Hostname()
	}
	if ip := net.ParseIP(httpHost); ip != nil && ip.IsUnspecified() {
		httpHost = ""
	}
	return func(cert *tls.Certificate) error {
		if err := certs.CheckLeaf(cert, pool(), x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
			return fmt.Errorf("the other members would refuse it: %w; a member's certificate must be signed by a CA of --cluster-ca and allow server and client authentication (extendedKeyUsage=serverAuth,clientAuth)", err)
		}
		if raftHost != "" {
			if err := cert.Leaf.VerifyHostname(raftHost); err != nil {
				return fmt.Errorf("it does not name this node's --cluster IP, which peers check: %w", err)
			}
		}
		if httpHost != "" {
			if err := cert.Leaf.VerifyHostname(httpHost); err != nil {
				return fmt.Errorf("it does not name the host peers reach this node's HTTPS on (--advertise-http, else --http): %w", err)
			}
		}
		return nil
	}
}

// loopbackAddr reports whether addr, a raft address or "" (a loopback
// port chosen at start), is on loopback.
func loopbackAddr(addr string) bool {
	if addr == "" {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// scheme is the scheme of this node's URLs: https with --tls-cert.
func (c *serveConfig) scheme() string {
	if c.tlsCert != "" {
		return "https"
	}
	return "http"
}

func runServe(args []string) (err error) {
	fs := newFlagSet("serve", "[flags]", `Serve the models of a repository over the Open Inference Protocol v2 (REST), the
protocol of KServe and Triton, with the Triton binary tensor extension.`)
	c := serveFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.checkLog(); err != nil {
		return err
	}
	logOut := os.Stderr
	switch {
	case c.gateway.LogFile == "":
	case c.dryRun:
		// Checked, not created: a dry run writes nothing.
		if err := checkLogFile(c.gateway.LogFile); err != nil {
			return fmt.Errorf("--log-file %s: %w", c.gateway.LogFile, err)
		}
	default:
		f, err := os.OpenFile(c.gateway.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	logger := logging.New(logOut, c.log)
	if logOut != os.Stderr {
		// main writes why serve stopped to standard error, which
		// --log-file replaces: the file says it too (before the defer
		// above closes it).
		defer func() {
			if err != nil {
				logger.Logf(logging.Error+"infergate serve: %v", err)
			}
		}()
	}
	c.logf = logger.Logf
	c.gateway.Logging = logger
	if err := c.validate(); err != nil {
		return err
	}
	if c.grpcAddr != "" {
		routeGRPCLog(logger.Logf)
	}
	// From here on a signal stops the server in order, whatever it is
	// doing (loading the initial models, say).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	// A terminal that closes, or a habit of sending SIGHUP to reload,
	// must not kill a server with requests in flight.
	signal.Ignore(syscall.SIGHUP)

	libPath := engine.ResolveLibPath(c.ortLib)
	if err := engine.Init(libPath); err != nil {
		return err
	}
	if err := engine.CheckDevice(c.defaults.Device); err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	// Before anything loads: a --node-id that --data refuses would
	// otherwise show only once every model had loaded.
	if _, err := storedNodeID(c.dataDir, c.nodeID); err != nil {
		return err
	}
	if c.raftAddr != "" && !c.dryRun {
		// The same for a --cluster port that is taken: raft listens on
		// it only after the models load.
		ln, err := net.Listen("tcp", c.raftAddr)
		if err != nil {
			return fmt.Errorf("--cluster %s: cannot listen for raft: %w", c.raftAddr, err)
		}
		ln.Close()
	}
	if c.dryRun {
		repo, err := registry.New(registry.Config{Dir: c.modelsDir, Defaults: c.defaults, Load: loadEngine})
		if err != nil {
			return err
		}
		// What the start loads: every model for "*", none for "".
		if names := loadNames(c.load); c.load == "*" || len(names) > 0 {
			if err := repo.Check(names...); err != nil {
				return err
			}
		}
		if err := checkWritableDir(c.dataDir); err != nil {
			return fmt.Errorf("--data %s: %w", c.dataDir, err)
		}
		fmt.Printf("configuration is valid; ONNX Runtime %s from %s\n", engine.RuntimeVersion(), libPath)
		return nil
	}
	unlock, err := lockDataDir(c.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	dataDisk := diskfree.New(absPath(c.dataDir), uint64(c.minFreeDisk))
	c.cluster.Disk = dataDisk
	refuses := "uploads and blob pulls"
	if c.kafkaBrokers == "" && c.gateway.TrafficPercent > 0 && !c.trafficDirApart() {
		refuses += " and the traffic log's records"
	}
	c.gateway.Disks = []gateway.Disk{{Guard: dataDisk, Refuses: refuses}}

	rc := registry.Config{
		Dir:           c.modelsDir,
		Defaults:      c.defaults,
		Load:          loadEngine,
		Logf:          logger.Logf,
		TritonMetrics: c.tritonMetrics,
	}
	if r := c.reservation; r != nil {
		procs, err := r.apply()
		if err != nil {
			return err
		}
		rc.Load = r.load(rc.Load)
		rc.WorkerThread = r.workerThread
		logger.Logf("CPUs %s reserved for ONNX Runtime (the batch workers); everything else on CPUs %s; GOMAXPROCS %d",
			affinity.Format(r.reserved), affinity.Format(r.rest), procs)
	}
	// # HELP and # TYPE lines, so that Prometheus knows each series'
	// type (a process-wide switch of the metrics package).
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	rc.Metrics = set
	repo, err := registry.New(rc)
	if err != nil {
		return err
	}
	c.gateway.Name = "infergate"
	c.gateway.Version = version
	c.gateway.RuntimeVersion = engine.RuntimeVersion()
	c.gateway.Logf = logger.Logf
	if c.kafkaBrokers != "" {
		c.kafka.Metrics = set
		c.kafka.Logf = logger.Logf
		kw, err := kafka.Open(context.Background(), c.kafka)
		if err != nil {
			repo.Close()
			return err
		}
		// Closed last, after the HTTP server: no handler writes it then.
		defer func() {
			t := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
			if err := kw.Close(ctx); err != nil {
				logger.Logf(logging.Error+"%v", err)
			}
			cancel()
			logger.Logf("traffic log (Kafka) closed in %s", time.Since(t).Round(time.Millisecond))
		}()
		how := "plain TCP"
		if c.kafka.Security.TLS != nil {
			how = "TLS"
		}
		if a := c.kafka.Security.SASL; a != nil {
			how += ", SASL " + strings.ToUpper(a.Mechanism) + " as " + a.User
		}
		logger.Logf("traffic log in Kafka topic %q at %s (%s): %.3g%% of the predictions and all feedback", c.kafka.Topic, strings.Join(c.kafka.Brokers, ","), how, c.gateway.TrafficPercent)
		c.gateway.TrafficSink = kw
	} else if c.gateway.TrafficPercent > 0 {
		c.traffic.Metrics = set
		c.traffic.Logf = logger.Logf
		c.traffic.Disk = dataDisk
		if c.trafficDirApart() {
			// Another directory, maybe on another filesystem: a guard
			// of its own.
			if err := durable.MakeDirs(c.traffic.Dir); err != nil {
				repo.Close()
				return fmt.Errorf("cannot create --traffic-dir: %w", err)
			}
			c.traffic.Disk = diskfree.New(absPath(c.traffic.Dir), uint64(c.minFreeDisk))
			c.gateway.Disks = append(c.gateway.Disks, gateway.Disk{Guard: c.traffic.Disk, Refuses: "the traffic log's records"})
		}
		tl, err := trafficlog.Open(c.traffic)
		if err != nil {
			repo.Close()
			return err
		}
		// Closed last, after the HTTP server: no handler writes it then.
		// A disk that hangs does not hold the exit past the timeout.
		defer func() {
			t := time.Now()
			if doneWithin(c.shutdownTimeout, func() { tl.Close() }) {
				logger.Logf("traffic log closed in %s", time.Since(t).Round(time.Millisecond))
			} else {
				logger.Logf(logging.Error+"the traffic log was still writing after --shutdown-timeout %s (a disk that does not answer?); the records it had not synced may be lost", c.shutdownTimeout)
			}
		}()
		st := tl.Stats()
		logger.Logf("traffic log in %s: %.3g%% of the predictions and all feedback; positions %d to %d, %d bytes", c.traffic.Dir, c.gateway.TrafficPercent, st.First, st.Next, st.Bytes)
		c.gateway.TrafficLog = tl
	}
	if c.certs != nil {
		c.gateway.TLS = certs.ServerConfig(c.certs, c.clientCAs)
	}
	srv, err := gateway.New(c.gateway, repo, set)
	if err != nil {
		repo.Close()
		return err
	}
	// abandon undoes what New started (the trace exporter's goroutine,
	// the cache's) for a start that fails before serving.
	abandon := func() {
		_ = srv.Shutdown(context.Background()) // nothing served: at once
		repo.Close()
	}
	if c.pprofAddr != "" {
		pln, err := net.Listen("tcp", c.pprofAddr)
		if err != nil {
			abandon()
			return fmt.Errorf("cannot listen on --pprof-addr %s: %w", c.pprofAddr, err)
		}
		defer pln.Close()
		go http.Serve(pln, nil) // net/http/pprof registers on the default mux
		logger.Logf("profiles on http://%s/debug/pprof/", pln.Addr())
	}
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		abandon()
		return fmt.Errorf("cannot listen on %s: %w", c.httpAddr, err)
	}
	if c.certs != nil {
		c.tlsMetrics(set)
	}
	diskMetrics(set, c.gateway.Disks)
	var gln net.Listener
	if c.grpcAddr != "" {
		if gln, err = net.Listen("tcp", c.grpcAddr); err != nil {
			ln.Close()
			abandon()
			return fmt.Errorf("cannot listen on --grpc %s: %w; give --grpc another address, or leave it out to serve no gRPC", c.grpcAddr, err)
		}
	}
	var mln net.Listener
	if c.monitorAddr != "" {
		if mln, err = net.Listen("tcp", c.monitorAddr); err != nil {
			ln.Close()
			if gln != nil {
				gln.Close()
			}
			abandon()
			return fmt.Errorf("cannot listen on --monitor-http %s: %w", c.monitorAddr, err)
		}
	}
	frontDoors := "HTTP server" // what the shutdown's log line says stopped
	if gln != nil {
		frontDoors = "HTTP and gRPC servers"
	}
	serveErr := make(chan error, 3) // HTTP, gRPC, monitoring
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Logf("infergate %s serving on %s://%s (ONNX Runtime %s, models in %s)", version, c.scheme(), ln.Addr(), engine.RuntimeVersion(), c.modelsDir)
	if gln != nil {
		go func() {
			if err := srv.ServeGRPC(gln); err != nil {
				serveErr <- fmt.Errorf("gRPC: %w", err)
			}
		}()
		over := ""
		if c.certs != nil {
			over = " over TLS"
		}
		logger.Logf("gRPC (inference.GRPCInferenceService and grpc.health.v1.Health) on %s%s", gln.Addr(), over)
	}
	if mln != nil {
		go func() {
			if err := srv.ServeMonitoring(mln); err != nil {
				serveErr <- fmt.Errorf("--monitor-http: %w", err)
			}
		}()
		logger.Logf("monitoring (/metrics, /v2/health/live and /ready) on http://%s", mln.Addr())
	}
	if c.certs != nil {
		leaf := c.certs.Certificate().Leaf
		logger.Logf("TLS certificate %s: subject %q, valid until %s%s", c.tlsCert, leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339), c.tlsModes())
	}

	// Unversioned requests go to each cluster model's production version
	// as the node last knew it, from the first one: the models serve as
	// they load, before the control plane starts.
	if err := cluster.RestoreProduction(c.raftDir(), repo); err != nil {
		logger.Logf(logging.Warning+"%v", err)
	}
	restored, err := cluster.RestoredLoads(c.raftDir())
	if err != nil {
		logger.Logf(logging.Warning+"%v", err)
	}
	if err := cluster.CheckRestoredFiles(c.raftDir(), c.modelsDir, restored); err != nil {
		logger.Logf(logging.Warning+"%v", err)
	}
	start := time.Now()
	loaded := make(chan error, 1)
	go func() { loaded <- loadInitial(repo, c.load, restored) }()
	select {
	case err := <-loaded:
		if err != nil {
			logger.Logf(logging.Error+"some models failed to load; the others serve: %s", err)
		}
	case s := <-sig:
		// Not ready yet, so nothing routes here: close the door, and let
		// the model being loaded finish (the others are not started), for
		// --shutdown-timeout at most. A second signal ends the process.
		signal.Stop(sig)
		logger.Logf("received %s while loading the initial models; shutting down", s)
		var stopErrs []error
		t := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		err := srv.Shutdown(ctx)
		cancel()
		logger.Logf("%s stopped in %s", frontDoors, time.Since(t).Round(time.Millisecond))
		if err != nil {
			logger.Logf(logging.Error+"%s: shutdown: %s", frontDoors, err)
			stopErrs = append(stopErrs, fmt.Errorf("requests still in flight after --shutdown-timeout %s were cut off: %w", c.shutdownTimeout, err))
		}
		t = time.Now()
		if doneWithin(c.shutdownTimeout, repo.Close) {
			logger.Logf("models unloaded in %s", time.Since(t).Round(time.Millisecond))
		} else {
			stopErrs = append(stopErrs, fmt.Errorf("a model was still loading or draining after --shutdown-timeout %s", c.shutdownTimeout))
		}
		return errors.Join(stopErrs...)
	}
	logger.Logf("initial models loaded in %s", time.Since(start).Round(time.Millisecond))

	// The control plane starts after the local models serve: the data
	// plane never waits on raft, and a fresh node registers what it
	// serves in the group it bootstraps. The node is ready once both are
	// up (joining the group goes on in the background).
	node, err := startCluster(c, ln.Addr(), repo, set, logger)
	if err != nil {
		srv.Shutdown(context.Background())
		repo.Close()
		return err
	}
	srv.AttachCluster(node, c.cluster.Blobs)
	srv.SetReady(true)
	if settling, why := node.Settling(); settling {
		logger.Logf("serving; not ready yet: %s", why)
	} else {
		logger.Logf("ready")
	}

	// The background loops: polling the repository, and the sweep that
	// keeps the reserved CPUs to the workers.
	pollCtx, stopPoll := context.WithCancel(context.Background())
	var background sync.WaitGroup
	background.Go(func() {
		everyUntil(pollCtx, c.pollInterval, func() { _ = repo.Poll() }) // Poll logs each distinct error once
	})
	if r := c.reservation; r != nil {
		background.Go(func() { everyUntil(pollCtx, sweepEvery, func() { r.sweep(logger.Logf) }) })
	}

	select {
	case s := <-sig:
		logger.Logf("received %s; shutting down", s)
	case err := <-serveErr:
		// One front door failed: the other answers what it has in
		// flight before the process ends.
		signal.Stop(sig)
		logger.Logf(logging.Error+"%v; shutting down", err)
		t := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		if serr := srv.Shutdown(ctx); serr != nil {
			logger.Logf(logging.Error+"%s: shutdown: %s", frontDoors, serr)
		}
		cancel()
		logger.Logf("%s stopped in %s", frontDoors, time.Since(t).Round(time.Millisecond))
		stopPoll()
		doneWithin(c.shutdownTimeout, background.Wait)
		node.Stop()
		doneWithin(c.shutdownTimeout, repo.Close)
		return fmt.Errorf("server stopped: %w", err)
	}
	signal.Stop(sig)

	// Stop in reverse order of start, timing each part. Leadership goes
	// first, while this node still answers its peers.
	node.HandOver()
	srv.BeginShutdown()
	repo.Hurry()
	if c.shutdownDelay > 0 {
		logger.Logf("reporting not ready for %s before closing", c.shutdownDelay)
	}
	// Meanwhile every answer asks its client to close the connection. A
	// busy client's connections are closed by the client within the
	// grace, so that Shutdown, which closes idle keep-alive connections,
	// rarely closes one under a request on its way in.
	time.Sleep(max(c.shutdownDelay, closeGrace))
	// A shutdown that had to cut requests off or leave models behind
	// still ends the process, with a failure status that says so.
	var stopErrs []error
	t := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	err = srv.Shutdown(ctx)
	cancel()
	logger.Logf("%s stopped in %s", frontDoors, time.Since(t).Round(time.Millisecond))
	if err != nil {
		logger.Logf(logging.Error+"%s: shutdown: %s", frontDoors, err)
		stopErrs = append(stopErrs, fmt.Errorf("requests still in flight after --shutdown-timeout %s were cut off: %w", c.shutdownTimeout, err))
	}
	t = time.Now()
	if err := node.Stop(); err != nil {
		logger.Logf(logging.Error+"cluster: stopping raft: %s", err)
	}
	logger.Logf("control plane stopped in %s", time.Since(t).Round(time.Millisecond))
	t = time.Now()
	stopPoll()
	if !doneWithin(c.shutdownTimeout, background.Wait) {
		// A poll stuck reading the repository (a stalled network
		// filesystem) holds the registry too: repo.Close below gives up
		// after its own --shutdown-timeout.
		logger.Logf(logging.Warning+"a repository poll was still running after %s; going on", c.shutdownTimeout)
		stopErrs = append(stopErrs, fmt.Errorf("a repository poll was still running after --shutdown-timeout %s", c.shutdownTimeout))
	}
	if doneWithin(c.shutdownTimeout, repo.Close) {
		logger.Logf("models unloaded in %s", time.Since(t).Round(time.Millisecond))
	} else {
		// A backend that never returns must not keep the process alive.
		logger.Logf(logging.Warning+"models still unloading after %s; exiting anyway", c.shutdownTimeout)
		stopErrs = append(stopErrs, fmt.Errorf("models were still unloading after --shutdown-timeout %s", c.shutdownTimeout))
	}
	return errors.Join(stopErrs...)
}

// startCluster starts this node's control plane in --data: its raft
// state, its blob store, and its id, kept in DATA/node-id.
func startCluster(c *serveConfig, httpAddr net.Addr, repo *registry.Repository, set *metrics.Set, logger *logging.Logger) (*cluster.Node, error) {
	id, err := nodeID(c.dataDir, c.nodeID)
	if err != nil {
		return nil, err
	}
	store, err := blobs.Open(filepath.Join(c.dataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	cc := c.cluster
	cc.NodeID = id
	cc.DataDir = c.raftDir()
	cc.RaftAddr = c.raftAddr
	if cc.RaftAddr == "" {
		if cc.RaftAddr, err = loneRaftAddr(c.dataDir); err != nil {
			return nil, err
		}
	}
	cc.HTTPAddr = c.advertiseHTTP
	if cc.HTTPAddr == "" {
		cc.HTTPAddr = c.scheme() + "://" + httpAddr.String()
	}
	cc.Join = c.join
	cc.Token = c.gateway.AdminToken
	cc.Registry = repo
	cc.Blobs = store
	cc.Check = checkModel
	cc.Metrics = set
	cc.Logf = logger.Logf
	c.cluster.Blobs = store
	node, err := cluster.Start(cc)
	if err != nil {
		return nil, err
	}
	logger.Logf("cluster: node %s, raft on %s, peers reach it at %s", id, cc.RaftAddr, cc.HTTPAddr)
	if c.gateway.AdminToken == "" {
		logger.Logf(logging.Warning + "cluster: no --admin-token; the admin API answers loopback clients only")
	}
	return node, nil
}

// nodeID returns flag, else the id stored in dir, else a new random id,
// which it stores; a stored id that differs from flag is an error.
func nodeID(dir, flag string) (string, error) {
	stored, err := storedNodeID(dir, flag)
	if err != nil || stored != "" {
		return stored, err
	}
	path := filepath.Join(dir, "node-id")
	id := flag
	if id == "" {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", err
		}
		id = "node-" + hex.EncodeToString(r[:])
	}
	if err := durable.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cannot record the node id: %w", err)
	}
	return id, nil
}

// storedNodeID returns the id stored in dir ("" when none is), or an
// error when it cannot be read or differs from flag. It writes nothing:
// serve checks it before it loads any model, and --dry-run too.
func storedNodeID(dir, flag string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	}
	stored := strings.TrimSpace(string(b))
	if stored == "" {
		return "", fmt.Errorf("%s is empty; write this node's id into it (see the raft log for the id it had), or start on a new --data", path)
	}
	if flag != "" && flag != stored {
		return "", fmt.Errorf("--node-id %q, but %s belongs to node %q; use that id or another --data", flag, dir, stored)
	}
	return stored, nil
}

// loneRaftAddr picks the raft address of a node started without
// --cluster: the loopback address it used last time (kept in
// DATA/raft-addr, so that its raft configuration stays true) while that
// port is free, else a new free one.
func loneRaftAddr(dir string) (string, error) {
	path := filepath.Join(dir, "raft-addr")
	if b, err := os.ReadFile(path); err == nil {
		addr := strings.TrimSpace(string(b))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := durable.WriteFile(path, []byte(addr+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cannot record the raft address: %w", err)
	}
	return addr, nil
}

// checkModel is the trial load of an uploaded model: ONNX Runtime must
// accept it with the default options. It returns the model's tensors, for
// the cluster to check the configurations against.
func checkModel(data []byte) (inputs, outputs []oip.TensorMetadata, err error) {
	m, err := engine.Load(data, engine.Options{})
	if err != nil {
		return nil, nil, err
	}
	inputs, outputs = m.Inputs(), m.Outputs()
	return inputs, outputs, m.Close()
}

// loadEngine is the registry's LoadFunc: ONNX Runtime sessions.
func loadEngine(data []byte, cfg registry.ModelConfig) (registry.Backend, error) {
	return engine.Load(data, engine.Options{
		Instances:      cfg.Instances,
		ShareSession:   cfg.ShareSession,
		NoCPUMemArena:  cfg.CPUMemArena != nil && !*cfg.CPUMemArena,
		IntraOpThreads: cfg.IntraOpThreads,
		InterOpThreads: cfg.InterOpThreads,
		Device:         cfg.Device,
		MaxOutputBytes: cfg.MaxOutputBytes,
		Warmup:         warmupRuns(cfg),
	})
}

// warmupRuns returns the engine's Warmup for cfg's model_warmup, or nil.
func warmupRuns(cfg registry.ModelConfig) func(inputs, outputs []oip.TensorMetadata) ([]engine.WarmupRun, error) {
	if len(cfg.ModelWarmup) == 0 {
		return nil
	}
	return func(inputs, outputs []oip.TensorMetadata) ([]engine.WarmupRun, error) {
		ws, err := cfg.Warmups(inputs, outputs)
		var out []engine.WarmupRun
		for _, w := range ws {
			out = append(out, engine.WarmupRun{Name: w.Name, Inputs: w.Inputs, Count: w.Count})
		}
		return out, err
	}
}

// loadInitial loads every cluster model the node served when it stopped
// as it served them (restored, from cluster.RestoredLoads; see
// registry.LoadRestored), then the other models --load names (which).
func loadInitial(repo *registry.Repository, which string, restored map[string]*registry.ModelConfig) error {
	errs := []error{repo.LoadRestored(restored)}
	names := loadNames(which)
	if which == "*" {
		all, err := repo.ModelNames()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		names = all
		errs = append(errs, repo.CheckLayout())
	}
	for _, name := range names {
		if _, ok := restored[name]; ok {
			continue // nil: none of its files is sound; raft brings it
		}
		if err := repo.Load(name, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadNames returns the models --load names; none for "*" (every model).
func loadNames(which string) []string {
	if which == "*" {
		return nil
	}
	var names []string
	for _, name := range strings.Split(which, ",") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// everyUntil calls f every period until ctx is done; a period of 0 or
// less never calls it.
func everyUntil(ctx context.Context, period time.Duration, f func()) {
	if period <= 0 {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// closeGrace is the least time between the start of a shutdown and the
// closing of the listener and the idle connections (see serve).
const closeGrace = 250 * time.Millisecond

// raftDir is where the control plane keeps its state, in --data.
func (c *serveConfig) raftDir() string { return filepath.Join(c.dataDir, "raft") }

// trafficDirApart reports whether --traffic-dir is neither --data's
// traffic directory, the default, nor --data itself: only then does it
// get a disk guard (and its metrics) of its own.
func (c *serveConfig) trafficDirApart() bool {
	return c.traffic.Dir != filepath.Join(c.dataDir, "traffic") && absPath(c.traffic.Dir) != absPath(c.dataDir)
}

// lockDataDir creates dir, durably (the node's state lives under it), and
// takes an exclusive lock on dir/LOCK, so that two servers never share one
// node's state.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := durable.MakeDirs(dir); err != nil {
		return nil, fmt.Errorf("--data %s: cannot create the directory: %w", dir, err)
	}
	path := filepath.Join(dir, "LOCK")
	unlock, err = durable.Lock(path)
	switch {
	case errors.Is(err, durable.ErrLocked):
		return nil, fmt.Errorf("data directory %s is in use by another infergate (lock %s held); give each server its own --data", dir, path)
	case err != nil:
		return nil, fmt.Errorf("--data %s is not writable: %w", dir, err)
	}
	return unlock, nil
}

// checkWritableDir reports whether serve could create and write dir,
// without writing anything: dir, or the nearest directory above it that
// exists, must be writable (a read-only filesystem, or a directory of
// another user).
func checkWritableDir(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			if err := syscall.Access(p, 2 /* W_OK */); err != nil {
				return fmt.Errorf("cannot write in %s: %w", p, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		up := filepath.Dir(p)
		if up == p {
			return err
		}
		p = up
	}
}

// checkLogFile reports why serve could not open file to append its log
// to, without creating it: a directory, a file it cannot write, or a
// directory it cannot create the file in.
func checkLogFile(file string) error {
	st, err := os.Stat(file)
	switch {
	case err == nil && st.IsDir():
		return errors.New("it is a directory; name a file in it")
	case err == nil:
		if err := syscall.Access(file, 2 /* W_OK */); err != nil {
			return fmt.Errorf("cannot write it: %w", err)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	dir := filepath.Dir(file)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return errors.New("its directory does not exist")
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fmt.Errorf("cannot create it in %s: %w", dir, err)
	}
	return nil
}

// doneWithin runs f on a goroutine of its own and reports whether it
// returned within d. One that has not is left running: the process is on
// its way out.
func doneWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		f()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// tlsModes says what else TLS covers, for the start's log line.
func (c *serveConfig) tlsModes() string {
	var s string
	if c.clientCAs != nil {
		s += "; clients must present a certificate of " + c.tlsClientCA
	}
	if c.cluster.TLS != nil {
		s += "; raft and peers over mutual TLS under " + c.clusterCA
	}
	return s
}

// absPath returns dir made absolute, for messages and labels an operator
// reads far from the command line; dir itself when that fails.
func absPath(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// diskMetrics exports the free space of each guarded directory, and the
// minimum the node keeps there, for alerts.
func diskMetrics(set *metrics.Set, disks []gateway.Disk) {
	for _, d := range disks {
		g := d.Guard
		label := `{path=` + strconv.Quote(g.Dir()) + `}`
		set.NewGauge("infergate_disk_free_bytes"+label, func() float64 {
			free, err := g.Free()
			if err != nil {
				return math.NaN()
			}
			return float64(free)
		})
		set.NewGauge("infergate_disk_free_min_bytes"+label, func() float64 { return float64(g.Min()) })
	}
}

// tlsMetrics exports when the served certificate expires, and whether
// its files, or the CA files, fail to load, for alerts.
func (c *serveConfig) tlsMetrics(set *metrics.Set) {
	set.NewGauge("infergate_tls_certificate_expiry_timestamp_seconds", func() float64 {
		return float64(c.certs.NotAfter().Unix())
	})
	set.NewGauge("infergate_tls_certificate_reload_failing", func() float64 {
		if c.certs.Err() != nil {
			return 1
		}
		return 0
	})
	if c.clusterCAs != nil {
		// A CA dropped from --cluster-ca before this node's certificate
		// moved to another: the members refuse this node's connections
		// from then on. Said when it starts and when it ends.
		check := c.memberCheck(c.clusterCAs.Pool)
		var mu sync.Mutex // guards untrusted
		untrusted := false
		set.NewGauge("infergate_tls_certificate_untrusted", func() float64 {
			err := check(c.certs.Certificate())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && !untrusted:
				c.logf(logging.Error+"tls: the certificate in use (%s) no longer passes the members' checks, as --cluster-ca %s holds their CAs now: %v; give this node a certificate of a CA in that file, or put its CA back", c.tlsCert, c.clusterCA, err)
			case err == nil && untrusted:
				c.logf("tls: the certificate in use (%s) is one the other members take again", c.tlsCert)
			}
			untrusted = err != nil
			if untrusted {
				return 1
			}
			return 0
		})
	}
	var cas []*certs.CAs
	for _, ca := range []*certs.CAs{c.tlsClientCAs, c.clusterCAs} {
		if ca != nil {
			cas = append(cas, ca)
		}
	}
	if len(cas) == 0 {
		return
	}
	set.NewGauge("infergate_tls_ca_reload_failing", func() float64 {
		failing := 0.0
		for _, ca := range cas {
			ca.Pool() // a look at the file, at most once a second: a node no one connects to tells too
			if ca.Err() != nil {
				failing = 1
			}
		}
		return failing
	})
}
