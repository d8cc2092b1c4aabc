package gateway

import (
	"context"
	"errors"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Triton's ModelStreamInfer: a client sends ModelInferRequest messages on
// one stream, and gets a ModelStreamInferResponse for each, in the order
// it sent them (as Triton answers a model that is not decoupled). The
// requests of a stream run at once, up to grpcStreamWindow of them, each
// as a ModelInfer call would (experiment, cache, batcher, shadow,
// traffic log), with its own timeout; one that fails gets an answer with
// error_message, its id and the parameters error_code and retry_after,
// and the stream goes on, unless the stream's metadata has
// triton_grpc_error: true, when the stream ends with the failure's status
// (Triton's choice for clients that want gRPC's codes).

// grpcStreamMethod is ModelStreamInfer's full name, as gRPC's tap sees it.
const grpcStreamMethod = "/" + oip.GRPCService + "/ModelStreamInfer"

// grpcStreamWindow bounds the requests of one stream that were read and
// are not yet answered: the stream reads no more until one is sent, and
// its client's messages wait in gRPC's flow control.
const grpcStreamWindow = 64

// grpcShutdownMsg ends the streams a shutdown finds open, once what they
// sent before it is answered.
const grpcShutdownMsg = "this server is shutting down: the requests of this stream that got no answer were not run; send them again on a new stream"

// grpcStream is one ModelStreamInfer call. A reader goroutine reads its
// requests and starts a goroutine for each; the handler's goroutine sends
// the answers in the order the requests came. The handler may return
// while the reader waits for a message: gRPC then ends the stream, and
// the reader's wait with it (grpc-go's maintainers' advice for a server
// that ends a stream on its own).
type grpcStream struct {
	s   *Server
	ss  grpc.ServerStream
	ctx context.Context
	// conn is the stream's connection (nil when not found), and sending
	// when a send began that has not returned (UnixNano, or 0): a
	// shutdown closes the connection of a stream stuck in a send to a
	// client that has gone quiet (stop).
	conn    *limitedConn
	sending atomic.Int64
	// unit is the x-unit-id metadata: the unit id of requests without
	// unit_id.
	unit []string
	// grpcErrors ends the stream with the status of the first request
	// that fails (metadata triton_grpc_error: true).
	grpcErrors bool
	// queue holds the requests read, in order; the reader closes it when
	// reading ends, after setting readErr.
	queue chan *grpcStreamItem
	// window holds a token per request read and not yet answered (or
	// dropped): the reader takes one before it reads.
	window chan struct{}
	// stopped is closed when a shutdown stops the stream; over when its
	// handler has returned.
	stopped, over chan struct{}

	// mu protects the fields below.
	mu       sync.Mutex
	read     uint64 // requests read and queued
	written  uint64 // requests answered (or dropped, once the stream ended)
	stopping bool   // a shutdown began: answer what was read, then end
	readErr  error  // why reading ended
	// end, once set, is the status the stream ends with; nothing more is
	// sent, and nothing more read is run.
	end error
}

// grpcStreamItem is one request of a stream, in sc.in; once done is
// closed, sc.buf holds its ModelInferResponse, and failed, when not nil,
// says why it failed (and retryAfter when to retry).
type grpcStreamItem struct {
	sc         *scratch
	done       chan struct{}
	failed     *status.Status
	retryAfter int
	// state says who puts sc back: the answerer once run is done with it
	// (itemDone), run when the stream ended before it finished
	// (itemDropped).
	state atomic.Int32
}

// States of a grpcStreamItem.
const (
	itemRunning = iota
	itemDone
	itemDropped
)

// streamKeptInput is the largest request message whose buffer a finished
// request keeps while it waits for its turn to be answered: a larger
// one is let go, so that a stream's answers waiting behind a slow one
// hold their outputs and not their inputs.
const streamKeptInput = 256 << 10

// grpcModelStreamInfer serves one ModelStreamInfer stream until its
// client closes its side and every request is answered, or the client
// goes, or a shutdown ends it.
func (s *Server) grpcModelStreamInfer(ss grpc.ServerStream) (err error) {
	g := s.grpc
	ctx := ss.Context()
	var st *grpcStream
	if s.verbose() {
		start := time.Now()
		defer func() { // after the recovery below
			var read uint64
			if st != nil {
				st.mu.Lock()
				read = st.read
				st.mu.Unlock()
			}
			s.logGRPC(ctx, grpcModelStreamInfer, err, start, ", "+strconv.FormatUint(read, 10)+" requests")
		}()
	}
	defer func() {
		if p := recover(); p != nil {
			s.panics.Inc()
			s.logf(logging.Error+"panic serving gRPC ModelStreamInfer: %v\n%s", p, debug.Stack())
			err = status.Error(codes.Internal, errInternalMsg)
		}
	}()
	select {
	case g.streamSlots <- struct{}{}:
		defer func() { <-g.streamSlots }()
	default:
		s.countGRPC(grpcModelStreamInfer, codes.ResourceExhausted)
		_ = grpc.SetTrailer(ctx, metadata.Pairs(grpcRetryKey, "1"))
		return status.Errorf(codes.ResourceExhausted, "this server has %d gRPC streams open, its --max-connections; retry later, or raise --max-connections", cap(g.streamSlots))
	}
	if s.cfg.InferenceToken != "" && !grpcBearerMatches(ctx, s.cfg.InferenceToken) {
		s.countGRPC(grpcModelStreamInfer, codes.Unauthenticated)
		return status.Error(codes.Unauthenticated, "this server needs the inference token: send the metadata authorization: Bearer <token>")
	}
	st = &grpcStream{s: s, ss: ss, ctx: ctx,
		conn:       callConn(ctx),
		unit:       metadata.ValueFromIncomingContext(ctx, grpcUnitKey),
		grpcErrors: grpcErrorsWanted(ctx),
		queue:      make(chan *grpcStreamItem, grpcStreamWindow),
		window:     make(chan struct{}, grpcStreamWindow),
		stopped:    make(chan struct{}),
		over:       make(chan struct{})}
	if !g.addStream(st) {
		return status.Error(codes.Unavailable, grpcShutdownMsg)
	}
	defer g.removeStream(st)
	defer close(st.over)
	go func() { // counted in g.readers by addStream
		defer g.readers.Done()
		defer close(st.queue)
		defer func() {
			if p := recover(); p != nil {
				s.panics.Inc()
				s.logf(logging.Error+"panic reading gRPC ModelStreamInfer: %v\n%s", p, debug.Stack())
				st.mu.Lock()
				st.readErr = status.Error(codes.Internal, errInternalMsg)
				st.mu.Unlock()
			}
		}()
		st.readAll()
	}()
	return st.answerAll()
}

// grpcErrorsWanted reports whether the stream's metadata asks Triton's
// triton_grpc_error: end the stream at the first failure.
func grpcErrorsWanted(ctx context.Context) bool {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "triton_grpc_error") {
		if strings.EqualFold(v, "true") {
			return true
		}
	}
	return false
}

// readAll reads requests until the stream's reading ends (setting
// readErr), and runs each unless the stream is ending.
//
// While it waits for a message it holds one buffer, not a scratch: an
// idle stream costs two goroutines and that.
func (st *grpcStream) readAll() {
	var in []byte
	for {
		select {
		case st.window <- struct{}{}:
		case <-st.over:
			return
		}
		if err := st.ss.RecvMsg(&in); err != nil {
			// gRPC has sent the stream's status already when err is one
			// of its own (a message over --max-body, one that does not
			// decompress): count it as the request it was.
			if s, ok := status.FromError(err); ok && s.Code() != codes.Canceled && s.Code() != codes.DeadlineExceeded {
				st.s.countGRPC(grpcModelStreamInfer, s.Code())
			}
			st.mu.Lock()
			st.readErr = err
			st.mu.Unlock()
			return
		}
		st.mu.Lock()
		if st.end != nil || st.stopping {
			st.mu.Unlock()
			<-st.window
			continue
		}
		st.read++
		st.mu.Unlock()
		sc := st.s.scratch.get()
		sc.in, in = in, sc.in[:0]
		it := &grpcStreamItem{sc: sc, done: make(chan struct{})}
		st.queue <- it // never waits: the window bounds what is queued
		st.s.grpc.runStreamed(st, it)
	}
}

// grpcStreamWorkers is how many goroutines run streams' requests and stay
// for the next, as gRPC's own workers serve calls: a request beyond them
// gets a goroutine of its own. A new goroutine grows its stack again to
// what decoding, the batcher and ONNX Runtime's cgo call need
// (runtime.newstack and newproc were 8% of the server's CPU at 64
// streams, BENCHMARKS.md).
const grpcStreamWorkers = 128

// streamTask is a request of a stream for a worker to run.
type streamTask struct {
	st *grpcStream
	it *grpcStreamItem
}

// runStreamed runs it on an idle worker, else on a new goroutine.
func (g *grpcFront) runStreamed(st *grpcStream, it *grpcStreamItem) {
	select {
	case g.streamWork <- streamTask{st, it}:
	default:
		g.workers.Add(1)
		go func() {
			defer g.workers.Done()
			st.run(it)
		}()
	}
}

// streamWorker runs the tasks of g.streamWork until it is closed.
func (g *grpcFront) streamWorker() {
	defer g.workers.Done()
	for t := range g.streamWork {
		t.st.run(t.it)
	}
}

// answerAll sends the answers in the order the requests came, and returns
// the status the stream ends with once every request read is answered
// and reading has ended, or the stream ends sooner (a shutdown, a send
// that failed, triton_grpc_error).
func (st *grpcStream) answerAll() error {
	stopped := st.stopped
	for {
		st.mu.Lock()
		ended := (st.end != nil || st.stopping) && st.written == st.read
		st.mu.Unlock()
		if ended {
			return st.status()
		}
		select {
		case it, ok := <-st.queue:
			if !ok {
				return st.status()
			}
			st.answer(it)
		case <-stopped:
			stopped = nil
		}
	}
}

// answer sends the answer of it once it is done; once the stream has ended
// (only answer ends it), it drops it without waiting.
func (st *grpcStream) answer(it *grpcStreamItem) {
	st.mu.Lock()
	ended := st.end != nil
	st.mu.Unlock()
	var end error
	switch {
	case ended:
		if !it.state.CompareAndSwap(itemRunning, itemDropped) {
			st.s.scratch.put(it.sc) // run is done with it
		}
	default:
		<-it.done
		if it.failed != nil && st.grpcErrors {
			if it.retryAfter > 0 {
				st.ss.SetTrailer(metadata.Pairs(grpcRetryKey, strconv.Itoa(it.retryAfter)))
			}
			end = it.failed.Err()
		} else {
			msg := ""
			if it.failed != nil {
				msg = it.failed.Message()
			}
			st.sending.Store(time.Now().UnixNano())
			end = st.ss.SendMsg(streamReply(msg, it.sc.buf)) // fails when the client is gone
			st.sending.Store(0)
		}
		st.s.scratch.put(it.sc)
	}
	st.mu.Lock()
	if end != nil && st.end == nil {
		st.end = end
	}
	st.written++
	st.mu.Unlock()
	<-st.window
}

// run answers it, unless its stream has ended first.
func (st *grpcStream) run(it *grpcStreamItem) {
	s, sc := st.s, it.sc
	defer func() {
		if cap(sc.in) > streamKeptInput {
			sc.in = nil
		}
		if it.state.CompareAndSwap(itemRunning, itemDone) {
			close(it.done)
		} else {
			s.scratch.put(sc) // dropped: no one answers it
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			s.panics.Inc()
			s.logf(logging.Error+"panic serving a request of gRPC ModelStreamInfer: %v\n%s", p, debug.Stack())
			st.fail(it, status.New(codes.Internal, errInternalMsg), 0)
		}
	}()
	st.mu.Lock()
	ended := st.end != nil
	st.mu.Unlock()
	if ended {
		return // not run: no answer would go out
	}
	g := s.grpc
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		st.fail(it, status.Newf(codes.ResourceExhausted, "this server has %d gRPC calls in flight, its --max-connections + 64; retry later, or raise --max-connections", cap(g.slots)), 1)
		return
	}
	r, err := s.grpcInfer(st.ctx, sc, st.unit, false)
	if err != nil {
		stt, retryAfter := s.grpcStatus(grpcModelStreamInfer, err)
		st.fail(it, stt, retryAfter)
		return
	}
	sc.buf = oip.AppendResponseBoolParam(sc.buf, oip.ParamFinalResponse, true)
	if r.arm != "" {
		sc.buf = oip.AppendResponseStringParam(sc.buf, oip.ParamExperimentArm, r.arm)
	}
	if r.hit {
		sc.buf = oip.AppendResponseBoolParam(sc.buf, oip.ParamCacheHit, true)
	}
	s.countGRPC(grpcModelStreamInfer, codes.OK)
}

// fail makes the answer of it an error: error_message, and an infer_response
// that names the request (its model, version and id, as Triton does) and
// says the status code and when to retry.
func (st *grpcStream) fail(it *grpcStreamItem, stt *status.Status, retryAfter int) {
	sc := it.sc
	it.failed, it.retryAfter = stt, retryAfter
	// What the request named (the encoder makes it valid UTF-8: a request
	// that is not may be why it failed).
	model, version, _, _ := oip.PeekModelInferRequest(sc.in)
	r := oip.InferResponse{ModelName: string(model), ModelVersion: string(version), ID: oip.ModelInferRequestID(sc.in)}
	b := oip.AppendModelInferResponse(sc.buf[:0], &r)
	b = oip.AppendResponseBoolParam(b, oip.ParamFinalResponse, true)
	b = oip.AppendResponseStringParam(b, oip.ParamErrorCode, oip.StatusCodeNames[stt.Code()])
	if retryAfter > 0 {
		b = oip.AppendResponseIntParam(b, oip.ParamRetryAfter, int64(retryAfter))
	}
	sc.buf = b
	st.s.countGRPC(grpcModelStreamInfer, stt.Code())
}

// streamReply encodes the ModelStreamInferResponse of errMsg and inner in
// a buffer of gRPC's pool, for gRPC to send.
func streamReply(errMsg string, inner []byte) *grpcReply {
	n := oip.ModelStreamInferResponseSize(errMsg, len(inner))
	buf := mem.DefaultBufferPool().Get(n)
	b := oip.AppendModelStreamInferResponse((*buf)[:0], errMsg, inner)
	if len(b) != n {
		panic("BUG: ModelStreamInferResponseSize is not what AppendModelStreamInferResponse appends")
	}
	return &grpcReply{b: buf}
}

// stop ends the stream for a shutdown once the requests it has read are
// answered; those that come after are not run. A shutdown calls it again
// and again while it waits: a stream whose answer has waited unusedAfter
// to go to a client whose connection has sent nothing for as long (a hung
// client, which reads nothing either) has its connection closed. Nothing
// less ends it: gRPC queues the stream's trailers behind the answers the
// client does not take, and the shutdown would wait for its time to run
// out.
func (st *grpcStream) stop() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.stopping {
		st.stopping = true
		close(st.stopped)
	}
	now := time.Now().UnixNano()
	if since := st.sending.Load(); since != 0 && now-since >= int64(unusedAfter) &&
		st.conn != nil && now-st.conn.lastRead.Load() >= int64(unusedAfter) {
		st.s.logf(logging.Warning+"gRPC: closed the connection of %s, whose stream had waited %s for the client to take an answer, and which had sent nothing for as long, to shut down",
			st.conn.RemoteAddr(), time.Duration(now-since).Round(time.Millisecond))
		st.conn.Close()
	}
}

// status is the status the stream ends with.
func (st *grpcStream) status() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.end != nil:
		return st.end
	case errors.Is(st.readErr, io.EOF):
		return nil // the client closed its side, and has every answer
	case st.stopping:
		return status.Error(codes.Unavailable, grpcShutdownMsg)
	}
	return st.readErr // the stream broke or the client went (no one reads it), or gRPC has sent its status
}

// grpcStreamsOpen returns how many ModelStreamInfer streams are open.
func (s *Server) grpcStreamsOpen() int {
	// ServeGRPC stores the address once s.grpc is made: seeing it, s.grpc
	// may be read.
	if s.grpcAddr() == "" {
		return 0
	}
	return len(s.grpc.streamSlots)
}

// addStream registers st for a shutdown to stop, and counts its reader,
// unless a shutdown has begun: under g.mu, so that a shutdown's wait for
// the readers, which follows stopStreams, counts every one.
func (g *grpcFront) addStream(st *grpcStream) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.streams[st] = struct{}{}
	g.readers.Add(1)
	return true
}

func (g *grpcFront) removeStream(st *grpcStream) {
	g.mu.Lock()
	delete(g.streams, st)
	g.mu.Unlock()
}

// stopStreams stops every stream (grpcStream.stop) and ends the other
// services' (grpcOtherStreams), and those that start from now on are
// refused.
func (g *grpcFront) stopStreams() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	for st := range g.streams {
		st.stop()
	}
	for cancel := range g.others {
		(*cancel)()
	}
}

// grpcOtherStreams registers the streams of services other than the
// protocol's (reflection's: grpcurl or an IDE keeps one open) for a
// shutdown to end at once, as it ends an idle ModelStreamInfer stream:
// they carry no work to finish, and would hold GracefulStop until their
// deadline. ModelStreamInfer's handler sees to its own.
func (s *Server) grpcOtherStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	cancel, _ := ss.Context().Value(grpcCancelKey{}).(context.CancelFunc)
	if info.FullMethod == grpcStreamMethod || cancel == nil {
		return handler(srv, ss)
	}
	g := s.grpc
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		return status.Error(codes.Unavailable, "this server is shutting down")
	}
	g.others[&cancel] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.others, &cancel)
		g.mu.Unlock()
	}()
	return handler(srv, ss)
}
