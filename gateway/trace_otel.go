package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
)

// Triton's "opentelemetry" trace mode: each traced request becomes spans
// sent to an OpenTelemetry collector over OTLP/HTTP (protobuf), in the
// shape Triton gives them, and a request that carries a W3C trace
// context (traceparent) joins its caller's trace.
//
// A request's spans, as Triton's:
//   - "InferRequest", of kind SERVER, the child of the caller's span
//     when the request carried one, from REQUEST_START to REQUEST_END;
//   - the model's span, named after the model, its child, with the
//     events REQUEST_START, QUEUE_START and REQUEST_END, and the
//     attributes triton.model_name, triton.model_version,
//     triton.trace_id, triton.trace_parent_id and triton.request_id;
//   - "compute", the model span's child, from COMPUTE_START to
//     COMPUTE_END, with those two events, for a request that ran (not a
//     cache hit, not one refused before the batcher).
//
// A request that failed has status ERROR, with the message its client
// got, on its first two spans (Triton sets no status).
//
// Spans wait in a queue of otelMaxQueue spans and go out otelBatch at a
// time, or every otelDelay, whichever comes first (Triton's batch span
// processor's defaults). A full queue drops the new trace, counted in
// infergate_traces_dropped_total; an export that fails, after its
// retries when the failure may pass (otelRetries), drops its traces,
// counted there too and in infergate_trace_exports_total{result="failed"};
// the spans a collector refuses of an export it took count in
// infergate_trace_spans_rejected_total.

// Trace modes (Triton's trace_mode).
const (
	TraceModeTriton        = "triton"
	TraceModeOpenTelemetry = "opentelemetry"
)

// DefaultOTelURL is where spans go unless told otherwise: an
// OpenTelemetry collector's OTLP/HTTP receiver on the same host, as in
// Triton.
const DefaultOTelURL = "http://localhost:4318/v1/traces"

// The batch span processor's settings: Triton's defaults
// (bsp_max_queue_size, bsp_max_export_batch_size, bsp_schedule_delay),
// and the OTLP exporter's default timeout.
const (
	otelMaxQueue = 2048
	otelBatch    = 512
	otelTimeout  = 10 * time.Second
)

// otelDelay is how long spans wait for more to go with them; a variable
// for tests.
var otelDelay = 5 * time.Second

// otelScope names the instrumentation scope of infergate's spans.
const otelScope = "infergate"

// CollectorURL returns where c sends spans: OTelURL, else the
// OpenTelemetry exporter's environment variables'
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, or
// OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces after it, as an OpenTelemetry
// SDK reads them; an operator that injects them configures infergate
// too), else DefaultOTelURL.
func (c *TraceConfig) CollectorURL() string {
	if c.OTelURL != "" {
		return c.OTelURL
	}
	if u := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); u != "" {
		return u
	}
	if u := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); u != "" {
		return strings.TrimSuffix(u, "/") + "/v1/traces"
	}
	return DefaultOTelURL
}

// otelEnv returns the environment variable of the traces exporter's
// setting name (HEADERS, COMPRESSION): OTEL_EXPORTER_OTLP_TRACES_name,
// else OTEL_EXPORTER_OTLP_name, and which one it was.
func otelEnv(name string) (value, from string) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
		if x := strings.TrimSpace(os.Getenv(v)); x != "" {
			return x, v
		}
	}
	return "", ""
}

// CheckOTelURL reports what is wrong with u as where spans go.
func CheckOTelURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("OpenTelemetry URL %q: give the collector's OTLP/HTTP traces endpoint, such as %s", u, DefaultOTelURL)
	}
	return nil
}

// ParseOTelResource returns the resource attributes of kvs, each
// key=value (--trace-otel-resource, or OTEL_RESOURCE_ATTRIBUTES's
// comma-separated list, whose values may be percent-encoded).
func ParseOTelResource(kvs []string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("resource attribute %q: give key=value, such as service.name=infergate", kv)
		}
		if u, err := url.PathUnescape(strings.TrimSpace(v)); err == nil {
			v = u
		}
		out = append(out, [2]string{k, strings.TrimSpace(v)})
	}
	return out, nil
}

// otelResource returns the resource attributes of spans: service.name
// infergate, service.version release and host.name, then
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, then extra (the
// flags'), later ones replacing earlier ones of their key.
func otelResource(release string, extra [][2]string, logf func(string, ...any)) [][2]string {
	attrs := [][2]string{{"service.name", "infergate"}, {"service.version", release}}
	if host, err := os.Hostname(); err == nil {
		attrs = append(attrs, [2]string{"host.name", host})
	}
	set := func(k, v string) {
		for i := range attrs {
			if attrs[i][0] == k {
				attrs[i][1] = v
				return
			}
		}
		attrs = append(attrs, [2]string{k, v})
	}
	if env := os.Getenv("OTEL_RESOURCE_ATTRIBUTES"); env != "" {
		kvs, err := ParseOTelResource(strings.Split(env, ","))
		if err != nil {
			logf(logging.Warning+"trace: OTEL_RESOURCE_ATTRIBUTES is left out of the spans' resource: %v", err)
		}
		for _, kv := range kvs {
			set(kv[0], kv[1])
		}
	}
	if name := os.Getenv("OTEL_SERVICE_NAME"); name != "" {
		set("service.name", name)
	}
	for _, kv := range extra {
		set(kv[0], kv[1])
	}
	return attrs
}

// traceParent is a W3C trace context a request carried: the caller's
// trace and span, its flags, and its tracestate.
type traceParent struct {
	traceID [16]byte
	spanID  [8]byte
	flags   byte
	state   string
	valid   bool
}

// sampled reports whether the caller records the trace (flag 01).
func (p *traceParent) sampled() bool { return p.valid && p.flags&1 != 0 }

// parseTraceParent parses a traceparent header (W3C Trace Context): a
// version, a trace id, a parent span id and flags in lowercase hex.
// Version 00 is exactly that; a later version may carry more after it;
// ff, an id of zeros, or anything else malformed gives an invalid parent,
// which the request's trace ignores, as the standard says.
func parseTraceParent(h []byte, state []byte) traceParent {
	var p traceParent
	h = bytes.TrimSpace(h)
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' || (len(h) > 55 && (h[55] != '-' || string(h[:2]) == "00")) {
		return p
	}
	var version [1]byte
	if !lowerHex(h[:2]) || !lowerHex(h[3:35]) || !lowerHex(h[36:52]) || !lowerHex(h[53:55]) {
		return p
	}
	hex.Decode(version[:], h[:2])
	hex.Decode(p.traceID[:], h[3:35])
	hex.Decode(p.spanID[:], h[36:52])
	var flags [1]byte
	hex.Decode(flags[:], h[53:55])
	if version[0] == 0xff || p.traceID == [16]byte{} || p.spanID == [8]byte{} {
		return traceParent{}
	}
	p.flags = flags[0]
	// The standard's bound and characters (printable ASCII, and tabs
	// around its members); another is dropped: it would also be invalid
	// UTF-8 in the spans, which a collector's decoder refuses whole.
	if len(state) <= 512 && traceStateBytes(state) {
		p.state = string(bytes.TrimSpace(state))
	}
	p.valid = true
	return p
}

// traceStateBytes reports whether b holds only the bytes a tracestate
// may: printable ASCII, and tabs.
func traceStateBytes(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' {
			return false
		}
	}
	return true
}

// lowerHex reports whether b is all lowercase hex digits.
func lowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// otelTrace is one traced request, as the exporter turns it into spans.
type otelTrace struct {
	traceEntry
	id     uint64 // the trace's id, as Triton's trace file numbers it
	parent traceParent
	failed string // the message a failed request's client got
}

// spans returns how many spans t makes.
func (t *otelTrace) spans() int {
	if t.ran.IsZero() {
		return 2
	}
	return 3
}

// otelExporter sends traces to a collector from one goroutine, which
// run owns; Close stops it.
type otelExporter struct {
	url      string
	resource [][2]string
	release  string
	client   *http.Client
	logf     func(string, ...any)
	logs     *loglimit.Limiter[string]
	lost     *metrics.Counter
	ok, bad  *metrics.Counter
	// rejected counts the spans a collector refused of an export it
	// took: spans, where lost counts traces.
	rejected *metrics.Counter

	// delay is otelDelay when e was made.
	delay time.Duration
	// headers go with every export, and gzip compresses its body
	// (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS and _COMPRESSION).
	headers [][2]string
	gzip    bool
	// retries are the waits before the retries of an export that failed
	// for a reason that passes (otelRetries).
	retries []time.Duration

	// queue holds the traces to send; queued counts their spans, which
	// otelMaxQueue bounds.
	queue chan *otelTrace
	// mu protects queued and closed.
	mu     sync.Mutex
	queued int
	closed bool
	// stop ends run: once closed, run sends what is queued and returns.
	// ctx is every export's; close cancels it once it stops waiting.
	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newOTelExporter(c TraceConfig, release string, set *metrics.Set, lost *metrics.Counter, logf func(string, ...any)) *otelExporter {
	e := &otelExporter{
		url:      c.CollectorURL(),
		resource: otelResource(release, c.OTelResource, logf),
		release:  release,
		client:   &http.Client{Timeout: otelTimeout},
		logf:     logf,
		logs:     loglimit.New[string](traceLogEvery, 4),
		lost:     lost,
		ok:       set.NewCounter(`infergate_trace_exports_total{result="ok"}`),
		bad:      set.NewCounter(`infergate_trace_exports_total{result="failed"}`),
		rejected: set.NewCounter("infergate_trace_spans_rejected_total"),
		delay:    otelDelay,
		retries:  otelRetries,
		queue:    make(chan *otelTrace, otelMaxQueue),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if h, from := otelEnv("HEADERS"); h != "" {
		kvs, err := ParseOTelResource(strings.Split(h, ","))
		if err != nil {
			logf(logging.Warning+"trace: %s is not key=value,...: no headers are sent: %v", from, err)
		}
		e.headers = kvs
	}
	switch z, from := otelEnv("COMPRESSION"); z {
	case "gzip":
		e.gzip = true
	case "", "none":
	default:
		logf(logging.Warning+"trace: %s=%s: infergate compresses with gzip or not at all (none); the spans go uncompressed", from, z)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go e.run()
	return e
}

// add queues t for the collector, or drops it, counted, when the queue
// holds otelMaxQueue spans or the exporter is closed.
func (e *otelExporter) add(t *otelTrace) bool {
	n := t.spans()
	e.mu.Lock()
	if e.closed || e.queued+n > otelMaxQueue {
		closed := e.closed
		e.mu.Unlock()
		e.lost.Inc()
		if closed {
			return false // a request that ended while the server stopped
		}
		if more, ok := e.logs.Allow("full"); ok {
			e.logf(logging.Warning+"trace: %d spans wait for the OpenTelemetry collector at %s; new traces are dropped (infergate_traces_dropped_total) until they go: is it up?%s", otelMaxQueue, e.url, more)
		}
		return false
	}
	e.queued += n
	// Under mu, so that close finds it queued: it never waits, as each
	// trace takes a span at least.
	e.queue <- t
	e.mu.Unlock()
	return true
}

// run sends the queued traces otelBatch spans at a time, or what is
// queued every otelDelay, until stop; then what is left.
func (e *otelExporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.delay)
	defer tick.Stop()
	var batch []*otelTrace
	spans := 0
	send := func() {
		if len(batch) > 0 {
			e.export(e.ctx, batch, spans)
			clear(batch)
			batch, spans = batch[:0], 0
		}
	}
	take := func(t *otelTrace) {
		if spans+t.spans() > otelBatch { // a trace's spans go together
			send()
		}
		batch = append(batch, t)
		if spans += t.spans(); spans == otelBatch {
			send()
		}
	}
	for {
		select {
		case t := <-e.queue:
			take(t)
		case <-tick.C:
			send()
		case <-e.stop:
			for {
				select {
				case t := <-e.queue:
					take(t)
					continue
				default:
				}
				send()
				return
			}
		}
	}
}

// export sends batch, of spans spans, in one OTLP request.
func (e *otelExporter) export(ctx context.Context, batch []*otelTrace, spans int) {
	body := appendOTLPRequest(nil, e.resource, e.release, batch)
	if e.gzip {
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		w.Write(body)
		w.Close()
		body = z.Bytes()
	}
	err := e.post(ctx, body)
	for _, wait := range e.retries {
		var pass *passingError
		if !errors.As(err, &pass) {
			break
		}
		if pass.after > 0 {
			wait = min(pass.after, otelMaxRetryWait)
		}
		// A shutdown sends once more what is queued, and retries nothing:
		// it would wait for a collector that is down.
		t := time.NewTimer(wait)
		stopping := false
		select {
		case <-t.C:
		case <-e.stop:
			stopping = true
		}
		t.Stop()
		if stopping {
			break
		}
		err = e.post(ctx, body)
	}
	e.mu.Lock()
	e.queued -= spans
	e.mu.Unlock()
	if err == nil {
		e.ok.Inc()
		return
	}
	e.bad.Inc()
	e.lost.Add(len(batch))
	if more, ok := e.logs.Allow("export"); ok {
		e.logf(logging.Warning+"trace: cannot send %d traces to the OpenTelemetry collector at %s: %v; they are dropped (infergate_traces_dropped_total): check that the collector is up and that --trace-otel-url is its OTLP/HTTP traces endpoint%s", len(batch), e.url, err, more)
	}
}

// post sends one OTLP/HTTP request, and reads what a collector that took
// part of it says of the rest.
func (e *otelExporter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, kv := range e.headers {
		req.Header.Set(kv[0], kv[1])
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "infergate/"+e.release)
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &passingError{err: err} // no collector there, for now
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(answer))
		if len(msg) > 200 || strings.Contains(resp.Header.Get("Content-Type"), "protobuf") {
			msg = ""
		}
		err := fmt.Errorf("%s %s", resp.Status, msg)
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			// OTLP/HTTP's retryable answers.
			pass := &passingError{err: err}
			if secs, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && secs > 0 {
				pass.after = time.Duration(secs) * time.Second
			}
			return pass
		}
		return err
	}
	if rejected, why := otlpPartialSuccess(answer); rejected > 0 {
		e.rejected.Add(int(rejected))
		if more, ok := e.logs.Allow("partial"); ok {
			e.logf(logging.Warning+"trace: the OpenTelemetry collector at %s refused %d spans (infergate_trace_spans_rejected_total): %s%s", e.url, rejected, why, more)
		}
	}
	return nil
}

// passingError is an export's failure that may pass (OTLP/HTTP's 429,
// 502, 503 and 504, or no connection): the export is tried again, after
// after when the collector said so.
type passingError struct {
	err   error
	after time.Duration
}

func (e *passingError) Error() string { return e.err.Error() }
func (e *passingError) Unwrap() error { return e.err }

// otelRetries are the waits before the retries of an export that failed
// for a reason that passes, a collector restarting or shedding load: 7
// seconds in all, while new traces wait in the queue (and, past it, are
// dropped); a variable for tests. A Retry-After of the collector's
// replaces a wait, up to otelMaxRetryWait.
var otelRetries = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}

// otelMaxRetryWait bounds a wait a collector asks for.
const otelMaxRetryWait = 10 * time.Second

// close stops taking traces and sends those queued, waiting until ctx
// ends, but traceCloseGrace at least, as the trace file's writer does.
// It is idempotent.
func (e *otelExporter) close(ctx context.Context) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return
	}
	e.closed = true
	e.mu.Unlock()
	defer e.cancel()
	close(e.stop)
	grace := time.NewTimer(traceCloseGrace)
	defer grace.Stop()
	select {
	case <-e.done:
		return
	case <-ctx.Done():
	}
	select {
	case <-e.done:
		return
	case <-grace.C:
	}
	e.cancel() // the export under way gives up, and those after it
	<-e.done
	e.logf(logging.Warning + "trace: stopped waiting at the shutdown's deadline for the OpenTelemetry collector; the traces still queued were dropped")
}

// appendOTLPRequest appends an OTLP ExportTraceServiceRequest holding
// the spans of traces to dst (opentelemetry-proto's
// collector/trace/v1/trace_service.proto and trace/v1/trace.proto).
func appendOTLPRequest(dst []byte, resource [][2]string, release string, traces []*otelTrace) []byte {
	// ExportTraceServiceRequest.resource_spans (1): ResourceSpans.
	return appendMessage(dst, 1, func(b []byte) []byte {
		// ResourceSpans.resource (1): Resource.attributes (1).
		b = appendMessage(b, 1, func(b []byte) []byte {
			for _, kv := range resource {
				b = appendStringAttr(b, 1, kv[0], kv[1])
			}
			return b
		})
		// ResourceSpans.scope_spans (2): ScopeSpans.
		return appendMessage(b, 2, func(b []byte) []byte {
			// ScopeSpans.scope (1): name (1), version (2).
			b = appendMessage(b, 1, func(b []byte) []byte {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				b = protowire.AppendString(b, otelScope)
				if release != "" {
					b = protowire.AppendTag(b, 2, protowire.BytesType)
					b = protowire.AppendString(b, release)
				}
				return b
			})
			for _, t := range traces {
				b = appendTraceSpans(b, t)
			}
			return b
		})
	})
}

// appendTraceSpans appends t's spans as ScopeSpans.spans (2).
func appendTraceSpans(b []byte, t *otelTrace) []byte {
	traceID := t.parent.traceID
	if !t.parent.valid {
		binary.BigEndian.PutUint64(traceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(traceID[8:], rand.Uint64()|1)
	}
	var root, model, compute [8]byte
	for _, id := range []*[8]byte{&root, &model, &compute} {
		binary.BigEndian.PutUint64(id[:], rand.Uint64()|1) // never all zeros
	}
	// Sampled, and the caller's other W3C trace flags (Level 2's random
	// bit); the context's remoteness is known.
	flags := uint32(0x100) | 1
	if t.parent.valid {
		flags |= uint32(t.parent.flags)
	}
	span := func(b []byte, id, parent *[8]byte, remote bool, name string, start, end time.Time, rest func([]byte) []byte) []byte {
		return appendMessage(b, 2, func(b []byte) []byte {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendBytes(b, traceID[:])
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendBytes(b, id[:])
			if t.parent.state != "" { // each span's context inherits it
				b = protowire.AppendTag(b, 3, protowire.BytesType)
				b = protowire.AppendString(b, t.parent.state)
			}
			if parent != nil {
				b = protowire.AppendTag(b, 4, protowire.BytesType)
				b = protowire.AppendBytes(b, parent[:])
			}
			b = protowire.AppendTag(b, 5, protowire.BytesType)
			b = protowire.AppendString(b, name)
			b = protowire.AppendTag(b, 6, protowire.VarintType)
			b = protowire.AppendVarint(b, 2) // SPAN_KIND_SERVER, as Triton's
			b = protowire.AppendTag(b, 7, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, uint64(start.UnixNano()))
			b = protowire.AppendTag(b, 8, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, uint64(end.UnixNano()))
			if rest != nil {
				b = rest(b)
			}
			f := flags
			if remote {
				f |= 0x200
			}
			b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
			return protowire.AppendFixed32(b, f)
		})
	}
	status := func(b []byte) []byte {
		if t.failed == "" {
			return b
		}
		// Span.status (15): message (2), code (3) STATUS_CODE_ERROR.
		return appendMessage(b, 15, func(b []byte) []byte {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, t.failed)
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			return protowire.AppendVarint(b, 2)
		})
	}
	var rootParent *[8]byte
	if t.parent.valid {
		rootParent = &t.parent.spanID
	}
	b = span(b, &root, rootParent, t.parent.valid, "InferRequest", t.start, t.end, status)
	b = span(b, &model, &root, false, t.model, t.start, t.end, func(b []byte) []byte {
		b = appendStringAttr(b, 9, "triton.model_name", t.model)
		if n, err := strconv.ParseInt(t.version, 10, 64); err == nil {
			b = appendIntAttr(b, 9, "triton.model_version", n)
		} else {
			b = appendStringAttr(b, 9, "triton.model_version", t.version)
		}
		b = appendIntAttr(b, 9, "triton.trace_id", int64(t.id))
		b = appendIntAttr(b, 9, "triton.trace_parent_id", 0)
		if t.request != "" {
			b = appendStringAttr(b, 9, "triton.request_id", t.request)
		}
		b = appendEvent(b, "REQUEST_START", t.start)
		if !t.queued.IsZero() {
			b = appendEvent(b, "QUEUE_START", t.queued)
		}
		b = appendEvent(b, "REQUEST_END", t.end)
		return status(b)
	})
	if !t.ran.IsZero() {
		b = span(b, &compute, &model, false, "compute", t.ran, t.done, func(b []byte) []byte {
			b = appendEvent(b, "COMPUTE_START", t.ran)
			return appendEvent(b, "COMPUTE_END", t.done)
		})
	}
	return b
}

// appendMessage appends field num of a message whose body fill appends,
// its length first: the body is written in place after a byte for its
// length, and moved along when the length takes more.
func appendMessage(b []byte, num protowire.Number, fill func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b = append(b, 0)
	b = fill(b)
	n := len(b) - at - 1
	if size := protowire.SizeVarint(uint64(n)); size > 1 {
		b = append(b, make([]byte, size-1)...)
		copy(b[at+size:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[at:at], uint64(n)) // in place: b has the room
	return b
}

// appendStringAttr appends field num holding the KeyValue key=value.
func appendStringAttr(b []byte, num protowire.Number, key, value string) []byte {
	return appendMessage(b, num, func(b []byte) []byte {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, key)
		return appendMessage(b, 2, func(b []byte) []byte { // AnyValue.string_value (1)
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			return protowire.AppendString(b, value)
		})
	})
}

// appendIntAttr appends field num holding the KeyValue key=value.
func appendIntAttr(b []byte, num protowire.Number, key string, value int64) []byte {
	return appendMessage(b, num, func(b []byte) []byte {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, key)
		return appendMessage(b, 2, func(b []byte) []byte { // AnyValue.int_value (3)
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			return protowire.AppendVarint(b, uint64(value))
		})
	})
}

// appendEvent appends Span.events (11): the event name at time at.
func appendEvent(b []byte, name string, at time.Time) []byte {
	return appendMessage(b, 11, func(b []byte) []byte {
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(at.UnixNano()))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		return protowire.AppendString(b, name)
	})
}

// otlpPartialSuccess returns the spans an ExportTraceServiceResponse
// says were rejected, and why: its partial_success (1), rejected_spans
// (1) and error_message (2). A body it cannot read rejects nothing.
func otlpPartialSuccess(b []byte) (rejected int64, why string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, ""
			}
			for len(ps) > 0 {
				num, typ, m := protowire.ConsumeTag(ps)
				if m < 0 {
					return 0, ""
				}
				ps = ps[m:]
				switch {
				case num == 1 && typ == protowire.VarintType:
					v, m := protowire.ConsumeVarint(ps)
					if m < 0 {
						return 0, ""
					}
					rejected, ps = int64(v), ps[m:]
				case num == 2 && typ == protowire.BytesType:
					v, m := protowire.ConsumeBytes(ps)
					if m < 0 {
						return 0, ""
					}
					why, ps = string(v), ps[m:]
				default:
					m := protowire.ConsumeFieldValue(num, typ, ps)
					if m < 0 {
						return 0, ""
					}
					ps = ps[m:]
				}
			}
			return rejected, why
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
	}
	return 0, ""
}
