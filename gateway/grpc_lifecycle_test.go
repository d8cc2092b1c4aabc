package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/internal/testenv"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// liveFrom counts the objects in use that were allocated under a
// function whose name contains fn (runtime.MemProfileRate must be 1).
func liveFrom(fn string) int64 {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+100)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var live int64
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, fn) {
				live += r.InUseObjects()
				break
			}
			if !more {
				break
			}
		}
	}
	return live
}

// TestGRPCCallDeadlinesDoNotLeak: the deadline every call gets (grpcTap)
// is not cancelled by the handler, whose reply is written after it
// returns; gRPC's cancel of the stream's context, its parent, must stop
// its timer when the call ends, or every call would hold one for
// --read-timeout plus --request-timeout.
func TestGRPCCallDeadlinesDoNotLeak(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	cfg := gateway.DefaultConfig()
	cfg.ReadTimeout, cfg.RequestTimeout = 10*time.Second, 5*time.Second
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	const calls = 3000
	var wg sync.WaitGroup
	var failed, next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= calls {
				if _, err := c.call(ctx, "ServerLive", pbtest.New("ServerLiveRequest"), "ServerLiveResponse"); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	var live int64
	testenv.CheckFor(t, 5*time.Second, func() error {
		if live = liveFrom("gateway.(*Server).grpcTap"); live > 100 {
			return fmt.Errorf("%d objects that grpcTap made are alive after %d calls", live, calls)
		}
		return nil
	})
	if failed.Load() > 0 {
		t.Fatalf("%d of %d calls failed", failed.Load(), calls)
	}
}

// rawGRPC is a raw HTTP/2 connection to a gRPC server, for calls that a
// gRPC client would never make, that records how each stream ended: its
// status and grpc-status and grpc-message trailers, or the RST_STREAM
// code. After a GOAWAY it closes the connection once its calls have
// ended, as a gRPC client does.
type rawGRPC struct {
	fr   *http2.Framer
	conn net.Conn
	addr string
	wmu  sync.Mutex // guards writes to fr

	mu      sync.Mutex
	ended   map[uint32]string
	opened  int   // calls opened
	away    bool  // a GOAWAY came
	readErr error // why reading stopped
}

// String says how the connection's calls stand, for a test's failure.
func (r *rawGRPC) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d calls opened, %d ended %v, reading stopped by %v", r.opened, len(r.ended), r.ended, r.readErr)
}

func dialRawGRPC(t *testing.T, addr string) *rawGRPC {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return startRawGRPC(t, conn, addr)
}

// startRawGRPC speaks HTTP/2 on conn as a client of authority addr.
func startRawGRPC(t *testing.T, conn net.Conn, addr string) *rawGRPC {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	r := &rawGRPC{fr: http2.NewFramer(conn, conn), conn: conn, addr: addr, ended: map[uint32]string{}}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 64 << 20
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The server's settings first: the connection is accepted (one
	// beyond --max-connections is closed at once).
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the server closed the connection before its settings: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := r.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	go func() {
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				r.mu.Lock()
				r.readErr = err
				r.mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					r.wmu.Lock()
					r.fr.WriteSettingsAck()
					r.wmu.Unlock()
				}
			case *http2.GoAwayFrame:
				r.mu.Lock()
				r.away = true
				r.mu.Unlock()
			case *http2.RSTStreamFrame:
				r.end(f.StreamID, "RST_STREAM "+f.ErrCode.String())
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					msg := f.PseudoValue("status")
					for _, hf := range f.Fields {
						if hf.Name == "grpc-status" || hf.Name == "grpc-message" {
							msg += fmt.Sprintf(" %s=%.200s (%d bytes)", hf.Name, hf.Value, len(hf.Value))
						}
					}
					r.end(f.StreamID, msg)
				}
			}
		}
	}()
	return r
}

func (r *rawGRPC) end(id uint32, how string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ended[id]; !ok {
		r.ended[id] = how
	}
	if r.away && len(r.ended) >= r.opened {
		// As a gRPC client does once its calls are over after a GOAWAY.
		r.conn.Close()
	}
}

// waitEnded waits until n of the connection's calls have ended.
func (r *rawGRPC) waitEnded(t *testing.T, n int) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.ended) < n {
			return fmt.Errorf("%d calls ended; want %d", len(r.ended), n)
		}
		return nil
	})
}

// outcome waits for stream id to end and returns how it did.
func (r *rawGRPC) outcome(t *testing.T, id uint32) string {
	t.Helper()
	var how string
	testenv.CheckFor(t, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		if how, ok = r.ended[id]; !ok {
			return fmt.Errorf("call %d has not ended", id)
		}
		return nil
	})
	return how
}

// open starts a ModelInfer call on stream id and sends data, not ending
// the stream.
func (r *rawGRPC) open(t *testing.T, id uint32, data []byte) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", r.addr},
		{":path", "/inference.GRPCInferenceService/ModelInfer"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	r.mu.Lock()
	r.opened++
	r.mu.Unlock()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteData(id, false, data); err != nil {
		t.Fatal(err)
	}
}

func (r *rawGRPC) data(id uint32, b []byte, end bool) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.fr.WriteData(id, end, b)
}

// sendSlowly sends rest on stream id in 20 pieces 100 ms apart, ending
// the stream, and says on the channel how that went.
func (r *rawGRPC) sendSlowly(id uint32, rest []byte) <-chan error {
	sent := make(chan error, 1)
	go func() {
		step := (len(rest) + 19) / 20
		for off := 0; off < len(rest); off += step {
			time.Sleep(100 * time.Millisecond)
			end := min(off+step, len(rest))
			if err := r.data(id, rest[off:end], end == len(rest)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	return sent
}

func (r *rawGRPC) reset(id uint32) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
}

// grpcFrame frames message msg as gRPC sends it: uncompressed, its length
// first.
func grpcFrame(msg []byte) []byte {
	n := len(msg)
	return append([]byte{0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...)
}

// TestGRPCClientResetFreesPlaces: calls that their client cancels
// (RST_STREAM) while their message is arriving give their places back at
// once, not at their deadline.
func TestGRPCClientResetFreesPlaces(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 2 // 66 places
	cfg.ReadTimeout = time.Minute
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	addr := s.listeners[len(s.listeners)-1].Addr().String()
	ctx := context.Background()
	r := dialRawGRPC(t, addr)
	for i := range 70 {
		stallCall(t, r, uint32(2*i+1))
	}
	r.waitEnded(t, 4) // refused: the other 66 hold every place
	_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
	checkCode(t, err, codes.ResourceExhausted, "66 gRPC calls in flight")
	for i := range 70 {
		if err := r.reset(uint32(2*i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 3*time.Second, func() error {
		_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
		return err
	})
}

// TestGRPCErrorMessagesAreBounded: over HTTP a model name comes in the
// path, bounded by --max-header-bytes; over gRPC it comes in the message.
// A long one is refused without being echoed whole, and no status
// message exceeds 4 KiB (it goes out in a trailer, a header).
func TestGRPCErrorMessagesAreBounded(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	for _, n := range []int{1 << 20, 20 << 20} {
		name := strings.Repeat("a", n)
		req := pbtest.InferRequest(name, "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}}},
			[][]byte{f32Bytes(features(1, 1, 64))}, nil, nil)
		_, err := c.infer(ctx, req, nil)
		checkCode(t, err, codes.InvalidArgument, fmt.Sprintf("model_name has %d bytes", n))
		mreq := pbtest.New("ModelMetadataRequest")
		mreq.Set(mreq.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString(name))
		_, err = c.call(ctx, "ModelMetadata", mreq, "ModelMetadataResponse")
		checkCode(t, err, codes.InvalidArgument, fmt.Sprintf("name has %d bytes", n))
	}
	// A tensor name is echoed too; the message is cut.
	req := pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: strings.Repeat("b", 1<<20), Datatype: "FP32", Shape: []int64{1, 64}}},
		[][]byte{f32Bytes(features(1, 1, 64))}, nil, nil)
	_, err := c.infer(ctx, req, nil)
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || len(st.Message()) > 4096 || !strings.Contains(st.Message(), "bytes in all)") {
		t.Fatalf("an unknown input of a 1 MiB name: %s, a %d-byte message; want INVALID_ARGUMENT cut to 4 KiB", st.Code(), len(st.Message()))
	}
}

// TestGRPCEmptyVersionField: a model_version field present but empty,
// which proto3 readers take for unset, asks for the model's default.
func TestGRPCEmptyVersionField(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	s.serveGRPC(t)
	r := dialRawGRPC(t, s.listeners[len(s.listeners)-1].Addr().String())
	msg, err := proto.Marshal(ctrGRPCRequest(features(1, 1, 64), 1, ""))
	if err != nil {
		t.Fatal(err)
	}
	r.open(t, 1, grpcFrame(append(msg, 0x12, 0x00))) // model_version ""
	if err := r.data(1, nil, true); err != nil {
		t.Fatal(err)
	}
	if how := r.outcome(t, 1); !strings.Contains(how, "grpc-status=0 ") {
		t.Fatalf("a request with an empty model_version field: %s; want it answered as unversioned", how)
	}
}

// TestGRPCShutdownServesAcceptedCalls: calls that were on their way when
// a shutdown began are answered; none is refused by the server for the
// shutdown (calls after the GOAWAY go elsewhere, a client's concern).
func TestGRPCShutdownServesAcceptedCalls(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	var refused, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
				switch {
				case err == nil:
					ok.Add(1)
				case strings.Contains(err.Error(), "shutting down"):
					refused.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if refused.Load() > 0 || ok.Load() == 0 {
		t.Fatalf("answered %d, refused for the shutdown %d; want none refused", ok.Load(), refused.Load())
	}
}

// TestGRPCShutdownLetsArrivingMessagesFinish: a call whose message is
// still arriving, slowly but steadily, when a shutdown begins is read
// whole and answered; one whose message stopped arriving is ended
// (CANCELLED) a second later.
func TestGRPCShutdownLetsArrivingMessagesFinish(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	s.serveGRPC(t)
	addr := s.listeners[len(s.listeners)-1].Addr().String()
	msg, err := proto.Marshal(ctrGRPCRequest(features(1, 1, 64), 1, ""))
	if err != nil {
		t.Fatal(err)
	}
	frame := grpcFrame(msg)
	slow := dialRawGRPC(t, addr)
	slow.open(t, 1, frame[:10])
	stalled := dialRawGRPC(t, addr)
	stalled.open(t, 1, frame[:10])
	sent := slow.sendSlowly(1, frame[10:])
	time.Sleep(200 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(sctx)
	}()
	if how := stalled.outcome(t, 1); !strings.Contains(how, "grpc-status=1 ") {
		t.Fatalf("a call whose message stopped arriving, at shutdown: %s; want it ended, CANCELLED", how)
	}
	if how := slow.outcome(t, 1); !strings.Contains(how, "grpc-status=0 ") {
		t.Fatalf("a call whose message was arriving steadily at shutdown: %s; want it answered", how)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	slow.conn.Close()
	stalled.conn.Close()
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// dialRawGRPCOn is dialRawGRPC over any network.
func dialRawGRPCOn(t *testing.T, network, addr string) *rawGRPC {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return startRawGRPC(t, conn, "localhost")
}

// TestGRPCShutdownTellsConnectionsApart: a shutdown judges a call by its
// own connection, even where every connection has the same remote
// address (a unix socket's are all "@"): a call whose message arrives
// steadily is answered though another connection, accepted after it,
// sent nothing.
func TestGRPCShutdownTellsConnectionsApart(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	path := filepath.Join(t.TempDir(), "grpc.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s.serveGRPCOn(ln)
	msg, err := proto.Marshal(ctrGRPCRequest(features(1, 1, 64), 1, ""))
	if err != nil {
		t.Fatal(err)
	}
	frame := grpcFrame(msg)
	slow := dialRawGRPCOn(t, "unix", path)
	idle := dialRawGRPCOn(t, "unix", path)
	time.Sleep(100 * time.Millisecond)
	slow.open(t, 1, frame[:10])
	sent := slow.sendSlowly(1, frame[10:])
	time.Sleep(1200 * time.Millisecond) // idle has sent nothing for a second
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(sctx)
	}()
	how := slow.outcome(t, 1)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	slow.conn.Close()
	idle.conn.Close()
	<-stopped
	if !strings.Contains(how, "grpc-status=0 ") {
		t.Fatalf("a call whose message arrived steadily over a unix socket at shutdown: %s; want it answered", how)
	}
}

// TestGRPCStatusMessageWireSize: the status message goes out
// percent-encoded, each byte of a character outside ASCII as three: it
// is cut by that size, to 4 KiB.
func TestGRPCStatusMessageWireSize(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	req := pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: strings.Repeat("é", 1<<19), Datatype: "FP32", Shape: []int64{1, 64}}},
		[][]byte{f32Bytes(features(1, 1, 64))}, nil, nil)
	_, err := c.infer(context.Background(), req, nil)
	st, _ := status.FromError(err)
	wire := 0
	for i := 0; i < len(st.Message()); i++ {
		if b := st.Message()[i]; b < 0x20 || b > 0x7e || b == '%' {
			wire += 3
		} else {
			wire++
		}
	}
	if st.Code() != codes.InvalidArgument || wire > 4096 {
		t.Fatalf("%s: grpc-message of %d bytes on the wire; want INVALID_ARGUMENT in at most 4096", st.Code(), wire)
	}
}
