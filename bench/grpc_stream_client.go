package bench

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/infergate/infergate/oip"
)

// EncodingGRPCStream marks a run whose requests went over Triton's
// ModelStreamInfer (Config.GRPCStream): each sender keeps a stream open
// and has one request on it at a time.
const EncodingGRPCStream = "grpc-stream"

const grpcStreamMethod = "/" + oip.GRPCService + "/ModelStreamInfer"

var grpcStreamDesc = &grpc.StreamDesc{StreamName: "ModelStreamInfer", ServerStreams: true, ClientStreams: true}

// grpcStreamSender sends the target's requests on a ModelStreamInfer
// stream of its own, opened on its first request and again after one
// fails as a whole (a broken stream, or an answer that did not come
// within the timeout, which ends the stream).
type grpcStreamSender struct {
	t        *grpcTarget
	conns    *grpcConns
	base     context.Context // carries the token, if any
	shedding bool

	stream grpc.ClientStream
	cancel context.CancelFunc // ends stream
	in     []byte
	out    []byte
	dec    oip.InferResponse
}

func newGRPCStreamSender(t *grpcTarget, conns *grpcConns) *grpcStreamSender {
	g := newGRPCSender(t, conns)
	return &grpcStreamSender{t: t, conns: conns, base: g.ctx}
}

func (s *grpcStreamSender) send(seq uint64) (time.Time, int, string) {
	b := &s.t.pool.bodies[seq%uint64(len(s.t.pool.bodies))]
	if s.stream == nil {
		ctx, cancel := context.WithCancel(s.base)
		st, err := s.conns.pick().NewStream(ctx, grpcStreamDesc, grpcStreamMethod)
		if err != nil {
			cancel()
			return time.Now(), 0, streamErrKind(err, s.shedding, nil)
		}
		s.stream, s.cancel = st, cancel
	}
	// The timeout ends the whole stream: an answer cannot be waited for
	// alone.
	timer := time.AfterFunc(s.t.timeout, s.cancel)
	s.in = b.data
	err := s.stream.SendMsg(&s.in)
	// io.EOF from SendMsg: the stream has ended, and RecvMsg says how.
	if err == nil || err == io.EOF {
		err = s.stream.RecvMsg(&s.out)
	}
	done := time.Now()
	timedOut := !timer.Stop()
	if timedOut && err == nil {
		// The answer came as the timer cancelled the stream, which the
		// next request would find broken.
		s.close()
		return done, 0, ErrKindTimeout
	}
	if err != nil {
		kind := ErrKindTimeout
		if !timedOut {
			kind = streamErrKind(err, s.shedding, s.stream)
		}
		s.close()
		return done, 0, kind
	}
	errMsg, inner, err := oip.DecodeModelStreamInferResponse(s.out)
	if err != nil {
		return done, 0, ErrKindBadBody
	}
	if errMsg != "" {
		return done, 0, streamAnswerErrKind(inner, s.shedding)
	}
	if err := oip.DecodeModelInferResponse(&s.dec, inner); err != nil {
		return done, 0, ErrKindBadBody
	}
	outs := s.dec.Outputs
	if err := checkOutputs(len(outs), func(i int) *oip.Tensor { return &outs[i].Tensor }, b.rows, b.outputs); err != nil {
		return done, 0, ErrKindBadBody
	}
	return done, b.rows, ""
}

// streamErrKind classifies the failure of stream (nil when it did not
// open) as a whole, by its status, header and trailer, as
// grpcSender.errKind classifies a call's: a stream refused for load is
// shed when its trailer says when to retry.
func streamErrKind(err error, shedding bool, stream grpc.ClientStream) string {
	s := &grpcSender{shedding: shedding}
	if stream != nil {
		s.header, _ = stream.Header() // at once: the stream is over
		s.trailer = stream.Trailer()
	}
	return s.errKind(err)
}

// streamAnswerErrKind classifies an answer that holds an error, by its
// error_code and retry_after parameters: with shedding, a request shed
// for load (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) that says
// when to retry is shed; otherwise "grpc_" and the code, as for a call.
func streamAnswerErrKind(inner []byte, shedding bool) string {
	var code string
	retry := false
	_ = oip.DecodeResponseParams(inner, func(key string, v oip.ResponseParam) {
		switch key {
		case oip.ParamErrorCode:
			code = v.String
		case oip.ParamRetryAfter:
			retry = v.Kind == oip.ParamInt && v.Int > 0
		}
	})
	c, ok := grpcCodeByName[code]
	if !ok {
		return ErrKindBadBody // an error answer must say its code
	}
	if shedding && (c == codes.Unavailable || c == codes.ResourceExhausted || c == codes.DeadlineExceeded) {
		if !retry {
			return ErrKindShedWithoutRetryAfter
		}
		return outcomeShed
	}
	if c == codes.DeadlineExceeded {
		return ErrKindTimeout
	}
	return "grpc_" + c.String()
}

// grpcCodeByName maps gRPC's code names, as its specification spells
// them, to codes.
var grpcCodeByName = func() map[string]codes.Code {
	m := make(map[string]codes.Code, len(oip.StatusCodeNames))
	for c, name := range oip.StatusCodeNames {
		m[name] = codes.Code(c)
	}
	return m
}()

func (s *grpcStreamSender) close() {
	if s.stream != nil {
		s.cancel()
		s.stream, s.cancel = nil, nil
	}
}
