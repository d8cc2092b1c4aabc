package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// fakeGateway is an OIP server of the model ctr in this process, with the
// gateway's metrics, answering every failEvery-th request with 503 (0:
// never) and, with badBody, a score of the wrong shape. With capacity
// above 0 it serves like a gateway with capacity instances and no queue:
// each inference takes work, and a request that finds capacity running
// gets 503 with Retry-After (none with noRetryAfter).
type fakeGateway struct {
	failEvery    int64
	badBody      bool
	capacity     int64
	work         time.Duration
	noRetryAfter bool
	// tritonLike has no /metrics and answers the statistics extension as
	// if every two requests ran as one execution of two rows, each
	// waiting 100 µs in the queue and computing for 10 + 50 + 10 µs.
	tritonLike bool
	running    atomic.Int64
	probes     atomic.Int64
	reqs       atomic.Int64
	rows       atomic.Int64
	loads      atomic.Int64
	// caching is set while the configuration last loaded enables the
	// response cache: requests then count as cache hits, not inferences.
	caching atomic.Bool
	hits    atomic.Int64
	// mu protects loadBodies: the body of every load call, in order.
	mu         sync.Mutex
	loadBodies []string
	ln         net.Listener
	srv        *fasthttp.Server
}

func startFakeGateway(t *testing.T, g *fakeGateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.ln = ln
	g.srv = &fasthttp.Server{Handler: g.handle, Name: "fake"}
	go g.srv.Serve(ln)
	t.Cleanup(func() { g.srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func (g *fakeGateway) handle(ctx *fasthttp.RequestCtx) {
	switch path := string(ctx.Path()); path {
	case "/v2":
		ctx.SetBodyString(`{"name":"fake","version":"0.1","extensions":[]}`)
	case "/v2/models/ctr":
		ctx.SetBody(oip.AppendModelMetadata(nil, ctrMetadata))
	case "/v2/models/ctr/ready":
	case "/v2/health/ready":
		g.probes.Add(1)
	case "/v2/models/ctr/config":
		ctx.SetBodyString(`{"name":"ctr","version":"1","sha256":"","instances":1,"intra_op_threads":1,"max_queue":256}`)
	case "/v2/repository/models/ctr/load":
		g.loads.Add(1)
		g.mu.Lock()
		g.loadBodies = append(g.loadBodies, string(ctx.PostBody()))
		g.mu.Unlock()
		g.caching.Store(configLetter(string(ctx.PostBody())) == 'c')
		if strings.Contains(string(ctx.PostBody()), `max_batch_size\":64`) {
			ctx.SetStatusCode(400)
			ctx.SetBodyString(`{"error":"parameters.config: max_batch_size 64 is over this gateway's limit"}`)
			return
		}
		ctx.SetBodyString(`{}`)
	case "/v2/models/ctr/stats":
		if !g.tritonLike {
			ctx.SetStatusCode(404)
			return
		}
		n := uint64(g.reqs.Load())
		d := func(count, ns uint64) oip.DurationStat { return oip.DurationStat{Count: count, NS: ns} }
		execs := n / 2
		st := oip.ModelStatistics{ModelStats: []oip.ModelStat{{
			Name: "ctr", Version: "1", InferenceCount: uint64(g.rows.Load()), ExecutionCount: execs,
			InferenceStats: oip.InferenceStats{Success: d(n, n*200e3), Queue: d(n, n*100e3), ComputeInfer: d(n, n*50e3)},
			BatchStats:     []oip.BatchStats{{BatchSize: 2, ComputeInput: d(execs, execs*10e3), ComputeInfer: d(execs, execs*50e3), ComputeOutput: d(execs, execs*10e3)}},
		}}}
		b, _ := json.Marshal(st)
		ctx.SetBody(b)
	case "/metrics":
		if g.tritonLike {
			ctx.SetStatusCode(404)
			return
		}
		n := g.rows.Load()
		fmt.Fprintf(ctx, "# TYPE x counter\ninfergate_inference_count_total{model=\"ctr\",version=\"1\"} %d\ninfergate_inference_exec_count_total{model=\"ctr\",version=\"1\"} %d\n", n, n)
		fmt.Fprintf(ctx, "infergate_cache_hits_total{model=\"ctr\",version=\"1\"} %d\n", g.hits.Load())
	case "/v2/models/ctr/infer":
		if g.capacity > 0 {
			n := g.running.Add(1)
			defer g.running.Add(-1)
			if n > g.capacity {
				ctx.SetStatusCode(503)
				if !g.noRetryAfter {
					ctx.Response.Header.Set("Retry-After", "1")
				}
				ctx.SetBodyString(`{"error":"overloaded"}`)
				return
			}
			time.Sleep(g.work)
		}
		k := g.reqs.Add(1)
		if g.failEvery > 0 && k%g.failEvery == 0 {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"error":"overloaded"}`)
			return
		}
		headerLen := -1
		if v := ctx.Request.Header.Peek(oip.HeaderInferenceHeaderContentLength); v != nil {
			fmt.Sscan(string(v), &headerLen)
		}
		var req oip.InferRequest
		if err := oip.DecodeRequest(&req, ctx.PostBody(), headerLen); err != nil {
			ctx.SetStatusCode(400)
			ctx.SetBody(oip.AppendError(nil, err.Error()))
			return
		}
		rows := req.Inputs[0].Shape[0]
		if g.caching.Load() {
			g.hits.Add(1)
		} else {
			g.rows.Add(rows)
		}
		if g.badBody {
			rows++
		}
		resp := &oip.InferResponse{ModelName: "ctr", ModelVersion: "1", Outputs: []oip.OutputTensor{{
			Tensor: oip.Tensor{Name: "score", Datatype: oip.FP32, Shape: []int64{rows, 1}, Data: make([]byte, 4*rows)},
			Binary: req.BinaryDataOutput,
		}}}
		body, hl := oip.AppendResponse(nil, resp)
		if req.BinaryDataOutput {
			ctx.Response.Header.Set(oip.HeaderInferenceHeaderContentLength, fmt.Sprint(hl))
		}
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set(oip.HeaderModelVersion, "1")
		ctx.SetBody(body)
	default:
		ctx.SetStatusCode(404)
	}
}

// loaded returns a letter per configuration loaded so far, in order (see
// configLetter).
func (g *fakeGateway) loaded() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b []byte
	for _, body := range g.loadBodies {
		b = append(b, configLetter(body))
	}
	return string(b)
}

// configLetter names a load request's configuration: u for batching off
// (max_batch_size 1), b for batching on (any other max_batch_size), c for
// the response cache, r for anything else (the suite restoring the
// configuration it found).
func configLetter(body string) byte {
	switch {
	case strings.Contains(body, `max_batch_size\":1}`):
		return 'u'
	case strings.Contains(body, `max_batch_size`):
		return 'b'
	case strings.Contains(body, `response_cache`):
		return 'c'
	}
	return 'r'
}

func shortOptions() Options {
	o := DefaultOptions()
	o.Warmup = 50 * time.Millisecond
	o.Duration = 200 * time.Millisecond
	o.Pool = 4
	return o
}

// measureFake measures the fake gateway g in closed loop at 2
// connections with shortOptions, after set, when not nil, adjusts the
// configuration.
func measureFake(t *testing.T, g *fakeGateway, set func(*Config)) *Report {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Options = shortOptions()
	cfg.Target = startFakeGateway(t, g)
	cfg.Concurrency = []int{2}
	if set != nil {
		set(&cfg)
	}
	rep, err := Measure(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// overloadSuite returns the configuration of a short suite of ctr on the
// gateway at url, at 4 connections, whose overload pair runs on ctr with
// rows rows per request, without the ONNX Runtime library (its ort-floor
// is a flagged run).
func overloadSuite(url string, rows int) SuiteConfig {
	cfg := DefaultSuiteConfig()
	cfg.Options = shortOptions()
	cfg.Warmup, cfg.Duration = 20*time.Millisecond, 100*time.Millisecond
	cfg.Overload = 3
	cfg.Target = url
	cfg.Models = []string{"ctr"}
	cfg.OverloadModel = "ctr"
	cfg.OverloadRows = rows
	cfg.Concurrency = 4
	cfg.BatchedConfig = `{"max_batch_size":32}`
	cfg.MaxBatch = 1
	cfg.ORTLib = "/nonexistent/libonnxruntime.so"
	return cfg
}

func TestMeasureAgainstFakeGateway(t *testing.T) {
	g := &fakeGateway{}
	url := startFakeGateway(t, g)
	for _, enc := range []string{EncodingJSON, EncodingBinary} {
		cfg := DefaultConfig()
		cfg.Options = shortOptions()
		cfg.Encoding = enc
		cfg.Rows = 2
		cfg.Target = url
		cfg.Concurrency = []int{1, 4}
		cfg.Rates = []float64{500}
		cfg.Floors = []string{FloorHTTP}
		rep, err := Measure(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range rep.Runs {
			names = append(names, r.Name)
			if r.Requests == 0 || r.Errors != 0 || r.Flagged != "" {
				t.Fatalf("%s %s: requests %d errors %d (%v) flagged %q", enc, r.Name, r.Requests, r.Errors, r.ErrorKinds, r.Flagged)
			}
			if !(r.Latency.P50 <= r.Latency.P99 && r.Latency.P99 <= r.Latency.Max) || r.Latency.P50 <= 0 {
				t.Fatalf("%s: latency %+v", r.Name, r.Latency)
			}
			if r.RowsPerS != 2*r.ThroughputRPS && (r.RowsPerS-2*r.ThroughputRPS) > 0.2 {
				t.Fatalf("%s: rows/s %g for %g req/s of 2 rows", r.Name, r.RowsPerS, r.ThroughputRPS)
			}
			if r.Kind == KindGateway && (r.Server == nil || r.Server.AvgBatch != 1) {
				t.Fatalf("%s: server %+v; want avg batch 1 from the fake's metrics", r.Name, r.Server)
			}
			if r.Kind == KindHTTPFloor && r.Server != nil {
				t.Fatalf("%s: the http-floor has server figures %+v", r.Name, r.Server)
			}
			if r.Mode == ModeOpen && (r.SentRPS < 450 || r.ThroughputRPS < 400 || r.Rate != 500) {
				t.Fatalf("%s: rate %g sent %g achieved %g; want about 500", r.Name, r.Rate, r.SentRPS, r.ThroughputRPS)
			}
			if len(r.Timeline) == 0 || len(r.Histogram) == 0 {
				t.Fatalf("%s: no timeline or histogram", r.Name)
			}
		}
		want := "gateway/ctr@c1 gateway/ctr@c4 gateway/ctr@r500 http-floor/ctr@c1 http-floor/ctr@c4 http-floor/ctr@r500"
		if got := strings.Join(names, " "); got != want {
			t.Fatalf("runs %s; want %s", got, want)
		}
		if rep.Env.ServerVersion != "fake 0.1" || !rep.Env.SharedCores || rep.Env.Instances != 1 {
			t.Fatalf("env %+v", rep.Env)
		}
		var table strings.Builder
		WriteTable(&table, rep)
		if !strings.Contains(table.String(), "http-floor/ctr@r500") {
			t.Fatalf("table:\n%s", table.String())
		}
	}
}

// TestServerFiguresFromStatistics checks that a server without infergate's
// /metrics, such as Triton, still gets its batch, queue and compute
// figures, from the statistics extension.
func TestServerFiguresFromStatistics(t *testing.T) {
	r := measureFake(t, &fakeGateway{tritonLike: true}, nil).Runs[0]
	st := r.Server
	if st == nil || st.From != ServerStatsFromStatistics || st.AvgBatch < 1.9 || st.AvgBatch > 2.1 || st.QueueUSAvg != 100 || st.ComputeUSAvg != 70 {
		t.Fatalf("server figures %+v; want from the statistics: about 2 rows per execution, queue 100µs, compute 70µs", st)
	}
	if len(r.Batches) != 1 || r.Batches[0].Size != 2 || r.Batches[0].Count < 1 {
		t.Fatalf("batches %+v; want executions of 2 rows only", r.Batches)
	}
	if !r.Batching {
		t.Fatalf("run %s: batching not seen in 2 rows per execution", r.Name)
	}
}

func TestMeasureFlagsErrors(t *testing.T) {
	f := func(g *fakeGateway, wantKind string) {
		t.Helper()
		r := measureFake(t, g, nil).Runs[0]
		if r.Flagged == "" || r.ErrorKinds[wantKind] == 0 || !strings.Contains(r.Flagged, wantKind) {
			t.Fatalf("run %+v; want flagged with %s errors", r, wantKind)
		}
		if r.ThroughputRPS*r.DurationS > float64(r.Requests-r.Errors)*1.01 {
			t.Fatalf("throughput %g over %gs counts errors: %d requests, %d errors", r.ThroughputRPS, r.DurationS, r.Requests, r.Errors)
		}
	}
	f(&fakeGateway{failEvery: 20}, "http_503") // 5%
	// The first answer is checked before any step: a gateway that answers
	// wrong from the start is an error, not a run.
	g := &fakeGateway{badBody: true}
	url := startFakeGateway(t, g)
	cfg := DefaultConfig()
	cfg.Options = shortOptions()
	cfg.Target = url
	cfg.Concurrency = []int{1}
	if _, err := Measure(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "want 1 rows") {
		t.Fatalf("bad bodies: %v", err)
	}
}

func TestSuiteRecordsRefusedConfig(t *testing.T) {
	g := &fakeGateway{}
	url := startFakeGateway(t, g)
	cfg := DefaultSuiteConfig()
	cfg.Options = shortOptions()
	cfg.Target = url
	cfg.Models = []string{"ctr"}
	cfg.MaxBatch = 1
	cfg.ORTLib = "/nonexistent/libonnxruntime.so"
	rep, err := RunSuite(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Run{}
	for _, r := range rep.Runs {
		byName[r.Name] = r
	}
	for _, name := range []string{"http-floor/ctr@c64", "http-floor/ctr@c1", "gateway/ctr@c64", "gateway/ctr@c1", "gateway-cached/ctr@c64"} {
		if r, ok := byName[name]; !ok || r.Requests == 0 || r.Flagged != "" {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	for _, name := range []string{"gateway-batched/ctr@c64", "gateway-batched/ctr@c1"} {
		r := byName[name]
		if r.Requests != 0 || !strings.Contains(r.Flagged, "max_batch_size 64 is over this gateway's limit") || !r.Batching {
			t.Fatalf("%s: %+v; want flagged with the gateway's refusal", name, r)
		}
	}
	// Without the ONNX Runtime library the ort-floor is a flagged run too.
	if r := byName["ort-floor/ctr"]; !strings.Contains(r.Flagged, "not found") {
		t.Fatalf("ort-floor: %+v", r)
	}
	if c := byName["gateway-cached/ctr@c64"]; !c.Cache || c.Batching {
		t.Fatalf("cached run: %+v", c)
	}
	if g.loads.Load() != 4 {
		t.Fatalf("%d loads; want 4 (unbatched, batched, cached, unbatched again)", g.loads.Load())
	}
}

// TestSuiteRounds checks that a suite with --repeat runs in rounds: every
// step once per round, the gateway's configurations loaded again in each,
// and one summary per step with its repetitions numbered by round; the
// overload pair comes after the rounds, its steps repeated in a row.
func TestSuiteRounds(t *testing.T) {
	g := &fakeGateway{capacity: 4, work: time.Millisecond}
	cfg := overloadSuite(startFakeGateway(t, g), 2)
	cfg.Repeat = 3
	rep, err := RunSuite(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	loaded := g.loaded()
	// Unbatched, batched, cached per round; batched for the overload
	// pair; then the configuration the suite found.
	if want := "ubcubcubcbr"; loaded != want {
		t.Fatalf("configurations loaded %q; want %q", loaded, want)
	}
	var names []string
	for _, r := range rep.Runs {
		names = append(names, r.Name)
	}
	want := "ort-floor/ctr http-floor/ctr@c4 http-floor/ctr@c1 gateway/ctr@c4 gateway/ctr@c1 " +
		"gateway-batched/ctr@c4 gateway-batched/ctr@c1 gateway-cached/ctr@c4 gateway-sustainable/ctr@c4 gateway-overload/ctr@3x"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("runs %s; want %s", got, want)
	}
	for _, r := range rep.Runs {
		var reps []int
		for _, p := range r.Repetitions {
			reps = append(reps, p.Repetition)
			if p.Name != r.Name {
				t.Fatalf("%s: repetition %d is named %s", r.Name, p.Repetition, p.Name)
			}
		}
		if r.Repeats != 3 || fmt.Sprint(reps) != "[1 2 3]" {
			t.Fatalf("%s: %d repeats, repetitions %v; want 3, [1 2 3]", r.Name, r.Repeats, reps)
		}
		if r.Name != "ort-floor/ctr" && r.Shed == nil && (r.Flagged != "" || r.Requests == 0) {
			t.Fatalf("%s: flagged %q, %d requests", r.Name, r.Flagged, r.Requests)
		}
	}
	if rep.Env.Rounds != 3 {
		t.Fatalf("env.rounds %d; want 3", rep.Env.Rounds)
	}
	var table strings.Builder
	WriteTable(&table, rep)
	if !strings.Contains(table.String(), ", 3 rounds\n") {
		t.Fatalf("the table does not say the suite ran in 3 rounds:\n%s", table.String())
	}
	if ovl := rep.Runs[9]; ovl.Shed == nil || ovl.SustainableRun != "gateway-sustainable/ctr@c4" {
		t.Fatalf("overload run: shed %+v, sustainable run %q", ovl.Shed, ovl.SustainableRun)
	}
}
