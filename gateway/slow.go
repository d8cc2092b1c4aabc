package gateway

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
)

// slowLogEvery is how often at most a version's slow requests are logged:
// one line, saying how many more there were since the last.
const slowLogEvery = time.Second

// logSlow logs an inference request's line when it took
// Config.SlowRequests or more, at most one a slowLogEvery per version:
// where its time went (in the queue, in its batch's run, and the rest:
// decoding the request, checks, the response; the request was read before
// it started), how it ended, its id and its client, so that an operator
// can tell a queue that backs up from a model that runs slowly, and find
// the request. err is what inferVersion returns; sc still holds the
// request.
func (s *Server) logSlow(ctx *fasthttp.RequestCtx, v *registry.Version, arm string, sc *scratch, start time.Time, err error) {
	took := time.Since(start)
	if took < s.cfg.SlowRequests {
		return
	}
	s.logSlowFrom(slowOrigin{
		cached:      len(ctx.Response.Header.Peek("X-Cache")) > 0,
		requestID:   ctx.Request.Header.Peek("X-Request-Id"),
		traceparent: ctx.Request.Header.Peek("Traceparent"),
		from:        ctx.RemoteIP().String(),
	}, v, arm, sc, took, err)
}

// logSlowCall is logSlow for a gRPC call, whose metadata may carry the
// same request id and trace headers.
func (s *Server) logSlowCall(ctx context.Context, v *registry.Version, arm string, sc *scratch, start time.Time, cached bool, err error) {
	took := time.Since(start)
	if took < s.cfg.SlowRequests {
		return
	}
	o := slowOrigin{cached: cached, from: "a gRPC client", grpc: true}
	if h := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(h) > 0 {
		o.requestID = []byte(h[0])
	}
	if h := metadata.ValueFromIncomingContext(ctx, "traceparent"); len(h) > 0 {
		o.traceparent = []byte(h[0])
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		o.from = p.Addr.String() + " (gRPC)"
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			o.from = host + " (gRPC)"
		}
	}
	s.logSlowFrom(o, v, arm, sc, took, err)
}

// slowOrigin is what a slow request's line says of where it came from.
type slowOrigin struct {
	cached                 bool // answered from the response cache
	requestID, traceparent []byte
	from                   string
	grpc                   bool // a gRPC call, answered with gRPC's codes
}

// logSlowFrom writes the line of a slow request that took took.
func (s *Server) logSlowFrom(o slowOrigin, v *registry.Version, arm string, sc *scratch, took time.Duration, err error) {
	more, ok := s.slow.Allow(v.Model + "\x00" + v.Label)
	if !ok {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "slow request: model %q version %s", v.Model, v.Label)
	if arm != "" {
		fmt.Fprintf(&b, " (arm %q)", arm)
	}
	fmt.Fprintf(&b, " took %s: ", round(took))
	br := &sc.breq
	switch {
	case br.BatchRows > 0:
		rest := max(took-br.Waited-br.Compute, 0)
		fmt.Fprintf(&b, "%s in the queue, %s in ", round(br.Waited), round(br.Compute))
		switch {
		case br.FailedRows > 0:
			// Its batch failed, and each of its requests ran alone.
			fmt.Fprintf(&b, "a run of %d rows that failed, then its own of %d", br.FailedRows, br.Rows)
		case br.BatchRows == 1:
			b.WriteString("a run of 1 row (its own)")
		case br.BatchRows == br.Rows:
			fmt.Fprintf(&b, "a run of %d rows (its own)", br.Rows)
		default:
			fmt.Fprintf(&b, "a run of %d rows (%d of them its own)", br.BatchRows, br.Rows)
		}
		fmt.Fprintf(&b, ", %s decoding and answering", round(rest))
	case br.Waited > 0:
		fmt.Fprintf(&b, "%s in the queue, then no run", round(br.Waited))
	case o.cached:
		b.WriteString("answered from the response cache")
	default:
		b.WriteString("no run")
	}
	if err != nil {
		he := toHTTPError(err)
		if o.grpc {
			fmt.Fprintf(&b, "; answered %s: %s", grpcCode(he), clipMessage(he.msg))
		} else {
			fmt.Fprintf(&b, "; answered %d: %s", he.code, clipMessage(he.msg))
		}
	} else if o.grpc {
		b.WriteString("; answered OK")
	} else {
		b.WriteString("; answered 200")
	}
	if sc.req.ID != "" {
		fmt.Fprintf(&b, "; id %q", sc.req.ID)
	}
	// What a proxy in front (Envoy, nginx) or the client's tracing put
	// on the request, to find it in their logs too.
	if h := o.requestID; len(h) > 0 {
		fmt.Fprintf(&b, "; X-Request-Id %q", clip(h, 128))
	}
	if h := o.traceparent; len(h) > 0 {
		fmt.Fprintf(&b, "; traceparent %q", clip(h, 128))
	}
	fmt.Fprintf(&b, "; from %s%s", o.from, more)
	s.logf(logging.Warning+"%s", b.String())
}

// round rounds d for a log line: to the microsecond under a millisecond,
// else to a tenth of one.
func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}

// clip returns b as a string of at most n bytes.
func clip(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}
