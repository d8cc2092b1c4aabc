package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// grpcClient is a gRPC client of a test server, with the protobuf
// library's own encoding of the protocol's messages (pbtest).
type grpcClient struct {
	conn *grpc.ClientConn
}

// serveGRPCOn serves the gRPC front door of s on ln until the server
// shuts down.
func (s *testServer) serveGRPCOn(ln net.Listener) {
	s.listeners = append(s.listeners, ln)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := s.srv.ServeGRPC(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.served <- err
		}
	}()
}

// serveGRPC serves the gRPC front door of s on a loopback port and returns
// a client of it.
func (s *testServer) serveGRPC(t testing.TB) *grpcClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serveGRPCOn(ln)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcClient{conn: conn}
}

// call calls method with request in and returns the reply, a new message
// of type out.
func (c *grpcClient) call(ctx context.Context, method string, in proto.Message, out string, opts ...grpc.CallOption) (*dynamicpb.Message, error) {
	m := pbtest.New(out)
	err := c.conn.Invoke(ctx, "/inference.GRPCInferenceService/"+method, in, m, opts...)
	return m, err
}

// infer calls ModelInfer and decodes the reply; header gets the reply's
// metadata.
func (c *grpcClient) infer(ctx context.Context, req proto.Message, header *metadata.MD) (*pbtest.Response, error) {
	if header == nil {
		header = new(metadata.MD)
	}
	m, err := c.call(ctx, "ModelInfer", req, "ModelInferResponse", grpc.Header(header))
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return pbtest.DecodeInferResponse(b)
}

func field(m protoreflect.Message, name string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
}

func ctrGRPCRequest(x []float32, rows int, version string) proto.Message {
	return pbtest.InferRequest("ctr", version, "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{int64(rows), 64}}},
		[][]byte{f32Bytes(x)}, nil, nil)
}

func checkCode(t testing.TB, err error, code codes.Code, fragment string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || !strings.Contains(st.Message(), fragment) {
		t.Fatalf("got %v; want status %s with %q", err, code, fragment)
	}
}

// TestGRPCServesTheProtocol checks every method of the protocol's gRPC
// service, and gRPC's health service, against ONNX Runtime's ctr.
func TestGRPCServesTheProtocol(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx := context.Background()

	x := features(1, 3, 64)
	var header metadata.MD
	resp, err := c.infer(ctx, ctrGRPCRequest(x, 3, ""), &header)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "ctr" || resp.Version != "1" || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "score" ||
		resp.Outputs[0].Datatype != "FP32" || fmt.Sprint(resp.Outputs[0].Shape) != "[3 1]" {
		t.Fatalf("got %+v; want ctr version 1 with score FP32 [3 1]", resp)
	}
	checkScores(t, bytesF32(resp.Outputs[0].Raw), x, 3)
	if got := header.Get("x-model-version"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("got x-model-version %q; want 1", got)
	}

	// Typed contents, a version named, and an id, which comes back.
	typed := pbtest.InferRequest("ctr", "1", "req-42", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}, FP32: x[:64]}},
		nil, nil, map[string]map[string]pbtest.Param{"score": nil})
	if resp, err = c.infer(ctx, typed, &header); err != nil {
		t.Fatal(err)
	}
	if resp.ID != "req-42" {
		t.Fatalf("got id %q; want req-42", resp.ID)
	}
	checkScores(t, bytesF32(resp.Outputs[0].Raw), x[:64], 1)

	// gzip-compressed, as Triton's clients may send it.
	m, err := c.call(ctx, "ModelInfer", ctrGRPCRequest(x, 3, ""), "ModelInferResponse", grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatalf("a gzip-compressed call: %v", err)
	}
	raw := field(m, "raw_output_contents").List()
	if raw.Len() != 1 {
		t.Fatalf("a gzip-compressed call: got %v", m)
	}
	checkScores(t, bytesF32(raw.Get(0).Bytes()), x, 3)

	for _, tc := range []struct {
		method, in, out, field string
		set                    map[string]string
		want                   bool
	}{
		{"ServerLive", "ServerLiveRequest", "ServerLiveResponse", "live", nil, true},
		{"ServerReady", "ServerReadyRequest", "ServerReadyResponse", "ready", nil, true},
		{"ModelReady", "ModelReadyRequest", "ModelReadyResponse", "ready", map[string]string{"name": "ctr"}, true},
		{"ModelReady", "ModelReadyRequest", "ModelReadyResponse", "ready", map[string]string{"name": "ctr", "version": "1"}, true},
		{"ModelReady", "ModelReadyRequest", "ModelReadyResponse", "ready", map[string]string{"name": "ctr", "version": "2"}, false},
		{"ModelReady", "ModelReadyRequest", "ModelReadyResponse", "ready", map[string]string{"name": "nope"}, false},
	} {
		in := pbtest.New(tc.in)
		for k, v := range tc.set {
			in.Set(in.Descriptor().Fields().ByName(protoreflect.Name(k)), protoreflect.ValueOfString(v))
		}
		out, err := c.call(ctx, tc.method, in, tc.out)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.method, tc.set, err)
		}
		if got := field(out, tc.field).Bool(); got != tc.want {
			t.Fatalf("%s %v: got %s %v; want %v", tc.method, tc.set, tc.field, got, tc.want)
		}
	}

	sm, err := c.call(ctx, "ServerMetadata", pbtest.New("ServerMetadataRequest"), "ServerMetadataResponse")
	if err != nil {
		t.Fatal(err)
	}
	if got := field(sm, "name").String(); got != "infergate" || field(sm, "extensions").List().Len() == 0 {
		t.Fatalf("got server metadata %v; want infergate with extensions", sm)
	}
	mreq := pbtest.New("ModelMetadataRequest")
	mreq.Set(mreq.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("ctr"))
	mm, err := c.call(ctx, "ModelMetadata", mreq, "ModelMetadataResponse")
	if err != nil {
		t.Fatal(err)
	}
	in := field(mm, "inputs").List().Get(0).Message()
	if field(mm, "platform").String() != "onnxruntime_onnx" || field(in, "name").String() != "features" ||
		field(in, "datatype").String() != "FP32" || field(in, "shape").List().Get(1).Int() != 64 {
		t.Fatalf("got model metadata %v; want ctr's features FP32 [-1,64]", mm)
	}

	hc := healthpb.NewHealthClient(c.conn)
	for _, svc := range []string{"", "inference.GRPCInferenceService"} {
		h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: got %v, %v; want SERVING", svc, h, err)
		}
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"})
	checkCode(t, err, codes.NotFound, "unknown service")

	if page := s.do(t, "GET", "/", nil); !strings.Contains(string(page.body), "gRPC on <code>127.0.0.1:") {
		t.Fatalf("the status page does not say where gRPC is served:\n%.2000s", page.body)
	}

	text := s.metricsText(t)
	checkMetric(t, text, `infergate_grpc_requests_total{method="ModelInfer",code="OK"}`, 3)
	checkMetric(t, text, `infergate_grpc_requests_total{method="ModelReady",code="OK"}`, 4)
	checkMetric(t, text, successSeries(`model="ctr",version="1"`), 3)

	s.srv.BeginShutdown()
	h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while shutting down: got %v, %v; want NOT_SERVING", h, err)
	}
	r, err := c.call(ctx, "ServerReady", pbtest.New("ServerReadyRequest"), "ServerReadyResponse")
	if err != nil || field(r, "ready").Bool() {
		t.Fatalf("ServerReady while shutting down: got %v, %v; want false", r, err)
	}
}

// TestGRPCErrors checks that requests the HTTP side refuses with a 4xx get
// the matching gRPC status with the same message.
func TestGRPCErrors(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := context.Background()

	_, err := c.infer(ctx, pbtest.InferRequest("nope", "", "", nil, nil, nil, nil), nil)
	checkCode(t, err, codes.NotFound, `model "nope"`)
	_, err = c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, "7"), nil)
	checkCode(t, err, codes.NotFound, "version 7")
	_, err = c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, "seven"), nil)
	checkCode(t, err, codes.InvalidArgument, "seven")
	_, err = c.infer(ctx, pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 63}}},
		[][]byte{f32Bytes(features(1, 1, 63))}, nil, nil), nil)
	checkCode(t, err, codes.InvalidArgument, "dimension 1 must be 64")
	_, err = c.infer(ctx, pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}}},
		[][]byte{f32Bytes(features(1, 1, 63))}, nil, nil), nil)
	checkCode(t, err, codes.InvalidArgument, "features")
	_, err = c.infer(ctx, pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}, Int: []int32{1}}},
		nil, nil, nil), nil)
	checkCode(t, err, codes.InvalidArgument, "fp32_contents, not int_contents")
	_, err = c.infer(ctx, ctrGRPCRequest(features(1, 300, 64), 300, ""), nil)
	checkCode(t, err, codes.ResourceExhausted, "larger than max")
	mreq := pbtest.New("ModelMetadataRequest")
	mreq.Set(mreq.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("nope"))
	_, err = c.call(ctx, "ModelMetadata", mreq, "ModelMetadataResponse")
	checkCode(t, err, codes.NotFound, `model "nope"`)
	// Served, but off unless serve --shared-memory.
	_, err = c.call(ctx, "SystemSharedMemoryStatus", pbtest.New("SystemSharedMemoryStatusRequest"), "SystemSharedMemoryStatusResponse")
	checkCode(t, err, codes.NotFound, "this server does not take shared memory: start it with serve --shared-memory")

	// A request for a version that fails counts for it, as over HTTP:
	// its shapes, its data, and contents that do not decode.
	checkMetric(t, s.metricsText(t), failureSeries(`model="ctr",version="1"`, "bad_request"), 3)
	checkMetric(t, s.metricsText(t), `infergate_grpc_requests_total{method="ModelInfer",code="InvalidArgument"}`, 4)
}

// TestGRPCInferenceToken checks that the inference token guards the
// model calls, and leaves health and server calls open, as over HTTP.
func TestGRPCInferenceToken(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "s3cret"
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
	checkCode(t, err, codes.Unauthenticated, "inference token")
	wrong := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope")
	_, err = c.infer(wrong, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
	checkCode(t, err, codes.Unauthenticated, "inference token")
	right := metadata.AppendToOutgoingContext(ctx, "authorization", "bearer s3cret")
	if _, err := c.infer(right, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil); err != nil {
		t.Fatal(err)
	}
	// As perf_analyzer sends -H 'authorization: Bearer s3cret'.
	spaced := metadata.AppendToOutgoingContext(ctx, "authorization", " Bearer s3cret")
	if _, err := c.infer(spaced, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil); err != nil {
		t.Fatalf("the token after a space: %v", err)
	}
	if _, err := c.call(ctx, "ServerReady", pbtest.New("ServerReadyRequest"), "ServerReadyResponse"); err != nil {
		t.Fatalf("ServerReady without the token: %v; want it open, as /v2/health/ready is", err)
	}
}

// TestGRPCOverloadAndShutdown checks that a full queue refuses a call at
// once with UNAVAILABLE and a retry-after trailer, and that a shutdown lets
// the calls in flight finish.
func TestGRPCOverloadAndShutdown(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{Instances: 1, MaxQueue: 1})
	c := s.serveGRPC(t)
	ctx := context.Background()
	b.mode.Store(fakeBlock)
	req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)

	results := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := c.infer(ctx, req, nil)
			if err == nil && fmt.Sprint(bytesF32(resp.Outputs[0].Raw)) != "[10]" {
				err = fmt.Errorf("got %+v; want y = 10", resp)
			}
			results <- err
		})
	}
	v := s.repo.Model("fake").Latest()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n, m := v.InFlight(), b.running.Load(); n != 2 || m != 1 {
			return fmt.Errorf("in flight: got %d requests, %d in Run; want 2, 1", n, m)
		}
		return nil
	})
	var trailer metadata.MD
	start := time.Now()
	_, err := c.call(ctx, "ModelInfer", req, "ModelInferResponse", grpc.Trailer(&trailer))
	checkCode(t, err, codes.Unavailable, "max_queue")
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the refusal took %s; want it at once", took)
	}
	if got := trailer.Get("retry-after"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("got retry-after %q; want 1", got)
	}

	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(sctx)
	}()
	time.Sleep(100 * time.Millisecond) // let the shutdown begin (it must wait, whatever the timing)
	b.unblock()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("a call in flight at shutdown: %v; want it answered", err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// stallCall opens ModelInfer call id on r and sends the first 10 bytes of
// a message that says it has 100: the rest never comes.
func stallCall(t *testing.T, r *rawGRPC, id uint32) {
	t.Helper()
	r.open(t, id, []byte{0, 0, 0, 0, 100, 0x0a, 0x03, 'c', 't', 'r'})
}

// TestGRPCStalledCalls: calls whose message never arrives whole hold at
// most --max-connections + 64 places, refusing the calls beyond them at
// once (as HTTP bounds its requests), end at --read-timeout plus
// --request-timeout, and do not hold up a shutdown, which ends those that
// have waited a second.
func TestGRPCStalledCalls(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 2 // the client's and the stalling one
	cfg.ReadTimeout = 300 * time.Millisecond
	cfg.RequestTimeout = 500 * time.Millisecond
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	addr := s.listeners[len(s.listeners)-1].Addr().String()
	ctx := context.Background()
	if _, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil); err != nil {
		t.Fatal(err)
	}

	r := dialRawGRPC(t, addr)
	for i := range 100 {
		stallCall(t, r, uint32(2*i+1))
	}
	r.waitEnded(t, 34) // refused: the other 66 hold every place
	_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
	checkCode(t, err, codes.ResourceExhausted, "66 gRPC calls in flight")
	// The stalled calls end at their deadline, 800 ms after they began,
	// and give their places back.
	testenv.CheckFor(t, 5*time.Second, func() error {
		_, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil)
		return err
	})
	testenv.CheckFor(t, 5*time.Second, func() error {
		const series = `infergate_grpc_requests_total{method="ModelInfer",code="DeadlineExceeded"}`
		if n, err := metricValue(s.metricsText(t), series); err != nil || n != 66 {
			return fmt.Errorf("%s: got %v, %v; want 66, every call that held a place", series, n, err)
		}
		return nil
	})

	// A shutdown does not wait the deadline of calls that stalled long
	// before it.
	cfg.RequestTimeout = time.Minute
	s = startDemo(t, cfg, false)
	s.serveGRPC(t)
	addr = s.listeners[len(s.listeners)-1].Addr().String()
	r = dialRawGRPC(t, addr)
	for i := range 10 {
		stallCall(t, r, uint32(2*i+1))
	}
	time.Sleep(100 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with stalled calls: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Shutdown with stalled calls took %s; want about a second", took)
	}
}

// TestGRPCSlowRequestLog: --slow-requests logs gRPC calls too, with
// their client, request id and gRPC's code.
func TestGRPCSlowRequestLog(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.SlowRequests = time.Nanosecond
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "abc-123")
	if _, err := c.infer(ctx, ctrGRPCRequest(features(1, 1, 64), 1, ""), nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		log := s.log.String()
		if !strings.Contains(log, `slow request: model "ctr" version 1`) || !strings.Contains(log, "answered OK") ||
			!strings.Contains(log, `X-Request-Id "abc-123"`) || !strings.Contains(log, "127.0.0.1 (gRPC)") {
			return fmt.Errorf("no slow gRPC call in the log:\n%s", log)
		}
		return nil
	})
}

// TestGRPCOverTLS: with TLS, gRPC speaks it with the same certificate
// as HTTPS; a plain-text client gets no answer.
func TestGRPCOverTLS(t *testing.T) {
	cfg, ca := tlsConfig(t, false)
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	plain := s.serveGRPC(t)
	addr := s.listeners[len(s.listeners)-1].Addr().String()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &grpcClient{conn: conn}
	req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.infer(ctx, req, nil)
	if err != nil || fmt.Sprint(bytesF32(resp.Outputs[0].Raw)) != "[10]" {
		t.Fatalf("over TLS: got %+v, %v; want y = 10", resp, err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	if _, err := plain.infer(pctx, req, nil); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a plain-text client of the TLS port: got %v; want no answer", err)
	}
}

// TestGRPCOverMutualTLS: with client certificates asked for
// (--tls-client-ca), a gRPC client that presents one signed by the CA is
// served, and one without is refused.
func TestGRPCOverMutualTLS(t *testing.T) {
	cfg, ca := tlsConfig(t, true)
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	s.serveGRPC(t)
	addr := s.listeners[len(s.listeners)-1].Addr().String()
	ccf, ckf := ca.IssueFor(t, "client", time.Time{}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "client")
	req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	call := func(certs []tls.Certificate) error {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = (&grpcClient{conn: conn}).infer(ctx, req, nil)
		return err
	}
	if err := call([]tls.Certificate{testcerts.KeyPair(t, ccf, ckf)}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := call(nil); err == nil {
		t.Fatal("without a client certificate: served; want refused")
	}
}

// TestGRPCExperimentArms: a gRPC call gets the arm an HTTP request of the
// same unit gets (x-unit-id metadata, else the unit_id parameter), says
// it in x-experiment-arm, and its prediction is logged and remembered
// for the feedback that names only its id.
func TestGRPCExperimentArms(t *testing.T) {
	s, _ := restartNode(t, t.TempDir(), 1<<20)
	s.repo.SetExperiment("ctr", abExperiment(1, time.Now(), 1, 1))
	c := s.serveGRPC(t)
	arms := make(map[string]int)
	var ids []string
	for i := range 40 {
		unit := fmt.Sprint("user-", i)
		r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(uint64(i), 1, 64), 1), gateway.HeaderUnitID, unit)
		want := r.header[gateway.HeaderExperimentArm]
		for j, how := range []string{"metadata", "parameter"} {
			var req proto.Message
			ctx := context.Background()
			if how == "metadata" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-unit-id", unit)
				req = ctrGRPCRequest(features(uint64(i), 1, 64), 1, "")
			} else {
				req = pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}}},
					[][]byte{f32Bytes(features(uint64(i), 1, 64))}, map[string]pbtest.Param{"unit_id": {String: &unit}}, nil)
			}
			var header metadata.MD
			resp, err := c.infer(ctx, req, &header)
			if err != nil {
				t.Fatal(err)
			}
			if got := header.Get("x-experiment-arm"); len(got) != 1 || got[0] != want {
				t.Fatalf("unit %s by %s: got arm %v; want %q, as over HTTP", unit, how, got, want)
			}
			if want == "treatment" && resp.Version != "2" || want == "control" && resp.Version != "1" {
				t.Fatalf("unit %s: arm %s answered by version %s", unit, want, resp.Version)
			}
			arms[want]++
			if j == 0 {
				ids = append(ids, resp.ID)
			}
		}
	}
	if arms["control"] == 0 || arms["treatment"] == 0 {
		t.Fatalf("arms %v; want both", arms)
	}
	if got := postRewards(t, s, ids); got != len(ids) {
		t.Fatalf("%d of the %d gRPC predictions' outcomes attributed to their arm; want all", got, len(ids))
	}
}

// TestGRPCResponseCache: the response cache answers a gRPC call that
// repeats an earlier one (HTTP's or gRPC's) without running the model,
// says so in x-cache, counts the hit, and leaves a cache_bypass call to
// the model.
func TestGRPCResponseCache(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	c := s.serveGRPC(t)
	ctx := context.Background()
	execs := func(want float64) {
		t.Helper()
		checkMetric(t, s.metricsText(t), "infergate_inference_exec_count_total{"+fakeSeries+"}", want)
	}
	call := func(params map[string]pbtest.Param) (metadata.MD, *pbtest.Response) {
		t.Helper()
		req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, params, nil)
		var header metadata.MD
		resp, err := c.infer(ctx, req, &header)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(bytesF32(resp.Outputs[0].Raw)) != "[10]" {
			t.Fatalf("got %+v; want y = 10", resp)
		}
		return header, resp
	}
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest)) // HTTP's, stored
	s.srv.WaitCache()
	execs(1)
	if h, _ := call(nil); len(h.Get("x-cache")) != 1 || h.Get("x-cache")[0] != "hit" {
		t.Fatalf("a repeated call: metadata %v; want x-cache: hit", h)
	}
	execs(1)
	bypass := true
	if h, _ := call(map[string]pbtest.Param{"cache_bypass": {Bool: &bypass}}); len(h.Get("x-cache")) != 0 {
		t.Fatalf("a cache_bypass call: metadata %v; want no x-cache", h)
	}
	execs(2)
	checkMetric(t, s.metricsText(t), "infergate_cache_hits_total{"+fakeSeries+"}", 1)
}

// TestGRPCShadow: a model's shadow gets a copy of its gRPC calls, as of
// its HTTP requests, and the answers stay production's.
func TestGRPCShadow(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	c := s.serveGRPC(t)
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code != 201 {
		t.Fatalf("upload: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/versions/2/infer", ctrRequest(features(1, 1, 64), 1)); r.code != 200 {
			return fmt.Errorf("version 2 not ready: %s", r)
		}
		return nil
	})
	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version":2,"percent":100}`)); r.code != 200 {
		t.Fatalf("start the shadow: %s", r)
	}
	const compared = `infergate_shadow_requests_total{model="ctr",version="2",result="compared"}`
	for i := range 10 {
		var header metadata.MD
		if _, err := c.infer(context.Background(), ctrGRPCRequest(features(uint64(i), 1, 64), 1, ""), &header); err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-model-version"); len(got) != 1 || got[0] != "1" {
			t.Fatalf("with a shadow: answered by version %v; want 1", got)
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if got, _ := metricValue(s.metricsText(t), compared); got != 10 {
			return fmt.Errorf("%s = %v; want 10", compared, got)
		}
		return nil
	})
}
