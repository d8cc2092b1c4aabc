package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trainer/onnx"
	"github.com/valyala/fasthttp"
)

// binPath is the infergate binary built once for this package's tests.
var binPath string

func TestMain(m *testing.M) {
	if os.Getenv(interruptChildEnv) != "" {
		interruptChild()
		return
	}
	dir, err := os.MkdirTemp("", "infergate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "infergate")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building infergate: %s\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is an infergate process started by a test.
type server struct {
	cmd    *exec.Cmd
	addr   string
	scheme string           // http, or https with --tls-cert
	hc     *fasthttp.Client // nil: client
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingLine = regexp.MustCompile(`serving on (https?)://(\S+)`)

// startServer runs `infergate serve` on a random loopback port with args
// and waits until it reports ready. The process is killed at cleanup.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerWith(t, nil, args...)
}

// startServerWith is startServer with the client the test calls it
// through (nil: client).
func startServerWith(t *testing.T, hc *fasthttp.Client, args ...string) *server {
	t.Helper()
	args = append([]string{"serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t)}, args...)
	cmd := exec.Command(binPath, args...)
	pr, pw := io.Pipe()
	s := &server{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1), hc: hc}
	cmd.Stderr = io.MultiWriter(pw, s.stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("server log:\n%s", s.stderr.String())
		}
	})
	addrCh := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1:]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-addrCh:
		s.scheme, s.addr = m[0], m[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start; log:\n%s", s.stderr.String())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, _ := s.get(t, "/v2/health/ready")
		if code == 200 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 60s; log:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var client = &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}

func (s *server) do(t *testing.T, method, path string, body []byte, hdr map[string]string) (int, []byte, *fasthttp.ResponseHeader) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(s.scheme + "://" + s.addr + path)
	req.Header.SetMethod(method)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBody(body)
	hc := s.hc
	if hc == nil {
		hc = client
	}
	if err := hc.Do(req, resp); err != nil {
		return 0, []byte(err.Error()), nil
	}
	var h fasthttp.ResponseHeader
	resp.Header.CopyTo(&h)
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), &h
}

func (s *server) get(t *testing.T, path string) (int, []byte, *fasthttp.ResponseHeader) {
	return s.do(t, "GET", path, nil, nil)
}

func (s *server) post(t *testing.T, path string, body []byte) (int, []byte, *fasthttp.ResponseHeader) {
	return s.do(t, "POST", path, body, nil)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("server exited with %v after SIGTERM; log:\n%s", err, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit within 30s of SIGTERM")
	}
}

func demoRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command(binPath, "demo-models", "--out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("demo-models: %s\n%s", err, out)
	}
	return dir
}

func inferBody(rows, cols int, seed uint64) ([]byte, []float32) {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(r.Float64()*2 - 1)
	}
	body, _ := json.Marshal(map[string]any{
		"id": "req-" + strconv.FormatUint(seed, 10),
		"inputs": []map[string]any{{
			"name": "features", "datatype": "FP32", "shape": []int{rows, cols}, "data": x,
		}},
	})
	return body, x
}

type inferResponse struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float64 `json:"data"`
	} `json:"outputs"`
}

func TestServeDemoModels(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t))

	for _, m := range []struct {
		name string
		mlp  *onnx.MLP
		cols int
	}{{"ctr", onnx.DemoCTR(), 64}, {"ranker", onnx.DemoRanker(), 256}} {
		body, x := inferBody(5, m.cols, 7)
		code, out, h := s.post(t, "/v2/models/"+m.name+"/infer", body)
		if code != 200 {
			t.Fatalf("%s infer: status %d: %s", m.name, code, out)
		}
		if v := string(h.Peek("X-Model-Version")); v != "1" {
			t.Fatalf("%s: X-Model-Version %q; want 1", m.name, v)
		}
		var resp inferResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("%s: response is not JSON: %s: %s", m.name, err, out)
		}
		if resp.ModelName != m.name || resp.ModelVersion != "1" || resp.ID != "req-7" || len(resp.Outputs) != 1 {
			t.Fatalf("%s: unexpected response %s", m.name, out)
		}
		o := resp.Outputs[0]
		if o.Name != "score" || o.Datatype != "FP32" || fmt.Sprint(o.Shape) != "[5 1]" || len(o.Data) != 5 {
			t.Fatalf("%s: unexpected output %+v", m.name, o)
		}
		want := m.mlp.Forward(x, 5)
		for i := range want {
			if d := math.Abs(o.Data[i] - float64(want[i])); d > 1e-5 {
				t.Fatalf("%s row %d: got %g; want %g (pure-Go forward pass)", m.name, i, o.Data[i], want[i])
			}
		}
	}

	f := func(method, path string, body string, wantCode int, wantFragment string) {
		t.Helper()
		code, out, _ := s.do(t, method, path, []byte(body), nil)
		if code != wantCode || !strings.Contains(string(out), wantFragment) {
			t.Fatalf("%s %s: got %d %s; want %d containing %q", method, path, code, out, wantCode, wantFragment)
		}
	}
	f("GET", "/v2/health/live", "", 200, "")
	f("GET", "/v2/models/ctr/ready", "", 200, "")
	f("GET", "/v2/models/ctr/versions/1/ready", "", 200, "")
	f("GET", "/v2/models/ctr/versions/2/ready", "", 404, "no ready version 2")
	f("GET", "/v2/models/ctr", "", 200, `"inputs":[{"name":"features","datatype":"FP32","shape":[-1,64]}]`)
	f("GET", "/v2", "", 200, `"extensions"`)
	f("GET", "/v2/models/ranker/versions/1/config", "", 200, `"instance_group":[{"count":1,"kind":"KIND_CPU"}]`)
	f("POST", "/v2/models/nope/infer", "{}", 404, `{"error":"model \"nope\" is not served here`)
	f("POST", "/v2/models/ctr/infer", "{", 400, `{"error":`)
	f("GET", "/v2/models/ctr/infer", "", 405, "use POST")
	f("POST", "/v2/repository/index", "", 200, `{"name":"ctr","version":"1","state":"READY"}`)
	f("GET", "/metrics", "", 200, `infergate_inference_request_success_total{model="ctr",version="1"} 1`)
	f("GET", "/metrics", "", 200, "# TYPE infergate_inference_request_success_total counter")
	f("GET", "/metrics", "", 200, "# TYPE infergate_inference_request_duration_seconds histogram")
	f("GET", "/metrics", "", 200, `infergate_model_load_duration_seconds_bucket{le="`)
	f("GET", "/", "", 200, "<table>")

	s.stop(t)
}

func TestMissingLibraryIsOneClearLine(t *testing.T) {
	out, err := exec.Command(binPath, "serve", "--ort-lib", "/nonexistent/libonnxruntime.so", "--models", t.TempDir(), "--data", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatal("serve with a missing library succeeded")
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "make setup") || !strings.Contains(lines[0], "/nonexistent/libonnxruntime.so") {
		t.Fatalf("want one line naming the path and `make setup`; got:\n%s", out)
	}
}

func TestDryRun(t *testing.T) {
	out, err := exec.Command(binPath, "serve", "--dry-run", "--ort-lib", testenv.ORTLib(t), "--models", demoRepo(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration is valid") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = exec.Command(binPath, "serve", "--dry-run", "--ort-lib", testenv.ORTLib(t), "--device", "tpu").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `use "cpu" or "cuda:N"`) {
		t.Fatalf("dry run with a bad device: %v\n%s", err, out)
	}
}

// TestHotSwapUnderLoad copies a new version into the repository and loads
// it while 2,000 requests/s flow: no request may fail, and once the load
// call returns every new request must be answered by the new version.
func TestHotSwapUnderLoad(t *testing.T) {
	repo := demoRepo(t)
	s := startServer(t, "--models", repo, "--load", "ctr")

	const rate = 2000
	const duration = 3 * time.Second
	body, _ := inferBody(1, 64, 1)
	var (
		ok, failed       atomic.Int64
		swapped          atomic.Bool
		swapDone         atomic.Int64 // unix nanos when the load call returned
		oldAfterSwap     atomic.Int64
		newBeforeSwap    atomic.Int64
		firstFailure     atomic.Value
		wg               sync.WaitGroup
		ticks            = make(chan time.Time, rate)
		sawOld, sawNewer atomic.Bool
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + s.addr + "/v2/models/ctr/infer")
			req.Header.SetMethod("POST")
			req.SetBody(body)
			for range ticks {
				sent := time.Now().UnixNano()
				err := client.Do(req, resp)
				if err != nil || resp.StatusCode() != 200 {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("err %v status %d body %s", err, resp.StatusCode(), resp.Body()))
					continue
				}
				ok.Add(1)
				switch v := string(resp.Header.Peek("X-Model-Version")); v {
				case "1":
					sawOld.Store(true)
					if d := swapDone.Load(); d != 0 && sent > d {
						oldAfterSwap.Add(1)
					}
				case "2":
					sawNewer.Store(true)
					if !swapped.Load() {
						newBeforeSwap.Add(1)
					}
				default:
					failed.Add(1)
				}
			}
		}()
	}
	go func() {
		time.Sleep(duration / 3)
		// A new version, different weights, copied in as a reader would.
		data := onnx.NewMLP(99, []int{64, 256, 256, 1}, onnx.Relu, onnx.Sigmoid).Model().Marshal()
		if err := writeFileAtomic(filepath.Join(repo, "ctr", "2", "model.onnx"), data); err != nil {
			t.Error(err)
			return
		}
		swapped.Store(true)
		code, out, _ := s.post(t, "/v2/repository/models/ctr/load", nil)
		if code != 200 {
			t.Errorf("load: %d %s", code, out)
		}
		swapDone.Store(time.Now().UnixNano())
	}()
	start := time.Now()
	interval := time.Second / rate
	for i := 0; ; i++ {
		next := start.Add(time.Duration(i) * interval)
		if next.Sub(start) >= duration {
			break
		}
		time.Sleep(time.Until(next))
		ticks <- next
	}
	close(ticks)
	wg.Wait()
	elapsed := time.Since(start)

	total := ok.Load() + failed.Load()
	t.Logf("sent %d requests in %s (%.0f/s), %d failed", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during the swap; first: %v", failed.Load(), firstFailure.Load())
	}
	// A loaded machine (CI shares its cores) may fall short of 2,000/s;
	// half of it still keeps requests flowing across the swap.
	if rate := float64(total) / elapsed.Seconds(); rate < 1000 {
		t.Fatalf("achieved %.0f requests/s; the test needs 1,000/s or more to mean anything", rate)
	}
	if swapDone.Load() == 0 || !sawOld.Load() || !sawNewer.Load() {
		t.Fatalf("swap did not happen under load: done=%v sawOld=%v sawNew=%v", swapDone.Load() != 0, sawOld.Load(), sawNewer.Load())
	}
	if n := oldAfterSwap.Load(); n != 0 {
		t.Fatalf("%d requests sent after the load call returned were answered by version 1", n)
	}
	if n := newBeforeSwap.Load(); n != 0 {
		t.Fatalf("%d requests answered by version 2 before it was copied in", n)
	}
}

// TestShutdownDrains sends SIGTERM while slow requests are in flight;
// every one must be answered.
func TestShutdownDrains(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ranker", "--instances", "1")
	// 4,096 rows of ranker in binary tensors: a tenth of a second or more
	// each on the one instance, so eight queue up behind each other.
	const rows = 4096
	header := fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[%d,256],"parameters":{"binary_data_size":%d}}]}`, rows, rows*256*4)
	body := append([]byte(header), make([]byte, rows*256*4)...)
	hdr := map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}
	var wg sync.WaitGroup
	codes := make([]int, 8)
	errs := make([]string, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []byte
			codes[i], out, _ = s.do(t, "POST", "/v2/models/ranker/infer", body, hdr)
			errs[i] = string(out)
		}()
	}
	// SIGTERM once all eight are inside the server (in flight, or
	// answered already on a slow, busy machine) and some still run. A
	// request answered but not yet released counts in both for a moment:
	// two polls in a row must agree.
	inFlight := regexp.MustCompile(`infergate_inference_requests_in_flight\{model="ranker",version="1"\} (\d+)`)
	answered := regexp.MustCompile(`infergate_inference_request_success_total\{model="ranker",version="1"\} (\d+)`)
	deadline := time.Now().Add(10 * time.Second)
	agreed := 0
	for {
		_, m, _ := s.get(t, "/metrics")
		f, a := inFlight.FindSubmatch(m), answered.FindSubmatch(m)
		agreed++
		if f == nil || a == nil {
			agreed = 0
		} else {
			nf, _ := strconv.Atoi(string(f[1]))
			na, _ := strconv.Atoi(string(a[1]))
			switch {
			case nf+na != 8:
				agreed = 0
			case nf == 0:
				t.Fatalf("all eight requests were answered before SIGTERM could catch one in flight; make them slower")
			}
		}
		if agreed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the eight requests never all reached the server; metrics:\n%s", m)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d in flight at SIGTERM: status %d (%s); want 200", i, c, errs[i])
		}
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if log := s.stderr.String(); !strings.Contains(log, "HTTP server stopped") || !strings.Contains(log, "models unloaded") {
		t.Fatalf("shutdown log lacks its steps:\n%s", log)
	}
}

// A model repository as Triton keeps it, each model with its
// config.pbtxt, serves as written: the settings it gives, Triton's
// metric names with --triton-metrics, and a model whose file infergate
// cannot honor is refused with the file and line in the index, while the
// others serve.
func TestServeTritonRepository(t *testing.T) {
	dir := demoRepo(t)
	write := func(model, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, model, "config.pbtxt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ctr", `name: "ctr"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "features", data_type: TYPE_FP32, dims: [ 64 ] } ]
output [ { name: "score", data_type: TYPE_FP32, dims: [ 1 ] } ]
instance_group [ { count: 2, kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 8, 16 ] }
`)
	write("ranker", `name: "ranker"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "features", data_type: TYPE_FP32, format: FORMAT_NCHW, dims: [ 256 ] } ]
`)
	s := startServer(t, "--models", dir, "--triton-metrics")

	body, _ := inferBody(5, 64, 1)
	if code, out, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("ctr infer: %d %s", code, out)
	}
	f := func(path, wantFragment string) {
		t.Helper()
		code, out, _ := s.do(t, "GET", path, nil, nil)
		if code != 200 || !strings.Contains(string(out), wantFragment) {
			t.Fatalf("GET %s: got %d %s; want 200 containing %q", path, code, out, wantFragment)
		}
	}
	f("/v2/models/ctr/config", `"max_batch_size":16`)
	f("/v2/models/ctr/config", `"instance_group":[{"count":2,"kind":"KIND_CPU"}]`)
	f("/v2/models/ctr/config", `"preferred_batch_sizes":[8,16]`)
	f("/v2/models/ctr/config", `"input":[{"name":"features","data_type":"TYPE_FP32","dims":[64]}]`)
	f("/metrics", `nv_inference_request_success{model="ctr",version="1"} 1`)
	f("/metrics", `nv_inference_count{model="ctr",version="1"} 5`)
	// Typed as Triton types them: a collector that converts by type (to
	// OpenTelemetry's monotonic sums) reads them as it reads Triton's.
	f("/metrics", "# TYPE nv_inference_request_success counter\nnv_inference_request_success{")
	f("/metrics", "# TYPE nv_inference_pending_request_count gauge\nnv_inference_pending_request_count{")
	f("/metrics", "# TYPE nv_cache_miss_duration_per_model counter\n")
	code, out, _ := s.do(t, "POST", "/v2/repository/index", nil, nil)
	if code != 200 || !strings.Contains(string(out), `config.pbtxt line 4: input[0].format is \"FORMAT_NCHW\"`) {
		t.Fatalf("index: %d %s; want ranker refused, naming config.pbtxt line 4", code, out)
	}
	if code, out, _ := s.do(t, "GET", "/v2/models/ranker/ready", nil, nil); code == 200 {
		t.Fatalf("ranker ready despite its config: %s", out)
	}
	s.stop(t)
}
