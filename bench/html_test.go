package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleReport is a realistic suite: the floors, two models served batched
// and unbatched in closed loop, a cache run, a binary-encoding run and an
// open-loop sweep that ends past saturation (flagged), with timelines,
// histograms and server batch sizes. It is deterministic.
func sampleReport() *Report {
	rng := rand.New(rand.NewPCG(7, 11))
	rep := &Report{Env: Env{
		StartedAt:      "2025-06-03T09:14:07Z",
		Host:           "bench-1",
		OS:             "linux",
		Arch:           "amd64",
		CPUModel:       "AMD EPYC 7B13 64-Core Processor",
		CPUs:           16,
		GOMAXPROCS:     16,
		GoVersion:      "go1.26.8",
		ORTVersion:     "1.22.0",
		Commit:         "feb4943",
		Target:         "http://127.0.0.1:8080",
		ServerVersion:  "infergate feb4943",
		SharedCores:    true,
		Command:        "infergate bench suite --target http://127.0.0.1:8080 --models ctr,ranker --duration 30s --json bench.json --html bench.html",
		IntraOpThreads: 1,
		Instances:      4,
	}}
	lat := func(p50, tail float64) Latency {
		return Latency{P50: p50, P90: p50 * 1.5, P99: p50 * tail, P999: p50 * tail * 2.1, Max: p50 * tail * 4.5, Mean: p50 * 1.15}
	}
	hist := func(l Latency, n int) []HistogramBin {
		sigma := math.Log(l.P99/l.P50) / 2.326
		var bins []HistogramBin
		for b := 8.0; b < 4e6; b *= 1.25 {
			bins = append(bins, HistogramBin{UpToUS: math.Round(b)})
		}
		for range n {
			v := math.Exp(math.Log(l.P50) + sigma*rng.NormFloat64())
			for i := range bins {
				if v <= bins[i].UpToUS || i == len(bins)-1 {
					bins[i].Count++
					break
				}
			}
		}
		// Keep the bins from the first to the last non-empty one.
		lo, hi := 0, len(bins)-1
		for lo < hi && bins[lo].Count == 0 {
			lo++
		}
		for hi > lo && bins[hi].Count == 0 {
			hi--
		}
		return bins[lo : hi+1]
	}
	timeline := func(rps, p50, p99 float64, drift float64, errFrom int) []TimelinePoint {
		var tl []TimelinePoint
		for i := range 30 {
			k := 1 + drift*float64(i)
			pt := TimelinePoint{
				TS:            float64(i + 1),
				ThroughputRPS: rps * (0.97 + 0.06*rng.Float64()),
				P50US:         p50 * k * (0.95 + 0.1*rng.Float64()),
				P99US:         p99 * k * (0.85 + 0.4*rng.Float64()),
			}
			if i == 0 {
				pt.ThroughputRPS *= 0.8 // warming up
			}
			if errFrom >= 0 && i >= errFrom {
				pt.Errors = int64(rps * 0.03 * (0.5 + rng.Float64()))
			}
			tl = append(tl, pt)
		}
		return tl
	}
	batches := func(avg float64, maxBatch int) []BatchBin {
		var bins []BatchBin
		for s := 1; s <= maxBatch; s *= 2 {
			d := math.Log2(float64(s)) - math.Log2(avg)
			bins = append(bins, BatchBin{Size: float64(s), Count: math.Round(40000 * math.Exp(-d*d/1.2))})
		}
		return bins
	}

	// http-floor: a bare server answering a canned response.
	for _, c := range []int{1, 4, 16, 64} {
		p50 := 38 * (1 + float64(c)/20)
		rps := float64(c) / (p50 * 1.1e-6)
		r := Run{
			Name: fmt.Sprintf("http-floor@c%d", c), Kind: KindHTTPFloor, Mode: ModeClosed,
			Concurrency: c, RowsPerRequest: 1, DurationS: 30, ThroughputRPS: rps, RowsPerS: rps,
			Latency: lat(p50, 3.2), ClientCPU: math.Min(0.4+float64(c)/12, 6.5),
		}
		r.Requests = int64(rps * r.DurationS)
		if c == 64 {
			r.Histogram = hist(r.Latency, 20000)
		}
		rep.Runs = append(rep.Runs, r)
	}

	// ort-floor: ONNX Runtime in-process, per batch size.
	type model struct {
		name            string
		fixedUS, rowUS  float64
		capB, capU, cap float64 // gateway capacity in rows/s: batched, unbatched, with cache
	}
	models := []model{
		{"ctr", 24, 0.55, 310e3, 95e3, 0},
		{"ranker", 70, 6.5, 118e3, 41e3, 260e3},
	}
	for _, m := range models {
		for b := 1; b <= 256; b *= 2 {
			call := m.fixedUS + m.rowUS*float64(b)
			calls := 4 * 1e6 / call // four instances
			r := Run{
				Name: fmt.Sprintf("ort-floor/%s@b%d", m.name, b), Kind: KindORTFloor, Model: m.name,
				Mode: ModeClosed, Concurrency: 4, RowsPerRequest: b, BatchSize: b, DurationS: 10,
				ThroughputRPS: calls, RowsPerS: calls * float64(b), Latency: lat(call, 1.6), ClientCPU: 4,
			}
			r.Requests = int64(calls * r.DurationS)
			rep.Runs = append(rep.Runs, r)
		}
	}

	// Gateway, closed loop: throughput by Little's law from a capacity curve.
	gw := func(m model, batching, cache bool, enc string, c int, capRows float64) Run {
		half := 6.0
		if batching {
			half = 24
		}
		rps := capRows * float64(c) / (float64(c) + half)
		p50 := float64(c) / rps * 1e6 * 0.92
		tail := 2.4 + 2.5*float64(c)/(float64(c)+half)
		kind := "unbatched"
		if batching {
			kind = "batched"
		}
		if cache {
			kind += "-cache"
		}
		if enc == "binary" {
			kind += "-binary"
		}
		avg := 1.0
		if batching {
			avg = math.Max(1, float64(c)/3.5)
		}
		r := Run{
			Name: fmt.Sprintf("gateway-%s/%s@c%d", kind, m.name, c), Kind: KindGateway, Model: m.name,
			Batching: batching, Cache: cache, Mode: ModeClosed, Concurrency: c, RowsPerRequest: 1,
			Encoding: enc, DurationS: 30, ThroughputRPS: rps, RowsPerS: rps, Latency: lat(p50, tail),
			ClientCPU: math.Min(0.3+rps/40e3, 7),
			Server: &ServerStats{
				AvgBatch: avg, QueueUSAvg: p50 * 0.35, ComputeUSAvg: m.fixedUS + m.rowUS*avg,
			},
		}
		r.Requests = int64(rps * r.DurationS)
		if cache {
			r.Server.CacheHits = float64(r.Requests) * 0.71
			r.Server.CacheMisses = float64(r.Requests) * 0.29
		}
		if c == 64 {
			r.Timeline = timeline(rps, r.Latency.P50, r.Latency.P99, 0, -1)
			r.Histogram = hist(r.Latency, 20000)
			if batching {
				r.Batches = batches(avg, 64)
			}
		}
		return r
	}
	for _, m := range models {
		for _, batching := range []bool{true, false} {
			capRows := m.capU
			if batching {
				capRows = m.capB
			}
			for _, c := range []int{1, 4, 16, 64, 256} {
				rep.Runs = append(rep.Runs, gw(m, batching, false, "", c, capRows))
			}
		}
		if m.cap > 0 {
			rep.Runs = append(rep.Runs, gw(m, true, true, "", 64, m.cap))
		}
	}
	bin := gw(models[0], true, false, "binary", 64, models[0].capB*1.2)
	bin.Config = `{"max_batch_size":64,"batch_window_us":200}`
	bin.Repeats = 3
	bin.Spread = &Spread{
		ThroughputRPS: MinMax{bin.ThroughputRPS * 0.96, bin.ThroughputRPS * 1.03},
		RowsPerS:      MinMax{bin.RowsPerS * 0.96, bin.RowsPerS * 1.03},
		P50US:         MinMax{bin.Latency.P50 * 0.97, bin.Latency.P50 * 1.05},
		P99US:         MinMax{bin.Latency.P99 * 0.9, bin.Latency.P99 * 1.2},
		P999US:        MinMax{bin.Latency.P999 * 0.8, bin.Latency.P999 * 1.4},
	}
	rep.Runs = append(rep.Runs, bin)

	// Gateway, open loop: a Poisson rate sweep on ranker, the last step
	// past saturation.
	capacity := 52e3
	for _, rate := range []float64{5e3, 15e3, 30e3, 40e3, 46e3, 55e3} {
		u := math.Min(rate/capacity, 0.995)
		achieved := math.Min(rate, capacity*0.985)
		p50 := 180 / (1 - u*0.9)
		tail := 3 + 6*u*u
		r := Run{
			Name: fmt.Sprintf("gateway-batched/ranker@%.0frps", rate), Kind: KindGateway, Model: "ranker",
			Batching: true, Mode: ModeOpen, Concurrency: 512, Rate: rate, Poisson: true, RowsPerRequest: 4,
			DurationS: 30, ThroughputRPS: achieved, RowsPerS: achieved * 4, ClientCPU: 0.3 + achieved/45e3,
			Server: &ServerStats{AvgBatch: 2 + 30*u, QueueUSAvg: p50 * 0.4, ComputeUSAvg: 70 + 6.5*4*(2+30*u)},
		}
		drift, errFrom := 0.0, -1
		if rate > capacity {
			// Overloaded: the queue grows for the whole step and requests
			// start timing out.
			p50, tail, drift, errFrom = 21e3, 9, 0.12, 12
			r.Errors = int64(rate * r.DurationS * 0.032)
			r.ErrorKinds = map[string]int64{"timeout": r.Errors * 9 / 10, "http 503": r.Errors - r.Errors*9/10}
			r.Flagged = "errors 3.2% > 1%; achieved 94% of the offered rate"
			r.Server.Rejected = float64(r.Errors - r.Errors*9/10)
		}
		r.Latency = lat(p50, tail)
		r.Requests = int64(rate * r.DurationS)
		r.SentRPS = math.Min(rate, 53.9e3)
		if rate > capacity {
			r.Late = 48_210
		}
		r.Timeline = timeline(achieved, p50, p50*tail, drift, errFrom)
		r.Histogram = hist(r.Latency, 20000)
		if rate >= 40e3 {
			r.Batches = batches(r.Server.AvgBatch, 64)
		}
		rep.Runs = append(rep.Runs, r)
	}
	rep.Sweeps = []Sweep{
		{Kind: KindGateway, Model: "ranker", Mode: ModeOpen, MaxP99US: 10e3, Best: "gateway-batched/ranker@46000rps",
			BestLoad: 46e3, BestThroughputRPS: 46e3, StoppedAt: "gateway-batched/ranker@55000rps"},
		{Kind: KindGateway, Model: "ctr", Mode: ModeClosed, MaxP99US: 50, StoppedAt: "gateway-batched/ctr@c1"},
	}
	return rep
}

// checkedPage is a rendered page checked as XML.
type checkedPage struct {
	html string
	text string // the character data, unescaped
	svgs int    // <svg> elements
	tags map[string]int
}

// renderChecked renders r and checks that the page is well-formed XML,
// rooted at <html>, with finite numbers in every SVG coordinate.
func renderChecked(t *testing.T, r *Report) checkedPage {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatalf("WriteHTML: %s", err)
	}
	p := checkedPage{html: buf.String(), tags: make(map[string]int)}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	d.Strict = true
	var text strings.Builder
	var stack []string
	roots := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the page is not well-formed: %s", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				roots++
				if tok.Name.Local != "html" {
					t.Fatalf("root element <%s>; want <html>", tok.Name.Local)
				}
			}
			stack = append(stack, tok.Name.Local)
			p.tags[tok.Name.Local]++
			if tok.Name.Local == "svg" {
				p.svgs++
			}
			if slices.Contains(stack, "svg") {
				checkCoords(t, tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			text.Write(tok)
			text.WriteByte(' ')
		}
	}
	if roots != 1 || len(stack) != 0 {
		t.Fatalf("got %d root elements and %d unclosed; want 1 and 0", roots, len(stack))
	}
	p.text = text.String()
	return p
}

// checkCoords fails when a geometric attribute holds anything but finite
// numbers.
func checkCoords(t *testing.T, el xml.StartElement) {
	t.Helper()
	for _, a := range el.Attr {
		switch a.Name.Local {
		case "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "viewBox", "points", "transform":
		default:
			continue
		}
		v := strings.TrimSuffix(strings.TrimPrefix(a.Value, "rotate("), ")")
		fields := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
		if len(fields) == 0 {
			t.Errorf("<%s %s=%q>: empty", el.Name.Local, a.Name.Local, a.Value)
		}
		for _, f := range fields {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				t.Errorf("<%s %s=%q>: %q is not a finite number", el.Name.Local, a.Name.Local, a.Value, f)
			}
		}
	}
}

func TestWriteHTMLSample(t *testing.T) {
	r := sampleReport()
	p := renderChecked(t, r)
	if path := os.Getenv("INFERGATE_HTML_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(p.html), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var timelines, hists, batches, flagged int
	for _, run := range r.Runs {
		if !strings.Contains(p.text, run.Name) {
			t.Errorf("run %q does not appear on the page", run.Name)
		}
		if len(run.Timeline) > 0 {
			timelines++
		}
		if len(run.Histogram) > 0 {
			hists++
		}
		if len(run.Batches) > 0 {
			batches++
		}
		if run.Flagged != "" {
			flagged++
			if !strings.Contains(p.text, "⚑ "+run.Flagged) {
				t.Errorf("the reason %q of flagged run %q does not appear", run.Flagged, run.Name)
			}
		}
	}
	if timelines < 5 || hists < 5 || batches < 3 || flagged != 1 {
		t.Fatalf("the sample has %d timelines, %d histograms, %d batch distributions, %d flagged runs; want at least 5, 5, 3 and 1",
			timelines, hists, batches, flagged)
	}
	// Latency against throughput for ctr and ranker, one per run with a
	// timeline, a histogram or batch sizes, and the two ort-floor charts.
	if want := 2 + timelines + hists + batches + 2; p.svgs != want {
		t.Errorf("got %d <svg> charts; want %d", p.svgs, want)
	}
	if got := strings.Count(p.html, `<tr id="run-`); got != len(r.Runs) {
		t.Errorf("got %d rows in the table of runs; want %d", got, len(r.Runs))
	}
	for _, s := range []string{
		"AMD EPYC 7B13 64-Core Processor", "GOMAXPROCS", "go1.26.8", "1.22.0", "feb4943",
		"http://127.0.0.1:8080", "Shared cores.", r.Env.Command, "2025-06-03 09:14:07 UTC",
		"Throughput: best gateway rows/s ÷ best ort-floor rows/s", "Idle latency",
		"Latency against throughput: ctr", "Latency against throughput: ranker",
		"ort-floor: rows/s against batch size", "1 flagged",
		"Sweeps against a p99 bound", "no load met the bound", "46.0k/s", "3 repeats", "client late: 48.2k requests",
	} {
		if !strings.Contains(p.text, s) {
			t.Errorf("the page does not show %q", s)
		}
	}
	if !strings.Contains(p.html, `52,800 errors in 1,650,000 requests; http 503: 5,280, timeout: 47,520"`) {
		t.Errorf("the error kinds are not in the errors cell's tooltip")
	}
	for _, s := range []string{`<span class="pm">±3.5%</span>`, `title="model configuration: {&#34;max_batch_size&#34;:64,`, "repeats from "} {
		if !strings.Contains(p.html, s) {
			t.Errorf("the page does not hold %q", s)
		}
	}
	if strings.Contains(p.html, "<script") {
		t.Errorf("the page holds a script; want none")
	}
	if strings.Contains(p.html, "NaN") || strings.Contains(p.html, "Inf") {
		t.Errorf("the page holds NaN or Inf")
	}
}

func TestWriteHTMLEscapesHostileStrings(t *testing.T) {
	const script = `<script>alert(1)</script>`
	r := sampleReport()
	r.Env.Command = `bench --name '</style><script>alert(2)</script>'`
	r.Env.CPUModel = `"><img src=x onerror=alert(3)>`
	for i := range r.Runs {
		if r.Runs[i].Kind == KindGateway && r.Runs[i].Concurrency == 64 {
			r.Runs[i].Name = script + r.Runs[i].Name
			r.Runs[i].Flagged = `<b>bold</b> & "quoted"`
			r.Runs[i].ErrorKinds = map[string]int64{`<i>kind</i>`: 1}
			r.Runs[i].Errors = 1
		}
	}
	r.Runs[0].Model = `</title><script>alert(4)</script>`
	p := renderChecked(t, r)
	for _, bad := range []string{"<script", "<img", "<b>bold", "<i>kind"} {
		if strings.Contains(p.html, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	for _, s := range []string{script, `<b>bold</b> & "quoted"`, r.Env.Command, r.Env.CPUModel} {
		if !strings.Contains(p.text, s) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
}

func TestWriteHTMLEmptyReport(t *testing.T) {
	f := func(name string, r *Report) {
		t.Run(name, func(t *testing.T) {
			p := renderChecked(t, r)
			if p.svgs != 0 {
				t.Errorf("got %d <svg>; want 0", p.svgs)
			}
			for _, s := range []string{"The report holds no run.", "No run recorded a timeline.", "No ort-floor run.", "No gateway run"} {
				if !strings.Contains(p.text, s) {
					t.Errorf("the page does not say %q", s)
				}
			}
		})
	}
	f("nil", nil)
	f("zero", &Report{})
	f("env only", &Report{Env: Env{GoVersion: "go1.26.8", SharedCores: true}})
}

// TestWriteHTMLDegenerateData feeds values a chart must survive: single
// points, zeros on log axes, NaN and Inf, empty bins, unsorted bins.
func TestWriteHTMLDegenerateData(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	r := &Report{Runs: []Run{
		{
			Name: "one-point", Kind: KindGateway, Model: "m", Mode: ModeClosed, Concurrency: 1,
			ThroughputRPS: 100, Latency: Latency{P50: 0, P99: 0, P999: 0},
			Timeline:  []TimelinePoint{{TS: 1, ThroughputRPS: 100, P50US: 0, P99US: 0}},
			Histogram: []HistogramBin{{UpToUS: 0, Count: 5}},
			Batches:   []BatchBin{{Size: 1, Count: 3}},
		},
		{
			Name: "not-finite", Kind: KindGateway, Model: "m", Mode: ModeOpen, Rate: inf,
			ThroughputRPS: nan, RowsPerS: inf, ClientCPU: nan,
			Latency:   Latency{P50: nan, P90: inf, P99: -1, P999: inf, Max: nan},
			Server:    &ServerStats{AvgBatch: nan, QueueUSAvg: inf},
			Timeline:  []TimelinePoint{{TS: nan, P50US: inf}, {TS: 2, P50US: 5, P99US: nan, ThroughputRPS: inf}, {TS: 3, P50US: 7, P99US: 9}},
			Histogram: []HistogramBin{{UpToUS: 500, Count: 1}, {UpToUS: 100, Count: 7}, {UpToUS: inf, Count: 2}, {UpToUS: 200, Count: 0}},
			Batches:   []BatchBin{{Size: inf, Count: 4}, {Size: 4, Count: nan}, {Size: 2, Count: 1}},
		},
		{
			Name: "all-zero", Kind: KindHTTPFloor, Mode: ModeClosed, Concurrency: 1,
			Timeline:  []TimelinePoint{{}, {}},
			Histogram: []HistogramBin{{UpToUS: 10}, {UpToUS: 20}},
			Batches:   []BatchBin{{Size: 1}, {Size: 2}},
		},
		{Name: "ort-zero", Kind: KindORTFloor, Model: "m"},
		{Name: "ort-one", Kind: KindORTFloor, Model: "m", BatchSize: 1, RowsPerS: 1e6, Latency: Latency{P50: 30}},
		{Name: "huge", Kind: KindGateway, Model: "m", Mode: ModeClosed, Concurrency: 2, ThroughputRPS: 1e300, Latency: Latency{P50: 1e300, P99: 1e-300}},
	}}
	p := renderChecked(t, r)
	if strings.Contains(p.html, "NaN") || strings.Contains(p.html, "Inf") {
		t.Errorf("the page holds NaN or Inf")
	}
	for _, s := range []string{"Every bin is empty.", "No batch was executed.", "No bin has a positive, finite latency bound.", "1 interval "} {
		if !strings.Contains(p.text, s) {
			t.Errorf("the page does not say %q", s)
		}
	}
}

// TestWriteHTMLManyRuns checks that hundreds of runs render, quickly, with
// the small multiples folded away.
func TestWriteHTMLManyRuns(t *testing.T) {
	base := sampleReport()
	r := &Report{Env: base.Env}
	flagged := 0
	for i := range 8 {
		for j, run := range base.Runs {
			run.Name = fmt.Sprintf("%s#%d", run.Name, i)
			if run.Model != "" {
				run.Model = fmt.Sprintf("%s-%d", run.Model, i%3)
			}
			if j%10 == 3 {
				run.Flagged = "noisy neighbour"
			}
			if run.Flagged != "" {
				flagged++
			}
			r.Runs = append(r.Runs, run)
		}
	}
	if len(r.Runs) < 400 || flagged <= 20 {
		t.Fatalf("got %d runs, %d flagged; want at least 400, more than 20", len(r.Runs), flagged)
	}
	start := time.Now()
	p := renderChecked(t, r)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("rendering %d runs took %s", len(r.Runs), d)
	}
	if p.tags["details"] != 3 || strings.Contains(p.html, `<details open=""`) {
		t.Errorf("got %d sections, some open; want 3 folded", p.tags["details"])
	}
	if got := strings.Count(p.html, `<tr id="run-`); got != len(r.Runs) {
		t.Errorf("got %d rows in the table of runs; want %d", got, len(r.Runs))
	}
	// The first 20 flagged runs are listed at the top.
	if !strings.Contains(p.text, fmt.Sprintf("%d flagged runs", flagged)) ||
		!strings.Contains(p.text, fmt.Sprintf("and %d more, marked in the table of runs", flagged-20)) {
		t.Errorf("the list of %d flagged runs is not cut at 20", flagged)
	}
}

// TestWriteHTMLRatios checks the ratios to the floors on round figures.
func TestWriteHTMLRatios(t *testing.T) {
	r := &Report{Runs: []Run{
		{Name: "hf1", Kind: KindHTTPFloor, Mode: ModeClosed, Concurrency: 1, ThroughputRPS: 20e3, Latency: Latency{P50: 40}},
		{Name: "hf8", Kind: KindHTTPFloor, Mode: ModeClosed, Concurrency: 8, ThroughputRPS: 100e3, Latency: Latency{P50: 70}},
		{Name: "ort1", Kind: KindORTFloor, Model: "m", BatchSize: 1, RowsPerS: 25e3, Latency: Latency{P50: 35}},
		{Name: "ort32", Kind: KindORTFloor, Model: "m", BatchSize: 32, RowsPerS: 400e3, Latency: Latency{P50: 80, Mean: 640}},
		{Name: "ort64-flagged", Kind: KindORTFloor, Model: "m", BatchSize: 64, RowsPerS: 900e3, Flagged: "noisy"},
		{Name: "gw1", Kind: KindGateway, Model: "m", Batching: true, Mode: ModeClosed, Concurrency: 1, RowsPerRequest: 1, ThroughputRPS: 8e3, RowsPerS: 8e3, Latency: Latency{P50: 125}},
		{Name: "gw8", Kind: KindGateway, Model: "m", Batching: true, Mode: ModeClosed, Concurrency: 8, RowsPerRequest: 1, ThroughputRPS: 50e3, RowsPerS: 100e3, Latency: Latency{P50: 160},
			Server: &ServerStats{AvgBatch: 32, ComputeUSAvg: 1600, ComputeOnCPU: 0.436}},
		// Sixteen rows a request: compared in rows/s only, never with the
		// one-row floors' requests/s or latency.
		{Name: "gw8x16", Kind: KindGateway, Model: "m", Batching: true, Mode: ModeClosed, Concurrency: 8, RowsPerRequest: 16, ThroughputRPS: 5e3, RowsPerS: 80e3, Latency: Latency{P50: 1600}},
	}}
	p := renderChecked(t, r)
	for _, s := range []string{"5.00k · 0.05×", "21.3×"} { // req/s ÷ the floor's; p50 ÷ the floors' sum
		if strings.Contains(p.text, s) {
			t.Errorf("a 16-row run is set against the one-row floors: the page shows %q", s)
		}
	}
	if !strings.Contains(p.text, "0.2×") { // 80k rows/s ÷ 400k rows/s
		t.Error("the 16-row run's rows/s ratio is missing")
	}
	for _, s := range []string{
		"0.25×",        // 100k rows/s ÷ 400k rows/s (the flagged 900k is passed over)
		"50.0k · 0.5×", // 50k req/s ÷ 100k req/s at c=8
		"75.0 µs",      // floors sum 40 + 35
		"+50.0 µs",     // overhead 125 - 75
		"1.67×",        // 125 / 75
		"400k (batch 32)",
		"ONNX Runtime per row", // 1600 µs ÷ 32 rows inside, 640 µs ÷ 32 alone
		"50.0µs",
		"20.0µs",
		"2.50×",
		"44%", // the share of the compute that ONNX Runtime's thread had a CPU
	} {
		if !strings.Contains(p.text, s) {
			t.Errorf("the page does not show %q", s)
		}
	}
}

// failingWriter fails every write, as a full disk would.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteHTMLWriteError(t *testing.T) {
	err := WriteHTML(failingWriter{}, sampleReport())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v; want an error that wraps disk full", err)
	}
}

func TestHTMLFormat(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q; want %q", got, want)
		}
	}
	f(latency(0), "0")
	f(latency(0.25), "0.25 µs")
	f(latency(42), "42.0 µs")
	f(latency(999.7), "1.00 ms")
	f(latency(1234), "1.23 ms")
	f(latency(2.5e6), "2.50 s")
	f(latency(math.NaN()), "—")
	f(latencyTick(1000), "1 ms")
	f(latencyTick(200), "200 µs")
	f(compact(950), "950")
	f(compact(12), "12")
	f(compact(12.5), "12.5")
	f(compact(999.7), "1.00k")
	f(compact(12345), "12.3k")
	f(compact(999999), "1.00M")
	f(compact(math.Inf(1)), "—")
	f(compactTick(20000), "20k")
	f(compactTick(2.5e6), "2.5M")
	f(percent(0.032), "3.2%")
	f(percent(0.00001), "<0.01%")
	f(ratio(1, 4), "0.25×")
	f(ratio(1, 0), "—")
	f(thousands(1234567), "1,234,567")
	f(thousands(-1000), "-1,000")
	f(thousands(12), "12")
	f(signed("3 µs"), "+3 µs")
	f(plural(1, "run"), "1 run")
	f(plural(0, "run"), "0 runs")
	f(measuredLatency(0), "—")
	f(coord(math.NaN()), "0")
	f(coord(12.345), "12.3")
}

func TestHTMLScales(t *testing.T) {
	f := func(s scale, lo, hi float64, ticks string) {
		t.Helper()
		got := fmt.Sprintf("%v %v %v", s.lo, s.hi, s.ticks)
		if want := fmt.Sprintf("%v %v %v", lo, hi, ticks); got != want {
			t.Errorf("got %s; want %s", got, want)
		}
	}
	f(linearScale(nil, 5), 0, 1, "[0 0.2 0.4 0.6 0.8 1]")
	f(linearScale([]float64{0, 0}, 2), 0, 1, "[0 0.5 1]")
	f(linearScale([]float64{3, 97, math.NaN()}, 5), 0, 100, "[0 20 40 60 80 100]")
	lg := func(vs []float64, ticks string) {
		t.Helper()
		s := logScale(vs, 6)
		if got := fmt.Sprint(s.ticks); got != ticks {
			t.Errorf("logScale(%v) ticks: got %s; want %s", vs, got, ticks)
		}
		lo, hi := extent(vs, true)
		if lo > 0 && (s.lo >= lo || s.hi <= hi) {
			t.Errorf("logScale(%v) spans [%v, %v]; want a margin around [%v, %v]", vs, s.lo, s.hi, lo, hi)
		}
	}
	lg([]float64{0, 120, 800}, "[200 500]")
	lg([]float64{30, 2e6}, "[100 1000 10000 100000 1e+06]")
	lg([]float64{100}, "[50 100 200]")
	lg([]float64{5, 5000}, "[10 30 100 300 1000 3000]")
	lg([]float64{120, 180}, "[120 180]")
	lg(nil, "[1 2 5 10]")
	if s := autoScale([]float64{10, 50}, 10, 5); s.log {
		t.Errorf("autoScale over a factor 5 is log; want linear")
	}
	if s := autoScale([]float64{0, 10, 500}, 10, 5); !s.log {
		t.Errorf("autoScale over a factor 50 is linear; want log")
	}
	s := logScale([]float64{10, 1000}, 5)
	s.p0, s.p1 = 0, 100
	for _, v := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, ok := s.pos(v); ok {
			t.Errorf("pos(%v) on a log scale is placed; want refused", v)
		}
	}
	if px, _ := s.pos(100); math.Abs(px-50) > 1e-9 {
		t.Errorf("got %v; want 50", px)
	}
	if got := s.clamp(1e9); got != 100 {
		t.Errorf("got %v; want 100", got)
	}
}

// TestWriteHTMLOverload checks that an overload run shows its shed
// requests, readiness probes and sustainable rate in the table of runs,
// and the shed rate in its timeline.
func TestWriteHTMLOverload(t *testing.T) {
	r := &Report{Runs: []Run{
		{Name: "gateway-sustainable/ranker@c64", Kind: KindGateway, Model: "ranker", Batching: true, Mode: ModeClosed,
			Concurrency: 64, RowsPerRequest: 16, ThroughputRPS: 1000, RowsPerS: 16000, Requests: 3000, Latency: Latency{P50: 60e3, P99: 90e3}},
		{Name: "gateway-overload/ranker@3x", Kind: KindGateway, Model: "ranker", Batching: true, Mode: ModeOpen, Rate: 3000,
			RowsPerRequest: 16, Overload: 3, OfferedRPS: 3000, SustainableRPS: 1000, SustainableRun: "gateway-sustainable/ranker@c64",
			SentRPS: 2990, MaxAcceptedP99US: 1e6, ThroughputRPS: 950, RowsPerS: 15200, Requests: 9000,
			Latency: Latency{P50: 300e3, P90: 350e3, P99: 420e3, P999: 450e3, Max: 460e3},
			Shed:    &ShedStats{Count: 6150, Fraction: 0.6833, P50US: 310, P99US: 2100, MaxUS: 9000},
			Health:  &HealthStats{Probes: 300, P50US: 250, P99US: 1200, MaxUS: 4000},
			Timeline: []TimelinePoint{
				{TS: 1, ThroughputRPS: 950, P50US: 300e3, P99US: 420e3, Shed: 2050},
				{TS: 2, ThroughputRPS: 940, P50US: 310e3, P99US: 430e3, Shed: 2040},
				{TS: 3, ThroughputRPS: 960, P50US: 290e3, P99US: 410e3, Shed: 2060},
			}},
	}}
	p := renderChecked(t, r)
	for _, s := range []string{
		"overload 3×",
		"offered 3× sustained 1.00k/s",
		"shed 68.3% (6,150), p50 310 µs, p99 2.10 ms, max 9.00 ms",
		"/v2/health/ready p50 250 µs, p99 1.20 ms, max 4.00 ms, 0 of 300 probes failed",
		"accepted req/s", "shed/s",
	} {
		if !strings.Contains(p.text, s) {
			t.Errorf("the page does not show %q", s)
		}
	}
	if !strings.Contains(p.html, "3× the 1.00k/s sustained by gateway-sustainable/ranker@c64") ||
		!strings.Contains(p.html, "of the accepted requests; bound 1.00 s") {
		t.Errorf("the overload run's tooltips do not say what it was offered and held to")
	}
	if p.svgs != 1+1 { // latency against throughput, one timeline
		t.Errorf("got %d <svg>; want 2", p.svgs)
	}
}
