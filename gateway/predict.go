package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// predictBodyKey stands for the header length in the body key of a
// predict request of KServe's v1 protocol (cache.AppendBodyKey): its
// response, in the v1 format, must not answer a v2 request of the same
// bytes, nor the other way round.
const predictBodyKey = -2

// routePredict handles KServe's v1 protocol (TensorFlow Serving's REST
// API): POST /v1/models/{m}[/versions/{v}]:predict, rest being what
// follows /v1/models/. The request takes the path of a v2 infer request:
// experiments, the cache, the batcher, shadows and the traffic log.
func (s *Server) routePredict(ctx *fasthttp.RequestCtx, rest []byte) error {
	i := bytes.LastIndexByte(rest, ':')
	target, verb := rest[:i], rest[i+1:]
	name, sub, _ := bytes.Cut(target, slash)
	var version []byte
	switch {
	case len(sub) == 0:
	case bytes.HasPrefix(sub, []byte("versions/")):
		version = sub[len("versions/"):]
		if len(version) == 0 || bytes.IndexByte(version, '/') >= 0 {
			return notFound("no such endpoint %q; use POST /v1/models/{name}[/versions/{N}]:predict", ctx.Path())
		}
	case bytes.HasPrefix(sub, []byte("labels/")):
		return notFound("%q names a version by label; infergate serves versions by number here: POST /v1/models/%s/versions/{N}:predict, or without a version for the model's production version or its experiment's arm", ctx.Path(), name)
	default:
		return notFound("no such endpoint %q; use POST /v1/models/{name}[/versions/{N}]:predict", ctx.Path())
	}
	if string(verb) != "predict" {
		return notFound("%q asks for :%s; of KServe's v1 protocol infergate serves :predict (POST /v1/models/{name}[/versions/{N}]:predict)", ctx.Path(), verb)
	}
	if err := allow(ctx, fasthttp.MethodPost); err != nil {
		return err
	}
	return s.infer(ctx, name, version, true)
}
