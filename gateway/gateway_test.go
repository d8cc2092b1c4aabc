package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// The tests of this package run a real gateway.Server over an in-memory
// listener (or loopback TCP where the bytes on the wire matter), in front
// of a registry.Repository whose versions are either the demo models on
// ONNX Runtime or a fakeBackend the test steers.
//
// There is no TestMain: testenv.ORTLib needs a testing.TB, and engine.Init
// is idempotent for one library, so every test that needs the runtime
// calls initORT.

// internalErrorMsg is what a client sees of a bug in the server.
const internalErrorMsg = "internal error; the server log has the details"

// initORT loads ONNX Runtime for the test binary.
func initORT(tb testing.TB) {
	tb.Helper()
	if err := engine.Init(testenv.ORTLib(tb)); err != nil {
		tb.Fatalf("cannot initialize ONNX Runtime: %s", err)
	}
}

// The demo models, marshaled once per test binary.
var (
	ctrONNX    = sync.OnceValue(func() []byte { return onnx.DemoCTR().Model().Marshal() })
	rankerONNX = sync.OnceValue(func() []byte { return onnx.DemoRanker().Model().Marshal() })
	ctrMLP     = sync.OnceValue(onnx.DemoCTR)
)

// loadEngine is the registry.LoadFunc of `infergate serve`: ONNX Runtime,
// with the configuration's instances, threads, device, output bound and
// model_warmup.
func loadEngine(data []byte, cfg registry.ModelConfig) (registry.Backend, error) {
	opts := engine.Options{
		Instances:      cfg.Instances,
		ShareSession:   cfg.ShareSession,
		IntraOpThreads: cfg.IntraOpThreads,
		InterOpThreads: cfg.InterOpThreads,
		Device:         cfg.Device,
		MaxOutputBytes: cfg.MaxOutputBytes,
	}
	if len(cfg.ModelWarmup) > 0 {
		opts.Warmup = func(in, out []oip.TensorMetadata) ([]engine.WarmupRun, error) {
			ws, err := cfg.Warmups(in, out)
			var runs []engine.WarmupRun
			for _, w := range ws {
				runs = append(runs, engine.WarmupRun{Name: w.Name, Inputs: w.Inputs, Count: w.Count})
			}
			return runs, err
		}
	}
	return engine.Load(data, opts)
}

// syncLog collects what the server and the registry log; the test prints
// it when it fails. Logging to t.Logf directly would race with goroutines
// that log after the test ends.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format, args...)
	l.b.WriteByte('\n')
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serverOptions says what startServer starts.
type serverOptions struct {
	// cfg is the gateway's config; its Logf is replaced.
	cfg gateway.Config
	// defaults are the node defaults of the repository.
	defaults registry.ModelConfig
	// load loads a version; nil means loadEngine.
	load registry.LoadFunc
	// files maps "<model>/<version>" to the bytes of its model.onnx.
	files map[string][]byte
	// set receives the server's metrics (a traffic log's, say); nil
	// means a new one.
	set *metrics.Set
	// triton turns the repository's Triton series on (--triton-metrics).
	triton bool
}

// testServer is a gateway serving a repository over an in-memory listener,
// with a client that talks to it.
type testServer struct {
	srv  *gateway.Server
	repo *registry.Repository
	set  *metrics.Set
	hc   *fasthttp.HostClient
	ln   *fasthttputil.InmemoryListener
	log  *syncLog

	// serving counts the Serve calls; served gets their results;
	// listeners are what they serve.
	serving   sync.WaitGroup
	served    chan error
	listeners []net.Listener
	// tcpAddr is the loopback address listenTCP serves on, once it has.
	tcpAddr string
}

// startServer starts a server as o says; it is shut down at cleanup.
func startServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	dir := t.TempDir()
	for key, data := range o.files {
		p := filepath.Join(dir, filepath.FromSlash(key), "model.onnx")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.load == nil {
		initORT(t)
		o.load = loadEngine
	}
	logs := &syncLog{}
	set := o.set
	if set == nil {
		set = metrics.NewSet()
	}
	repo, err := registry.New(registry.Config{Dir: dir, Defaults: o.defaults, Load: o.load, Metrics: set, Logf: logs.printf, TritonMetrics: o.triton})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	if err := repo.LoadAll(); err != nil {
		t.Fatal(err)
	}
	if o.cfg.Logging == nil {
		o.cfg.Logf = logs.printf
	} // else the test reads the log it gave
	srv, err := gateway.New(o.cfg, repo, set)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	ln := fasthttputil.NewInmemoryListener()
	s := &testServer{srv: srv, repo: repo, set: set, ln: ln, log: logs, served: make(chan error, 2)}
	s.serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %s", err)
		}
		// Shutdown closes the listeners that Serve has registered; a Serve
		// goroutine that had not started yet registers its listener after
		// that and would wait on it for ever. Closed, it returns at once.
		for _, ln := range s.listeners {
			ln.Close()
		}
		s.serving.Wait()
		close(s.served)
		for err := range s.served {
			if err != nil {
				t.Errorf("Serve: %s", err)
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	s.hc = &fasthttp.HostClient{
		Addr:                      "gateway.test",
		Dial:                      func(string) (net.Conn, error) { return ln.Dial() },
		DisablePathNormalizing:    true,
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               30 * time.Second,
		WriteTimeout:              30 * time.Second,
	}
	return s
}

// serve serves ln too until the server shuts down; at most one more
// listener than the in-memory one.
func (s *testServer) serve(ln net.Listener) {
	s.listeners = append(s.listeners, ln)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		s.served <- s.srv.Serve(ln)
	}()
}

// listenTCP serves on a loopback port too and returns its address; called
// again, it returns the same one.
func (s *testServer) listenTCP(t testing.TB) string {
	t.Helper()
	if s.tcpAddr != "" {
		return s.tcpAddr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
	s.tcpAddr = ln.Addr().String()
	return s.tcpAddr
}

// startDemo starts a server over ONNX Runtime with the demo model ctr
// (version 1), and ranker too when withRanker is set.
func startDemo(t testing.TB, cfg gateway.Config, withRanker bool) *testServer {
	t.Helper()
	files := map[string][]byte{"ctr/1": ctrONNX()}
	if withRanker {
		files["ranker/1"] = rankerONNX()
	}
	return startServer(t, serverOptions{cfg: cfg, files: files})
}

// response is what the client got back.
type response struct {
	code   int
	header map[string]string // canonical names
	body   []byte
	took   time.Duration
}

func (r response) String() string {
	return fmt.Sprintf("%d %q", r.code, truncate(r.body, 300))
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// do sends one request; headers are name, value pairs. uri goes on the
// wire as it is.
func (s *testServer) do(t testing.TB, method, uri string, body []byte, headers ...string) response {
	t.Helper()
	r, err := s.send(method, uri, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is do for goroutines other than the test's.
func (s *testServer) send(method, uri string, body []byte, headers ...string) (response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost(s.hc.Addr)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != nil {
		req.SetBody(body)
	}
	start := time.Now()
	if err := s.hc.Do(req, resp); err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, uri, err)
	}
	r := response{code: resp.StatusCode(), header: map[string]string{}, body: bytes.Clone(resp.Body()), took: time.Since(start)}
	for k, v := range resp.Header.All() {
		r.header[string(k)] = string(v)
	}
	return r, nil
}

// post sends body to POST uri as JSON.
func (s *testServer) post(t testing.TB, uri string, body []byte, headers ...string) response {
	t.Helper()
	return s.do(t, fasthttp.MethodPost, uri, body, append([]string{"Content-Type", "application/json"}, headers...)...)
}

// checkError checks that r has status code and the JSON error body
// {"error": "..."} whose message contains fragment.
func checkError(t testing.TB, r response, code int, fragment string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status: got %d; want %d (body %s)", r.code, code, truncate(r.body, 500))
	}
	msg, err := errorMessage(r.body)
	if err != nil {
		t.Fatalf("status %d: %s", r.code, err)
	}
	if ct := r.header["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type of an error: got %q; want %q", ct, "application/json")
	}
	if !strings.Contains(msg, fragment) {
		t.Fatalf("error message: got %q; want it to contain %q", msg, fragment)
	}
}

// errorMessage returns the message of an error body, which must be a
// JSON object with exactly one member, "error", a non-empty string.
func errorMessage(body []byte) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("error body %q is not a JSON object: %s", truncate(body, 300), err)
	}
	raw, ok := m["error"]
	if !ok || len(m) != 1 {
		return "", fmt.Errorf(`error body %q: want exactly one member, "error"`, truncate(body, 300))
	}
	var msg string
	if err := json.Unmarshal(raw, &msg); err != nil || msg == "" {
		return "", fmt.Errorf(`error body %q: "error" must be a non-empty string`, truncate(body, 300))
	}
	return msg, nil
}

// features returns rows×in deterministic features in [-1, 1).
func features(seed uint64, rows, in int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = r.Float32()*2 - 1
	}
	return x
}

// f32Bytes encodes x as little-endian float32s.
func f32Bytes(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// bytesF32 decodes little-endian float32s.
func bytesF32(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// jsonFloats writes x as a flat JSON array.
func jsonFloats(x []float32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	b.WriteByte(']')
	return b.String()
}

// jsonRows writes x as a JSON array of rows of in values each.
func jsonRows(x []float32, in int) string {
	var b strings.Builder
	b.WriteByte('[')
	for r := 0; r*in < len(x); r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jsonFloats(x[r*in : (r+1)*in]))
	}
	b.WriteByte(']')
	return b.String()
}

// ctrRequest is a JSON infer request of ctr with rows rows of x.
func ctrRequest(x []float32, rows int) []byte {
	return fmt.Appendf(nil, `{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,64],"data":%s}]}`, rows, jsonFloats(x))
}

// checkScores compares scores with what the Go forward pass of ctr gives
// for x, within 1e-5.
func checkScores(t testing.TB, got []float32, x []float32, rows int) {
	t.Helper()
	want := ctrMLP().Forward(x, rows)
	if len(got) != len(want) {
		t.Fatalf("scores: got %d; want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5) {
			t.Fatalf("score %d: got %v; want %v (within 1e-5)", i, got[i], want[i])
		}
	}
}

// decodeInfer decodes an infer response as a client does: binary when the
// Inference-Header-Content-Length header is there.
func decodeInfer(t testing.TB, r response) *oip.InferResponse {
	t.Helper()
	if r.code != fasthttp.StatusOK {
		t.Fatalf("infer: got %s; want 200", r)
	}
	headerLen := -1
	if h, ok := r.header["Inference-Header-Content-Length"]; ok {
		n, err := strconv.Atoi(h)
		if err != nil {
			t.Fatalf("Inference-Header-Content-Length %q: %s", h, err)
		}
		headerLen = n
	}
	var resp oip.InferResponse
	if err := oip.DecodeResponse(&resp, r.body, headerLen); err != nil {
		t.Fatalf("cannot decode the response %s: %s", r, err)
	}
	return &resp
}

// metricsText returns what GET /metrics answers.
func (s *testServer) metricsText(t testing.TB) string {
	t.Helper()
	r := s.do(t, fasthttp.MethodGet, "/metrics", nil)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("GET /metrics: got %s", r)
	}
	return string(r.body)
}

// metricValue returns the value of the series named exactly series (name
// and labels) in the Prometheus text, or an error when it is not there.
func metricValue(text, series string) (float64, error) {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no series %s in /metrics", series)
}

// checkMetric checks that series has value want.
func checkMetric(t testing.TB, text, series string, want float64) {
	t.Helper()
	got, err := metricValue(text, series)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s: got %v; want %v", series, got, want)
	}
}

// fakeBackend is a model "x" FP32 [-1,4] -> "y" FP32 [-1,1] (the sum of
// each row) that a test can make panic, fail or block.
type fakeBackend struct {
	mode atomic.Int32
	// release, closed by unblock, lets blocked Runs return.
	release chan struct{}
	once    sync.Once
	// running counts the Runs in progress.
	running atomic.Int64
}

const (
	fakeOK    = iota
	fakePanic // Run panics
	fakeFail  // Run returns an error that is no context error
	fakeBlock // Run waits for unblock or the context
)

func newFakeBackend() *fakeBackend { return &fakeBackend{release: make(chan struct{})} }

func (b *fakeBackend) unblock() { b.once.Do(func() { close(b.release) }) }

func (b *fakeBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 4}}}
}

func (b *fakeBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}

func (b *fakeBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	b.running.Add(1)
	defer b.running.Add(-1)
	switch b.mode.Load() {
	case fakePanic:
		panic("fake backend: boom")
	case fakeFail:
		return nil, errors.New("fake backend: the device fell off the bus")
	case fakeBlock:
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, fmt.Errorf("fake backend gave up waiting: %w", ctx.Err())
		}
	}
	x := bytesF32(in[0].Data)
	y := make([]float32, in[0].Shape[0])
	for r := range y {
		for _, v := range x[4*r : 4*r+4] {
			y[r] += v
		}
	}
	dst = append(dst[:0], oip.Tensor{Name: "y", Datatype: oip.FP32, Shape: []int64{int64(len(y)), 1}, Data: f32Bytes(y)})
	return dst, nil
}

func (b *fakeBackend) Close() error { return nil }

// startFake starts a server with model "fake" version 1 served by b.
func startFake(t testing.TB, b *fakeBackend, cfg gateway.Config, defaults registry.ModelConfig) *testServer {
	t.Helper()
	load := func([]byte, registry.ModelConfig) (registry.Backend, error) { return b, nil }
	s := startServer(t, serverOptions{cfg: cfg, defaults: defaults, load: load,
		files: map[string][]byte{"fake/1": []byte("fake")}})
	// Cleanups run last-in first-out: let blocked requests go before
	// Shutdown waits for them.
	t.Cleanup(b.unblock)
	return s
}

// fakeRequest is a JSON infer request of the fake model with one row.
var fakeRequest = []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`)

// checkFakeAnswer checks that r is the fake model's answer to fakeRequest.
func checkFakeAnswer(t testing.TB, r response) {
	t.Helper()
	resp := decodeInfer(t, r)
	if len(resp.Outputs) != 1 {
		t.Fatalf("outputs: got %d; want 1", len(resp.Outputs))
	}
	if got := bytesF32(resp.Outputs[0].Data); len(got) != 1 || got[0] != 10 {
		t.Fatalf("y: got %v; want [10]", got)
	}
}
