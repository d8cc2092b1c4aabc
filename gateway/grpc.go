package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/batching"
	"github.com/infergate/infergate/gateway/cache"
	"github.com/infergate/infergate/gateway/shm"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // gzip-compressed messages, which Triton's clients can send
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
)

// The gRPC front door speaks the protocol's gRPC service
// (inference.GRPCInferenceService: ServerLive, ServerReady, ModelReady,
// ServerMetadata, ModelMetadata, ModelInfer, and Triton's ModelConfig,
// ModelStatistics, RepositoryIndex, RepositoryModelLoad,
// RepositoryModelUnload and ModelStreamInfer) and gRPC's health service,
// over the same models, experiments, cache, batchers, traffic log and
// metrics as HTTP. Its messages are coded by oip (no generated code): the
// codec below hands the service raw bytes, and protobuf messages (the
// health service's) to the protobuf library.

// grpcMaxStreams bounds the concurrent calls of one gRPC connection; the
// calls of all connections together are bounded by Config.MaxConnections
// + 64, as HTTP's requests are (grpcFront.slots).
const grpcMaxStreams = 256

// grpcWorkers is how many goroutines serve gRPC calls and stay for the
// next: a call beyond them gets a goroutine of its own. An open
// ModelStreamInfer stream holds one for as long as it lasts.
const grpcWorkers = 256

// GRPC metadata keys: the request's unit id for experiments, and what a
// ModelInfer answer carries besides its body (the response headers'
// names in lower case, as gRPC metadata is).
const (
	grpcUnitKey    = "x-unit-id"
	grpcVersionKey = "x-model-version"
	grpcArmKey     = "x-experiment-arm"
	grpcCacheKey   = "x-cache"
	grpcRetryKey   = "retry-after"
)

// grpcMethods are the service's methods, in the order of grpcMethod.
var grpcMethods = [...]string{"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
	"ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	"SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
	"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings", "ModelStreamInfer"}

// grpcMethod indexes grpcMethods.
type grpcMethod int

const (
	grpcServerLive grpcMethod = iota
	grpcServerReady
	grpcModelReady
	grpcServerMetadata
	grpcModelMetadata
	grpcModelInfer
	grpcModelConfig
	grpcModelStatistics
	grpcRepositoryIndex
	grpcRepositoryModelLoad
	grpcRepositoryModelUnload
	grpcShmStatus
	grpcShmRegister
	grpcShmUnregister
	grpcCudaShmStatus
	grpcCudaShmRegister
	grpcCudaShmUnregister
	grpcTraceSetting
	grpcLogSettings
	grpcModelStreamInfer // the one streaming method (grpc_stream.go)
	numGRPCMethods
)

// grpcGuarded marks the methods the inference token guards: those that
// answer what HTTP answers under /v2/models/ and /v2/systemsharedmemory/,
// which it guards there. RepositoryIndex is open, as /v2/repository/index
// is; the repository's load and unload are grpcAdmin's.
var grpcGuarded = [numGRPCMethods]bool{
	grpcModelReady: true, grpcModelMetadata: true, grpcModelInfer: true,
	grpcModelConfig: true, grpcModelStatistics: true, grpcModelStreamInfer: true,
	grpcShmStatus: true, grpcShmRegister: true, grpcShmUnregister: true,
	grpcCudaShmStatus: true, grpcCudaShmRegister: true, grpcCudaShmUnregister: true,
	// grpcTraceSetting and grpcLogSettings check themselves: a change
	// takes the admin token alone.
}

// grpcAdmin marks the methods the admin token guards, as it guards
// /v2/repository/models/{m}/load and /unload over HTTP; without one,
// they answer clients on this host only (grpcAuthorizeAdmin).
var grpcAdmin = [numGRPCMethods]bool{grpcRepositoryModelLoad: true, grpcRepositoryModelUnload: true}

// grpcProxyKeys are the metadata keys by which a proxy names the client
// it forwards: the headers HTTP's proxiedBy looks for, in gRPC's lower
// case.
var grpcProxyKeys = [...]string{"x-forwarded-for", "forwarded", "x-real-ip"}

// grpcCodec is the gRPC codec of the server: the service's requests
// arrive into a *[]byte and its replies leave as *grpcReply, untouched;
// other messages (the health service's) go through the protobuf library.
type grpcCodec struct{}

// grpcReply is an encoded reply in a buffer of gRPC's pool, which gRPC
// frees once it has written it.
type grpcReply struct{ b *[]byte }

func (grpcCodec) Name() string { return "proto" }

func (grpcCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *grpcReply:
		return mem.BufferSlice{mem.NewBuffer(m.b, mem.DefaultBufferPool())}, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return nil, fmt.Errorf("BUG: the gRPC codec cannot encode a %T", v)
}

func (grpcCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *[]byte:
		// data is freed once this returns: keep a copy.
		n := data.Len()
		if cap(*m) < n {
			*m = make([]byte, n)
		}
		*m = (*m)[:n]
		data.CopyTo(*m)
		return nil
	case proto.Message:
		return proto.Unmarshal(data.Materialize(), m)
	}
	return fmt.Errorf("BUG: the gRPC codec cannot decode into a %T", v)
}

// reply copies b into a buffer of gRPC's pool, for gRPC to send.
func reply(b []byte) *grpcReply {
	buf := mem.DefaultBufferPool().Get(len(b))
	copy(*buf, b)
	return &grpcReply{b: buf}
}

// grpcFront is the gRPC side of a Server.
type grpcFront struct {
	srv     *grpc.Server
	refused *metrics.Counter
	// calls counts calls by method and status code, its counters made on
	// first use.
	calls [numGRPCMethods][codes.Unauthenticated + 1]atomic.Pointer[metrics.Counter]
	// slots holds a token per call of the service in flight: a call that
	// finds none free is refused before its message is read.
	slots chan struct{}
	// streamSlots holds a token per ModelStreamInfer stream open: at most
	// Config.MaxConnections.
	streamSlots chan struct{}

	// mu protects reading, the calls whose message is still arriving,
	// each with its cancel and connection (a shutdown ends those whose
	// connection has sent nothing for unusedAfter: they have nothing to
	// answer, and no more is coming); streams, the ModelStreamInfer
	// streams open; others, the cancels of the other services' streams;
	// and stopping, set once a shutdown has stopped them.
	mu       sync.Mutex
	reading  map[*grpcReading]struct{}
	streams  map[*grpcStream]struct{}
	others   map[*context.CancelFunc]struct{}
	stopping bool
	// readers counts the streams' reader goroutines, which may outlive
	// their handlers until gRPC ends their streams.
	readers sync.WaitGroup
	// streamWork hands streams' requests to grpcStreamWorkers idle
	// workers, which workers counts; closed once the streams have ended.
	streamWork chan streamTask
	workers    sync.WaitGroup
	endOnce    sync.Once // closes streamWork
}

// grpcAddr returns the address gRPC is served on, or "".
func (s *Server) grpcAddr() string {
	a, _ := s.grpcListen.Load().(string)
	return a
}

// grpcReading is a call waiting for its message.
type grpcReading struct {
	cancel context.CancelFunc
	conn   *limitedConn // nil when not found
}

// grpcCancelKey keys the cancel of a call's context, which grpcTap makes.
type grpcCancelKey struct{}

// grpcTap gives every call a deadline before gRPC starts its goroutine:
// the client's, if shorter, else Config.ReadTimeout for its message to
// arrive and Config.RequestTimeout to answer it. HTTP's ReadTimeout cuts
// off a body that never ends; without this, a call whose message never
// ends would hold its goroutine for good.
//
// Its cancel is not called when the call returns: the reply is written
// after that, under the same context. gRPC cancels the stream's own
// context, this one's parent, once the call is over, which stops the
// timer.
//
// A stream (ModelStreamInfer) gets no deadline of the server's: it lasts
// as long as its client keeps it, and each of its requests has its own
// timeout (grpcStream).
func (s *Server) grpcTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName == grpcStreamMethod {
		return ctx, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout+s.cfg.RequestTimeout)
	return context.WithValue(ctx, grpcCancelKey{}, cancel), nil
}

// readMessage reads a call's message into dst with dec, registered as a
// call whose message is arriving for a shutdown to end.
func (g *grpcFront) readMessage(ctx context.Context, dec func(any) error, dst *[]byte) error {
	cancel, _ := ctx.Value(grpcCancelKey{}).(context.CancelFunc)
	if cancel == nil {
		return dec(dst)
	}
	r := &grpcReading{cancel: cancel, conn: callConn(ctx)}
	g.mu.Lock()
	g.reading[r] = struct{}{}
	g.mu.Unlock()
	err := dec(dst)
	g.mu.Lock()
	delete(g.reading, r)
	g.mu.Unlock()
	return err
}

// callConn returns the connection of the call whose context is ctx, or
// nil when gRPC does not give it.
func callConn(ctx context.Context) *limitedConn {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.Addr.(connAddr); ok {
			return a.conn
		}
	}
	return nil
}

// endStalled ends the calls whose message is still arriving on a
// connection that has sent nothing for unusedAfter; a shutdown calls it
// while it waits for the calls in flight. Calls whose bytes still flow
// finish, or are cut off when the shutdown's time runs out. gRPC answers
// an ended call CANCELLED itself (its read fails on the context).
func (g *grpcFront) endStalled() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now().UnixNano()
	for r := range g.reading {
		if r.conn == nil || now-r.conn.lastRead.Load() >= int64(unusedAfter) {
			r.cancel()
			delete(g.reading, r)
		}
	}
}

// ServeGRPC serves the protocol's gRPC service on ln until Shutdown; it
// speaks TLS when the server's Config has TLS, with the same
// certificates and client certificate checks as HTTP. It may be called
// once.
func (s *Server) ServeGRPC(ln net.Listener) error {
	g := s.grpcFront()
	if g == nil {
		ln.Close()
		return grpc.ErrServerStopped
	}
	s.grpcListen.Store(ln.Addr().String())
	return g.srv.Serve(&connLimitListener{Listener: ln, free: make(chan struct{}, s.cfg.MaxConnections), front: g})
}

// connLimitListener bounds the connections served at once: one beyond
// the limit is closed at once (a gRPC client sees UNAVAILABLE and may
// retry), and counted.
type connLimitListener struct {
	net.Listener
	free  chan struct{} // a token per connection open
	front *grpcFront
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.free <- struct{}{}:
			lc := &limitedConn{Conn: c, free: l.free}
			lc.lastRead.Store(time.Now().UnixNano())
			return lc, nil
		default:
			l.front.refused.Inc()
			c.Close()
		}
	}
}

// limitedConn gives its token back when closed, and records when it last
// read anything, for a shutdown to tell a stalled message from one
// still arriving.
type limitedConn struct {
	net.Conn
	free     chan struct{}
	lastRead atomic.Int64 // UnixNano
	once     sync.Once
}

// connAddr is a limitedConn's remote address as gRPC hands it to each of
// its calls (peer.Addr): it leads back to the connection, which an
// address alone does not (every client of a unix socket is "@").
type connAddr struct {
	net.Addr
	conn *limitedConn
}

// RemoteAddr returns the remote address as a connAddr, or nil when the
// connection has none.
func (c *limitedConn) RemoteAddr() net.Addr {
	a := c.Conn.RemoteAddr()
	if a == nil {
		return nil
	}
	return connAddr{Addr: a, conn: c}
}

func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.free })
	return err
}

// grpcFront makes the gRPC server on first use.
func (s *Server) grpcFront() *grpcFront {
	s.grpcOnce.Do(func() {
		if s.stopping.Load() {
			return
		}
		opts := []grpc.ServerOption{
			grpc.ForceServerCodecV2(grpcCodec{}),
			grpc.MaxRecvMsgSize(s.cfg.MaxBodyBytes),
			grpc.MaxConcurrentStreams(grpcMaxStreams),
			// Calls run on a pool of goroutines whose stacks have grown
			// to what a call needs, rather than each on a new one that
			// grows its stack again (copying it, 16% of the server's CPU
			// at 64 calls at once, BENCHMARKS.md "gRPC"); beyond them,
			// gRPC starts goroutines as without the pool.
			grpc.NumStreamWorkers(grpcWorkers),
			grpc.ConnectionTimeout(s.cfg.ReadTimeout),
			grpc.InTapHandle(s.grpcTap),
			grpc.StreamInterceptor(s.grpcOtherStreams),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.cfg.IdleTimeout}),
			// Clients may ping as often as every 10 s without calls in
			// flight (gRPC's default, 5 minutes, turns away clients set
			// up for load balancers that drop idle connections).
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		}
		if s.cfg.TLS != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
		}
		g := &grpcFront{srv: grpc.NewServer(opts...),
			refused:     s.metrics.NewCounter("infergate_grpc_connections_refused_total"),
			slots:       make(chan struct{}, s.cfg.MaxConnections+64),
			streamSlots: make(chan struct{}, s.cfg.MaxConnections),
			reading:     make(map[*grpcReading]struct{}),
			streams:     make(map[*grpcStream]struct{}),
			others:      make(map[*context.CancelFunc]struct{}),
			streamWork:  make(chan streamTask)}
		g.workers.Add(grpcStreamWorkers)
		for range grpcStreamWorkers {
			go g.streamWorker()
		}
		s.metrics.NewGauge("infergate_grpc_streams_open", func() float64 { return float64(len(g.streamSlots)) })
		g.srv.RegisterService(s.grpcServiceDesc(), s)
		healthpb.RegisterHealthServer(g.srv, grpcHealth{s: s})
		registerReflection(g.srv)
		s.grpc = g
	})
	return s.grpc
}

// grpcHealth is gRPC's health service (grpc.health.v1.Health), as
// Kubernetes' gRPC probes and grpc_health_probe ask it: the server and
// the protocol's service are SERVING when GET /v2/health/ready would
// answer 200, NOT_SERVING otherwise.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	s *Server
}

func (h grpcHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.Service != "" && req.Service != oip.GRPCService {
		return nil, status.Errorf(codes.NotFound, "unknown service %q; this server has %q (and \"\" for the whole server)", req.Service, oip.GRPCService)
	}
	if ready, _ := h.s.readiness(); ready {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
}

// stopGRPC stops the gRPC server: it lets calls in flight finish until ctx
// ends, then cuts them off.
func (s *Server) stopGRPC(ctx context.Context) error {
	s.grpcOnce.Do(func() {}) // none made from now on
	g := s.grpc
	if g == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		g.srv.GracefulStop()
		close(done)
	}()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		g.endStalled()
		g.stopStreams()
		select {
		case <-done:
			g.endWorkers(true)
			return nil
		case <-t.C:
		case <-ctx.Done():
			g.srv.Stop()
			<-done
			g.endWorkers(false) // the requests still running end by their own timeouts
			return fmt.Errorf("gRPC calls still in flight were cut off: %w", ctx.Err())
		}
	}
}

// endWorkers waits for the streams' readers, once gRPC has ended every
// stream, and then stops the streams' workers, waiting for the requests
// still running when wait is set. A second Shutdown calls it again.
func (g *grpcFront) endWorkers(wait bool) {
	g.readers.Wait()
	g.endOnce.Do(func() { close(g.streamWork) })
	if wait {
		g.workers.Wait()
	}
}

// grpcServiceDesc describes the protocol's service to gRPC, each method
// over raw message bytes.
func (s *Server) grpcServiceDesc() *grpc.ServiceDesc {
	handlers := [numGRPCMethods]func(s *Server, ctx context.Context, sc *scratch) ([]byte, error){
		grpcServerLive: func(s *Server, _ context.Context, sc *scratch) ([]byte, error) {
			return oip.AppendBoolMessage(sc.buf[:0], true), nil
		},
		grpcServerReady: func(s *Server, _ context.Context, sc *scratch) ([]byte, error) {
			ready, _ := s.readiness()
			return oip.AppendBoolMessage(sc.buf[:0], ready), nil
		},
		grpcModelReady: (*Server).grpcModelReady,
		grpcServerMetadata: func(s *Server, _ context.Context, sc *scratch) ([]byte, error) {
			return oip.AppendServerMetadataResponse(sc.buf[:0], s.serverMetadataDoc()), nil
		},
		grpcModelMetadata:         (*Server).grpcModelMetadata,
		grpcModelInfer:            (*Server).grpcModelInfer,
		grpcModelConfig:           (*Server).grpcModelConfig,
		grpcModelStatistics:       (*Server).grpcModelStatistics,
		grpcRepositoryIndex:       (*Server).grpcRepositoryIndex,
		grpcRepositoryModelLoad:   (*Server).grpcRepositoryModelLoad,
		grpcRepositoryModelUnload: (*Server).grpcRepositoryModelUnload,
		grpcShmStatus:             (*Server).grpcShmStatus,
		grpcShmRegister:           (*Server).grpcShmRegister,
		grpcShmUnregister:         (*Server).grpcShmUnregister,
		grpcCudaShmStatus:         s.grpcCudaShm(grpcCudaShmStatus),
		grpcCudaShmRegister:       s.grpcCudaShm(grpcCudaShmRegister),
		grpcCudaShmUnregister:     s.grpcCudaShm(grpcCudaShmUnregister),
		grpcTraceSetting:          (*Server).grpcTraceSetting,
		grpcLogSettings:           (*Server).grpcLogSettings,
	}
	desc := &grpc.ServiceDesc{
		ServiceName: oip.GRPCService,
		HandlerType: (*any)(nil),
		Metadata:    "grpc_predict_v2.proto",
		Streams: []grpc.StreamDesc{{
			StreamName:    grpcMethods[grpcModelStreamInfer],
			Handler:       func(_ any, ss grpc.ServerStream) error { return s.grpcModelStreamInfer(ss) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}
	for i, h := range handlers {
		m := grpcMethod(i)
		if h == nil {
			continue // grpcModelStreamInfer
		}
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: grpcMethods[m],
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				return s.grpcCall(ctx, m, dec, h)
			},
		})
	}
	return desc
}

// grpcCall runs one call of method m: it reads the request into a
// scratch, checks the inference or admin token where HTTP would, runs h, and maps
// its error to a gRPC status; it recovers from panics, as HTTP's handler
// does.
func (s *Server) grpcCall(ctx context.Context, m grpcMethod, dec func(any) error, h func(*Server, context.Context, *scratch) ([]byte, error)) (out any, err error) {
	if s.verbose() {
		start := time.Now()
		defer func() { s.logGRPC(ctx, m, err, start, "") }() // after the recovery below
	}
	defer func() {
		if p := recover(); p != nil {
			s.panics.Inc()
			s.logf(logging.Error+"panic serving gRPC %s: %v\n%s", grpcMethods[m], p, debug.Stack())
			out, err = nil, status.Error(codes.Internal, errInternalMsg)
		}
		s.countGRPC(m, status.Code(err))
	}()
	// The refusals that cost nothing come before the message is read
	// (and decompressed).
	g := s.grpc
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		_ = grpc.SetTrailer(ctx, metadata.Pairs(grpcRetryKey, "1"))
		return nil, status.Errorf(codes.ResourceExhausted, "this server has %d gRPC calls in flight, its --max-connections + 64; retry later, or raise --max-connections", cap(g.slots))
	}
	if grpcGuarded[m] && s.cfg.InferenceToken != "" && !grpcBearerMatches(ctx, s.cfg.InferenceToken) {
		return nil, status.Error(codes.Unauthenticated, "this server needs the inference token: send the metadata authorization: Bearer <token>")
	}
	if grpcAdmin[m] {
		if err := s.grpcAuthorizeAdmin(ctx, m); err != nil {
			return nil, s.grpcError(ctx, m, err)
		}
	}
	sc := s.scratch.get()
	defer s.scratch.put(sc)
	if err := g.readMessage(ctx, dec, &sc.in); err != nil {
		return nil, err
	}
	b, err := h(s, ctx, sc)
	if err != nil {
		return nil, s.grpcError(ctx, m, err)
	}
	sc.buf = b
	return reply(b), nil
}

// grpcBearerMatches reports whether the call's authorization metadata
// holds the bearer token.
func grpcBearerMatches(ctx context.Context, token string) bool {
	for _, h := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		// Space around the value, as HTTP/1.1 parsing drops it: some
		// clients send what follows "authorization:" as it was typed
		// (perf_analyzer's -H 'authorization: Bearer ...').
		h = strings.Trim(h, " \t")
		const scheme = "bearer "
		if len(h) >= len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) &&
			subtle.ConstantTimeCompare([]byte(h[len(scheme):]), []byte(token)) == 1 {
			return true
		}
	}
	return false
}

// grpcAuthorizeAdmin checks a call of m as authorizeAdmin checks an HTTP
// request, with its answers (401: UNAUTHENTICATED, 403:
// PERMISSION_DENIED): the admin token in the authorization metadata
// (Bearer); with no token configured, a client on this host (by the
// address of the call's connection), whose call carries no proxy's
// metadata.
func (s *Server) grpcAuthorizeAdmin(ctx context.Context, m grpcMethod) error {
	if s.cfg.AdminToken == "" {
		if !grpcLocalClient(ctx) {
			return &httpError{code: fasthttp.StatusForbidden, msg: errMsgNotLoopback}
		}
		for _, k := range grpcProxyKeys {
			for _, v := range metadata.ValueFromIncomingContext(ctx, k) {
				if v != "" {
					return &httpError{code: fasthttp.StatusForbidden, msg: errMsgProxied(k + " metadata")}
				}
			}
		}
		return nil
	}
	if grpcBearerMatches(ctx, s.cfg.AdminToken) {
		return nil
	}
	if len(metadata.ValueFromIncomingContext(ctx, "authorization")) == 0 {
		return &httpError{code: fasthttp.StatusUnauthorized, msg: "this call needs the admin token (--admin-token): send the metadata authorization: Bearer <token>"}
	}
	// As over HTTP: a client set up with another token is the usual
	// cause; say so where the operator looks, once a minute.
	if more, ok := s.wrongTokens.Allow(struct{}{}); ok {
		s.logf(logging.Warning+"admin: refused gRPC %s from %s: its token is not this server's --admin-token%s", grpcMethods[m], grpcPeerHost(ctx), more)
	}
	return &httpError{code: fasthttp.StatusUnauthorized, msg: errMsgWrongAdminToken}
}

// grpcLocalClient reports whether the call's client is on this host, as
// localClient does for HTTP: a loopback TCP peer, or a non-TCP one (a
// unix socket). A call whose peer gRPC does not give is not.
func grpcLocalClient(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	a := p.Addr
	if c, ok := a.(connAddr); ok {
		a = c.Addr
	}
	t, ok := a.(*net.TCPAddr)
	return !ok || t.IP.IsLoopback()
}

// grpcPeerHost returns the call's client address without its port, for
// the log.
func grpcPeerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "an unknown address"
	}
	a := p.Addr.String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// grpcError maps err, as toHTTPError classifies it, to a gRPC status with
// the same message; a server error with a cause is logged as HTTP logs it.
func (s *Server) grpcError(ctx context.Context, m grpcMethod, err error) error {
	st, retryAfter := s.grpcStatus(m, err)
	if retryAfter > 0 {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(grpcRetryKey, fmt.Sprint(retryAfter)))
	}
	return st.Err()
}

// grpcStatus is grpcError's status for err, and the seconds a client
// should wait before retrying (0: none said).
func (s *Server) grpcStatus(m grpcMethod, err error) (*status.Status, int) {
	if st, ok := status.FromError(err); ok {
		return st, 0
	}
	he := toHTTPError(err)
	if he.code >= 500 && he.err != nil {
		if more, ok := s.errLog.Allow("gRPC " + grpcMethods[m]); ok {
			s.logf(logging.Error+"gRPC %s: %s%s", grpcMethods[m], he.err, more)
		}
	}
	return status.New(grpcCode(he), clipMessage(he.msg)), he.retryAfter
}

// maxStatusMessage bounds the message of a gRPC status as it goes out:
// in a trailer (a header, which clients bound for all of a call's
// metadata), percent-encoded, and it may echo what the request held.
const maxStatusMessage = 4096

// clipMessage returns msg cut so that it goes out in at most
// maxStatusMessage bytes, saying so. grpc-message is percent-encoded: a
// byte outside printable ASCII, or '%', takes three, and a byte of no
// valid UTF-8 sequence goes as U+FFFD's three, nine.
func clipMessage(msg string) string {
	wire := func(i int) (n, size int) {
		r, size := utf8.DecodeRuneInString(msg[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return 9, 1
		case size > 1 || msg[i] < ' ' || msg[i] > '~' || msg[i] == '%':
			return 3 * size, size
		}
		return 1, 1
	}
	total := 0
	for i := 0; i < len(msg) && total <= maxStatusMessage; {
		n, size := wire(i)
		total, i = total+n, i+size
	}
	if total <= maxStatusMessage {
		return msg
	}
	suffix := fmt.Sprintf("… (%d bytes in all)", len(msg))
	budget := maxStatusMessage - len(suffix) - 6 // "…" goes out as 9 bytes, not 3
	cut, used := 0, 0
	for cut < len(msg) {
		n, size := wire(cut)
		if used+n > budget {
			break
		}
		cut, used = cut+size, used+n
	}
	return msg[:cut] + suffix
}

// grpcCode is the gRPC status code of an HTTP error, as gRPC's own
// mapping of HTTP statuses and Triton's gRPC server have them.
func grpcCode(he *httpError) codes.Code {
	switch he.code {
	case fasthttp.StatusBadRequest:
		return codes.InvalidArgument
	case fasthttp.StatusUnauthorized:
		return codes.Unauthenticated
	case fasthttp.StatusForbidden:
		return codes.PermissionDenied
	case fasthttp.StatusNotFound:
		return codes.NotFound
	case fasthttp.StatusConflict:
		if errors.Is(he, shm.ErrExists) {
			return codes.AlreadyExists // as Triton answers it
		}
		return codes.FailedPrecondition
	case fasthttp.StatusRequestEntityTooLarge, fasthttp.StatusTooManyRequests, fasthttp.StatusInsufficientStorage:
		return codes.ResourceExhausted
	case fasthttp.StatusServiceUnavailable:
		if he.reason == registry.ReasonTimeout {
			return codes.DeadlineExceeded
		}
		return codes.Unavailable
	case fasthttp.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case fasthttp.StatusNotImplemented:
		return codes.Unimplemented
	}
	if he.code >= 500 {
		return codes.Internal
	}
	return codes.Unknown
}

// countGRPC counts a call of m that ended with code c.
func (s *Server) countGRPC(m grpcMethod, c codes.Code) {
	if int(c) >= len(s.grpc.calls[m]) {
		c = codes.Unknown
	}
	p := &s.grpc.calls[m][c]
	ctr := p.Load()
	if ctr == nil {
		ctr = s.metrics.GetOrCreateCounter(fmt.Sprintf(`infergate_grpc_requests_total{method=%q,code=%q}`, grpcMethods[m], c.String()))
		p.Store(ctr)
	}
	ctr.Inc()
}

// grpcModelReady answers ModelReady: ready or not, as GET
// /v2/models/{m}/ready would be 200 or not; a model this node does not
// know is not ready (Triton's answer), and a bad version is an error.
func (s *Server) grpcModelReady(_ context.Context, sc *scratch) ([]byte, error) {
	name, version, err := oip.DecodeModelRequest(sc.in)
	if err != nil {
		return nil, err
	}
	if _, err := parseVersion(version); err != nil {
		return nil, err
	}
	_, _, err = s.lookup(name, version)
	return oip.AppendBoolMessage(sc.buf[:0], err == nil), nil
}

// grpcModelMetadata answers ModelMetadata as GET /v2/models/{m} does.
func (s *Server) grpcModelMetadata(_ context.Context, sc *scratch) ([]byte, error) {
	name, version, err := oip.DecodeModelRequest(sc.in)
	if err != nil {
		return nil, err
	}
	md, _, err := s.metadataOf(name, version) // DecodeModelRequest gives nil for none
	if err != nil {
		return nil, err
	}
	return oip.AppendModelMetadataResponse(sc.buf[:0], &md), nil
}

// grpcModelConfig answers Triton's ModelConfig with what GET
// /v2/models/{m}[/versions/{v}]/config reports, in Triton's messages:
// the fields of its ModelConfig that infergate has.
func (s *Server) grpcModelConfig(_ context.Context, sc *scratch) ([]byte, error) {
	name, version, err := oip.DecodeModelRequest(sc.in)
	if err != nil {
		return nil, err
	}
	v, cfg, maxBatch, err := s.configView(name, version)
	if err != nil {
		return nil, err
	}
	return oip.AppendModelConfigResponse(sc.buf[:0], tritonConfig(v, &cfg, maxBatch)), nil
}

// tritonConfig is cfg, configView's view of v, as Triton's ModelConfig
// message has it.
func tritonConfig(v *registry.Version, cfg *registry.ModelConfig, maxBatch int64) *oip.TritonModelConfig {
	tensors := func(ts []oip.TensorMetadata) []oip.TritonTensor {
		out := make([]oip.TritonTensor, len(ts))
		for i, t := range ts {
			dims := t.Shape
			if v.Batchable && len(dims) > 0 {
				dims = dims[1:] // as registry.TensorConfigs, for HTTP
			}
			out[i] = oip.TritonTensor{Name: t.Name, Datatype: t.Datatype, Dims: dims}
		}
		return out
	}
	c := &oip.TritonModelConfig{
		Name:         v.Model,
		Platform:     cfg.Platform,
		Backend:      cfg.Backend,
		MaxBatchSize: maxBatch,
		Inputs:       tensors(v.Inputs),
		Outputs:      tensors(v.Outputs),
	}
	switch p := cfg.VersionPolicy; {
	case p.All != nil:
		c.VersionPolicy.All = true
	case p.Specific != nil:
		c.VersionPolicy.Specific = p.Specific.Versions
		if c.VersionPolicy.Specific == nil {
			c.VersionPolicy.Specific = []int64{}
		}
	case p.Latest != nil:
		c.VersionPolicy.Latest = p.Latest.NumVersions
	default:
		c.VersionPolicy.Latest = 1 // what none set means
	}
	for _, g := range cfg.InstanceGroup {
		c.InstanceGroups = append(c.InstanceGroups, oip.TritonInstanceGroup{Count: g.Count, Kind: g.Kind, GPUs: g.GPUs})
	}
	// Reported when the version batches (on unless turned off, block or
	// not), or when its configuration has a block that does not turn
	// batching off, as HTTP's configView reports it.
	if d := cfg.DynamicBatching; d.On() && (v.Batchable || d != nil) {
		c.DynamicBatching = &oip.TritonDynamicBatching{}
		if d != nil {
			c.DynamicBatching.PreferredBatchSize = d.PreferredBatchSizes
			if d.MaxQueueDelayUS != nil {
				c.DynamicBatching.MaxQueueDelayMicroseconds = *d.MaxQueueDelayUS
			}
			c.DynamicBatching.PriorityLevels = d.PriorityLevels
			c.DynamicBatching.DefaultPriorityLevel = d.DefaultPriorityLevel
		}
	}
	if rc := cfg.ResponseCache; rc != nil {
		c.ResponseCache = &rc.Enable
	}
	return c
}

// grpcModelStatistics answers Triton's ModelStatistics with what GET
// /v2/models[/{m}[/versions/{v}]]/stats reports: an empty name asks for
// every model's.
func (s *Server) grpcModelStatistics(_ context.Context, sc *scratch) ([]byte, error) {
	name, version, err := oip.DecodeModelStatisticsRequest(sc.in)
	if err != nil {
		return nil, err
	}
	stats, err := s.statsOf(name, version)
	if err != nil {
		return nil, err
	}
	return oip.AppendModelStatisticsResponse(sc.buf[:0], stats.ModelStats), nil
}

// grpcRepositoryIndex answers Triton's RepositoryIndex with what POST
// /v2/repository/index does; repository_name is not read, as a server
// has one repository.
func (s *Server) grpcRepositoryIndex(_ context.Context, sc *scratch) ([]byte, error) {
	ready, err := oip.DecodeRepositoryIndexRequest(sc.in)
	if err != nil {
		return nil, err
	}
	idx, err := s.readyIndex(ready)
	if err != nil {
		return nil, err
	}
	out := make([]oip.ModelIndex, len(idx))
	for i, e := range idx {
		out[i] = oip.ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason}
	}
	return oip.AppendRepositoryIndexResponse(sc.buf[:0], out), nil
}

// grpcModelInfer answers ModelInfer as POST /v2/models/{m}/infer does,
// through the same experiment, cache, batcher, shadow and traffic log. The
// unit id for experiments comes from the x-unit-id metadata, else the
// unit_id parameter. A call's deadline (grpc-timeout) bounds it as the
// "timeout" parameter does.
func (s *Server) grpcModelInfer(ctx context.Context, sc *scratch) ([]byte, error) {
	r, err := s.grpcInfer(ctx, sc, metadata.ValueFromIncomingContext(ctx, grpcUnitKey), true)
	if err != nil {
		return nil, err
	}
	// Built as a literal: the keys are lower case already (metadata.Pairs
	// would lower them again, and allocate more).
	md := metadata.MD{grpcVersionKey: {r.version}}
	if r.arm != "" {
		md[grpcArmKey] = []string{r.arm}
	}
	if r.hit {
		md[grpcCacheKey] = []string{"hit"}
	}
	_ = grpc.SetHeader(ctx, md)
	return sc.buf, nil
}

// grpcInferred is what a ModelInfer answer says besides its body: the
// version that answered, the experiment arm, and whether the cache did.
type grpcInferred struct {
	version, arm string
	hit          bool
}

// grpcInfer answers the ModelInferRequest in sc.in, leaving the
// ModelInferResponse in sc.buf. meta is the x-unit-id metadata, whose
// unit id wins over the request's unit_id parameter when over is set,
// and gives way to it otherwise (a stream's metadata is the default of
// its requests).
func (s *Server) grpcInfer(ctx context.Context, sc *scratch, meta []string, over bool) (grpcInferred, error) {
	start := time.Now()
	// The version first, from the fields that name it: as over HTTP, a
	// request is refused for a full queue before it is decoded, and one
	// that does not decode counts for its version.
	name, version, param, err := oip.PeekModelInferRequest(sc.in)
	if err != nil {
		return grpcInferred{}, err
	}
	unit, field := param, `parameter "unit_id"`
	if len(meta) > 0 && (over || len(param) == 0) {
		unit, field = []byte(meta[0]), "metadata "+grpcUnitKey
	}
	v, arm, err := s.acquireFor(name, version, unit, field)
	if err != nil {
		return grpcInferred{}, err
	}
	defer v.Release()
	v.Metrics.Arrived(start)
	finished := false
	defer func() {
		if !finished { // panicked; grpcCall recovers and answers Internal
			v.Metrics.Failed(registry.ReasonInternal, time.Since(start))
		}
	}()
	tracing := s.trace.on.Load()
	if s.cfg.SlowRequests > 0 || tracing {
		// sc is reused: what a request that stops early leaves unset
		// must not read as the last one's.
		sc.breq.Waited, sc.breq.BatchRows, sc.breq.Rows, sc.breq.FailedRows, sc.req.ID = 0, 0, 0, 0, ""
		sc.queued = time.Time{}
	}
	hit, err := s.grpcInferVersion(ctx, sc, v, arm, unit, start)
	finished = true
	if s.cfg.SlowRequests > 0 {
		s.logSlowCall(ctx, v, arm, sc, start, hit, err)
	}
	if tracing {
		s.traceRequest(v, sc, start, s.grpcTraceParent(ctx), err)
	}
	if err != nil {
		v.Metrics.Failed(toHTTPError(err).reason, time.Since(start))
		return grpcInferred{}, err
	}
	v.Metrics.Succeeded(time.Since(start))
	return grpcInferred{version: v.Label, arm: arm, hit: hit}, nil
}

// grpcInferVersion is grpcModelInfer's work once the version is chosen:
// the answer is left encoded in sc.buf. It reports whether the cache
// answered.
func (s *Server) grpcInferVersion(ctx context.Context, sc *scratch, v *registry.Version, arm string, unit []byte, start time.Time) (hit bool, err error) {
	req := &sc.req
	if v.Batcher.Full() {
		return false, s.batchError(v, 0, 0, batching.ErrQueueFull)
	}
	if _, _, err := oip.DecodeModelInferRequest(req, sc.in); err != nil {
		return false, err
	}
	n, _, err := s.checkRequest(sc, v)
	if err != nil {
		return false, err
	}
	sc.shadow = s.sampleShadow(v)
	sc.sampled = s.sampleTraffic()
	useCache := s.cache != nil && v.Config.ResponseCache != nil && v.Config.ResponseCache.Enable && !req.CacheBypass
	var outs []oip.Tensor
	var lookup time.Time
	var missed time.Duration
	if useCache {
		sc.key = cache.AppendKey(sc.key[:0], v.Generation, req.Inputs, v.Inputs)
		lookup = time.Now()
		if e, ok := s.cache.Get(sc.key); ok && e.Outputs != nil {
			outs, hit = e.Outputs, true
		} else {
			missed = time.Since(lookup)
			defer func() { v.Metrics.CacheMiss(missed) }()
		}
	}
	if !hit {
		timeout := s.requestTimeout(req, v, s.cfg.RequestTimeout)
		byDeadline := false
		if dl, ok := ctx.Deadline(); ok && dl.Sub(start) < timeout {
			timeout, byDeadline = max(dl.Sub(start), 0), true
		}
		if err := s.runBatch(sc, v, n, start, timeout); err != nil {
			if he := toHTTPError(err); byDeadline && he.reason == registry.ReasonTimeout {
				// Not the timeout parameter nor --request-timeout: the
				// call's deadline.
				return false, timedOut(fmt.Sprintf("timed out after %s waiting in the queue of model %q version %s (%s): the call's deadline, the client's (or --read-timeout plus --request-timeout from when the call began); retry later, give the call a longer deadline, or add instances",
					timeout.Round(time.Microsecond), v.Model, v.Label, queueState(v.Batcher.Config())))
			}
			return false, err
		}
		outs = sc.outs
		s.copyToShadow(sc, outs)
		if useCache {
			store := time.Now()
			s.cache.Set(sc.key, outs)
			missed += time.Since(store)
		}
	}
	err = s.selectOutputs(sc, v, outs)
	if err == nil {
		sc.buf = oip.AppendModelInferResponse(sc.buf[:0], &sc.resp)
	}
	clear(sc.resp.Outputs) // drop references to outs, which may be a cache entry
	if hit {
		// Found, though its classes may be too large: a hit, as HTTP
		// counts it.
		defer func() { v.Metrics.CacheHit(time.Since(start), time.Since(lookup)) }()
	}
	if err != nil {
		return hit, err
	}
	if hit {
		s.copyToShadow(sc, outs)
	}
	s.logPrediction(unit, sc, v, arm, outs) // which logs unit only with an arm
	return hit, nil
}

// grpcRepositoryModelLoad answers Triton's RepositoryModelLoad as POST
// /v2/repository/models/{m}/load does: the "config" parameter is its
// parameters.config (oip.DecodeRepositoryModelLoadRequest). The answer,
// RepositoryModelLoadResponse, has no fields.
func (s *Server) grpcRepositoryModelLoad(ctx context.Context, sc *scratch) ([]byte, error) {
	name, config, err := oip.DecodeRepositoryModelLoadRequest(sc.in)
	if err != nil {
		return nil, err
	}
	if err := s.repoLoad(grpcPeerHost(ctx)+" (gRPC)", string(name), config); err != nil {
		return nil, err
	}
	return sc.buf[:0], nil
}

// grpcRepositoryModelUnload answers Triton's RepositoryModelUnload as
// POST /v2/repository/models/{m}/unload does. The answer,
// RepositoryModelUnloadResponse, has no fields.
func (s *Server) grpcRepositoryModelUnload(ctx context.Context, sc *scratch) ([]byte, error) {
	name, err := oip.DecodeRepositoryModelUnloadRequest(sc.in)
	if err != nil {
		return nil, err
	}
	if err := s.repoUnload(grpcPeerHost(ctx)+" (gRPC)", string(name)); err != nil {
		return nil, err
	}
	return sc.buf[:0], nil
}
