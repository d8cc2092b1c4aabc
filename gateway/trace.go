package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/metadata"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// Triton's trace extension: GET and POST /v2[/models/{m}]/trace/setting,
// and gRPC's TraceSetting, read and change which inference requests are
// traced; each traced request's timestamps go to the trace file, in the
// format of Triton's "triton" trace mode.

// Trace levels: infergate traces timestamps, not tensors.
const (
	TraceOff        = "OFF"
	TraceTimestamps = "TIMESTAMPS"
)

// TraceConfig is the trace extension's settings at start (serve's
// --trace-* flags); the API changes them at run time.
type TraceConfig struct {
	// File is where the traces go (Triton's trace_file), written as a
	// whole (durable.WriteFile): with LogFrequency 0, one JSON array of
	// every trace taken, written again when Count runs out, when the
	// settings change through the API, and at shutdown; otherwise the
	// files File.0, File.1, ..., each of LogFrequency traces. Empty: the
	// settings can be read, but tracing cannot be turned on. The API
	// cannot change it: a client could otherwise write files anywhere
	// the server can.
	File string
	// Level is TraceOff or TraceTimestamps; "" is TraceOff.
	Level string
	// Rate traces one request in Rate, the first included; 0 means 1000,
	// Triton's default.
	Rate int64
	// Count is how many requests to trace before tracing stops; 0 or -1
	// means no limit.
	Count int64
	// LogFrequency is how many traces each file holds, at most
	// 65,536 (the traces held unwritten are bounded); 0 writes them all
	// to File (see File).
	LogFrequency int64
	// Mode is TraceModeTriton (the default, "": traces go to File) or
	// TraceModeOpenTelemetry: each traced request's spans go to the
	// OpenTelemetry collector at OTelURL (trace_otel.go), File is not
	// needed, and Rate 0 traces only the requests whose caller sampled
	// them (a traceparent with the sampled flag), which are traced at
	// any rate.
	Mode string
	// OTelURL is the collector's OTLP/HTTP traces endpoint; "" is
	// the OpenTelemetry environment variables', or DefaultOTelURL
	// (CollectorURL).
	OTelURL string
	// OTelResource holds resource attributes of the spans beyond
	// service.name=infergate, service.version and host.name, and
	// OTEL_RESOURCE_ATTRIBUTES', which it overrides (ParseOTelResource).
	OTelResource [][2]string
}

// otel reports whether c sends spans to a collector.
func (c *TraceConfig) otel() bool { return c.Mode == TraceModeOpenTelemetry }

// Validate reports the first bad setting of c.
func (c *TraceConfig) Validate() error {
	switch {
	case c.Mode != "" && c.Mode != TraceModeTriton && c.Mode != TraceModeOpenTelemetry:
		return fmt.Errorf("trace mode %q: use %s (a trace file) or %s (spans sent to an OpenTelemetry collector)", c.Mode, TraceModeTriton, TraceModeOpenTelemetry)
	case c.Level != "" && c.Level != TraceOff && c.Level != TraceTimestamps:
		return fmt.Errorf("trace level %q: use %s or %s (infergate traces timestamps, not tensors)", c.Level, TraceOff, TraceTimestamps)
	case c.Level == TraceTimestamps && c.File == "" && !c.otel():
		return errors.New("trace level TIMESTAMPS needs a trace file to write to (--trace-file), or --trace-mode opentelemetry")
	case c.Rate < 0:
		return fmt.Errorf("trace rate %d: use 1 or more (one request traced in that many), or 0 with --trace-mode opentelemetry for the requests whose caller sampled them only", c.Rate)
	case c.Count < -1:
		return fmt.Errorf("trace count %d: use -1 (no limit) or more", c.Count)
	case c.LogFrequency < 0 || c.LogFrequency > maxHeldTraces:
		return fmt.Errorf("trace log frequency %d: use 0 (one file) or up to %d (traces per file): at most %d traces wait unwritten", c.LogFrequency, maxHeldTraces, maxHeldTraces)
	}
	if c.otel() {
		if err := CheckOTelURL(c.CollectorURL()); err != nil {
			if c.OTelURL == "" {
				return fmt.Errorf("from the environment (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT): %w", err)
			}
			return err
		}
	}
	if c.File != "" {
		dir := filepath.Dir(c.File)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("trace file %q: its directory %q does not exist; create it first", c.File, dir)
		}
		if fi, err := os.Stat(c.File); err == nil && fi.IsDir() {
			return fmt.Errorf("trace file %q is a directory; name a file in it", c.File)
		}
	}
	return nil
}

// maxHeldTraces bounds the traces a tracer holds before it writes them
// (all of them, with log frequency 0): about 300 bytes each. Traces past
// it are dropped, counted and logged.
const maxHeldTraces = 1 << 16

// traceValues are one scope's settings, written out.
type traceValues struct {
	level                string
	rate, count, logFreq int64
	// otel is whether the tracer is in OpenTelemetry mode, where rate 0
	// traces the requests a caller sampled.
	otel bool
}

// traceModel is a model's own settings: a nil field follows the node's.
// A model with any setting of its own counts its own requests for
// sampling, in seen, which its copies share.
type traceModel struct {
	level       *string
	rate, count *int64
	seen        *atomic.Uint64
}

// traceSampling is what sample reads, without the tracer's lock, to
// choose the requests to trace: each scope's rate and count of requests
// seen. updateOn publishes a new one whenever the settings change; once
// published it is not changed, only the counts it points to.
type traceSampling struct {
	node traceSampler
	// models holds the models with settings of their own.
	models map[string]traceSampler
}

// traceCount is a scope's count of the requests seen, alone on its cache
// line: every request of a traced scope adds to it, and the line would
// otherwise take from the other cores what shares it (the tracer's on,
// sampling and lock).
type traceCount struct {
	_ [128]byte
	atomic.Uint64
	_ [128]byte
}

// traceSampler samples one scope's requests: one in rate, the first
// included; rate 0 traces none, but those a caller sampled when on (in
// OpenTelemetry mode).
type traceSampler struct {
	seen *atomic.Uint64
	rate uint64
	on   bool
}

// tracer keeps the trace settings and the traces taken, and writes them.
// Its methods may be called from any goroutine.
type tracer struct {
	file  string
	mode  string
	start TraceConfig // the flags', which a null setting goes back to
	// otel sends the traces to a collector in OpenTelemetry mode
	// (startOTel); nil otherwise.
	otel *otelExporter
	logf func(string, ...any)
	// logs limits the lines about files not written, which could
	// otherwise come one a traced request (traceLogEvery).
	logs  *loglimit.Limiter[string]
	set   *metrics.Set
	taken *metrics.Counter
	lost  *metrics.Counter
	// writes feeds the writer goroutine, started by the first write
	// (writerOnce): a server that never traces runs none. It gives
	// the buffers of indexed files back on spare.
	writes     chan traceWrite
	spare      chan []byte
	writerOnce sync.Once
	wg         sync.WaitGroup
	// on is whether some scope traces (TIMESTAMPS, count not 0): while
	// it is false a request looks at it alone.
	on atomic.Bool
	// sampling chooses the requests to trace while on is true; nodeSeen
	// counts the requests of the node's scope for it.
	sampling atomic.Pointer[traceSampling]
	nodeSeen traceCount

	// mu protects the fields below.
	mu     sync.Mutex
	node   traceValues
	models map[string]*traceModel
	nextID uint64
	// held holds the traces not written yet (with log frequency 0, every
	// trace): "[\n", then each trace, two JSON objects followed by ",\n"
	// (empty while it holds none); heldN counts them; dirty says some
	// were not written yet.
	held  []byte
	heldN int
	dirty bool
	// fileHeld and fileHeldN are held and heldN of log frequency 0 while
	// the log frequency is not 0: the traces the file holds, for when it
	// is written again.
	fileHeld  []byte
	fileHeldN int
	index     int // of the next file with log frequency
	warned    bool
	closed    bool
}

// traceLogEvery is how often each kind of trace file failure is logged,
// with how many more there were.
const traceLogEvery = time.Minute

// traceWrite is a file for the writer goroutine to write: n traces, in
// an indexed file of their own (log frequency) or in the whole file,
// which holds them again at its next write.
type traceWrite struct {
	path    string
	data    []byte
	n       int
	indexed bool
}

func newTracer(c TraceConfig, set *metrics.Set, logf func(string, ...any)) *tracer {
	mode := c.Mode
	if mode == "" {
		mode = TraceModeTriton
	}
	t := &tracer{
		file:   c.File,
		mode:   mode,
		start:  c,
		logf:   logf,
		logs:   loglimit.New[string](traceLogEvery, 4),
		set:    set,
		taken:  set.NewCounter("infergate_traces_total"),
		lost:   set.NewCounter("infergate_traces_dropped_total"),
		writes: make(chan traceWrite, 16),
		spare:  make(chan []byte, 1),
		models: make(map[string]*traceModel),
	}
	t.node = t.startValues()
	t.updateOn()
	return t
}

// startOTel starts sending traces to the collector in OpenTelemetry
// mode; release is the server's, the spans' service.version.
func (t *tracer) startOTel(release string) {
	if t.start.otel() {
		t.otel = newOTelExporter(t.start, release, t.set, t.lost, t.logf)
	}
}

// recordOTel traces e, a request that sample chose, to the collector,
// unless the settings stopped tracing its model since: the count and
// the ids are the trace file's.
func (t *tracer) recordOTel(e *otelTrace) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	m := t.models[e.model]
	if v := t.effective(m); v.level != TraceTimestamps || v.count == 0 {
		t.mu.Unlock()
		return false
	}
	t.nextID++
	e.id = t.nextID
	count := &t.node.count
	if m != nil && m.count != nil {
		count = m.count
	}
	if *count > 0 {
		if *count--; *count == 0 {
			t.updateOn()
		}
	}
	t.mu.Unlock()
	if !t.otel.add(e) {
		return false
	}
	t.taken.Inc()
	return true
}

// startValues returns the settings of the flags, defaults applied.
func (t *tracer) startValues() traceValues {
	v := traceValues{level: t.start.Level, rate: t.start.Rate, count: t.start.Count, logFreq: t.start.LogFrequency, otel: t.start.otel()}
	if v.level == "" {
		v.level = TraceOff
	}
	if v.rate == 0 && !t.start.otel() {
		v.rate = 1000
	}
	if v.count == 0 {
		v.count = -1
	}
	return v
}

// writer writes the files of t.writes until it is closed.
func (t *tracer) writer() {
	for w := range t.writes {
		err := traceWriteFile(w.path, w.data, 0o644)
		if w.indexed {
			// The tracer's held traces were w.data: it holds the next
			// in it.
			select {
			case t.spare <- w.data[:0]:
			default:
			}
		}
		if err != nil {
			// Traces lost are an ERROR; a file written again later
			// with them all, a WARNING.
			level, fate := logging.Warning, "tried again at the next write of the file"
			if w.indexed {
				t.lost.Add(w.n)
				level, fate = logging.Error, fmt.Sprintf("its %d traces are lost (infergate_traces_dropped_total)", w.n)
			}
			if more, ok := t.logs.Allow("write"); ok {
				t.logf(level+"trace: cannot write %s: %v; %s%s", w.path, err, fate, more)
			}
		}
	}
}

// effective returns the settings that apply to a model with settings m
// (nil: the node's).
func (t *tracer) effective(m *traceModel) traceValues {
	v := t.node
	if m != nil {
		if m.level != nil {
			v.level = *m.level
		}
		if m.rate != nil {
			v.rate = *m.rate
		}
		if m.count != nil {
			v.count = *m.count
		}
	}
	return v
}

// updateOn sets t.on and t.sampling from the settings. t.mu is held, or
// t is new.
func (t *tracer) updateOn() {
	sp := &traceSampling{node: newTraceSampler(t.node, &t.nodeSeen.Uint64)}
	on := sp.node.on
	if len(t.models) > 0 {
		sp.models = make(map[string]traceSampler, len(t.models))
		for name, m := range t.models {
			s := newTraceSampler(t.effective(m), m.seen)
			sp.models[name] = s
			on = on || s.on
		}
	}
	t.sampling.Store(sp)
	t.on.Store(on && !t.closed)
}

// newTraceSampler returns the sampler of a scope with settings v, which
// counts its requests in seen.
func newTraceSampler(v traceValues, seen *atomic.Uint64) traceSampler {
	s := traceSampler{seen: seen}
	if v.level == TraceTimestamps && v.count != 0 {
		s.rate = uint64(v.rate)
		s.on = v.rate > 0 || v.rate == 0 && v.otel
	}
	return s
}

// sample reports whether to trace a request of model, which then goes to
// record once it is done. It takes no lock: while tracing is off a
// request pays one atomic load; while it is on, two, a map lookup and an
// atomic add to its scope's count.
func (t *tracer) sample(model string) bool {
	return t.sampleOf(model, false)
}

// sampleOf is sample; forced traces the request whatever the rate while
// its scope traces at all: its caller sampled it (OpenTelemetry mode).
func (t *tracer) sampleOf(model string, forced bool) bool {
	if !t.on.Load() {
		return false
	}
	sp := t.sampling.Load()
	s, ok := sp.models[model]
	if !ok {
		s = sp.node
	}
	switch {
	case !s.on:
		return false
	case forced:
		return true
	case s.rate == 0:
		return false
	}
	return (s.seen.Add(1)-1)%s.rate == 0
}

// traceEntry is what a traced request leaves: its timestamps, zero where
// it did not get that far.
type traceEntry struct {
	model, version, request  string
	start, queued, ran, done time.Time
	end                      time.Time
}

// record traces e, a request that sample chose, unless the settings
// stopped tracing its model since, and returns its trace id; ok is false
// when it was not traced or was dropped. It writes the traces once there
// are enough: with log frequency N, every N; and when a trace count runs
// out (its last trace, which the same lock section holds).
func (t *tracer) record(e *traceEntry) (id uint64, ok bool) {
	// Formatted before the lock, on the stack (a trace takes about 300
	// bytes, more only with long names); the id is given under it.
	var buf [512]byte
	b, split := appendTraceParts(buf[:0], e)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, false
	}
	m := t.models[e.model]
	if v := t.effective(m); v.level != TraceTimestamps || v.count == 0 {
		return 0, false
	}
	t.nextID++
	id = t.nextID
	due := false
	count := &t.node.count
	if m != nil && m.count != nil {
		count = m.count
	}
	if *count > 0 {
		if *count--; *count == 0 {
			// The last trace the count allows: every other one it
			// allowed is held already.
			due = true
			t.updateOn()
		}
	}
	if t.heldN >= maxHeldTraces {
		t.lost.Inc()
		if !t.warned {
			t.warned = true
			t.logf(logging.Warning+"trace: %d traces are held unwritten (log_frequency %d); later ones are dropped (infergate_traces_dropped_total): set log_frequency to write them as they come", t.heldN, t.node.logFreq)
		}
		if due {
			t.flushLocked(nil)
		}
		return id, false
	}
	t.taken.Inc()
	if len(t.held) == 0 {
		t.held = append(t.held, "[\n"...)
	}
	t.held = append(t.held, `{"id":`...)
	t.held = strconv.AppendUint(t.held, id, 10)
	t.held = append(t.held, b[:split]...)
	t.held = strconv.AppendUint(t.held, id, 10)
	t.held = append(t.held, b[split:]...)
	t.heldN++
	t.dirty = true
	if f := t.node.logFreq; f > 0 && int64(t.heldN) >= f || due {
		t.flushLocked(nil)
	}
	return id, true
}

// flushLocked writes the traces not written yet: with log frequency N,
// those held to the next indexed file; with 0, all of them to the file.
// With final nil, a writer behind drops the file (or, the whole file,
// leaves it to its next write); close gives final, until which the last
// write waits for room. t.mu is held.
func (t *tracer) flushLocked(final <-chan struct{}) {
	if !t.dirty || t.file == "" {
		return
	}
	indexed := t.node.logFreq > 0
	path := t.file
	var data []byte
	if indexed {
		path = t.file + "." + strconv.Itoa(t.index)
		t.index++
		// The held traces go to the writer as they are, closed in
		// place: no copy under the lock.
		data = append(t.held[:len(t.held)-len(",\n")], "\n]\n"...)
	} else {
		// Still held, for the next write of the file: a copy.
		data = make([]byte, 0, len(t.held)+1)
		data = append(data, t.held[:len(t.held)-len(",\n")]...)
		data = append(data, "\n]\n"...)
	}
	t.writerOnce.Do(func() { t.wg.Go(t.writer) })
	w := traceWrite{path: path, data: data, n: t.heldN, indexed: indexed}
	sent := false
	if final == nil {
		select {
		case t.writes <- w:
			sent = true
		default:
		}
	} else {
		select {
		case t.writes <- w:
			sent = true
		case <-final:
		}
	}
	switch {
	case sent:
		if indexed {
			// data is the writer's now; the next traces go in a
			// buffer it is done with, or one as large.
			select {
			case t.held = <-t.spare:
			default:
				t.held = make([]byte, 0, cap(data))
			}
		}
	case !indexed && final == nil:
		// Still held: the next write of the file has them.
		if more, ok := t.logs.Allow("behind"); ok {
			t.logf(logging.Warning+"trace: %s is not written this time: the writer is %d files behind (a slow disk?)%s", path, cap(t.writes), more)
		}
		return
	default:
		// An indexed file, or the last write of the whole one (close):
		// no later write has them.
		t.lost.Add(t.heldN)
		if more, ok := t.logs.Allow("behind"); ok {
			t.logf(logging.Warning+"trace: %d traces for %s are dropped (infergate_traces_dropped_total): the writer is %d files behind (a slow disk?)%s", t.heldN, path, cap(t.writes), more)
		}
	}
	t.dirty = false
	if indexed {
		t.held, t.heldN = t.held[:0], 0
	}
}

// close writes what is held and stops the writer, waiting for the files
// queued until ctx ends, but traceCloseGrace at least: a shutdown whose
// deadline went by on requests that ran to it still writes the trace
// file, which with log frequency 0 holds every trace taken. Later traces
// are dropped. It is idempotent.
func (t *tracer) close(ctx context.Context) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	// giveUp closes once ctx has ended and traceCloseGrace has gone by:
	// the last write waits for room in the writer's queue until then,
	// and close for the writer.
	giveUp, returned := make(chan struct{}), make(chan struct{})
	defer close(returned)
	grace := time.NewTimer(traceCloseGrace)
	defer grace.Stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-returned:
			return
		}
		select {
		case <-grace.C:
		case <-returned:
			return
		}
		close(giveUp)
	}()
	t.flushLocked(giveUp)
	t.closed = true
	t.on.Store(false)
	close(t.writes)
	t.mu.Unlock()
	if t.otel != nil {
		t.otel.close(ctx)
	}
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-giveUp:
	}
	select {
	case <-done: // just now
	default:
		// A disk that does not answer must not hold the process: the
		// writer goes with it.
		t.logf(logging.Warning+"trace: stopped waiting at the shutdown's deadline (%s after close at least) for the trace files being written (%d more queued); what they hold may be lost", traceCloseGrace, len(t.writes))
	}
}

// traceCloseGrace is how long close waits for the trace files being
// written when its context ends sooner; a variable for tests.
var traceCloseGrace = 2 * time.Second

// traceWriteFile writes a trace file whole; a variable for tests.
var traceWriteFile = durable.WriteFile

// appendTraceParts appends e as Triton's "triton" trace mode writes a
// trace, an object naming the request, then one of its timestamps (ns
// since the Unix epoch), each followed by ",\n", but for what comes
// before each object's id and the ids: record writes `{"id":`, the id,
// dst[:split], the id again and dst[split:].
func appendTraceParts(dst []byte, e *traceEntry) (_ []byte, split int) {
	dst = append(dst, `,"model_name":`...)
	dst = oip.AppendJSONString(dst, e.model)
	dst = append(dst, `,"model_version":`...)
	if n, err := strconv.ParseInt(e.version, 10, 64); err == nil {
		dst = strconv.AppendInt(dst, n, 10)
	} else {
		dst = oip.AppendJSONString(dst, e.version)
	}
	if e.request != "" {
		dst = append(dst, `,"request_id":`...)
		dst = oip.AppendJSONString(dst, e.request)
	}
	dst = append(dst, "},\n{\"id\":"...)
	split = len(dst)
	dst = append(dst, `,"timestamps":[`...)
	first := true
	for _, ts := range [...]struct {
		name string
		at   time.Time
	}{{"REQUEST_START", e.start}, {"QUEUE_START", e.queued}, {"COMPUTE_START", e.ran}, {"COMPUTE_END", e.done}, {"REQUEST_END", e.end}} {
		if ts.at.IsZero() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"name":"`...)
		dst = append(dst, ts.name...)
		dst = append(dst, `","ns":`...)
		dst = strconv.AppendInt(dst, ts.at.UnixNano(), 10)
		dst = append(dst, '}')
	}
	return append(dst, "]},\n"...), split
}

// traceSettingNames are the settings, in the order they are answered.
var traceSettingNames = []string{"trace_file", "trace_level", "trace_rate", "trace_count", "log_frequency", "trace_mode"}

// settings returns the settings that apply to model ("" for the node).
func (t *tracer) settings(model string) []oip.TraceSetting {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.settingsLocked(model)
}

func (t *tracer) settingsLocked(model string) []oip.TraceSetting {
	v := t.node
	if model != "" {
		v = t.effective(t.models[model])
	}
	one := func(name string, x ...string) oip.TraceSetting { return oip.TraceSetting{Name: name, Values: x} }
	return []oip.TraceSetting{
		one("trace_file", t.file),
		one("trace_level", v.level),
		one("trace_rate", strconv.FormatInt(v.rate, 10)),
		one("trace_count", strconv.FormatInt(v.count, 10)),
		one("log_frequency", strconv.FormatInt(v.logFreq, 10)),
		one("trace_mode", t.mode),
	}
}

// update applies settings to model's scope ("" for the node's), all of
// them or none, and returns the scope's settings after. A setting with no
// values clears it: a model's then follows the node's, the node's goes
// back to the serve flags'. What is held is written out (a client that
// turns tracing off finds its traces on disk).
func (t *tracer) update(model string, settings []oip.TraceSetting) ([]oip.TraceSetting, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, unavailable(1, "the server is shutting down")
	}
	node := t.node
	var m traceModel
	if model != "" {
		if cur := t.models[model]; cur != nil {
			m = *cur
		} else {
			m.seen = &new(traceCount).Uint64
		}
	}
	start := t.startValues()
	for _, s := range settings {
		clear := len(s.Values) == 0
		integer := func(least int64) (int64, error) {
			if len(s.Values) != 1 {
				return 0, badRequest("trace setting %s takes one value, got %d", s.Name, len(s.Values))
			}
			n, err := strconv.ParseInt(strings.TrimSpace(s.Values[0]), 10, 64)
			if err != nil || n < least {
				return 0, badRequest("trace setting %s is %q; give an integer of at least %d", s.Name, s.Values[0], least)
			}
			return n, nil
		}
		switch s.Name {
		case "trace_level":
			level := start.level
			if !clear {
				var err error
				if level, err = traceLevel(s.Values); err != nil {
					return nil, err
				}
				if level == TraceTimestamps && t.file == "" && t.otel == nil {
					return nil, badRequest("this server has no trace file to write traces to: start serve with --trace-file FILE to trace")
				}
			}
			if model == "" {
				node.level = level
			} else if clear {
				m.level = nil
			} else {
				m.level = &level
			}
		case "trace_rate", "trace_count":
			least := int64(1)
			if s.Name == "trace_count" {
				least = -1
			} else if t.otel != nil {
				least = 0 // the requests a caller sampled only
			}
			var n int64
			if !clear {
				var err error
				if n, err = integer(least); err != nil {
					return nil, err
				}
			}
			switch {
			case model == "" && s.Name == "trace_rate":
				node.rate = startOr(clear, start.rate, n)
			case model == "":
				node.count = startOr(clear, start.count, n)
			case s.Name == "trace_rate":
				m.rate = setOr(clear, n)
			default:
				m.count = setOr(clear, n)
			}
		case "log_frequency":
			if model != "" {
				return nil, badRequest("log_frequency is the node's, for every model's traces in one file: set it with POST /v2/trace/setting")
			}
			n := start.logFreq
			if !clear {
				var err error
				if n, err = integer(0); err != nil {
					return nil, err
				}
				if n > maxHeldTraces {
					return nil, badRequest("log_frequency %d: at most %d traces a file, as at most that many wait unwritten; give %d or less", n, maxHeldTraces, maxHeldTraces)
				}
			}
			node.logFreq = n
		case "trace_file":
			if !clear && (len(s.Values) != 1 || s.Values[0] != t.file) {
				return nil, badRequest("trace_file is serve's --trace-file (%q) and cannot be changed through the API", t.file)
			}
		case "trace_mode":
			if !clear && (len(s.Values) != 1 || s.Values[0] != t.mode) {
				return nil, badRequest("trace_mode %q: this server's is %q, serve's --trace-mode, which cannot be changed through the API", strings.Join(s.Values, ","), t.mode)
			}
		default:
			return nil, badRequest("unknown trace setting %q; the settings are %s", s.Name, strings.Join(traceSettingNames, ", "))
		}
	}
	if t.dirty {
		t.flushLocked(nil) // before the log frequency changes
	}
	switch {
	case node.logFreq == t.node.logFreq:
	case t.node.logFreq == 0:
		// Written whole to the file above; kept for a return to 0.
		t.fileHeld, t.fileHeldN = t.held, t.heldN
		t.held, t.heldN, t.dirty = nil, 0, false
	case node.logFreq == 0:
		// Written to an indexed file above: the file's traces again.
		t.held, t.heldN = t.fileHeld, t.fileHeldN
		t.fileHeld, t.fileHeldN = nil, 0
	}
	t.node = node
	if model != "" {
		if m.level == nil && m.rate == nil && m.count == nil {
			delete(t.models, model)
		} else {
			t.models[model] = &m
		}
	}
	t.updateOn()
	return t.settingsLocked(model), nil
}

// traceLevel returns the level a trace_level setting's values give.
func traceLevel(values []string) (string, error) {
	level := ""
	for _, v := range values {
		switch v {
		case TraceOff, TraceTimestamps:
			if level != "" && level != v {
				return "", badRequest("trace_level %q: give OFF or TIMESTAMPS, not both", values)
			}
			level = v
		case "TENSORS":
			return "", badRequest("trace_level TENSORS: infergate traces timestamps only (TIMESTAMPS)")
		default:
			return "", badRequest("trace_level %q: give OFF or TIMESTAMPS", v)
		}
	}
	if level == "" {
		return "", badRequest("trace_level is empty: give OFF or TIMESTAMPS, or null to clear it")
	}
	return level, nil
}

// startOr returns the setting n, or start, the serve flag's, when the
// setting was cleared.
func startOr(clear bool, start, n int64) int64 {
	if clear {
		return start
	}
	return n
}

// setOr returns a model's setting n, or nil (the node's) when the setting
// was cleared.
func setOr(clear bool, n int64) *int64 {
	if clear {
		return nil
	}
	return &n
}

// decodeTraceSettings decodes the JSON body of POST .../trace/setting:
// an object of settings, each a string, a number, a list of strings, or
// null to clear it.
func decodeTraceSettings(body []byte) ([]oip.TraceSetting, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, badRequest("the body must be a JSON object of trace settings, such as {\"trace_level\": [\"TIMESTAMPS\"], \"trace_rate\": \"100\"}: %s", err)
	}
	if len(raw) > oip.MaxTraceSettings {
		return nil, badRequest("the body has %d settings; the trace extension has %d", len(raw), len(traceSettingNames))
	}
	out := make([]oip.TraceSetting, 0, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		s := oip.TraceSetting{Name: name}
		v := raw[name]
		var str string
		var list []string
		var num json.Number
		switch {
		case string(v) == "null":
		case json.Unmarshal(v, &str) == nil:
			s.Values = []string{str}
		case json.Unmarshal(v, &list) == nil && len(list) > 0:
			s.Values = list
		case json.Unmarshal(v, &num) == nil:
			s.Values = []string{num.String()}
		default:
			return nil, badRequest("trace setting %s is %.40s; give a string, a list of strings, or null", name, v)
		}
		out = append(out, s)
	}
	return out, nil
}

// appendTraceSettings appends settings as the JSON object GET
// .../trace/setting answers: trace_level a list, the others strings.
func appendTraceSettings(dst []byte, settings []oip.TraceSetting) []byte {
	dst = append(dst, '{')
	for i, s := range settings {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = oip.AppendJSONString(dst, s.Name)
		dst = append(dst, ':')
		if s.Name == "trace_level" {
			dst = append(dst, '[')
			for j, v := range s.Values {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = oip.AppendJSONString(dst, v)
			}
			dst = append(dst, ']')
			continue
		}
		dst = oip.AppendJSONString(dst, strings.Join(s.Values, ","))
	}
	return append(dst, '}')
}

// traceSetting serves GET and POST /v2/trace/setting (model nil) and
// /v2/models/{model}/trace/setting. Reading takes the inference token
// where one is set, as the rest of /v2 does; a change takes the admin
// token alone (it has the node write files; a request has one
// Authorization header, which cannot hold both tokens), and is audited.
func (s *Server) traceSetting(ctx *fasthttp.RequestCtx, model []byte) error {
	if err := allow(ctx, fasthttp.MethodGet, fasthttp.MethodPost); err != nil {
		return err
	}
	authorize := s.authorizeInference
	if ctx.IsPost() {
		authorize = s.authorizeAdmin
	}
	if err := authorize(ctx); err != nil {
		return err
	}
	name := string(model)
	if name != "" && s.repo.Model(name) == nil {
		return notFound("model %q is not served here; POST /v2/repository/index lists the repository's models", name)
	}
	settings, err := s.traceSettingUpdate(ctx, name)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(appendTraceSettings(nil, settings))
	return nil
}

// traceSettingUpdate returns the settings of model's scope: read, or for a
// POST changed as its body says first (and audited).
func (s *Server) traceSettingUpdate(ctx *fasthttp.RequestCtx, name string) ([]oip.TraceSetting, error) {
	if !ctx.IsPost() {
		return s.trace.settings(name), nil
	}
	body, err := s.requestBody(ctx)
	if err != nil {
		return nil, err
	}
	update, err := decodeTraceSettings(body)
	if err != nil {
		return nil, err
	}
	settings, err := s.trace.update(name, update)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, "set the trace settings of %s: %s", traceScopeName(name), traceSettingsLine(settings))
	return settings, nil
}

// grpcTraceSetting answers TraceSetting as GET and POST .../trace/setting
// do: with no settings it reads them (the inference token), else it
// changes them (the admin token alone, as over HTTP). Not in grpcGuarded:
// which token it takes depends on the message.
func (s *Server) grpcTraceSetting(ctx context.Context, sc *scratch) ([]byte, error) {
	update, name, err := oip.DecodeTraceSettingRequest(sc.in)
	if err != nil {
		return nil, err
	}
	if len(update) > 0 {
		if err := s.grpcAuthorizeAdmin(ctx, grpcTraceSetting); err != nil {
			return nil, err
		}
	} else if s.cfg.InferenceToken != "" && !grpcBearerMatches(ctx, s.cfg.InferenceToken) {
		return nil, &httpError{code: fasthttp.StatusUnauthorized, msg: "this server needs the inference token: send the metadata authorization: Bearer <token>"}
	}
	if name != "" && s.repo.Model(name) == nil {
		return nil, notFound("model %q is not served here", name)
	}
	if len(update) == 0 {
		return oip.AppendTraceSettingResponse(sc.buf[:0], s.trace.settings(name)), nil
	}
	settings, err := s.trace.update(name, update)
	if err != nil {
		return nil, err
	}
	s.auditFrom(grpcPeerHost(ctx)+" (gRPC)", "set the trace settings of %s: %s", traceScopeName(name), traceSettingsLine(settings))
	return oip.AppendTraceSettingResponse(sc.buf[:0], settings), nil
}

func traceScopeName(model string) string {
	if model == "" {
		return "the node"
	}
	return fmt.Sprintf("model %q", model)
}

// traceSettingsLine writes settings for the log: name=value, ...
func traceSettingsLine(settings []oip.TraceSetting) string {
	var b strings.Builder
	for i, s := range settings {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", s.Name, strings.Join(s.Values, "|"))
	}
	return b.String()
}

// traceRequest traces the request that sc holds, which version v answered
// (or refused, err) from start to now, if the settings sample it. In
// OpenTelemetry mode, parent is the trace context its caller sent: one
// the caller sampled is traced at any rate, one it did not is not traced.
func (s *Server) traceRequest(v *registry.Version, sc *scratch, start time.Time, parent traceParent, err error) {
	if parent.valid && !parent.sampled() {
		return
	}
	if !s.trace.sampleOf(v.Model, parent.valid) {
		return
	}
	e := traceEntry{model: v.Model, version: v.Label, request: sc.req.ID, start: start, queued: sc.queued, end: time.Now()}
	if br := &sc.breq; br.BatchRows > 0 && !sc.queued.IsZero() {
		e.ran = sc.queued.Add(br.Waited)
		e.done = e.ran.Add(br.Compute)
	}
	if s.trace.otel == nil {
		s.trace.record(&e)
		return
	}
	ot := &otelTrace{traceEntry: e, parent: parent}
	if err != nil {
		ot.failed = toHTTPError(err).msg
	}
	s.trace.recordOTel(ot)
}

// grpcTraceParent returns the trace context of a gRPC call, in
// OpenTelemetry mode: its traceparent and tracestate metadata (a
// stream's, for each of its requests).
func (s *Server) grpcTraceParent(ctx context.Context) traceParent {
	if s.trace.otel == nil {
		return traceParent{}
	}
	h := metadata.ValueFromIncomingContext(ctx, "traceparent")
	if len(h) != 1 {
		return traceParent{}
	}
	var state []byte
	if st := metadata.ValueFromIncomingContext(ctx, "tracestate"); len(st) > 0 {
		state = []byte(strings.Join(st, ","))
	}
	return parseTraceParent([]byte(h[0]), state)
}

// traceParentOf returns the trace context of an HTTP request, in
// OpenTelemetry mode: its traceparent and tracestate headers, as
// grpcTraceParent reads metadata.
func (s *Server) traceParentOf(ctx *fasthttp.RequestCtx) traceParent {
	if s.trace.otel == nil {
		return traceParent{}
	}
	all := ctx.Request.Header.PeekAll("traceparent")
	if len(all) != 1 {
		return traceParent{}
	}
	h := all[0] // the next PeekAll reuses all
	var state []byte
	if st := ctx.Request.Header.PeekAll("tracestate"); len(st) == 1 {
		state = st[0]
	} else if len(st) > 1 {
		state = bytes.Join(st, []byte{','})
	}
	return parseTraceParent(h, state)
}
