package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/infergate/infergate/internal/testenv"
)

func TestParseTraceParent(t *testing.T) {
	f := func(h, state string, valid, sampled bool) {
		t.Helper()
		p := parseTraceParent([]byte(h), []byte(state))
		if p.valid != valid || p.sampled() != sampled {
			t.Fatalf("parseTraceParent(%q): valid %v, sampled %v; want %v, %v", h, p.valid, p.sampled(), valid, sampled)
		}
		if !valid {
			return
		}
		h = strings.TrimSpace(h)
		if got := hex.EncodeToString(p.traceID[:]) + "-" + hex.EncodeToString(p.spanID[:]); got != h[3:52] {
			t.Fatalf("parseTraceParent(%q): ids %s; want %s", h, got, h[3:52])
		}
		if p.state != state {
			t.Fatalf("parseTraceParent(%q): state %q; want %q", h, p.state, state)
		}
	}
	const id = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
	f("00-"+id+"-01", "rojo=00f067aa0ba902b7", true, true)
	f("00-"+id+"-00", "", true, false)
	f(" 00-"+id+"-09 ", "", true, true) // other flags set, whitespace around
	f("01-"+id+"-01-what-a-later-version-adds", "", true, true)
	f("00-"+id+"-01-more", "", false, false) // version 00 has nothing after
	f("ff-"+id+"-01", "", false, false)
	f("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false, false)
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", false, false)
	f("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false, false) // uppercase
	f("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "", false, false)
	f("00-"+id, "", false, false)
	f("", "", false, false)
	f("00_"+id+"-01", "", false, false)
	f("0g-"+id+"-01", "", false, false)
	// A tracestate longer than the standard's 512 bytes is dropped; the
	// context stays.
	if p := parseTraceParent([]byte("00-"+id+"-01"), []byte(strings.Repeat("a", 513))); !p.valid || p.state != "" {
		t.Fatalf("a 513-byte tracestate: valid %v, state %d bytes; want valid, none", p.valid, len(p.state))
	}
	// So is one with what the standard's grammar has no place for: bytes
	// that are not printable ASCII, which would also make the span's
	// trace_state, a protobuf string, invalid UTF-8 and the collector
	// refuse the whole export (protobuf-go's decoder does).
	for _, bad := range []string{"vendor=\xff", "vendor=a\x1b[31m", "vendor=a\x00"} {
		if p := parseTraceParent([]byte("00-"+id+"-01"), []byte(bad)); !p.valid || p.state != "" {
			t.Fatalf("tracestate %q: valid %v, state %q; want valid, none", bad, p.valid, p.state)
		}
	}
	if p := parseTraceParent([]byte("00-"+id+"-01"), []byte("rojo=00f067aa0ba902b7,\tcongo=t61rcWkgMzE")); p.state != "rojo=00f067aa0ba902b7,\tcongo=t61rcWkgMzE" {
		t.Fatalf("tracestate with a tab after its comma: state %q; want it kept", p.state)
	}
}

// pb is a decoded protobuf message: each field's values, varints and
// fixed values as uint64, bytes as []byte.
type pb map[protowire.Number][]any

func decodePB(t *testing.T, b []byte) pb {
	t.Helper()
	m := pb{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v any
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("field %d: wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		m[num] = append(m[num], v)
	}
	return m
}

func (m pb) msgs(t *testing.T, num protowire.Number) []pb {
	t.Helper()
	var out []pb
	for _, v := range m[num] {
		out = append(out, decodePB(t, v.([]byte)))
	}
	return out
}

func (m pb) msg(t *testing.T, num protowire.Number) pb {
	t.Helper()
	ms := m.msgs(t, num)
	if len(ms) != 1 {
		t.Fatalf("field %d: %d messages; want 1", num, len(ms))
	}
	return ms[0]
}

func (m pb) str(num protowire.Number) string {
	if len(m[num]) != 1 {
		return fmt.Sprintf("<%d values>", len(m[num]))
	}
	return string(m[num][0].([]byte))
}

func (m pb) num(num protowire.Number) uint64 {
	if len(m[num]) != 1 {
		return 1<<64 - 1
	}
	return m[num][0].(uint64)
}

// attrs returns KeyValues (field num) as key=value strings.
func (m pb) attrs(t *testing.T, num protowire.Number) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kv := range m.msgs(t, num) {
		v := kv.msg(t, 2)
		switch {
		case v[1] != nil:
			out[kv.str(1)] = v.str(1)
		case v[3] != nil:
			out[kv.str(1)] = fmt.Sprint(int64(v.num(3)))
		default:
			t.Fatalf("attribute %s: value %v", kv.str(1), v)
		}
	}
	return out
}

// otlpSpans decodes an ExportTraceServiceRequest: its resource's
// attributes, its scope's name and version, and its spans.
func otlpSpans(t *testing.T, body []byte) (resource map[string]string, scope pb, spans []pb) {
	t.Helper()
	rs := decodePB(t, body).msg(t, 1)
	resource = rs.msg(t, 1).attrs(t, 1)
	ss := rs.msg(t, 2)
	return resource, ss.msg(t, 1), ss.msgs(t, 2)
}

// The spans of a request are Triton's three (two without a run), under
// the caller's span when it sent one, with their times, events,
// attributes and, for a failure, status; the request is an
// ExportTraceServiceRequest of opentelemetry-proto's field numbers.
func TestOTLPRequest(t *testing.T) {
	at := time.Unix(1795990000, 123456789)
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	parent := parseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), []byte("rojo=1"))
	ran := &otelTrace{id: 7, parent: parent, traceEntry: traceEntry{model: "ctr", version: "2", request: "r-1",
		start: at, queued: ms(1), ran: ms(2), done: ms(5), end: ms(6)}}
	hit := &otelTrace{id: 8, failed: "model \"x\" is overloaded", traceEntry: traceEntry{model: "x", version: "v1", start: at, end: ms(1)}}
	body := appendOTLPRequest(nil, [][2]string{{"service.name", "infergate"}, {"host.name", "h"}}, "1.2.3", []*otelTrace{ran, hit})
	resource, scope, spans := otlpSpans(t, body)
	if resource["service.name"] != "infergate" || resource["host.name"] != "h" || len(resource) != 2 {
		t.Fatalf("resource attributes %v", resource)
	}
	if scope.str(1) != "infergate" || scope.str(2) != "1.2.3" {
		t.Fatalf("scope %q %q; want infergate 1.2.3", scope.str(1), scope.str(2))
	}
	if len(spans) != 5 {
		t.Fatalf("%d spans; want 3 for the request that ran and 2 for the other", len(spans))
	}
	hexOf := func(s pb, n protowire.Number) string {
		if len(s[n]) == 0 {
			return ""
		}
		return hex.EncodeToString(s[n][0].([]byte))
	}
	events := func(s pb) string {
		var out []string
		for _, e := range s.msgs(t, 11) {
			out = append(out, fmt.Sprintf("%s@%d", e.str(2), (int64(e.num(1))-at.UnixNano())/1e6))
		}
		return strings.Join(out, " ")
	}
	type want struct {
		name, parent, events string
		start, end           time.Time
		flags                uint64
	}
	check := func(s pb, w want) {
		t.Helper()
		if s.str(5) != w.name || s.num(6) != 2 || hexOf(s, 4) != w.parent || events(s) != w.events ||
			s.num(7) != uint64(w.start.UnixNano()) || s.num(8) != uint64(w.end.UnixNano()) || s.num(16) != w.flags {
			t.Fatalf("span %q kind %d parent %q events %q start %d end %d flags %#x; want %+v", s.str(5), s.num(6), hexOf(s, 4),
				events(s), s.num(7), s.num(8), s.num(16), w)
		}
		if len(s[2][0].([]byte)) != 8 || len(s[1][0].([]byte)) != 16 {
			t.Fatalf("span %q: ids of %d and %d bytes", s.str(5), len(s[2][0].([]byte)), len(s[1][0].([]byte)))
		}
	}
	root, model, compute := spans[0], spans[1], spans[2]
	check(root, want{"InferRequest", "00f067aa0ba902b7", "", at, ms(6), 0x301})
	check(model, want{"ctr", hexOf(root, 2), "REQUEST_START@0 QUEUE_START@1 REQUEST_END@6", at, ms(6), 0x101})
	check(compute, want{"compute", hexOf(model, 2), "COMPUTE_START@2 COMPUTE_END@5", ms(2), ms(5), 0x101})
	for _, s := range spans[:3] {
		if hexOf(s, 1) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("span %q in trace %s; want the caller's", s.str(5), hexOf(s, 1))
		}
		if s[15] != nil {
			t.Fatalf("span %q of a request that succeeded has a status", s.str(5))
		}
	}
	// Each span's context inherits its parent's tracestate, the local
	// ones' too, as OpenTelemetry's SDKs give it to child spans.
	for _, s := range spans[:3] {
		if s.str(3) != "rojo=1" {
			t.Fatalf("span %q trace_state %q; want the caller's", s.str(5), s.str(3))
		}
	}
	for _, s := range spans[3:] {
		if s[3] != nil {
			t.Fatalf("span %q of a request without a context has trace_state %q", s.str(5), s.str(3))
		}
	}
	attrs := model.attrs(t, 9)
	if fmt.Sprint(attrs) != "map[triton.model_name:ctr triton.model_version:2 triton.request_id:r-1 triton.trace_id:7 triton.trace_parent_id:0]" {
		t.Fatalf("model span attributes %v", attrs)
	}

	root, model = spans[3], spans[4]
	check(root, want{"InferRequest", "", "", at, ms(1), 0x101})
	check(model, want{"x", hexOf(root, 2), "REQUEST_START@0 REQUEST_END@1", at, ms(1), 0x101})
	if hexOf(root, 1) == hexOf(spans[0], 1) || hexOf(model, 1) != hexOf(root, 1) {
		t.Fatalf("a request without a caller's trace: trace %s, its model span's %s; want a new one for both", hexOf(root, 1), hexOf(model, 1))
	}
	if attrs := model.attrs(t, 9); attrs["triton.model_version"] != "v1" || attrs["triton.request_id"] != "" {
		t.Fatalf("model span attributes %v", attrs)
	}
	for _, s := range []pb{root, model} {
		st := s.msg(t, 15)
		if st.num(3) != 2 || st.str(2) != hit.failed {
			t.Fatalf("span %q status: code %d %q; want 2 (error) %q", s.str(5), st.num(3), st.str(2), hit.failed)
		}
	}
}

// appendMessage writes lengths of every size in place.
func TestAppendMessageLengths(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 70000} {
		payload := strings.Repeat("x", n)
		b := appendMessage([]byte("pre"), 3, func(b []byte) []byte {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			return protowire.AppendString(b, payload)
		})
		m := decodePB(t, b[3:])
		if got := m.msg(t, 3).str(1); got != payload || string(b[:3]) != "pre" {
			t.Fatalf("length %d: got %d bytes back", n, len(got))
		}
	}
}

// collector is an OTLP/HTTP receiver for tests: it keeps each request's
// body, answering code (200 when 0); hold makes it wait until released.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	code   int
	// codes, when not empty, answer the next requests, one each, before
	// code does.
	codes []int
	// after is the Retry-After of its answers, when not empty.
	after string
	// header is the last request's.
	header http.Header
	answer []byte
	hold   chan struct{}
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body, _ = io.ReadAll(zr)
		}
		c.mu.Lock()
		c.header = r.Header.Clone()
		c.mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "not an OTLP/HTTP protobuf request", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		hold, code, answer := c.hold, c.code, c.answer
		if c.after != "" {
			w.Header().Set("Retry-After", c.after)
		}
		if len(c.codes) > 0 {
			code, c.codes = c.codes[0], c.codes[1:]
		}
		c.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, body)
		c.mu.Unlock()
		if code != 0 {
			http.Error(w, "collector says no", code)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(answer)
	}))
	t.Cleanup(c.Close)
	return c
}

// spans returns how many spans the collector has received.
func (c *collector) spans(t *testing.T) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, b := range c.bodies {
		_, _, s := otlpSpans(t, b)
		n += len(s)
	}
	return n
}

func newTestExporter(t *testing.T, url string) (*otelExporter, *metrics.Set, *logLines) {
	set := metrics.NewSet()
	logs := &logLines{}
	e := newOTelExporter(TraceConfig{Mode: TraceModeOpenTelemetry, OTelURL: url}, "test", set, set.NewCounter("infergate_traces_dropped_total"), logs.logf)
	return e, set, logs
}

// logLines keeps the lines logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func counterOf(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name).Get()
}

func testTrace(model string) *otelTrace {
	at := time.Now()
	return &otelTrace{traceEntry: traceEntry{model: model, version: "1", start: at, queued: at, ran: at, done: at, end: at}}
}

// Spans go out every otelDelay, and when otelBatch are queued; a collector
// that refuses them loses them, counted and logged; one that takes part
// of them says how many it refused.
func TestOTelExporter(t *testing.T) {
	defer func(d time.Duration, r []time.Duration) { otelDelay, otelRetries = d, r }(otelDelay, otelRetries)
	otelDelay, otelRetries = 20*time.Millisecond, []time.Duration{time.Millisecond, time.Millisecond}
	c := newCollector(t)
	e, set, logs := newTestExporter(t, c.URL+"/v1/traces")
	defer e.close(context.Background())
	for range 3 {
		if !e.add(testTrace("m")) {
			t.Fatal("add: dropped")
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := c.spans(t); n != 9 {
			return fmt.Errorf("the collector got %d spans; want 9", n)
		}
		// Counted once the answer is read, after the collector kept them.
		if ok := counterOf(set, `infergate_trace_exports_total{result="ok"}`); ok == 0 {
			return errors.New("no export counted ok")
		}
		return nil
	})

	c.mu.Lock()
	c.code = http.StatusServiceUnavailable
	c.mu.Unlock()
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := counterOf(set, "infergate_traces_dropped_total"); n != 1 {
			return fmt.Errorf("dropped %d traces; want 1", n)
		}
		return nil
	})
	if n := counterOf(set, `infergate_trace_exports_total{result="failed"}`); n != 1 {
		t.Fatalf("failed exports: %d; want 1", n)
	}
	if !strings.Contains(logs.String(), "WARNING: trace: cannot send 1 traces to the OpenTelemetry collector at "+c.URL+"/v1/traces: 503 Service Unavailable collector says no") {
		t.Fatalf("log:\n%s", logs)
	}

	// A partial success: ExportTraceServiceResponse.partial_success
	// {rejected_spans: 2, error_message: "too old"}.
	ps := protowire.AppendTag(nil, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, 2)
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, "too old")
	c.mu.Lock()
	c.code = 0
	c.answer = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), ps)
	c.mu.Unlock()
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(logs.String(), "refused 2 spans (infergate_trace_spans_rejected_total): too old") {
			return fmt.Errorf("no line of the refused spans:\n%s", logs)
		}
		return nil
	})
	// Spans, not traces: counted apart from the traces dropped.
	if n := counterOf(set, "infergate_traces_dropped_total"); n != 1 {
		t.Fatalf("dropped %d traces; want 1", n)
	}
	if n := counterOf(set, "infergate_trace_spans_rejected_total"); n != 2 {
		t.Fatalf("spans rejected: %d; want 2", n)
	}
}

// The queue holds otelMaxQueue spans: while the collector does not
// answer, what comes after is dropped at once, counted and logged, and
// nothing waits; a shutdown waits for the export under way only until
// its deadline, traceCloseGrace at least.
func TestOTelExporterBounded(t *testing.T) {
	defer func(d, g time.Duration) { otelDelay, traceCloseGrace = d, g }(otelDelay, traceCloseGrace)
	otelDelay, traceCloseGrace = 10*time.Millisecond, 100*time.Millisecond
	c := newCollector(t)
	c.hold = make(chan struct{})
	defer close(c.hold)
	e, set, logs := newTestExporter(t, c.URL+"/v1/traces")
	added := 0
	for range otelMaxQueue {
		if e.add(testTrace("m")) {
			added++
		}
	}
	// 3 spans a trace: 682 fit in 2,048 while none has gone.
	if dropped := counterOf(set, "infergate_traces_dropped_total"); added < otelMaxQueue/3 || int(dropped) != otelMaxQueue-added {
		t.Fatalf("added %d, dropped %d of %d; want %d or more added, the rest dropped", added, dropped, otelMaxQueue, otelMaxQueue/3)
	}
	if !strings.Contains(logs.String(), "spans wait for the OpenTelemetry collector") {
		t.Fatalf("log:\n%s", logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	e.close(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("close took %s with a collector that does not answer", took)
	}
	if !strings.Contains(logs.String(), "stopped waiting at the shutdown's deadline") {
		t.Fatalf("log:\n%s", logs)
	}
	e.close(ctx) // idempotent
	if e.add(testTrace("m")) {
		t.Fatal("add after close: taken")
	}
}

// A shutdown sends what is queued, without waiting for the delay.
func TestOTelExporterCloseSends(t *testing.T) {
	c := newCollector(t)
	e, _, _ := newTestExporter(t, c.URL+"/v1/traces") // otelDelay 5 s
	e.add(testTrace("m"))
	e.close(context.Background())
	if n := c.spans(t); n != 3 {
		t.Fatalf("the collector got %d spans at close; want 3", n)
	}
}

func TestCheckOTelURL(t *testing.T) {
	for u, ok := range map[string]bool{DefaultOTelURL: true, "https://otel.example:4318/v1/traces": true,
		"localhost:4318": false, "ftp://x/v1/traces": false, "http:///v1/traces": false, "": false} {
		if err := CheckOTelURL(u); (err == nil) != ok {
			t.Errorf("CheckOTelURL(%q): %v", u, err)
		}
	}
	res, err := ParseOTelResource([]string{"service.name=ranker-gw", "deployment.environment = prod%20eu"})
	if err != nil || fmt.Sprint(res) != "[[service.name ranker-gw] [deployment.environment prod eu]]" {
		t.Fatalf("ParseOTelResource: %v, %v", res, err)
	}
	if _, err := ParseOTelResource([]string{"novalue"}); err == nil {
		t.Fatal("ParseOTelResource(novalue): no error")
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=ml,service.name=from-env")
	t.Setenv("OTEL_SERVICE_NAME", "")
	got := otelResource("1.2.3", [][2]string{{"team", "search"}}, t.Logf)
	if host, _ := os.Hostname(); fmt.Sprint(got) != "[[service.name from-env] [service.version 1.2.3] [host.name "+host+"] [team search]]" {
		t.Fatalf("otelResource: %v", got)
	}
}

// The resource's defaults, service.version and host.name, give way to
// OTEL_RESOURCE_ATTRIBUTES, as service.name does, and that to the flags.
func TestOTelResourceDefaults(t *testing.T) {
	f := func(env string, want map[string]string) {
		t.Helper()
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", env)
		t.Setenv("OTEL_SERVICE_NAME", "")
		tr := newTracer(TraceConfig{Mode: TraceModeOpenTelemetry, OTelResource: [][2]string{{"team", "ml"}}}, metrics.NewSet(), (&logLines{}).logf)
		tr.startOTel("1.2.3")
		tr.close(context.Background())
		got := map[string]string{}
		for _, kv := range tr.otel.resource {
			got[kv[0]] = kv[1]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("OTEL_RESOURCE_ATTRIBUTES %q: resource %v; want %v", env, got, want)
		}
	}
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	f("", map[string]string{"service.name": "infergate", "service.version": "1.2.3", "host.name": host, "team": "ml"})
	f("service.version=canary-7,host.name=pod-7,team=search", map[string]string{"service.name": "infergate", "service.version": "canary-7", "host.name": "pod-7", "team": "ml"})
}

// An HTTP request's trace context is read as a gRPC call's: tracestate
// headers combined, in their order (W3C Trace Context, after RFC 7230),
// and more than one traceparent ignored, as the standard's test suite
// expects (a new trace).
func TestTraceParentOfHeaders(t *testing.T) {
	s := &Server{trace: &tracer{otel: &otelExporter{}}}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Add("traceparent", tp)
	ctx.Request.Header.Add("tracestate", "rojo=00f067aa0ba902b7")
	ctx.Request.Header.Add("tracestate", "congo=t61rcWkgMzE")
	if p := s.traceParentOf(&ctx); !p.valid || p.state != "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" {
		t.Fatalf("two tracestate headers: valid %v, state %q; want both, combined", p.valid, p.state)
	}
	ctx.Request.Header.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if p := s.traceParentOf(&ctx); p.valid {
		t.Fatalf("two traceparent headers: parent %+v; want none", p)
	}
}

// The exporter reads otelDelay once, before its goroutine starts: a test
// may set it back while an exporter it made still runs (a deferred
// SetOTelDelay runs before the cleanups that shut the server down).
func TestOTelDelayReadBeforeStart(t *testing.T) {
	old := otelDelay
	otelDelay = time.Hour
	e, _, _ := newTestExporter(t, "http://127.0.0.1:19400/v1/traces")
	otelDelay = old
	e.close(context.Background())
}

// A trace that comes after close is dropped and counted, without the
// line about a full queue, which would send its reader to the collector.
func TestOTelExporterAddAfterClose(t *testing.T) {
	e, set, logs := newTestExporter(t, "http://127.0.0.1:19400/v1/traces")
	e.close(context.Background())
	if e.add(testTrace("m")) {
		t.Fatal("add after close: taken")
	}
	if n := counterOf(set, "infergate_traces_dropped_total"); n != 1 {
		t.Fatalf("dropped %d traces; want 1", n)
	}
	if s := logs.String(); s != "" {
		t.Fatalf("log:\n%s\nwant nothing", s)
	}
}

// An export holds otelBatch spans at most, as the batch span processor's
// bsp_max_export_batch_size: a trace that would pass it goes in the next.
func TestOTelExporterBatchBound(t *testing.T) {
	c := newCollector(t)
	// 171 traces of 3 spans, 513, queued within otelDelay (5 s).
	e, _, _ := newTestExporter(t, c.URL+"/v1/traces")
	for range otelBatch/3 + 1 {
		if !e.add(testTrace("m")) {
			t.Fatal("add: dropped")
		}
	}
	e.close(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, b := range c.bodies {
		_, _, s := otlpSpans(t, b)
		if len(s) > otelBatch {
			t.Fatalf("an export of %d spans; want %d at most", len(s), otelBatch)
		}
		total += len(s)
	}
	if total != 3*(otelBatch/3+1) {
		t.Fatalf("the collector got %d spans; want %d", total, 3*(otelBatch/3+1))
	}
}

// A caller's trace flags beyond sampled (W3C Level 2's random bit) stay
// on the spans; a malformed OTEL_RESOURCE_ATTRIBUTES is left out and
// said so.
func TestOTelFlagsAndResourceWarning(t *testing.T) {
	parent := parseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"), nil)
	at := time.Now()
	tr := &otelTrace{parent: parent, traceEntry: traceEntry{model: "m", version: "1", start: at, end: at}}
	_, _, spans := otlpSpans(t, appendOTLPRequest(nil, nil, "", []*otelTrace{tr}))
	if f := spans[0].num(16); f != 0x303 {
		t.Fatalf("root span flags %#x; want 0x303 (remote, the caller's 0x03)", f)
	}
	if f := spans[1].num(16); f != 0x103 {
		t.Fatalf("model span flags %#x; want 0x103", f)
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=ml,novalue")
	t.Setenv("OTEL_SERVICE_NAME", "")
	logs := &logLines{}
	got := otelResource("1", nil, logs.logf)
	if !strings.Contains(logs.String(), "WARNING: trace: OTEL_RESOURCE_ATTRIBUTES is left out") || strings.Contains(fmt.Sprint(got), "team") {
		t.Fatalf("resource %v, log %q; want the variable left out, and a WARNING", got, logs)
	}
}

// An export the collector answers 429, 502, 503 or 504, or that finds no
// collector, is tried again, after what Retry-After says when it says
// so; other failures are not.
func TestOTelExporterRetries(t *testing.T) {
	defer func(d time.Duration, r []time.Duration) { otelDelay, otelRetries = d, r }(otelDelay, otelRetries)
	otelDelay, otelRetries = 10*time.Millisecond, []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}
	c := newCollector(t)
	c.codes = []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}
	e, set, _ := newTestExporter(t, c.URL+"/v1/traces")
	defer e.close(context.Background())
	bodies := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.bodies)
	}
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := counterOf(set, `infergate_trace_exports_total{result="ok"}`); n != 1 {
			return fmt.Errorf("exports ok: %d; want 1 after two retries", n)
		}
		return nil
	})
	if n := bodies(); n != 3 {
		t.Fatalf("the collector got %d requests; want 3 (503, 429, then 200)", n)
	}
	if n := counterOf(set, "infergate_traces_dropped_total"); n != 0 {
		t.Fatalf("dropped %d traces; want none", n)
	}

	// A Retry-After of a second is waited for.
	c.mu.Lock()
	c.codes, c.after = []int{http.StatusBadGateway}, "1"
	c.mu.Unlock()
	start := time.Now()
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := counterOf(set, `infergate_trace_exports_total{result="ok"}`); n != 2 {
			return fmt.Errorf("exports ok: %d; want 2", n)
		}
		return nil
	})
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the retry came %s after a Retry-After of 1; want a second at least", took)
	}

	// 400: the collector will not take it, whenever it is sent.
	c.mu.Lock()
	c.codes, c.after = []int{http.StatusBadRequest}, ""
	c.mu.Unlock()
	before := bodies()
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := counterOf(set, `infergate_trace_exports_total{result="failed"}`); n != 1 {
			return fmt.Errorf("failed exports: %d; want 1", n)
		}
		return nil
	})
	if n := bodies() - before; n != 1 {
		t.Fatalf("a 400 was sent %d times; want once", n)
	}
}

// Without --trace-otel-url, the OpenTelemetry exporter's environment
// variables say where spans go, with which headers, and gzip; a variable
// infergate cannot use is said so.
func TestOTelExporterEnvironment(t *testing.T) {
	defer func(d time.Duration) { otelDelay = d }(otelDelay)
	otelDelay = 10 * time.Millisecond
	c := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.URL+"/")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%20ecret,x-team=ml")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
	tc := TraceConfig{Mode: TraceModeOpenTelemetry}
	if err := tc.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := tc.CollectorURL(); got != c.URL+"/v1/traces" {
		t.Fatalf("CollectorURL: %s; want OTEL_EXPORTER_OTLP_ENDPOINT's with /v1/traces", got)
	}
	set := metrics.NewSet()
	logs := &logLines{}
	e := newOTelExporter(tc, "test", set, set.NewCounter("infergate_traces_dropped_total"), logs.logf)
	defer e.close(context.Background())
	e.add(testTrace("m"))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := c.spans(t); n != 3 {
			return fmt.Errorf("the collector got %d spans; want 3", n)
		}
		return nil
	})
	c.mu.Lock()
	h := c.header
	c.mu.Unlock()
	if h.Get("X-Api-Key") != "s ecret" || h.Get("X-Team") != "ml" || h.Get("Content-Encoding") != "gzip" {
		t.Fatalf("headers %v; want the variables' and gzip", h)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")
	if err := tc.Validate(); err == nil || !strings.Contains(err.Error(), "from the environment") {
		t.Fatalf("Validate with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4318: %v; want an error naming the environment", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "novalue")
	set2 := metrics.NewSet()
	e2 := newOTelExporter(TraceConfig{Mode: TraceModeOpenTelemetry, OTelURL: c.URL + "/v1/traces"}, "test", set2, set2.NewCounter("infergate_traces_dropped_total"), logs.logf)
	defer e2.close(context.Background())
	if !strings.Contains(logs.String(), "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=zstd") || !strings.Contains(logs.String(), "OTEL_EXPORTER_OTLP_HEADERS is not key=value") {
		t.Fatalf("log:\n%s; want both variables said so", logs)
	}
}
