package oip

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
)

// testServer is a small OIP v2 server in the test's process, over an
// in-memory listener. Its model "sum" adds up each row of "features"
// (FP32 [-1,4]) into "score" (FP32 [-1,1]); model "loading" is not ready;
// model "slow" sleeps before answering.
type testServer struct {
	ln   *fasthttputil.InmemoryListener
	srv  *fasthttp.Server
	done chan error
	// paths records the raw request URIs, for the tests of escaping.
	mu    sync.Mutex
	paths []string
}

// quietLogger drops fasthttp's logs of connections the tests cut.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

var sumMetadata = ModelMetadata{
	Name: "sum", Versions: []string{"1"}, Platform: "test",
	Inputs:  []TensorMetadata{{Name: "features", Datatype: FP32, Shape: []int64{-1, 4}}},
	Outputs: []TensorMetadata{{Name: "score", Datatype: FP32, Shape: []int64{-1, 1}}},
}

func startTestServer(t testing.TB) *testServer {
	t.Helper()
	s := &testServer{ln: fasthttputil.NewInmemoryListener(), done: make(chan error, 1)}
	s.srv = &fasthttp.Server{Handler: s.handle, Logger: quietLogger{}}
	go func() { s.done <- s.srv.Serve(s.ln) }()
	t.Cleanup(func() {
		if err := s.srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %s", err)
		}
		if err := <-s.done; err != nil {
			t.Errorf("serve: %s", err)
		}
	})
	return s
}

// client returns a client of s with the given base URL, dialling the
// in-memory listener.
func (s *testServer) client(baseURL string) *Client {
	c := NewClient(baseURL)
	c.hc.Dial = func(string) (net.Conn, error) { return s.ln.Dial() }
	return c
}

func (s *testServer) handle(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	s.paths = append(s.paths, string(ctx.Request.Header.RequestURI()))
	s.mu.Unlock()
	fail := func(code int, msg string) {
		ctx.SetStatusCode(code)
		ctx.SetContentType("application/json")
		ctx.SetBody(AppendError(nil, msg))
	}
	path := string(ctx.Path())
	path = strings.TrimPrefix(path, "/base")
	switch {
	case path == "/v2":
		ctx.SetBody(AppendServerMetadata(nil, &ServerMetadata{Name: "test", Version: "1", Extensions: []string{"binary_tensor_data"}}))
		return
	case path == "/v2/health/live":
		return
	case path == "/v2/health/ready":
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	case path == "/v2/models/text":
		ctx.SetStatusCode(fasthttp.StatusBadGateway)
		ctx.SetBodyString("<html>upstream is down</html>")
		return
	}
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		fail(fasthttp.StatusNotFound, "no such endpoint "+path)
		return
	}
	model, rest, _ := strings.Cut(rest, "/")
	version := ""
	if v, ok := strings.CutPrefix(rest, "versions/"); ok {
		version, rest, _ = strings.Cut(v, "/")
	}
	switch {
	case model == "loading" && rest == "ready":
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	case model == "slow":
		time.Sleep(300 * time.Millisecond)
	case model != "sum":
		fail(fasthttp.StatusNotFound, "unknown model "+strconv.Quote(model))
	case rest == "":
		ctx.SetBody(AppendModelMetadata(nil, &sumMetadata))
	case rest == "ready":
	case rest == "infer" && ctx.IsPost():
		s.infer(ctx, version, fail)
	default:
		fail(fasthttp.StatusNotFound, "no such endpoint "+path)
	}
}

func (s *testServer) infer(ctx *fasthttp.RequestCtx, version string, fail func(int, string)) {
	headerLen := -1
	if v := ctx.Request.Header.Peek(HeaderInferenceHeaderContentLength); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			fail(fasthttp.StatusBadRequest, "bad header")
			return
		}
		headerLen = n
	}
	var req InferRequest
	if err := DecodeRequest(&req, ctx.PostBody(), headerLen); err != nil {
		fail(fasthttp.StatusBadRequest, err.Error())
		return
	}
	if err := CheckInputs(req.Inputs, sumMetadata.Inputs, 8); err != nil {
		fail(fasthttp.StatusBadRequest, err.Error())
		return
	}
	if err := CheckOutputs(req.Outputs, sumMetadata.Outputs); err != nil {
		fail(fasthttp.StatusBadRequest, err.Error())
		return
	}
	in := &req.Inputs[0]
	rows := in.Shape[0]
	score := Tensor{Name: "score", Datatype: FP32, Shape: []int64{rows, 1}}
	for r := range rows {
		var sum float32
		for c := range int64(4) {
			off := 4 * (r*4 + c)
			sum += math.Float32frombits(binary.LittleEndian.Uint32(in.Data[off:]))
		}
		score.Data = binary.LittleEndian.AppendUint32(score.Data, math.Float32bits(sum))
	}
	bin := req.BinaryDataOutput
	for _, o := range req.Outputs {
		if o.HasBinary {
			bin = o.Binary
		}
	}
	if version == "" {
		version = "1"
	}
	resp := InferResponse{ModelName: "sum", ModelVersion: version, ID: req.ID,
		Outputs: []OutputTensor{{Tensor: score, Binary: bin}}}
	body, headerLen := AppendResponse(nil, &resp)
	if bin {
		ctx.Response.Header.Set(HeaderInferenceHeaderContentLength, strconv.Itoa(headerLen))
	}
	ctx.Response.Header.Set(HeaderModelVersion, version)
	ctx.SetBody(body)
}

func TestClientInfer(t *testing.T) {
	s := startTestServer(t)
	c := s.client("http://gateway:8080")
	req := &InferRequest{ID: "q1", Inputs: []Tensor{
		tensor("features", FP32, shape(2, 4), 1.0, 2.0, 3.0, 4.0, 0.5, 0.25, 0.125, math.Inf(1)),
	}}
	wantScore := tensor("score", FP32, shape(2, 1), 10.0, math.Inf(1))
	var resp InferResponse
	for _, tc := range []struct {
		binaryIn, binaryOut bool
		version             string
	}{{false, false, ""}, {true, false, "1"}, {false, true, "7"}, {true, true, ""}} {
		req.BinaryDataOutput = tc.binaryOut
		mv, err := c.Infer("sum", tc.version, req, &resp, tc.binaryIn)
		if err != nil {
			t.Fatalf("Infer(%+v): %s", tc, err)
		}
		wantVersion := tc.version
		if wantVersion == "" {
			wantVersion = "1"
		}
		if mv != wantVersion || resp.ModelVersion != wantVersion || resp.ModelName != "sum" || resp.ID != "q1" {
			t.Fatalf("Infer(%+v): version header %q, response %+v", tc, mv, resp)
		}
		if len(resp.Outputs) != 1 || resp.Outputs[0].Binary != tc.binaryOut {
			t.Fatalf("Infer(%+v): outputs %+v", tc, resp.Outputs)
		}
		if d := diffTensors(&resp.Outputs[0].Tensor, &wantScore, false); d != "" {
			t.Fatalf("Infer(%+v): %s", tc, d)
		}
	}

	// An answer other than 2xx carries the server's message.
	bad := &InferRequest{Inputs: []Tensor{tensor("features", FP32, shape(1, 3), 1.0, 2.0, 3.0)}}
	_, err := c.Infer("sum", "", bad, &resp, false)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 ||
		se.Message != `input "features": shape [1,3] does not match the model's [-1,4]: dimension 1 must be 4` {
		t.Fatalf("got %v; want a 400 StatusError about the shape", err)
	}
	if want := `server answered 400 Bad Request: input "features"`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %q; want it to start with %q", err, want)
	}
	_, err = c.Infer("nope", "", req, &resp, true)
	if !errors.As(err, &se) || se.Code != 404 || se.Message != `unknown model "nope"` {
		t.Fatalf("got %v; want a 404 StatusError", err)
	}
}

func TestClientEndpoints(t *testing.T) {
	s := startTestServer(t)
	c := s.client("http://gateway/base/")

	if ok, err := c.ServerLive(); !ok || err != nil {
		t.Fatalf("ServerLive() = %v, %v; want true, nil", ok, err)
	}
	if ok, err := c.ServerReady(); ok || err != nil {
		t.Fatalf("ServerReady() = %v, %v; want false, nil", ok, err)
	}
	if ok, err := c.ModelReady("sum", "1"); !ok || err != nil {
		t.Fatalf("ModelReady(sum) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := c.ModelReady("loading", ""); ok || err != nil {
		t.Fatalf("ModelReady(loading) = %v, %v; want false, nil", ok, err)
	}
	var se *StatusError
	if ok, err := c.ModelReady("nope", ""); ok || !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("ModelReady(nope) = %v, %v; want false and a 404 StatusError", ok, err)
	}
	md, err := c.ModelMetadata("sum", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "sum" || len(md.Inputs) != 1 || md.Inputs[0].Shape[1] != 4 {
		t.Fatalf("ModelMetadata = %+v", md)
	}
	sm, err := c.ServerMetadata()
	if err != nil || sm.Name != "test" {
		t.Fatalf("ServerMetadata() = %+v, %v", sm, err)
	}
	// A body that is not JSON still makes a readable error.
	if _, err := c.ModelMetadata("text", ""); !errors.As(err, &se) || se.Code != 502 || se.Message != "<html>upstream is down</html>" {
		t.Fatalf("ModelMetadata(text) = %v; want a 502 StatusError with the body", err)
	}

	// Names are escaped as one path segment each, under the base path.
	_, _ = c.ModelReady("a b/c", "v 1")
	s.mu.Lock()
	last := s.paths[len(s.paths)-1]
	s.mu.Unlock()
	if want := "/base/v2/models/a%20b%2Fc/versions/v%201/ready"; last != want {
		t.Fatalf("got request URI %q; want %q", last, want)
	}
}

func TestClientTimeoutAndBaseURL(t *testing.T) {
	s := startTestServer(t)
	c := s.client("http://gateway")
	c.SetTimeout(50 * time.Millisecond)
	c.SetMaxConnsPerHost(2)
	start := time.Now()
	_, err := c.ModelReady("slow", "")
	if !errors.Is(err, fasthttp.ErrTimeout) {
		t.Fatalf("got %v; want fasthttp.ErrTimeout", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("timeout took %s", d)
	}

	for base, want := range map[string]string{
		"gateway:8080":      "must start with http:// or https://",
		"ftp://gateway":     "must start with http:// or https://",
		"http://":           "has no host",
		"http://a b":        "cannot parse the base URL",
		"http://%zz.host:1": "cannot parse the base URL",
	} {
		c := NewClient(base)
		if _, err := c.ServerLive(); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("NewClient(%q).ServerLive() = %v; want an error containing %q", base, err, want)
		}
		if _, err := c.Infer("m", "", &InferRequest{}, &InferResponse{}, false); err == nil {
			t.Fatalf("NewClient(%q).Infer() succeeded", base)
		}
	}
}

// A client of an https base URL asks SetTLS's function for the
// configuration of every new connection: refused by a server whose CA
// it does not trust, the same client gets through once the
// configuration trusts that CA.
func TestClientTLSOfEachConnection(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := b.Issue(t, "server", time.Time{}, "127.0.0.1")
	s := &testServer{done: make(chan error, 1)}
	s.srv = &fasthttp.Server{Handler: s.handle, Logger: quietLogger{}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, sc, sk)}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	t.Cleanup(func() {
		s.srv.Shutdown()
		<-s.done
	})

	var (
		roots atomic.Pointer[x509.CertPool]
		mu    sync.Mutex
		names []string // the server names SetTLS's function was called with
	)
	roots.Store(a.Pool())
	c := NewClient("https://" + ln.Addr().String())
	c.SetTLS(func(serverName string) *tls.Config {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, serverName)
		return &tls.Config{RootCAs: roots.Load()} // ServerName left to the dial
	})
	c.SetTimeout(5 * time.Second)
	if _, err := c.ServerLive(); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Fatalf("a server of CA B, trusting CA A: %v; want a x509.UnknownAuthorityError", err)
	}
	roots.Store(b.Pool())
	if live, err := c.ServerLive(); err != nil || !live {
		t.Fatalf("the same client, trusting CA B: live %v, %v", live, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) < 2 || slices.ContainsFunc(names, func(n string) bool { return n != "127.0.0.1" }) {
		t.Fatalf("SetTLS's function called with %q; want 127.0.0.1 at each connection, two or more", names)
	}

	// On a plain base URL SetTLS leaves the dial alone.
	plain := NewClient("http://127.0.0.1:1")
	plain.SetTLS(func(string) *tls.Config { panic("BUG: asked for TLS on a plain URL") })
	if plain.hc.DialTimeout != nil {
		t.Fatalf("SetTLS set a TLS dial on a plain base URL")
	}
}

// The TLS handshake of an https client runs under the call's timeout: a
// server that accepts the connection and never answers the handshake
// fails the call once the timeout passes, with SetTLS and without (the
// system's CAs).
func TestClientTLSHandshakeUnderTheTimeout(t *testing.T) {
	f := func(name string, setTLS bool) {
		t.Helper()
		c := NewClient("https://" + testenv.SilentAddr(t))
		if setTLS {
			c.SetTLS(func(string) *tls.Config { return &tls.Config{} })
		}
		c.SetTimeout(200 * time.Millisecond)
		done := make(chan error, 1)
		go func() {
			_, err := c.ServerLive()
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s: %v; want a timeout", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the call still waits for the handshake 5s after its timeout of 200ms", name)
		}
	}
	f("SetTLS", true)
	f("the system's CAs", false)
}

// A client reaches a server listening on an IPv6 address, in plain HTTP
// and over TLS: fasthttp's default dial resolves IPv4 addresses only.
func TestClientDialsIPv6(t *testing.T) {
	listen := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback here: %s", err)
		}
		return ln
	}
	serve := func(t *testing.T, ln net.Listener) {
		s := &testServer{done: make(chan error, 1)}
		s.srv = &fasthttp.Server{Handler: s.handle, Logger: quietLogger{}}
		go func() { s.done <- s.srv.Serve(ln) }()
		t.Cleanup(func() {
			s.srv.Shutdown()
			ln.Close() // Shutdown misses a listener Serve has not taken yet
			<-s.done
		})
	}
	t.Run("http", func(t *testing.T) {
		ln := listen(t)
		serve(t, ln)
		c := NewClient("http://" + ln.Addr().String())
		c.SetTimeout(5 * time.Second)
		if live, err := c.ServerLive(); err != nil || !live {
			t.Fatalf("ServerLive() of %s = %v, %v; want true, nil", ln.Addr(), live, err)
		}
	})
	t.Run("https", func(t *testing.T) {
		dir := t.TempDir()
		ca := testcerts.NewCA(t, dir, "a")
		sc, sk := ca.Issue(t, "server", time.Time{}, "::1")
		ln := listen(t)
		serve(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, sc, sk)}}))
		c := NewClient("https://" + ln.Addr().String())
		c.SetTLS(func(string) *tls.Config { return &tls.Config{RootCAs: ca.Pool()} })
		c.SetTimeout(5 * time.Second)
		if live, err := c.ServerLive(); err != nil || !live {
			t.Fatalf("ServerLive() of %s = %v, %v; want true, nil", ln.Addr(), live, err)
		}
	})
}
