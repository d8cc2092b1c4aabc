package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/infergate/infergate/batching"
	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/gateway/cache"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/gateway/shm"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

const headerInferenceLen = "Inference-Header-Content-Length"

// scratch holds one request's reusable buffers.
type scratch struct {
	in   []byte // a gRPC request's message
	key  []byte
	bkey []byte // the body key of a cacheable request
	req  oip.InferRequest
	breq batching.Request
	outs []oip.Tensor
	// cls holds the outputs asked for as classifications, and order
	// their sorting scratch.
	cls   []oip.Tensor
	order []int
	resp  oip.InferResponse
	buf   []byte
	zbuf  []byte // buf compressed, when the client accepts it
	num   []byte
	// jsonLen is the length of the JSON part of the response in buf.
	jsonLen int
	// id holds the id ensureID makes up for a request, which req.ID then
	// views until the request is done.
	id [16]byte
	// sampled is whether the traffic log logs this request
	// (sampleTraffic decides); shadow the shadow that gets a copy of it,
	// if any.
	sampled bool
	shadow  *registry.Shadow
	// predict is the format of a predict request of KServe's v1 protocol
	// once decoded; 0 for the v2 protocol's requests.
	predict oip.PredictFormat
	// shmOut holds the writes of the outputs that go to shared memory.
	shmOut []shm.Out
	// queued is when the request went to the batcher, set while tracing
	// is on (traceRequest).
	queued time.Time
}

// scratchPool recycles scratch; buffers grown past maxPooledBytes by an
// unusually large request are dropped rather than kept forever.
type scratchPool struct{ p sync.Pool }

const maxPooledBytes = 1 << 20

func (p *scratchPool) get() *scratch {
	if s, ok := p.p.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

func (p *scratchPool) put(s *scratch) {
	size := s.req.RetainedBytes() + cap(s.in) + cap(s.buf) + cap(s.zbuf) + cap(s.num) + cap(s.key) + cap(s.bkey)
	for _, o := range s.outs[:cap(s.outs)] {
		size += cap(o.Data) + 8*cap(o.Shape)
	}
	for _, o := range s.cls[:cap(s.cls)] {
		size += cap(o.Data) + 8*cap(o.Shape)
	}
	size += 8 * cap(s.order)
	if size > maxPooledBytes {
		return
	}
	s.req.Reset()
	s.shadow = nil
	p.p.Put(s)
}

// unrouted reasons: a request that never reached a model version.
const (
	unroutedModel = iota
	unroutedVersion
	unroutedNotReady
	numUnrouted
)

func unroutedReason(i int) string {
	return [numUnrouted]string{"model_not_found", "version_not_found", "model_not_ready"}[i]
}

// infer serves POST /v2/models/{name}[/versions/{version}]/infer, and with
// v1 set, POST /v1/models/{name}[/versions/{version}]:predict.
func (s *Server) infer(ctx *fasthttp.RequestCtx, name, version []byte, v1 bool) error {
	start := time.Now()
	v, arm, err := s.acquire(ctx, name, version)
	if err != nil {
		return err
	}
	defer v.Release()
	v.Metrics.Arrived(start)
	ctx.Response.Header.Set("X-Model-Version", v.Label)
	if arm != "" {
		ctx.Response.Header.Set(HeaderExperimentArm, arm)
	}
	finished := false
	defer func() {
		if !finished { // inferVersion panicked; handle recovers and answers 500
			v.Metrics.Failed(registry.ReasonInternal, time.Since(start))
		}
	}()
	err = s.inferVersion(ctx, v, arm, start, v1)
	finished = true
	if err != nil {
		he := toHTTPError(err)
		v.Metrics.Failed(he.reason, time.Since(start))
		return he
	}
	v.Metrics.Succeeded(time.Since(start))
	return nil
}

// HeaderUnitID carries the unit (a user, a session) that a model's A/B
// experiment assigns an arm to: the same unit gets the same arm on every
// node. Without it, each request gets an arm at random.
const HeaderUnitID = "X-Unit-Id"

// HeaderExperimentArm names, on a response, the experiment arm that
// served the request.
const HeaderExperimentArm = "X-Experiment-Arm"

// acquire picks and acquires the version an inference request gets: the
// one its path names, else its unit's arm of the model's experiment, else
// the model's default.
func (s *Server) acquire(ctx *fasthttp.RequestCtx, name, version []byte) (*registry.Version, string, error) {
	return s.acquireFor(name, version, ctx.Request.Header.Peek(HeaderUnitID), "header "+HeaderUnitID)
}

// acquireFor is acquire for the unit id unit, which field carries.
func (s *Server) acquireFor(name, version, unit []byte, field string) (*registry.Version, string, error) {
	vnum, err := parseVersion(version)
	if err != nil {
		return nil, "", err
	}
	var v *registry.Version
	arm := ""
	if vnum == 0 {
		if len(unit) > route.MaxUnitLen {
			return nil, "", badRequest("%s has %d bytes; a unit id has at most %d", field, len(unit), route.MaxUnitLen)
		}
		v, arm, err = s.repo.AcquireUnversioned(b2s(name), unit)
	} else {
		v, err = s.repo.Acquire(b2s(name), vnum)
	}
	if err != nil {
		s.countUnrouted(err)
		return nil, "", s.routeError(name, version, err)
	}
	return v, arm, nil
}

// inferVersion answers the request with version v, which experiment arm
// arm picked (empty when none did); v1 says it is a predict request of
// KServe's v1 protocol.
func (s *Server) inferVersion(ctx *fasthttp.RequestCtx, v *registry.Version, arm string, start time.Time, v1 bool) error {
	if v.Batcher.Full() {
		// Refuse before decoding: under overload, decoding requests only
		// to refuse them takes the CPU the accepted ones need. (A request
		// the cache could answer is refused too; it retries.)
		return s.batchError(v, 0, 0, batching.ErrQueueFull)
	}
	sc := s.scratch.get()
	defer s.scratch.put(sc)
	sc.predict = 0
	tracing := s.trace.on.Load()
	if s.cfg.SlowRequests <= 0 && !tracing {
		return s.inferWith(ctx, sc, v, arm, start, v1)
	}
	// sc is reused: what a request that stops early leaves unset must not
	// read as the last one's.
	sc.breq.Waited, sc.breq.BatchRows, sc.breq.Rows, sc.breq.FailedRows, sc.req.ID = 0, 0, 0, 0, ""
	sc.queued = time.Time{}
	// Not deferred: a request that panics is logged as the 500 it gets.
	err := s.inferWith(ctx, sc, v, arm, start, v1)
	if s.cfg.SlowRequests > 0 {
		s.logSlow(ctx, v, arm, sc, start, err)
	}
	if tracing {
		s.traceRequest(v, sc, start, s.traceParentOf(ctx), err)
	}
	return err
}

// inferWith is inferVersion's work, on scratch sc.
func (s *Server) inferWith(ctx *fasthttp.RequestCtx, sc *scratch, v *registry.Version, arm string, start time.Time, v1 bool) error {
	req := &sc.req

	headerLen := -1
	if h := ctx.Request.Header.Peek(headerInferenceLen); h != nil {
		if v1 {
			return badRequest("KServe's v1 protocol has no binary tensors: send the body as JSON, without the %s header, or send binary tensors to POST /v2/models/%s/infer", headerInferenceLen, v.Model)
		}
		n, err := fasthttp.ParseUint(h)
		if err != nil {
			return badRequest("header %s is %q; it must be the byte length of the JSON part of the body", headerInferenceLen, h)
		}
		headerLen = n
	}
	body, err := s.requestBody(ctx)
	if err != nil {
		return err
	}
	cacheable := s.cache != nil && v.Config.ResponseCache != nil && v.Config.ResponseCache.Enable &&
		!noCacheAsked(&ctx.Request.Header)
	sc.bkey = sc.bkey[:0]
	// Whether the model's shadow gets a copy of this request, and whether
	// the traffic log logs it, is decided once, here: both need the
	// request decoded, so a replay below is for requests neither samples.
	sc.shadow = s.sampleShadow(v)
	sc.sampled = s.sampleTraffic()
	if cacheable && sc.shadow == nil && !sc.sampled {
		// A byte-identical request got this answer before: replay it
		// without decoding.
		keyLen := headerLen
		if v1 {
			keyLen = predictBodyKey // answered in another format
		}
		sc.bkey = cache.AppendBodyKey(sc.bkey, v.Generation, keyLen, body)
		lookup := time.Now()
		if e, ok := s.cache.Get(sc.bkey); ok && e.Response != nil {
			s.setBody(ctx, sc, e.Response, e.JSONLen)
			ctx.Response.Header.Set("X-Cache", "hit")
			now := time.Now()
			v.Metrics.CacheHit(now.Sub(start), now.Sub(lookup))
			return nil
		}
	}
	switch {
	case v1:
		sc.predict, err = oip.DecodePredictRequest(req, body, v.Inputs)
	case headerLen == 0:
		err = rawRequest(req, v, body)
	default:
		err = oip.DecodeRequest(req, body, headerLen)
	}
	if err != nil {
		return err
	}
	n, made, err := s.checkRequest(sc, v)
	if err != nil {
		return err
	}
	if made || usesSharedMemory(req) {
		// A response with an id of its own must not be replayed to the
		// next byte-identical request: each prediction gets its id. Nor
		// one that used shared memory: its bytes say nothing of what the
		// regions held, and its outputs went there. (Never stored, such
		// bytes never find an entry either.)
		sc.bkey = sc.bkey[:0]
	}

	useCache := cacheable && !req.CacheBypass
	var missed time.Duration // looking up a request the cache then misses
	if useCache {
		sc.key = cache.AppendKey(sc.key[:0], v.Generation, req.Inputs, v.Inputs)
		lookup := time.Now()
		if e, ok := s.cache.Get(sc.key); ok && e.Outputs != nil {
			if err := s.writeResponse(ctx, sc, v, e.Outputs); err != nil {
				// Found, though its classes are too large: a hit, as
				// Triton counts its cache lookups.
				v.Metrics.CacheHit(time.Since(start), time.Since(lookup))
				return err
			}
			// A hit is a request of production's traffic like any other:
			// its shadow gets its copy too.
			s.copyToShadow(sc, e.Outputs)
			s.logPrediction(unitOf(ctx, arm), sc, v, arm, e.Outputs)
			copied := time.Since(lookup)
			s.cacheResponse(sc)
			ctx.Response.Header.Set("X-Cache", "hit")
			v.Metrics.CacheHit(time.Since(start), copied)
			return nil
		}
		missed = time.Since(lookup)
		// A miss, whatever becomes of the request from here; storing its
		// outputs below adds to its time.
		defer func() { v.Metrics.CacheMiss(missed) }()
	}

	if err := s.runBatch(sc, v, n, start, s.requestTimeout(req, v, s.cfg.RequestTimeout)); err != nil {
		return err
	}
	s.copyToShadow(sc, sc.outs)
	if useCache {
		// The values are stored whatever becomes of this response (its
		// classes may be too large), the response itself only once
		// written.
		store := time.Now()
		s.cache.Set(sc.key, sc.outs)
		missed += time.Since(store)
	}
	if err := s.writeResponse(ctx, sc, v, sc.outs); err != nil {
		return err
	}
	// Logged once the client's answer is written: a prediction whose
	// response failed (classes over max_output_bytes) is none.
	s.logPrediction(unitOf(ctx, arm), sc, v, arm, sc.outs)
	if useCache {
		s.cacheResponse(sc)
	}
	return nil
}

// checkRequest checks decoded request sc.req against version v, gives it
// an id when the traffic log needs one and it has none (made), and
// returns its rows.
func (s *Server) checkRequest(sc *scratch, v *registry.Version) (rows int, made bool, err error) {
	req := &sc.req
	if err := s.readSharedInputs(req); err != nil {
		return 0, false, err
	}
	noBatchDim := int64(0)
	if !v.Batchable {
		noBatchDim = -1 // the first dimensions are each input's own
	}
	if err := oip.CheckInputs(req.Inputs, v.Inputs, noBatchDim); err != nil {
		return 0, false, err
	}
	if err := oip.CheckOutputs(req.Outputs, v.Outputs); err != nil {
		return 0, false, err
	}
	if made, err = s.ensureID(sc); err != nil {
		return 0, false, err
	}
	rows = 1
	if v.Batchable {
		if rows = int(req.Inputs[0].Shape[0]); rows == 0 {
			return 0, false, badRequest("input %q has shape %s: 0 rows; send at least one", req.Inputs[0].Name, oip.FormatShape(req.Inputs[0].Shape))
		}
	}
	return rows, made, nil
}

// requestTimeout returns how long request req for v may take from its
// start: limit, or less where its "timeout" parameter asks for less and
// v's configuration lets its priority shorten it.
func (s *Server) requestTimeout(req *oip.InferRequest, v *registry.Version, limit time.Duration) time.Duration {
	if t := req.TimeoutMicros; t > 0 && t < int64(limit/time.Microsecond) && v.Config.DynamicBatching.TimeoutOverride(priorityLevel(v, req.Priority)) {
		return time.Duration(t) * time.Microsecond
	}
	return limit
}

// runBatch runs sc.req, of rows rows, on v's batcher, within timeout of
// start; its outputs are left in sc.outs.
func (s *Server) runBatch(sc *scratch, v *registry.Version, rows int, start time.Time, timeout time.Duration) error {
	req := &sc.req
	br := &sc.breq
	br.Inputs = req.Inputs
	br.Rows = rows
	br.Priority = req.Priority // the batcher refuses one out of range
	br.Deadline = start.Add(timeout)
	br.Outputs = sc.outs
	if s.trace.on.Load() {
		sc.queued = time.Now()
	}
	err := v.Batcher.Do(br)
	sc.outs = br.Outputs
	br.Inputs = nil
	if err != nil {
		return s.batchError(v, priorityLevel(v, req.Priority), timeout, err)
	}
	return nil
}

// unitOf returns the unit id of an HTTP request that experiment arm arm
// answered, for the traffic log: nil when none did.
func unitOf(ctx *fasthttp.RequestCtx, arm string) []byte {
	if arm == "" {
		return nil
	}
	return ctx.Request.Header.Peek(HeaderUnitID)
}

// sampleShadow returns the model's shadow when it samples a request v
// answers (nil otherwise).
func (s *Server) sampleShadow(v *registry.Version) *registry.Shadow {
	if m := s.repo.Model(v.Model); m != nil {
		if sh := m.Shadow(); sh != nil && sh.Version != v.Number && sh.Sample() {
			return sh
		}
	}
	return nil
}

// copyToShadow submits a copy of sc's request, answered outs, to the
// shadow that sampled it, if one did; the copy is logged under the
// request's id when the traffic log sampled the request.
func (s *Server) copyToShadow(sc *scratch, outs []oip.Tensor) {
	if sc.shadow == nil {
		return
	}
	logID := ""
	if sc.sampled {
		logID = sc.req.ID
	}
	s.shadows.submit(sc.shadow, sc.req.Inputs, outs, logID)
}

// cacheResponse stores the response just written under the request's body
// key, for byte-identical requests to come.
func (s *Server) cacheResponse(sc *scratch) {
	if len(sc.bkey) > 0 {
		s.cache.SetResponse(sc.bkey, sc.buf, sc.jsonLen)
	}
}

var (
	noCache  = []byte("no-cache")
	noStore  = []byte("no-store")
	identity = []byte("identity")
)

// noCacheAsked reports whether a Cache-Control header of h holds the
// no-cache or the no-store directive, whose names are case-insensitive
// (RFC 9111, 5.2). Either keeps the request away from the cache, both
// ways: no-cache must not be answered from it, and nothing of a no-store
// request may be stored.
func noCacheAsked(h *fasthttp.RequestHeader) bool {
	if h.Peek(fasthttp.HeaderCacheControl) == nil {
		return false // the usual case, without PeekAll's work
	}
	for _, v := range h.PeekAll(fasthttp.HeaderCacheControl) {
		for len(v) > 0 {
			var directive []byte
			directive, v, _ = bytes.Cut(v, []byte{','})
			name, _, _ := bytes.Cut(directive, []byte{'='})
			if name = bytes.TrimSpace(name); bytes.EqualFold(name, noCache) || bytes.EqualFold(name, noStore) {
				return true
			}
		}
	}
	return false
}

// writeResponse encodes outs as the answer to sc.req: the outputs it asked
// for in the order it asked (all, in model order, when it named none),
// each as JSON or binary data as it asked, and as its top classes where it
// asked with the classification parameter. A predict request of KServe's
// v1 protocol gets all of them, in its format.
func (s *Server) writeResponse(ctx *fasthttp.RequestCtx, sc *scratch, v *registry.Version, outs []oip.Tensor) error {
	if sc.predict != 0 {
		out, err := oip.AppendPredictResponse(sc.buf[:0], sc.predict, outs, sc.req.ID)
		if err != nil {
			return err
		}
		sc.buf, sc.jsonLen = out, len(out)
		s.setBody(ctx, sc, out, len(out))
		return nil
	}
	if err := s.selectOutputs(sc, v, outs); err != nil {
		return err
	}
	resp := &sc.resp
	out, jsonLen := oip.AppendResponse(sc.buf[:0], resp)
	sc.buf, sc.jsonLen = out, jsonLen
	clear(resp.Outputs) // drop references to outs, which may be a cache entry
	s.setBody(ctx, sc, out, jsonLen)
	return nil
}

// selectOutputs fills sc.resp with the answer to sc.req from outs, as
// writeResponse describes. sc.resp then refers to outs: the caller
// clears its outputs once encoded.
func (s *Server) selectOutputs(sc *scratch, v *registry.Version, outs []oip.Tensor) error {
	req := &sc.req
	resp := &sc.resp
	resp.ModelName = v.Model
	resp.ModelVersion = v.Label
	resp.ID = req.ID
	resp.Outputs = resp.Outputs[:0]
	if len(req.Outputs) == 0 {
		for i := range outs {
			resp.Outputs = append(resp.Outputs, oip.OutputTensor{Tensor: outs[i], Binary: req.BinaryDataOutput})
		}
	} else {
		ncls := 0
		for j := range req.Outputs {
			o := &req.Outputs[j]
			binary := req.BinaryDataOutput
			if o.HasBinary {
				binary = o.Binary
			}
			for i := range outs {
				if outs[i].Name != o.Name {
					continue
				}
				t := outs[i]
				if o.Classification > 0 {
					if ncls == len(sc.cls) {
						sc.cls = append(sc.cls, oip.Tensor{})
					}
					limit := v.Config.MaxOutputBytes
					if limit <= 0 {
						limit = engine.DefaultMaxOutputBytes
					}
					var err error
					sc.order, err = oip.Classify(&sc.cls[ncls], &outs[i], o.Classification, v.Batchable, int(limit), sc.order)
					if err != nil {
						clear(resp.Outputs)
						return &httpError{code: fasthttp.StatusRequestEntityTooLarge, msg: fmt.Sprintf("%s (max_output_bytes %d)", err, limit), reason: registry.ReasonBadRequest}
					}
					t = sc.cls[ncls]
					ncls++
				}
				resp.Outputs = append(resp.Outputs, oip.OutputTensor{Tensor: t, Binary: binary, SharedMemory: o.SharedMemory})
			}
		}
		if err := s.writeSharedOutputs(sc, resp); err != nil {
			clear(resp.Outputs)
			return err
		}
	}
	return nil
}

// setBody answers with an encoded response body whose JSON part is
// jsonLen bytes: binary outputs after it make it application/octet-stream
// with the JSON length in its header. With Config.CompressResponses, a
// body of minCompressBytes or more goes out compressed when the request's
// Accept-Encoding takes gzip or deflate, as Triton does; the JSON length
// still counts the body before compression.
func (s *Server) setBody(ctx *fasthttp.RequestCtx, sc *scratch, body []byte, jsonLen int) {
	h := &ctx.Response.Header
	if jsonLen < len(body) {
		sc.num = strconv.AppendInt(sc.num[:0], int64(jsonLen), 10)
		h.SetBytesV(headerInferenceLen, sc.num)
		h.SetContentType("application/octet-stream")
	} else {
		h.SetContentType("application/json")
	}
	if !s.cfg.CompressResponses {
		ctx.SetBody(body)
		return
	}
	h.Set(fasthttp.HeaderVary, fasthttp.HeaderAcceptEncoding)
	if ae := ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding); len(ae) > 0 {
		if len(body) >= minCompressBytes {
			switch responseEncoding(ae) {
			case "gzip":
				sc.zbuf = fasthttp.AppendGzipBytesLevel(sc.zbuf[:0], body, fasthttp.CompressBestSpeed)
				h.Set(fasthttp.HeaderContentEncoding, "gzip")
				body = sc.zbuf
			case "deflate":
				sc.zbuf = fasthttp.AppendDeflateBytesLevel(sc.zbuf[:0], body, fasthttp.CompressBestSpeed)
				h.Set(fasthttp.HeaderContentEncoding, "deflate")
				body = sc.zbuf
			}
		}
	}
	ctx.SetBody(body)
}

// minCompressBytes is the smallest response body worth compressing:
// smaller ones would barely shrink, or grow, for the CPU spent.
const minCompressBytes = 1024

// responseEncoding picks the content coding of a response from the
// request's Accept-Encoding (RFC 9110, 12.5.3): of gzip and deflate, the
// one with the higher weight, gzip on a tie; a coding not listed takes the
// weight of "*", if listed; weight 0 refuses. "" means identity.
func responseEncoding(accept []byte) string {
	qGzip, qDeflate, qAny := -1.0, -1.0, -1.0 // -1: not listed
	for len(accept) > 0 {
		var item []byte
		item, accept, _ = bytes.Cut(accept, []byte{','})
		coding, params, _ := bytes.Cut(item, []byte{';'})
		q := 1.0
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte{';'})
			name, value, ok := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
			if ok && bytes.EqualFold(name, []byte("q")) {
				if v, err := strconv.ParseFloat(string(value), 64); err == nil && v >= 0 && v <= 1 {
					q = v
				}
			}
		}
		switch coding = bytes.TrimSpace(coding); {
		case bytes.EqualFold(coding, []byte("gzip")):
			qGzip = q
		case bytes.EqualFold(coding, []byte("deflate")):
			qDeflate = q
		case bytes.Equal(coding, []byte("*")):
			qAny = q
		}
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	if qDeflate < 0 {
		qDeflate = qAny
	}
	switch {
	case qGzip > 0 && qGzip >= qDeflate:
		return "gzip"
	case qDeflate > 0:
		return "deflate"
	}
	return ""
}

// priorityLevel returns the priority level of a request that gives
// priority (0: none) to version v. The decoder refuses a negative one.
func priorityLevel(v *registry.Version, priority int64) int {
	bc := v.Batcher.Config()
	level, err := bc.Level(priority)
	if err != nil {
		return bc.DefaultPriority
	}
	return level
}

// batchError maps an error from the batcher or the backend, for a request
// of priority level that waited at most timeout, to a response.
func (s *Server) batchError(v *registry.Version, level int, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, batching.ErrQueueFull):
		return unavailable(1, "model %q version %s has %d requests queued, its max_queue; retry later, or raise max_queue or instances in the model's config.json",
			v.Model, v.Label, v.Batcher.Config().MaxQueueSize)
	case errors.Is(err, batching.ErrLevelFull):
		return unavailable(1, "model %q version %s has %d requests of priority %d queued, the max_queue_size of that priority in its dynamic_batching.priority_queue_policy; retry later, send it at another priority, or raise that bound",
			v.Model, v.Label, v.Batcher.Config().LevelPolicies[level].MaxQueueSize, level)
	case errors.Is(err, batching.ErrDisplaced):
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, reason: registry.ReasonDisplaced,
			msg: fmt.Sprintf("model %q version %s gave this request's place in its full queue (max_queue %d) to one of higher priority; retry later, send it with a higher priority, or raise max_queue or instances in the model's config.json",
				v.Model, v.Label, v.Batcher.Config().MaxQueueSize)}
	case errors.Is(err, batching.ErrTimeout):
		bc := v.Batcher.Config()
		if t := bc.LevelTimeout(level); t > 0 && t < timeout {
			setting := "dynamic_batching.default_queue_timeout_us"
			if d := v.Config.DynamicBatching; d != nil && d.PriorityQueuePolicy[strconv.Itoa(level)].DefaultTimeoutMicroseconds != nil {
				// The level's own; a level's policy that gives none
				// takes the model's.
				setting = fmt.Sprintf("dynamic_batching.priority_queue_policy's default_timeout_microseconds for priority %d", level)
			}
			return timedOut(fmt.Sprintf("timed out after %s waiting in the queue of model %q version %s (%s), its %s; retry later, raise that in the model's configuration, or add instances",
				t, v.Model, v.Label, queueState(bc), setting))
		}
		return timedOut(fmt.Sprintf("timed out after %s waiting in the queue of model %q version %s (%s); retry later, raise the request's timeout parameter or the server's --request-timeout, or add instances",
			timeout, v.Model, v.Label, queueState(bc)))
	case errors.Is(err, batching.ErrBadPriority), errors.Is(err, batching.ErrBadRequest):
		return badRequest("%s", strings.TrimPrefix(err.Error(), "batching: "))
	case errors.Is(err, batching.ErrStopped), errors.Is(err, engine.ErrClosed):
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, reason: registry.ReasonCanceled,
			msg: fmt.Sprintf("model %q version %s is being unloaded; retry", v.Model, v.Label)}
	case errors.Is(err, engine.ErrInvalidInput), errors.Is(err, engine.ErrUnknownOutput), errors.Is(err, engine.ErrInputRejected):
		return badRequest("%s", err)
	case errors.Is(err, engine.ErrOutputTooLarge):
		return &httpError{code: fasthttp.StatusRequestEntityTooLarge, msg: err.Error(), reason: registry.ReasonBadRequest}
	}
	return internal(fmt.Errorf("model %q version %s: %w", v.Model, v.Label, err))
}

// queueState says why a request of a version with batcher configuration
// bc waits in its queue: its instances are busy, or an idle one holds
// requests for up to the queue delay to fill a batch.
func queueState(bc batching.Config) string {
	if bc.MaxQueueDelay > 0 {
		return fmt.Sprintf("%d instances, busy or holding requests up to max_queue_delay_us %d to fill a batch", bc.Instances, bc.MaxQueueDelay.Microseconds())
	}
	return fmt.Sprintf("%d instances busy", bc.Instances)
}

// requestBody returns the request body, decompressed when it carries a
// Content-Encoding (gzip, deflate, br, zstd), never past MaxBodyBytes.
func (s *Server) requestBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	ce := ctx.Request.Header.ContentEncoding()
	if len(ce) == 0 || bytes.EqualFold(ce, identity) {
		return ctx.PostBody(), nil
	}
	b, err := decompress(ce, ctx.PostBody(), s.cfg.MaxBodyBytes)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, fasthttp.ErrContentEncodingUnsupported):
		return nil, badRequest("Content-Encoding %q is not supported; send the body uncompressed or as gzip, deflate, br or zstd", ce)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return nil, &httpError{code: fasthttp.StatusRequestEntityTooLarge, reason: registry.ReasonBadRequest,
			msg: fmt.Sprintf("the %s body decompresses to more than the %d-byte limit; send fewer rows per request, or raise the server's --max-body", ce, s.cfg.MaxBodyBytes)}
	}
	return nil, badRequest("cannot decompress the %s request body: %s", ce, err)
}

// parseVersion parses the {version} path segment; nil means none (0).
func parseVersion(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	n, err := fasthttp.ParseUint(b)
	if err != nil || n < 1 {
		return 0, badRequest("model version %q is not a positive integer", b)
	}
	return int64(n), nil
}

// countUnrouted counts an infer request that found no version to run.
func (s *Server) countUnrouted(err error) {
	switch {
	case errors.Is(err, registry.ErrModelNotFound):
		s.unrouted[unroutedModel].Inc()
	case errors.Is(err, registry.ErrVersionNotFound):
		s.unrouted[unroutedVersion].Inc()
	case errors.Is(err, registry.ErrModelNotReady):
		s.unrouted[unroutedNotReady].Inc()
	}
}

// routeError explains why a request found no version to run.
func (s *Server) routeError(name, version []byte, err error) error {
	switch {
	case errors.Is(err, registry.ErrModelNotFound):
		if e := s.absent(name, version); e != nil {
			return e
		}
		if !s.ready.Load() && !s.stopping.Load() {
			// serve listens before its initial models are loaded: the
			// model may be one of them (a node restarted, in a rolling
			// upgrade say), so it is not told that it does not exist.
			return unavailable(1, "model %q is not loaded here: this node is still loading its initial models (GET /v2/health/ready answers 200 once it has); ask again, or ask another node", name)
		}
		return notFound("model %q is not served here; POST /v2/repository/index lists the repository's models and their state", name)
	case errors.Is(err, registry.ErrVersionNotFound):
		if m := s.repo.Model(b2s(name)); m != nil {
			if retired, until := m.StandIn(); retired != 0 && strconv.FormatInt(retired, 10) == string(version) {
				return notFound("model %q version %s is retired; this node answers unversioned requests with it only until production version %d is ready here; ready versions, which a request may name: %s", name, version, until, s.readyVersions(b2s(name)))
			}
		}
		if e := s.absent(name, version); e != nil {
			return e
		}
		return notFound("model %q has no ready version %s; ready versions: %s", name, version, s.readyVersions(b2s(name)))
	case errors.Is(err, registry.ErrModelNotReady):
		if d := s.repo.DefaultVersion(b2s(name)); d != 0 {
			// Pinned, as a cluster pins production, to a version that
			// is not ready here while others may be.
			if cp := s.plane.Load(); cp != nil {
				if a, ok := cp.node.Absence(b2s(name), d); ok {
					why, retry := absenceReason(a.Status)
					return unavailable(retry, "model %q: unversioned requests go to version %d (its production version), which is not ready on this node: %s; ready versions, which a request may name: %s", name, d, why, s.readyVersions(b2s(name)))
				}
			}
			return unavailable(1, "model %q: unversioned requests go to version %d (its production version), which is not ready on this node yet; ready versions, which a request may name: %s; POST /v2/repository/index shows why", name, d, s.readyVersions(b2s(name)))
		}
		return unavailable(1, "model %q has no ready version yet; POST /v2/repository/index shows why", name)
	}
	return err
}

// absent explains a request for a model, or a version, that this node
// does not serve and its cluster holds: 404 when the version is retired,
// else 503 with the state it is in here (on its way, or failed and
// retried), which tells a client or balancer to try again or elsewhere:
// other members may serve it. It returns nil outside a cluster and when
// the cluster holds no such version either.
func (s *Server) absent(name, version []byte) error {
	cp := s.plane.Load()
	if cp == nil {
		return nil
	}
	if cp.node.FSM().Removed(b2s(name)) {
		return notFound("model %q was removed from the cluster: no node serves it (GET /v1/models/%s lists its retired versions); an upload of the name serves it again, numbered on", name, name)
	}
	vnum, err := parseVersion(version)
	if err != nil {
		return err
	}
	a, ok := cp.node.Absence(b2s(name), vnum)
	if !ok {
		return nil
	}
	if a.Stage == fsm.StageRetired {
		return notFound("model %q version %d is retired; ready versions here: %s", name, a.Version, s.readyVersions(b2s(name)))
	}
	what := fmt.Sprintf("model %q version %d", name, a.Version)
	if vnum == 0 {
		what += ", which unversioned requests get,"
	}
	why, retry := absenceReason(a.Status)
	return unavailable(retry, "%s is not ready on this node: %s; other members may serve it (POST /v2/repository/index shows every version's state here)", what, why)
}

// absenceReason says in words where a version not ready on this node
// stands, and how many seconds a client should wait before it asks again.
func absenceReason(st cluster.VersionStatus) (string, int) {
	switch st.State {
	case cluster.VersionFetching:
		if st.Reason != "" {
			return "its bytes are being fetched from a peer: " + st.Reason, 1
		}
		return "its bytes are being fetched from a peer", 1
	case cluster.VersionLoading:
		return "it is loading", 1
	case cluster.VersionFailed:
		return "it failed here (tried again every few seconds): " + st.Reason, 5
	case cluster.VersionReady:
		// It was, until an unload through the repository API; the
		// reconciler puts it back.
		return "it was unloaded here, and the node loads it again", 1
	case "":
		return "this node has not begun to fetch or load it yet", 1
	}
	return "it is not loaded here", 1
}

func (s *Server) readyVersions(name string) string {
	m := s.repo.Model(name)
	if m == nil {
		return "none"
	}
	hidden, _ := m.StandIn()
	var b []byte
	for _, v := range m.Versions() {
		if v.Number == hidden {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, v.Label...)
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// b2s views b as a string without copying; the string must not outlive b,
// so it is used only for lookups.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
