package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

const headerInferenceLen = "Inference-Header-Content-Length"

// scratch holds one request's reusable buffers.
type scratch struct {
	req   oip.InferRequest
	outs  []oip.Tensor
	names []string
	resp  oip.InferResponse
	buf   []byte
	num   []byte
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
	size := cap(s.buf)
	for i := range s.req.Inputs {
		size += cap(s.req.Inputs[i].Data)
	}
	for i := range s.outs {
		size += cap(s.outs[i].Data)
	}
	if size > maxPooledBytes {
		return
	}
	s.req.Reset()
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

// infer serves POST /v2/models/{name}[/versions/{version}]/infer.
func (s *Server) infer(ctx *fasthttp.RequestCtx, name, version []byte) error {
	start := time.Now()
	vnum, err := parseVersion(version)
	if err != nil {
		return err
	}
	v, err := s.repo.Acquire(b2s(name), vnum)
	if err != nil {
		s.countUnrouted(err)
		return s.routeError(name, version, err)
	}
	defer v.Release()
	ctx.Response.Header.Set("X-Model-Version", v.Label)
	finished := false
	defer func() {
		if !finished { // inferVersion panicked; handle recovers and answers 500
			v.Metrics.Failure[registry.ReasonInternal].Inc()
		}
	}()
	err = s.inferVersion(ctx, v)
	finished = true
	if err != nil {
		he := toHTTPError(err)
		v.Metrics.Failure[he.reason].Inc()
		return he
	}
	v.Metrics.Success.Inc()
	v.Metrics.Duration.UpdateDuration(start)
	return nil
}

func (s *Server) inferVersion(ctx *fasthttp.RequestCtx, v *registry.Version) error {
	sc := s.scratch.get()
	defer s.scratch.put(sc)
	req := &sc.req

	headerLen := -1
	if h := ctx.Request.Header.Peek(headerInferenceLen); h != nil {
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
	if err := oip.DecodeRequest(req, body, headerLen); err != nil {
		return err
	}
	if err := oip.CheckInputs(req.Inputs, v.Inputs, v.Config.MaxBatchSize); err != nil {
		return err
	}
	if err := oip.CheckOutputs(req.Outputs, v.Outputs); err != nil {
		return err
	}
	var names []string
	if len(req.Outputs) > 0 {
		names = sc.names[:0]
		for i := range req.Outputs {
			names = append(names, req.Outputs[i].Name)
		}
		sc.names = names
	}

	timeout := s.cfg.RequestTimeout
	if t := req.TimeoutMicros; t > 0 && t < int64(timeout/time.Microsecond) {
		timeout = time.Duration(t) * time.Microsecond
	}
	rctx, cancel := context.WithTimeout(context.Background(), timeout)
	outs, err := v.Backend.Run(rctx, req.Inputs, names, sc.outs)
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return timedOut(fmt.Sprintf("timed out after %s waiting for one of the %d instances of model %q version %s; retry later, raise the request's timeout parameter or the server's --request-timeout, or add instances",
				timeout, max(v.Config.Instances, 1), v.Model, v.Label))
		case errors.Is(err, context.Canceled), errors.Is(err, engine.ErrClosed):
			return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, reason: registry.ReasonCanceled,
				msg: fmt.Sprintf("model %q version %s is being unloaded; retry", v.Model, v.Label)}
		case errors.Is(err, engine.ErrInvalidInput), errors.Is(err, engine.ErrUnknownOutput):
			return badRequest("%s", err)
		}
		return internal(fmt.Errorf("model %q version %s: %w", v.Model, v.Label, err))
	}
	sc.outs = outs
	v.Metrics.ExecCount.Inc()
	v.Metrics.InferenceCount.Add(rows(req.Inputs, v.Inputs))

	resp := &sc.resp
	resp.ModelName = v.Model
	resp.ModelVersion = v.Label
	resp.ID = req.ID
	resp.Outputs = resp.Outputs[:0]
	for i := range outs {
		binary := req.BinaryDataOutput
		for j := range req.Outputs {
			if o := &req.Outputs[j]; o.Name == outs[i].Name && o.HasBinary {
				binary = o.Binary
			}
		}
		resp.Outputs = append(resp.Outputs, oip.OutputTensor{Tensor: outs[i], Binary: binary})
	}
	out, jsonLen := oip.AppendResponse(sc.buf[:0], resp)
	sc.buf = out
	h := &ctx.Response.Header
	if jsonLen < len(out) {
		sc.num = strconv.AppendInt(sc.num[:0], int64(jsonLen), 10)
		h.SetBytesV(headerInferenceLen, sc.num)
		h.SetContentType("application/octet-stream")
	} else {
		h.SetContentType("application/json")
	}
	ctx.SetBody(out)
	return nil
}

// requestBody returns the request body, decompressed when it carries a
// Content-Encoding (gzip, deflate, br, zstd), never past MaxBodyBytes.
func (s *Server) requestBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	ce := ctx.Request.Header.ContentEncoding()
	if len(ce) == 0 {
		return ctx.PostBody(), nil
	}
	b, err := ctx.Request.BodyUncompressedWithLimit(s.cfg.MaxBodyBytes)
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

// rows returns the number of rows a request carries: its leading
// dimension when the model's inputs are batched, else 1.
func rows(inputs []oip.Tensor, meta []oip.TensorMetadata) int {
	if len(inputs) == 0 || len(meta) == 0 || len(meta[0].Shape) == 0 || meta[0].Shape[0] >= 0 || len(inputs[0].Shape) == 0 {
		return 1
	}
	return int(inputs[0].Shape[0])
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
		return notFound("model %q is not served here; POST /v2/repository/index lists the repository's models and their state", name)
	case errors.Is(err, registry.ErrVersionNotFound):
		return notFound("model %q has no ready version %s; ready versions: %s", name, version, s.readyVersions(b2s(name)))
	case errors.Is(err, registry.ErrModelNotReady):
		return unavailable(1, "model %q has no ready version yet; POST /v2/repository/index shows why", name)
	}
	return err
}

func (s *Server) readyVersions(name string) string {
	m := s.repo.Model(name)
	if m == nil {
		return "none"
	}
	var b []byte
	for i, v := range m.Versions() {
		if i > 0 {
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
