package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/infergate/infergate/oip"
)

// EncodingGRPC marks a run whose requests went over gRPC (Config.GRPC):
// ModelInferRequest messages with raw_input_contents.
const EncodingGRPC = "grpc"

// grpcTarget is a gateway's gRPC service that a step loads.
type grpcTarget struct {
	addr    string
	pool    *requestPool
	timeout time.Duration
	token   string
	tls     func(serverName string) *tls.Config // nil: plain text
	// stream sends over ModelStreamInfer (grpcStreamSender).
	stream bool
}

// maxGRPCConns bounds the connections of one step: gRPC multiplexes its
// calls over them, as a client's channel does.
const maxGRPCConns = 8

// grpcConns is a step's connections, which its senders share round-robin.
type grpcConns struct {
	conns []*grpc.ClientConn
	next  atomic.Uint32
}

// dial opens up to n connections to t (at most maxGRPCConns).
func (t *grpcTarget) dial(n int) (*grpcConns, error) {
	creds := insecure.NewCredentials()
	if t.tls != nil {
		host, _, err := net.SplitHostPort(t.addr)
		if err != nil {
			return nil, fmt.Errorf("%w: --grpc %q: %s", ErrBadConfig, t.addr, err)
		}
		creds = credentials.NewTLS(t.tls(host))
	}
	c := &grpcConns{}
	for range min(max(n, 1), maxGRPCConns) {
		// Each its own connection: gRPC would share one among clients of
		// the same address and options.
		conn, err := grpc.NewClient("passthrough:///"+t.addr, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallRecvMsgSize(oip.MaxClientResponseBody)))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("%w: --grpc %q: %s", ErrBadConfig, t.addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

func (c *grpcConns) pick() *grpc.ClientConn {
	return c.conns[c.next.Add(1)%uint32(len(c.conns))]
}

func (c *grpcConns) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// rawCodec sends and receives messages as the bytes a *[]byte holds.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("BUG: the bench's gRPC codec cannot encode a %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("BUG: the bench's gRPC codec cannot decode into a %T", v)
	}
	n := data.Len()
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	*b = (*b)[:n]
	data.CopyTo(*b)
	return nil
}

// grpcSender sends the target's requests as ModelInfer calls.
type grpcSender struct {
	t     *grpcTarget
	conns *grpcConns
	ctx   context.Context // carries the token, if any
	in    []byte
	out   []byte
	dec   oip.InferResponse
	// shedding makes UNAVAILABLE and RESOURCE_EXHAUSTED outcomeShed
	// rather than errors (overload runs).
	shedding bool
	// header and trailer are the last call's metadata: a status that
	// came with either (a trailers-only answer's trailer holds at least
	// its content-type) is the server's, not the transport's.
	header, trailer metadata.MD
}

const grpcInferMethod = "/" + oip.GRPCService + "/ModelInfer"

func newGRPCSender(t *grpcTarget, conns *grpcConns) *grpcSender {
	ctx := context.Background()
	if t.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.token)
	}
	return &grpcSender{t: t, conns: conns, ctx: ctx}
}

func (s *grpcSender) send(seq uint64) (time.Time, int, string) {
	b := &s.t.pool.bodies[seq%uint64(len(s.t.pool.bodies))]
	ctx, cancel := context.WithTimeout(s.ctx, s.t.timeout)
	s.in = b.data
	s.header, s.trailer = nil, nil
	err := s.conns.pick().Invoke(ctx, grpcInferMethod, &s.in, &s.out, grpc.Header(&s.header), grpc.Trailer(&s.trailer))
	cancel()
	done := time.Now()
	if err != nil {
		return done, 0, s.errKind(err)
	}
	if err := oip.DecodeModelInferResponse(&s.dec, s.out); err != nil {
		return done, 0, ErrKindBadBody
	}
	outs := s.dec.Outputs
	if err := checkOutputs(len(outs), func(i int) *oip.Tensor { return &outs[i].Tensor }, b.rows, b.outputs); err != nil {
		return done, 0, ErrKindBadBody
	}
	return done, b.rows, ""
}

// errKind classifies a failed call as HTTP's classifyStatus and
// transportErrKind classify a failed request. With shedding, a refusal of
// the server's that carries a usable retry-after trailer is shed:
// UNAVAILABLE or RESOURCE_EXHAUSTED (a full queue, too many calls) or
// DEADLINE_EXCEEDED (its queue timeout, which HTTP answers 503), and one
// without is ErrKindShedWithoutRetryAfter. Otherwise DEADLINE_EXCEEDED is
// a timeout, an UNAVAILABLE the server did not send (no metadata came
// back: the connection failed) a connect or transport error, and the rest
// "grpc_" and the status code.
func (s *grpcSender) errKind(err error) string {
	c := status.Code(err)
	ra := s.trailer.Get("retry-after")
	answered := len(s.trailer) > 0 || len(s.header) > 0
	if s.shedding && answered && (c == codes.Unavailable || c == codes.ResourceExhausted || c == codes.DeadlineExceeded) {
		if len(ra) == 0 || !validRetryAfter([]byte(ra[0])) {
			return ErrKindShedWithoutRetryAfter
		}
		return outcomeShed
	}
	switch {
	case c == codes.DeadlineExceeded:
		return ErrKindTimeout
	case c == codes.Unavailable && !answered:
		if strings.Contains(err.Error(), "dial") || strings.Contains(err.Error(), "connection refused") {
			return ErrKindConnect
		}
		return ErrKindTransport
	}
	return "grpc_" + c.String()
}

func (s *grpcSender) close() {}

// check makes one call, to tell a wrong address or a gateway without
// --grpc before any step runs.
func (t *grpcTarget) check() error {
	conns, err := t.dial(1)
	if err != nil {
		return err
	}
	defer conns.close()
	snd := newGRPCSender(t, conns)
	ctx, cancel := context.WithTimeout(snd.ctx, t.timeout)
	defer cancel()
	if err := conns.pick().Invoke(ctx, grpcInferMethod, &t.pool.bodies[0].data, &snd.out); err != nil {
		return fmt.Errorf("%w: a ModelInfer call to --grpc %s: %v (is the gateway serving gRPC there? serve --grpc)", ErrTarget, t.addr, err)
	}
	if t.stream {
		ss := newGRPCStreamSender(t, conns)
		defer ss.close()
		if _, _, kind := ss.send(0); kind != "" {
			return fmt.Errorf("%w: a request on a ModelStreamInfer stream to --grpc %s failed: %s (does the gateway serve ModelStreamInfer? its release may be older)", ErrTarget, t.addr, kind)
		}
	}
	return nil
}
