package bench

// html.go renders a Report as one self-contained HTML page: inline CSS and
// hand-drawn inline SVG, no script, nothing fetched. Every chart is computed
// here down to formatted pixel coordinates, so that the template only
// places elements and html/template escapes every string from the report.

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// init hands WriteHTML to SaveHTML (output.go).
func init() { writeHTML = WriteHTML }

// WriteHTML writes r to w as one self-contained HTML page for people: the
// environment, the ratios of the gateway to the floors per model, a table of
// all runs, and SVG charts (latency against throughput, latency over time,
// latency distributions, server batch sizes, ort-floor rows/s against batch
// size). Every string taken from r is escaped. A nil or empty report renders
// a page that says there is nothing to show. The page is rendered in memory
// first, so w receives nothing when rendering fails.
func WriteHTML(w io.Writer, r *Report) error {
	if r == nil {
		r = &Report{}
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, buildPage(r)); err != nil {
		return fmt.Errorf("cannot render the HTML report of %d runs: %w", len(r.Runs), err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("cannot write the HTML report: %w", err)
	}
	return nil
}

// collapseAbove is the number of small multiples above which a chart
// section starts folded, so that hundreds of runs do not bury the tables.
const collapseAbove = 24

// maxFlagged is the number of flagged runs listed at the top of the page;
// the table marks all of them.
const maxFlagged = 20

// page is what the template renders.
type page struct {
	Title       string
	Env         envView
	RunsLine    string // "12 runs"
	NFlagged    int
	FlaggedLine string
	FlaggedMore int      // flagged runs left out of Flagged
	Flagged     []runRow // the first maxFlagged flagged runs
	Models      []modelView
	Targets     *table // nil when the report checked none
	Sweeps      *table // nil without sweeps
	Rows        []runRow
	LatTP       []*chart
	ORT         []*chart
	Timeline    section
	Hist        section
	Batch       section
}

// section is a list of small multiples.
type section struct {
	Charts  []*chart
	Open    bool
	Summary string
}

// envView is the header: where and how the figures were measured.
type envView struct {
	Started string
	Fields  []kv
	Command string
	Shared  bool
}

// kv is one labelled figure of the header.
type kv struct{ K, V string }

// runRow is one row of the table of runs, every figure already formatted.
type runRow struct {
	Name, Flagged   string
	NameParts       []string // Name cut where a line may break
	Kind, KindClass string
	Tags            []string
	Floor           bool
	Mode, Load      string
	LoadTip, Rows   string
	RPS, RowsS      string
	NTip            string
	P50, P90, P99   string
	P999, Max       string
	RPSSpread       string // half the range of req/s over the repeats
	P50Tip, P99Tip  string
	P999Tip         string
	ConfigTip       string
	Errors, ErrTip  string
	ErrBad          bool
	CPU             string
	ServerCPU       string // cores; "—" when not measured
	ServerCPUPerReq string // µs of server CPU per request
	HasServer       bool
	Batch, Queue    string
	Compute, Wake   string
	ServerTip       string
	Notes           []string // server figures worth a line under the name
	Anchor          string
}

// modelView holds the ratios of one model's gateway runs to the floors.
type modelView struct {
	Model  string
	Tables []table
}

// table is a small table of derived figures; Note replaces it when empty.
type table struct {
	// Note, when set, stands in place of the rows; Caveat is shown above
	// them.
	Title, Note, Caveat string
	Head                []string
	Rows                [][]cell
}

// cell is one cell of a table: text, CSS class, tooltip.
type cell struct{ S, Class, Tip string }

// chart is one drawn SVG with its caption and legend. Coordinates are in
// pixels of the viewBox; the template formats them.
type chart struct {
	Title, Sub, Note string
	Warn             string // shown in red: why the run's figures are not clean
	W, H             float64
	Segs             []svgSeg
	Rects            []svgRect
	Areas            []svgPoly
	Lines            []svgPoly
	Dots             []svgDot
	Texts            []svgText
	Legend           []legendKey // one key per series
	Styles           []legendKey // what line styles and marks mean
}

// svgSeg, svgRect, svgPoly, svgDot and svgText are SVG elements; Tip
// becomes a <title>, the tooltip a browser shows on hover.
type svgSeg struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

type svgRect struct {
	X, Y, W, H float64
	Class, Tip string
}

type svgPoly struct{ Points, Class string }

type svgDot struct {
	X, Y, R    float64
	Class, Tip string
}

type svgText struct {
	X, Y             float64
	Class, Anchor, S string
	Vertical         bool
}

// legendKey is a swatch: Class selects the colour and the line style.
type legendKey struct{ Class, Label string }

// buildPage computes everything the page shows from r.
func buildPage(r *Report) *page {
	p := &page{
		Title: "infergate bench",
		Env:   buildEnv(&r.Env),
	}
	p.RunsLine = plural(len(r.Runs), "run")
	if p.Env.Started != "" {
		p.Title += " · " + p.Env.Started
	}
	for i := range r.Runs {
		run := &r.Runs[i]
		row := buildRow(run, i)
		p.Rows = append(p.Rows, row)
		if row.Flagged != "" {
			p.NFlagged++
			if len(p.Flagged) < maxFlagged {
				p.Flagged = append(p.Flagged, row)
			}
		}
	}
	pal := newPalette()
	p.Models = buildRatios(r.Runs, rowCosts(r))
	p.Targets = buildTargets(r.Targets, targetsCaveat(&r.Env, r.Targets))
	p.Sweeps = buildSweeps(r.Sweeps)
	p.LatTP = latencyThroughputCharts(r.Runs, pal)
	p.ORT = ortFloorCharts(r.Runs)
	for i := range r.Runs {
		run := &r.Runs[i]
		if c := timelineChart(run); c != nil {
			p.Timeline.Charts = append(p.Timeline.Charts, c)
		}
		if c := histogramChart(run); c != nil {
			p.Hist.Charts = append(p.Hist.Charts, c)
		}
		if c := batchChart(run); c != nil {
			p.Batch.Charts = append(p.Batch.Charts, c)
		}
	}
	p.FlaggedLine = plural(p.NFlagged, "flagged run")
	p.FlaggedMore = p.NFlagged - len(p.Flagged)
	p.Timeline.Summary = plural(len(p.Timeline.Charts), "run") + " with a timeline"
	p.Hist.Summary = plural(len(p.Hist.Charts), "run") + " with a latency histogram"
	p.Batch.Summary = plural(len(p.Batch.Charts), "run") + " with server batch sizes"
	for _, s := range []*section{&p.Timeline, &p.Hist, &p.Batch} {
		s.Open = len(s.Charts) <= collapseAbove
	}
	return p
}

// buildEnv lists the fields of e that are set.
func buildEnv(e *Env) envView {
	v := envView{Command: e.Command, Shared: e.SharedCores, Started: e.StartedAt}
	if t, err := time.Parse(time.RFC3339, e.StartedAt); err == nil {
		v.Started = t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	add := func(k, val string) {
		if val != "" {
			v.Fields = append(v.Fields, kv{k, val})
		}
	}
	num := func(n int) string {
		if n <= 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	add("CPU", e.CPUModel)
	add("CPUs", num(e.CPUs))
	add("threads per core", num(e.ThreadsPerCore))
	add("GOMAXPROCS", num(e.GOMAXPROCS))
	add("Go", e.GoVersion)
	add("ONNX Runtime", e.ORTVersion)
	add("intra-op threads", num(e.IntraOpThreads))
	add("instances", num(e.Instances))
	add("rounds", num(e.Rounds))
	add("commit", e.Commit)
	add("target", e.Target)
	add("server", e.ServerVersion)
	add("server CPUs", e.ServerCPUs)
	add("load generator CPUs", e.ClientCPUs)
	add("ort floor CPUs", e.ORTFloorCPUs)
	add("ONNX Runtime's reserved CPUs", e.RuntimeCPUs)
	add("host", e.Host)
	if e.OS != "" || e.Arch != "" {
		add("platform", strings.Trim(e.OS+"/"+e.Arch, "/"))
	}
	return v
}

// buildRow formats run r, the i-th of the report, for the table of runs.
func buildRow(r *Run, i int) runRow {
	row := runRow{
		Name:    r.Name,
		Flagged: r.Flagged,
		Kind:    r.Kind,
		Floor:   r.Kind == KindHTTPFloor || r.Kind == KindORTFloor,
		RPS:     compact(r.ThroughputRPS),
		RowsS:   compact(r.RowsPerS),
		P50:     measuredLatency(r.Latency.P50),
		P90:     measuredLatency(r.Latency.P90),
		P99:     measuredLatency(r.Latency.P99),
		P999:    measuredLatency(r.Latency.P999),
		Max:     measuredLatency(r.Latency.Max),
		CPU:     sig3(r.ClientCPU),
		Anchor:  "run-" + strconv.Itoa(i),
	}
	row.ServerCPU, row.ServerCPUPerReq = "—", "—"
	if r.ServerCPU > 0 {
		row.ServerCPU = sig3(r.ServerCPU)
	}
	if r.ServerCPUPerRequestUS > 0 {
		row.ServerCPUPerReq = latency(r.ServerCPUPerRequestUS)
	}
	if row.Name == "" {
		row.Name = fmt.Sprintf("run %d", i+1)
	}
	row.NameParts = breakable(row.Name)
	if r.Config != "" {
		row.ConfigTip = "model configuration: " + r.Config
	}
	switch r.Kind {
	case KindGateway:
		row.KindClass = "kg"
		if r.Batching {
			row.Tags = append(row.Tags, "batched")
		} else {
			row.Tags = append(row.Tags, "unbatched")
		}
	case KindHTTPFloor:
		row.KindClass = "kh"
	case KindORTFloor:
		row.KindClass = "ko"
	default:
		row.KindClass = "kx"
	}
	if r.Cache {
		row.Tags = append(row.Tags, "cache")
	}
	if r.Encoding != "" {
		row.Tags = append(row.Tags, r.Encoding)
	}
	if r.Repetition > 0 {
		row.Tags = append(row.Tags, "rep "+strconv.Itoa(r.Repetition))
	}
	row.Mode = r.Mode
	switch {
	case r.Kind == KindORTFloor:
		row.Mode, row.Load = "", "in-process"
		if r.Concurrency > 0 {
			row.Load = "c=" + strconv.Itoa(r.Concurrency)
			row.LoadTip = fmt.Sprintf("ONNX Runtime called in-process by %d goroutines", r.Concurrency)
		}
	case r.Mode == ModeOpen:
		row.Load = compact(r.Rate) + "/s"
		row.LoadTip = "uniform arrivals at " + row.Load + " offered"
		if r.Poisson {
			row.LoadTip = "Poisson arrivals at " + row.Load + " offered"
		}
		if r.Concurrency > 0 {
			row.LoadTip += fmt.Sprintf(", at most %d in flight", r.Concurrency)
		}
		if r.SentRPS > 0 {
			row.LoadTip += "; sent " + compact(r.SentRPS) + "/s"
			if r.SentRPS < 0.98*r.Rate {
				row.Notes = append(row.Notes, "client sent only "+compact(r.SentRPS)+"/s")
			}
		}
		if r.Late > 0 {
			row.LoadTip += fmt.Sprintf("; %s requests sent 1 ms or more late", thousands(r.Late))
			row.Notes = append(row.Notes, "client late: "+compact(float64(r.Late))+" requests")
		}
	case r.Concurrency > 0:
		row.Load = "c=" + strconv.Itoa(r.Concurrency)
	default:
		row.Load = "—"
	}
	if r.Overload > 0 {
		x := strconv.FormatFloat(r.Overload, 'f', -1, 64)
		row.Tags = append(row.Tags, "overload "+x+"×")
		row.LoadTip += fmt.Sprintf("; %s× the %s/s sustained by %s", x, compact(r.SustainableRPS), r.SustainableRun)
		row.Notes = append(row.Notes, fmt.Sprintf("offered %s× sustained %s/s", x, compact(r.SustainableRPS)))
	}
	if sh := r.Shed; sh != nil {
		if sh.Count == 0 {
			row.Notes = append(row.Notes, "nothing shed")
		} else {
			row.Notes = append(row.Notes, fmt.Sprintf("shed %s (%s), p50 %s, p99 %s, max %s",
				percent(sh.Fraction), thousands(sh.Count), latency(sh.P50US), latency(sh.P99US), latency(sh.MaxUS)))
		}
	}
	if h := r.Health; h != nil {
		row.Notes = append(row.Notes, fmt.Sprintf("/v2/health/ready p50 %s, p99 %s, max %s, %s of %s probes failed",
			latency(h.P50US), latency(h.P99US), latency(h.MaxUS), thousands(h.Failures), thousands(h.Probes)))
	}
	if r.Kind == KindORTFloor && r.BatchSize > 0 {
		row.Rows = strconv.Itoa(r.BatchSize)
	} else if r.RowsPerRequest > 0 {
		row.Rows = strconv.Itoa(r.RowsPerRequest)
	} else {
		row.Rows = "—"
	}
	row.NTip = fmt.Sprintf("%s requests in %s s", thousands(r.Requests), sig3(r.DurationS))
	if r.Repeats > 1 {
		row.Tags = append(row.Tags, strconv.Itoa(r.Repeats)+" repeats")
		row.NTip += fmt.Sprintf(" over %d repeats; each figure is their median", r.Repeats)
	}
	if sp := r.Spread; sp != nil {
		if r.ThroughputRPS > 0 {
			row.RPSSpread = "±" + percent((sp.ThroughputRPS.Max-sp.ThroughputRPS.Min)/2/r.ThroughputRPS)
		}
		span := func(m MinMax, f func(float64) string) string { return "repeats from " + f(m.Min) + " to " + f(m.Max) }
		row.NTip += "; " + span(sp.ThroughputRPS, compact) + " req/s"
		row.P50Tip, row.P99Tip, row.P999Tip = span(sp.P50US, latency), span(sp.P99US, latency), span(sp.P999US, latency)
	}
	if r.MaxAcceptedP99US > 0 {
		tip := "of the accepted requests; bound " + latency(r.MaxAcceptedP99US) + " (--max-accepted-p99)"
		if row.P99Tip != "" {
			tip = row.P99Tip + "; " + tip
		}
		row.P99Tip = tip
	}
	// The rate, with the count and the kinds in the tooltip.
	row.Errors = compact(float64(r.Errors))
	if r.Errors > 0 {
		row.ErrBad = true
		row.ErrTip = thousands(r.Errors) + " errors"
		if r.Requests > 0 {
			row.Errors = percent(float64(r.Errors) / float64(r.Requests))
			row.ErrTip += " in " + thousands(r.Requests) + " requests"
		}
		kinds := make([]string, 0, len(r.ErrorKinds))
		for k, n := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s: %s", k, thousands(n)))
		}
		slices.Sort(kinds)
		if len(kinds) > 0 {
			row.ErrTip += "; " + strings.Join(kinds, ", ")
		}
	}
	if s := r.Server; s != nil {
		row.HasServer = true
		row.Batch = sig3(s.AvgBatch)
		row.Queue = latency(s.QueueUSAvg)
		row.Compute = latency(s.ComputeUSAvg)
		row.Wake = "—"
		if s.WakeUSAvg > 0 {
			row.Wake = latency(s.WakeUSAvg)
		}
		var tip []string
		if n := s.CacheHits + s.CacheMisses; n > 0 {
			row.Notes = append(row.Notes, "cache hits "+percent(s.CacheHits/n))
			tip = append(tip, fmt.Sprintf("cache: %s hits, %s misses", compact(s.CacheHits), compact(s.CacheMisses)))
		}
		if s.Rejected > 0 {
			row.Notes = append(row.Notes, "server rejected "+compact(s.Rejected))
			tip = append(tip, "requests rejected by the server: "+compact(s.Rejected))
		}
		row.ServerTip = strings.Join(tip, "; ")
	}
	return row
}

// breakable cuts s after each '/', '@' and '#', where a narrow table
// cell may break a run name.
func breakable(s string) []string {
	var parts []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "/@#")
		if i < 0 || i == len(s)-1 {
			break
		}
		parts = append(parts, s[:i+1])
		s = s[i+1:]
	}
	return append(parts, s)
}

// gwKey identifies a gateway configuration within one model.
type gwKey struct {
	Batching, Cache bool
	Rows            int
	Encoding        string
}

// keyOf returns the gateway configuration of r.
func keyOf(r *Run) gwKey {
	return gwKey{Batching: r.Batching, Cache: r.Cache, Rows: r.RowsPerRequest, Encoding: r.Encoding}
}

// String names k for a table header, e.g. "batched +cache".
func (k gwKey) String() string {
	s := "unbatched"
	if k.Batching {
		s = "batched"
	}
	if k.Cache {
		s += " +cache"
	}
	if k.Rows > 1 {
		s += fmt.Sprintf(" ×%d rows", k.Rows)
	}
	if k.Encoding != "" {
		s += " " + k.Encoding
	}
	return s
}

// best returns the run that ok accepts and prefer ranks first, or nil.
func best(runs []Run, ok func(*Run) bool, better func(a, b *Run) bool) *Run {
	var b *Run
	for i := range runs {
		if r := &runs[i]; ok(r) && (b == nil || prefer(r, b, better)) {
			b = r
		}
	}
	return b
}

// prefer reports whether a ranks before b: clean runs before flagged
// ones, then by better.
func prefer(a, b *Run, better func(a, b *Run) bool) bool {
	if (a.Flagged == "") != (b.Flagged == "") {
		return a.Flagged == ""
	}
	return better(a, b)
}

// anyRun reports whether ok accepts some run.
func anyRun(runs []Run, ok func(*Run) bool) bool {
	for i := range runs {
		if ok(&runs[i]) {
			return true
		}
	}
	return false
}

// moreRows, moreRPS and lowerP50 rank runs for best.
func moreRows(a, b *Run) bool { return a.RowsPerS > b.RowsPerS }
func moreRPS(a, b *Run) bool  { return a.ThroughputRPS > b.ThroughputRPS }
func lowerP50(a, b *Run) bool { return a.Latency.P50 < b.Latency.P50 }

// flagMark marks a figure taken from a flagged run.
func flagMark(r *Run) string {
	if r.Flagged != "" {
		return " ⚑"
	}
	return ""
}

// distinct returns the values of f over runs accepted by ok, in order of
// first appearance.
func distinct[T comparable](runs []Run, ok func(*Run) bool, f func(*Run) T) []T {
	var out []T
	seen := make(map[T]bool)
	for i := range runs {
		if r := &runs[i]; ok(r) && !seen[f(r)] {
			seen[f(r)] = true
			out = append(out, f(r))
		}
	}
	return out
}

// buildRatios computes, per model served by a gateway, the ratios that say
// how close the gateway comes to its floors; costs are rowCosts' figures.
func buildRatios(runs []Run, costs []rowCost) []modelView {
	isGW := func(r *Run) bool { return r.Kind == KindGateway }
	var out []modelView
	for _, m := range distinct(runs, isGW, func(r *Run) string { return r.Model }) {
		gw := func(r *Run) bool { return r.Kind == KindGateway && r.Model == m }
		ort := func(r *Run) bool { return r.Kind == KindORTFloor && r.Model == m }
		httpf := func(r *Run) bool {
			return r.Kind == KindHTTPFloor && (r.Model == m || r.Model == "") && r.Mode != ModeOpen
		}
		keys := distinct(runs, gw, keyOf)
		mv := modelView{Model: m}
		if mv.Model == "" {
			mv.Model = "(no model name)"
		}

		// Rows/s against ONNX Runtime in-process at its best batch size.
		t := table{
			Title: "Throughput: best gateway rows/s ÷ best ort-floor rows/s",
			Head:  []string{"gateway", "best rows/s", "ort-floor best rows/s", "ratio"},
		}
		bo := best(runs, ort, moreRows)
		if bo == nil {
			t.Note = "No ort-floor run for this model."
		} else {
			for _, k := range keys {
				bg := best(runs, func(r *Run) bool { return gw(r) && keyOf(r) == k }, moreRows)
				t.Rows = append(t.Rows, []cell{
					{S: k.String()},
					{S: compact(bg.RowsPerS) + flagMark(bg), Class: "num", Tip: bg.Name},
					{S: compact(bo.RowsPerS) + " (batch " + strconv.Itoa(bo.BatchSize) + ")" + flagMark(bo), Class: "num", Tip: bo.Name},
					{S: ratio(bg.RowsPerS, bo.RowsPerS), Class: "num em"},
				})
			}
		}
		mv.Tables = append(mv.Tables, t)

		// Requests/s against a bare HTTP server at the same concurrency.
		t = table{Title: "Requests/s: gateway ÷ http-floor at the same concurrency (closed loop)"}
		// The floors answer one-row requests: gateway runs with more rows
		// per request (the overload pair's) compare only in rows/s above.
		closedGW := func(r *Run) bool { return gw(r) && r.Mode != ModeOpen && r.Concurrency > 0 && r.RowsPerRequest <= 1 }
		conc := distinct(runs, closedGW, func(r *Run) int { return r.Concurrency })
		slices.Sort(conc)
		if best(runs, httpf, moreRPS) == nil || len(conc) == 0 {
			t.Note = "No closed-loop http-floor run to compare with."
		} else {
			t.Head = []string{"concurrency", "http-floor req/s"}
			ckeys := distinct(runs, closedGW, keyOf)
			for _, k := range ckeys {
				t.Head = append(t.Head, k.String())
			}
			for _, c := range conc {
				hf := best(runs, func(r *Run) bool { return httpf(r) && r.Concurrency == c }, moreRPS)
				row := []cell{{S: "c=" + strconv.Itoa(c)}, {S: "—", Class: "num"}}
				if hf != nil {
					row[1] = cell{S: compact(hf.ThroughputRPS) + flagMark(hf), Class: "num", Tip: hf.Name}
				}
				for _, k := range ckeys {
					g := best(runs, func(r *Run) bool { return closedGW(r) && keyOf(r) == k && r.Concurrency == c }, moreRPS)
					switch {
					case g == nil:
						row = append(row, cell{S: "—", Class: "num"})
					case hf == nil:
						row = append(row, cell{S: compact(g.ThroughputRPS) + flagMark(g), Class: "num", Tip: g.Name})
					default:
						row = append(row, cell{
							S:     compact(g.ThroughputRPS) + flagMark(g) + " · " + ratio(g.ThroughputRPS, hf.ThroughputRPS),
							Class: "num", Tip: g.Name,
						})
					}
				}
				t.Rows = append(t.Rows, row)
			}
		}
		mv.Tables = append(mv.Tables, t)

		// Idle latency against the sum of the floors' latencies.
		t = table{
			Title: "Idle latency: gateway p50 at its lowest concurrency vs http-floor p50 + ort-floor batch-1 p50",
			Head:  []string{"gateway", "load", "gateway p50", "http-floor p50", "ort-floor b1 p50", "floors sum", "overhead", "ratio"},
		}
		ob1 := best(runs, func(r *Run) bool { return ort(r) && r.BatchSize == 1 }, lowerP50)
		for _, k := range keys {
			mk := func(r *Run) bool { return closedGW(r) && keyOf(r) == k }
			low := 0
			for i := range runs {
				if r := &runs[i]; mk(r) && (low == 0 || r.Concurrency < low) {
					low = r.Concurrency
				}
			}
			if low == 0 {
				continue
			}
			g := best(runs, func(r *Run) bool { return mk(r) && r.Concurrency == low }, lowerP50)
			hf := best(runs, func(r *Run) bool { return httpf(r) && r.Concurrency == low }, lowerP50)
			row := []cell{
				{S: k.String()},
				{S: "c=" + strconv.Itoa(low)},
				{S: latency(g.Latency.P50) + flagMark(g), Class: "num", Tip: g.Name},
				{S: "—", Class: "num"}, {S: "—", Class: "num"}, {S: "—", Class: "num"},
				{S: "—", Class: "num"}, {S: "—", Class: "num em"},
			}
			if hf != nil {
				row[3] = cell{S: latency(hf.Latency.P50) + flagMark(hf), Class: "num", Tip: hf.Name}
			}
			if ob1 != nil {
				row[4] = cell{S: latency(ob1.Latency.P50) + flagMark(ob1), Class: "num", Tip: ob1.Name}
			}
			if hf != nil && ob1 != nil {
				sum := hf.Latency.P50 + ob1.Latency.P50
				row[5].S = latency(sum)
				row[6].S = signed(latency(g.Latency.P50 - sum))
				row[7].S = ratio(g.Latency.P50, sum)
			}
			t.Rows = append(t.Rows, row)
		}
		if len(t.Rows) == 0 {
			t.Note = "No closed-loop gateway run for this model."
		}
		mv.Tables = append(mv.Tables, t)

		// ONNX Runtime's speed inside the loaded gateway against alone.
		t = table{
			Title: "ONNX Runtime per row: inside the batched gateway (with gathering and scattering) ÷ alone, at the same batch sizes or the nearest",
			Head:  []string{"gateway", "rows per batch", "µs per row", "on a CPU", "ort-floor", "µs per row", "ratio"},
		}
		for _, c := range costs {
			if c.model == m {
				t.Rows = append(t.Rows, []cell{
					{S: c.gateway.Name},
					{S: strconv.FormatFloat(c.rows, 'f', 1, 64), Class: "num"},
					{S: formatRowUS(c.inside), Class: "num"},
					onCPUCell(c.onCPU),
					floorCell(c),
					{S: formatRowUS(c.alone), Class: "num"},
					{S: ratio(c.inside, c.alone), Class: "num em", Tip: roundsTip(c.rounds)},
				})
			}
		}
		if len(t.Rows) == 0 {
			t.Note = "Needs a batched gateway run with the server's batch and compute figures, and an ort-floor run."
		}
		mv.Tables = append(mv.Tables, t)
		out = append(out, mv)
	}
	return out
}

// floorCell names what the per-row figure alone comes from.
func floorCell(c rowCost) cell {
	if c.sameSizes {
		return cell{S: "at the same batch sizes", Tip: "the ort-floor's time for each batch size the gateway ran, interpolated between the sizes it measured"}
	}
	return cell{S: c.floor.Name}
}

// onCPUCell shows the share of the gateway's compute time that ONNX
// Runtime's thread had a CPU, "—" when the gateway did not report it.
func onCPUCell(share float64) cell {
	if !(share > 0) {
		return cell{S: "—", Class: "num"}
	}
	return cell{S: fmt.Sprintf("%.0f%%", 100*share), Class: "num",
		Tip: "the CPU time of the thread that ran ONNX Runtime over the compute time, for one execution in 64; below 100% the thread waited for a CPU"}
}

// buildTargets lists the suite's targets as CheckTargets found them, with
// caveat (see targetsCaveat) above them.
func buildTargets(ts []Target, caveat string) *table {
	if len(ts) == 0 {
		return nil
	}
	t := &table{Title: "The suite's targets, checked on these runs", Caveat: caveat, Head: []string{"model", "target", "value", "bound", "", "from"}}
	for _, x := range ts {
		value, bound := formatBeside(x.Value, x.Bound), fmt.Sprintf("%.2f", x.Bound)
		switch x.Unit {
		case "µs":
			value, bound = formatUSPair(x.Value, x.Bound)
			bound = "≤ " + bound
		case "-":
			value, bound = "—", "—"
		default:
			bound = "≥ " + bound
		}
		verdict := cell{S: "met"}
		if !x.Met {
			verdict = cell{S: "not met", Class: "bad"}
		}
		t.Rows = append(t.Rows, []cell{{S: x.Model}, {S: x.Name}, {S: value, Class: "num em"}, {S: bound, Class: "num"}, verdict, {S: x.Detail, Class: "mute"}})
	}
	return t
}

// buildSweeps lists the outcome of each sweep against a p99 bound.
func buildSweeps(sweeps []Sweep) *table {
	if len(sweeps) == 0 {
		return nil
	}
	t := &table{
		Title: "Sweeps: the highest load whose p99 met the bound",
		Head:  []string{"sweep", "p99 bound", "best load", "achieved req/s", "best run", "stopped at"},
	}
	for _, sw := range sweeps {
		name := strings.Join(slices.DeleteFunc([]string{sw.Kind, sw.Model, sw.Mode}, func(s string) bool { return s == "" }), " · ")
		load := "c=" + sig3(sw.BestLoad)
		if sw.Mode == ModeOpen {
			load = compact(sw.BestLoad) + "/s"
		}
		row := []cell{
			{S: name},
			{S: latency(sw.MaxP99US), Class: "num"},
			{S: load, Class: "num em"},
			{S: compact(sw.BestThroughputRPS), Class: "num em"},
			{S: sw.Best},
			{S: sw.StoppedAt},
		}
		if sw.Best == "" {
			row[2], row[3], row[4] = cell{S: "—", Class: "num"}, cell{S: "—", Class: "num"}, cell{S: "no load met the bound", Class: "bad"}
		}
		if sw.StoppedAt == "" {
			row[5] = cell{S: "every load met the bound", Class: "mute"}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// palette gives each series label the same colour in every chart.
type palette struct {
	idx map[string]int
}

// paletteSize is the number of series colours the stylesheet defines.
const paletteSize = 10

// newPalette returns a palette with no colour given yet.
func newPalette() *palette { return &palette{idx: make(map[string]int)} }

// class returns the CSS class of label's colour, assigning the next one
// to a label not seen before.
func (p *palette) class(label string) string {
	i, ok := p.idx[label]
	if !ok {
		i = len(p.idx)
		p.idx[label] = i
	}
	return "k" + strconv.Itoa(i%paletteSize)
}

// seriesKey groups the runs of one latency-against-throughput line.
type seriesKey struct {
	Kind            string
	Batching, Cache bool
	Mode            string
	Rows            int
	Encoding        string
}

// label names the series in a legend; the encoding only when the chart
// shows several.
func (k seriesKey) label(showEnc bool) string {
	s := k.Kind
	if k.Kind == KindGateway {
		s += " " + gwKey{Batching: k.Batching}.String()
	}
	if k.Cache {
		s += " +cache"
	}
	if k.Mode == ModeOpen {
		s += " open-loop"
	}
	if k.Rows > 1 {
		s += fmt.Sprintf(" ×%d rows", k.Rows)
	}
	if showEnc && k.Encoding != "" {
		s += " " + k.Encoding
	}
	return s
}

// latencyThroughputCharts draws, per model, p50, p99 and p99.9 against the
// achieved throughput, one colour per group of steps. Runs without a model
// name (a shared http-floor) appear in every model's chart.
func latencyThroughputCharts(runs []Run, pal *palette) []*chart {
	loaded := func(r *Run) bool { return r.Kind != KindORTFloor }
	models := distinct(runs, func(r *Run) bool { return loaded(r) && r.Model != "" }, func(r *Run) string { return r.Model })
	if len(models) == 0 {
		if !anyRun(runs, loaded) {
			return nil
		}
		models = []string{""}
	}
	var out []*chart
	for _, m := range models {
		in := func(r *Run) bool { return loaded(r) && (r.Model == m || r.Model == "") }
		seriesOf := func(r *Run) seriesKey {
			mode := ModeClosed
			if r.Mode == ModeOpen {
				mode = ModeOpen
			}
			return seriesKey{Kind: r.Kind, Batching: r.Batching && r.Kind == KindGateway, Cache: r.Cache, Mode: mode, Rows: max(r.RowsPerRequest, 1), Encoding: r.Encoding}
		}
		keys := distinct(runs, in, seriesOf)
		showEnc := len(distinct(runs, in, func(r *Run) string { return r.Encoding })) > 1
		title := "Latency against throughput"
		if m != "" {
			title += ": " + m
		}
		c := &chart{Title: title, W: 640, H: 340}
		var xs, ys []float64
		for i := range runs {
			if r := &runs[i]; in(r) {
				xs = append(xs, r.ThroughputRPS)
				ys = append(ys, r.Latency.P50, r.Latency.P99, r.Latency.P999)
			}
		}
		p := newPlot(c, autoScale(xs, 50, 7), autoScale(ys, 10, 6), latencyTick, 10, 16, 44)
		p.axes(axisTitle("achieved requests/s", p.x), axisTitle("latency", p.y), compactTick, latencyTick)
		c.Sub = "p50 solid · p99 dashed · p99.9 dotted; hover a point for its run"
		pcts := []struct {
			name, class string
			r           float64
			v           func(*Run) float64
		}{
			{"p50", "p50", 3, func(r *Run) float64 { return measured(r.Latency.P50) }},
			{"p99", "p99", 3, func(r *Run) float64 { return measured(r.Latency.P99) }},
			{"p99.9", "p999", 2.2, func(r *Run) float64 { return measured(r.Latency.P999) }},
		}
		for _, k := range keys {
			var g []*Run
			for i := range runs {
				if r := &runs[i]; in(r) && seriesOf(r) == k {
					g = append(g, r)
				}
			}
			slices.SortStableFunc(g, func(a, b *Run) int { return cmp.Compare(a.ThroughputRPS, b.ThroughputRPS) })
			label := k.label(showEnc)
			kc := "kf" // floors in one neutral colour, apart from the gateway
			if k.Kind == KindGateway {
				kc = pal.class(label)
			}
			if !slices.ContainsFunc(c.Legend, func(k legendKey) bool { return k.Label == label }) {
				c.Legend = append(c.Legend, legendKey{Class: "ln " + kc, Label: label})
			}
			rps := func(r *Run) float64 { return r.ThroughputRPS }
			for _, pc := range pcts {
				p.runs(g, rps, pc.v, "ln "+kc+" "+pc.class)
				for _, r := range g {
					p.dot(r.ThroughputRPS, pc.v(r), pc.r, "dot "+kc+" d"+pc.class, r,
						fmt.Sprintf("%s\n%s %s at %s req/s (%s)", r.Name, pc.name, latency(pc.v(r)), compact(r.ThroughputRPS), loadOf(r)))
				}
			}
		}
		c.Styles = append(c.Styles,
			legendKey{Class: "ln kn", Label: "p50"},
			legendKey{Class: "ln kn p99", Label: "p99"},
			legendKey{Class: "ln kn p999", Label: "p99.9"},
		)
		if anyRun(runs, func(r *Run) bool { return in(r) && r.Flagged != "" }) {
			c.Styles = append(c.Styles, legendKey{Class: "flagkey", Label: "flagged run"})
		}
		out = append(out, c)
	}
	return out
}

// loadOf describes the load of r in a few characters.
func loadOf(r *Run) string {
	if r.Mode == ModeOpen {
		return "offered " + compact(r.Rate) + "/s"
	}
	return "c=" + strconv.Itoa(r.Concurrency)
}

// ortFloorCharts draws each model's ort-floor runs against batch size:
// rows/s, with the model's best gateway rows/s as a dashed reference, and
// the latency of one call. Where a batch size was measured more than once,
// the best run stands for it.
func ortFloorCharts(runs []Run) []*chart {
	isORT := func(r *Run) bool { return r.Kind == KindORTFloor }
	models := distinct(runs, isORT, func(r *Run) string { return r.Model })
	if len(models) == 0 {
		return nil
	}
	perModel := make([][]*Run, len(models))
	var sizes []float64
	for mi, m := range models {
		bySize := make(map[int]*Run)
		for i := range runs {
			r := &runs[i]
			if !isORT(r) || r.Model != m {
				continue
			}
			if b, ok := bySize[r.BatchSize]; !ok || prefer(r, b, moreRows) {
				bySize[r.BatchSize] = r
			}
		}
		for _, s := range slices.Sorted(maps.Keys(bySize)) {
			perModel[mi] = append(perModel[mi], bySize[s])
			sizes = append(sizes, float64(s))
		}
	}
	// Batch sizes are few, meaningful and mostly powers of two: a log
	// axis that ticks exactly those.
	xsc := logScale(sizes, 8)
	if lo, hi := extent(sizes, true); lo > 0 {
		xsc.lo, xsc.hi = lo/1.25, hi*1.25
		xsc.ticks = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(sizes))), func(v float64) bool { return v <= 0 })
	}
	labels := make([]string, len(models))
	for mi, m := range models {
		labels[mi] = m
		if m == "" {
			labels[mi] = "(no model name)"
		}
	}
	size := func(r *Run) float64 { return float64(r.BatchSize) }

	tp := &chart{
		Title: "ort-floor: rows/s against batch size",
		Sub:   "ONNX Runtime in-process; dashed: the model's best gateway rows/s",
		W:     640, H: 320,
	}
	var ys []float64
	refs := make([]*Run, len(models))
	for mi, m := range models {
		for _, r := range perModel[mi] {
			ys = append(ys, r.RowsPerS)
		}
		if g := best(runs, func(r *Run) bool { return r.Kind == KindGateway && r.Model == m }, moreRows); g != nil && g.RowsPerS > 0 {
			refs[mi] = g
			ys = append(ys, g.RowsPerS)
		}
	}
	p := newPlot(tp, xsc, autoScale(ys, 30, 6), compactTick, 10, 16, 44)
	p.axes(axisTitle("batch size", p.x), axisTitle("rows/s", p.y), compactTick, compactTick)
	for mi, pts := range perModel {
		kc := "k" + strconv.Itoa(mi%paletteSize)
		p.runs(pts, size, func(r *Run) float64 { return r.RowsPerS }, "ln "+kc)
		for _, r := range pts {
			p.dot(size(r), r.RowsPerS, 3.2, "dot "+kc, r,
				fmt.Sprintf("%s\nbatch %d: %s rows/s", r.Name, r.BatchSize, compact(r.RowsPerS)))
		}
		tp.Legend = append(tp.Legend, legendKey{Class: "ln " + kc, Label: labels[mi]})
		if g := refs[mi]; g != nil {
			if y, ok := p.y.pos(g.RowsPerS); ok {
				tp.Segs = append(tp.Segs, svgSeg{X1: p.l, Y1: y, X2: p.r, Y2: y, Class: "ref " + kc})
				tp.Texts = append(tp.Texts, svgText{
					X: p.r - 4, Y: y - 4, Anchor: "end", Class: "reflbl",
					S: fmt.Sprintf("%s gateway best %s rows/s", labels[mi], compact(g.RowsPerS)),
				})
			}
		}
	}

	lc := &chart{
		Title: "ort-floor: latency of one call against batch size",
		Sub:   "ONNX Runtime in-process; what a batch costs the requests in it",
		W:     640, H: 320,
	}
	var ls []float64
	for _, pts := range perModel {
		for _, r := range pts {
			ls = append(ls, r.Latency.P50, r.Latency.P99)
		}
	}
	q := newPlot(lc, xsc, autoScale(ls, 10, 6), latencyTick, 10, 16, 44)
	q.axes(axisTitle("batch size", q.x), axisTitle("latency per call", q.y), compactTick, latencyTick)
	for mi, pts := range perModel {
		kc := "k" + strconv.Itoa(mi%paletteSize)
		q.runs(pts, size, func(r *Run) float64 { return measured(r.Latency.P50) }, "ln "+kc)
		q.runs(pts, size, func(r *Run) float64 { return measured(r.Latency.P99) }, "ln "+kc+" p99")
		for _, r := range pts {
			q.dot(size(r), measured(r.Latency.P50), 3, "dot "+kc, r,
				fmt.Sprintf("%s\nbatch %d: p50 %s per call", r.Name, r.BatchSize, latency(r.Latency.P50)))
			q.dot(size(r), measured(r.Latency.P99), 3, "dot dp99 "+kc, r,
				fmt.Sprintf("%s\nbatch %d: p99 %s per call", r.Name, r.BatchSize, latency(r.Latency.P99)))
		}
		lc.Legend = append(lc.Legend, legendKey{Class: "ln " + kc, Label: labels[mi]})
	}
	lc.Styles = []legendKey{{"ln kn", "p50"}, {"ln kn p99", "p99"}}
	return []*chart{tp, lc}
}

// timelineChart draws p50 and p99 per interval over the run, and the
// throughput in a strip below sharing the time axis.
func timelineChart(r *Run) *chart {
	if len(r.Timeline) == 0 {
		return nil
	}
	c := &chart{Title: r.Name, W: 420, H: 250, Warn: r.Flagged}
	n := len(r.Timeline)
	ts, p50, p99, tp := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	// shed is the rate of shed requests per interval (overload runs).
	var shed []float64
	for i, pt := range r.Timeline {
		ts[i], p50[i], p99[i], tp[i] = pt.TS, measured(pt.P50US), measured(pt.P99US), pt.ThroughputRPS
		if pt.Shed > 0 && shed == nil {
			shed = make([]float64, n)
		}
	}
	if shed != nil {
		prev := 0.0
		for i, pt := range r.Timeline {
			if d := pt.TS - prev; d > 0 && finite(d) {
				shed[i] = float64(pt.Shed) / d
			}
			prev = pt.TS
		}
	}
	xs := linearScale(ts, 6)
	top := autoScale(append(slices.Clone(p50), p99...), 10, 4)
	bot := linearScale(append(slices.Clone(tp), shed...), 2)
	left := leftFor(max(labelWidth(top, latencyTick), labelWidth(bot, compactTick)))
	up := &plot{c: c, x: xs, y: top, l: left, t: 10, r: c.W - 12, b: 148}
	down := &plot{c: c, x: xs, y: bot, l: left, t: 168, r: c.W - 12, b: 208}
	up.place()
	down.place()
	up.axes("", axisTitle("latency", top), nil, latencyTick)
	down.axes("seconds since start", "req/s", compactTick, compactTick)
	down.area(ts, tp, "area k2")
	down.series(ts, tp, "ln k2 thin", true)
	if shed != nil {
		down.series(ts, shed, "ln k5 thin p99", true)
	}
	up.series(ts, p50, "ln k0", true)
	up.series(ts, p99, "ln k1", true)
	errs := int64(0)
	for _, pt := range r.Timeline {
		if pt.Errors <= 0 {
			continue
		}
		errs += pt.Errors
		if x, ok := down.x.pos(pt.TS); ok {
			c.Rects = append(c.Rects, svgRect{
				X: x - 1.5, Y: down.b - 7, W: 3, H: 7, Class: "err",
				Tip: fmt.Sprintf("%s errors in the interval ending at %s s", thousands(pt.Errors), sig3(pt.TS)),
			})
		}
	}
	c.Sub = plural(n, "interval") + " · " + loadOf(r)
	if r.Kind == KindORTFloor {
		c.Sub = plural(n, "interval") + " · batch " + strconv.Itoa(r.BatchSize)
	}
	c.Legend = []legendKey{{"ln k0", "p50"}, {"ln k1", "p99"}, {"ln k2", "req/s"}}
	if shed != nil {
		c.Legend[2].Label = "accepted req/s"
		c.Legend = append(c.Legend, legendKey{"ln k5 p99", "shed/s"})
	}
	if errs > 0 {
		c.Legend = append(c.Legend, legendKey{"errkey", thousands(errs) + " errors"})
	}
	return c
}

// histogramChart draws the latency distribution of a run on a log latency
// axis, with its p50, p99 and p99.9 marked.
func histogramChart(r *Run) *chart {
	if len(r.Histogram) == 0 {
		return nil
	}
	bins := slices.DeleteFunc(slices.Clone(r.Histogram), func(b HistogramBin) bool {
		return !finite(b.UpToUS) || b.UpToUS <= 0
	})
	slices.SortStableFunc(bins, func(a, b HistogramBin) int { return cmp.Compare(a.UpToUS, b.UpToUS) })
	c := &chart{Title: r.Name, W: 420, H: 204, Warn: r.Flagged}
	if len(bins) == 0 {
		c.Note = "No bin has a positive, finite latency bound."
		return c
	}
	// A bin starts where the previous one ends; the first one is taken
	// as wide as the second, on the log axis, but at most a factor of two.
	lows := make([]float64, len(bins))
	first := 2.0
	if len(bins) > 1 && bins[0].UpToUS > 0 && bins[1].UpToUS > bins[0].UpToUS {
		first = math.Min(bins[1].UpToUS/bins[0].UpToUS, 2)
	}
	lows[0] = bins[0].UpToUS / first
	var xs, counts []float64
	var total int64
	for i, b := range bins {
		if i > 0 {
			lows[i] = bins[i-1].UpToUS
		}
		if b.Count > 0 {
			xs = append(xs, lows[i], b.UpToUS)
			counts = append(counts, float64(b.Count))
			total += b.Count
		}
	}
	if len(xs) == 0 {
		c.Note = "Every bin is empty."
		return c
	}
	xsc := logScale(append(xs, r.Latency.P50, r.Latency.P99, r.Latency.P999), 6)
	var ysc scale
	lo, hi := extent(counts, true)
	if hi/lo >= 50 {
		ysc = logScale(append(counts, lo/2), 4)
	} else {
		ysc = linearScale(counts, 4)
	}
	p := newPlot(c, xsc, ysc, countTick, 30, 12, 40)
	p.axes("latency", axisTitle("requests", ysc), latencyTick, countTick)
	for i, b := range bins {
		if b.Count <= 0 {
			continue
		}
		x0, x1 := p.x.clamp(lows[i]), p.x.clamp(b.UpToUS)
		y := p.y.clamp(float64(b.Count))
		w := math.Max(x1-x0-0.6, 1)
		c.Rects = append(c.Rects, svgRect{
			X: x0 + 0.3, Y: y, W: w, H: math.Max(p.b-y, 0.5), Class: "bar",
			Tip: fmt.Sprintf("%s requests (%s) between %s and %s", thousands(b.Count),
				percent(float64(b.Count)/float64(total)), latency(lows[i]), latency(b.UpToUS)),
		})
	}
	marks := []struct {
		name string
		v    float64
	}{{"p50", r.Latency.P50}, {"p99", r.Latency.P99}, {"p99.9", r.Latency.P999}}
	// Label the marks above the plot, each in the first row where the
	// label overlaps no other label and its line crosses none below.
	var rows [2][][2]float64
	free := func(row int, x0, x1, x float64) bool {
		for j, spans := range rows {
			for _, sp := range spans {
				if (j == row && x0 < sp[1]+6 && x1 > sp[0]-6) || (j > row && x > sp[0]-2 && x < sp[1]+2) {
					return false
				}
			}
		}
		return true
	}
	for _, m := range marks {
		x, ok := p.x.pos(m.v)
		if !ok || x < p.l || x > p.r {
			continue
		}
		t := svgText{X: x + 3, Class: "marklbl", S: m.name}
		w := 5.5 * float64(len([]rune(t.S)))
		x0, x1 := x+3, x+3+w
		if x1 > c.W-2 {
			t.X, t.Anchor = x-3, "end"
			x0, x1 = x-3-w, x-3
		}
		row := len(rows) - 1
		for i := range rows {
			if free(i, x0, x1, x) {
				row = i
				break
			}
		}
		rows[row] = append(rows[row], [2]float64{x0, x1})
		for j := row + 1; j < len(rows); j++ {
			rows[j] = append(rows[j], [2]float64{x - 1, x + 1})
		}
		t.Y = 10 + 11*float64(row)
		c.Segs = append(c.Segs, svgSeg{X1: x, Y1: t.Y - 8, X2: x, Y2: p.b, Class: "mark"})
		c.Texts = append(c.Texts, t)
	}
	c.Sub = fmt.Sprintf("%s requests · p50 %s · p99 %s · p99.9 %s", compact(float64(total)),
		measuredLatency(r.Latency.P50), measuredLatency(r.Latency.P99), measuredLatency(r.Latency.P999))
	return c
}

// batchChart draws the share of server executions per batch-size bucket.
func batchChart(r *Run) *chart {
	bins := slices.DeleteFunc(slices.Clone(r.Batches), func(b BatchBin) bool {
		return math.IsNaN(b.Size) || !finite(b.Count) || b.Count < 0
	})
	if len(bins) == 0 {
		return nil
	}
	slices.SortStableFunc(bins, func(a, b BatchBin) int { return cmp.Compare(a.Size, b.Size) })
	var total, rows float64
	for _, b := range bins {
		total += b.Count
		if finite(b.Size) {
			rows += b.Count * b.Size
		}
	}
	c := &chart{Title: r.Name, W: 420, H: 190, Warn: r.Flagged}
	if total <= 0 {
		c.Note = "No batch was executed."
		return c
	}
	shares := make([]float64, len(bins))
	for i, b := range bins {
		shares[i] = 100 * b.Count / total
	}
	ysc := linearScale(shares, 4)
	// A categorical x axis: one slot per bucket.
	xsc := scale{lo: 0, hi: float64(len(bins))}
	p := newPlot(c, xsc, ysc, percentTick, 10, 12, 40)
	p.axes("", "% of batches", nil, percentTick)
	slot := (p.r - p.l) / float64(len(bins))
	labels := make([]string, len(bins))
	width := 0
	for i, b := range bins {
		labels[i] = "≤" + compactTick(b.Size)
		if !finite(b.Size) {
			labels[i] = "more"
		}
		width = max(width, len([]rune(labels[i])))
	}
	every := int(math.Ceil(float64(width*6+6) / slot))
	for i, b := range bins {
		x := p.l + slot*float64(i)
		y := p.y.clamp(shares[i])
		if b.Count > 0 {
			c.Rects = append(c.Rects, svgRect{
				X: x + slot*0.12, Y: y, W: math.Max(slot*0.76, 1), H: math.Max(p.b-y, 0.5), Class: "bar2",
				Tip: fmt.Sprintf("batch size %s: %s executions (%s)", labels[i], compact(b.Count), percent(b.Count/total)),
			})
		}
		if i%max(every, 1) == 0 {
			c.Texts = append(c.Texts, svgText{X: x + slot/2, Y: p.b + 14, Anchor: "middle", Class: "tick", S: labels[i]})
		}
	}
	c.Texts = append(c.Texts, svgText{X: (p.l + p.r) / 2, Y: p.b + 31, Anchor: "middle", Class: "axt", S: "batch size (bucket upper bound)"})
	c.Sub = fmt.Sprintf("%s executions · about %s rows per batch", compact(total), sig3(rows/total))
	if r.Server != nil && r.Server.AvgBatch > 0 {
		c.Sub = fmt.Sprintf("%s executions · average batch %s", compact(total), sig3(r.Server.AvgBatch))
	}
	return c
}

// scale maps values to pixels, linearly or by log10. The zero value is
// not usable; build one with linearScale, logScale or autoScale and give
// it pixels with plot.place.
type scale struct {
	lo, hi float64 // domain
	log    bool
	p0, p1 float64 // pixels of lo and hi
	ticks  []float64
}

// pos returns the pixel of v, or false when v cannot be placed: not
// finite, or not positive on a log scale.
func (s *scale) pos(v float64) (float64, bool) {
	if !finite(v) {
		return 0, false
	}
	var t float64
	if s.log {
		if v <= 0 {
			return 0, false
		}
		t = (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	} else {
		t = (v - s.lo) / (s.hi - s.lo)
	}
	px := s.p0 + t*(s.p1-s.p0)
	if !finite(px) {
		return 0, false
	}
	return px, true
}

// clamp returns the pixel of v held within the axis; values that cannot
// be placed go to its start (its end for +Inf).
func (s *scale) clamp(v float64) float64 {
	px, ok := s.pos(v)
	if !ok {
		if math.IsInf(v, 1) {
			return s.p1
		}
		return s.p0
	}
	return math.Min(math.Max(px, math.Min(s.p0, s.p1)), math.Max(s.p0, s.p1))
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// extent returns the smallest and largest finite values of vs (positive
// ones only when positive is set), or 0, 0 when there are none.
func extent(vs []float64, positive bool) (lo, hi float64) {
	first := true
	for _, v := range vs {
		if !finite(v) || (positive && v <= 0) {
			continue
		}
		if first {
			lo, hi, first = v, v, false
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

// autoScale is a log scale when the positive values span at least ratio,
// and a linear scale from zero otherwise.
func autoScale(vs []float64, ratio float64, maxTicks int) scale {
	lo, hi := extent(vs, true)
	if lo > 0 && hi/lo >= ratio {
		return logScale(vs, maxTicks)
	}
	return linearScale(vs, maxTicks)
}

// linearScale spans zero and every finite value of vs with round ticks.
func linearScale(vs []float64, maxTicks int) scale {
	lo, hi := extent(vs, false)
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if hi == lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / float64(max(maxTicks, 1)))
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	if !finite(step) || !finite(lo) || !finite(hi) || hi <= lo {
		return scale{lo: 0, hi: 1, ticks: []float64{0, 1}}
	}
	s := scale{lo: lo, hi: hi}
	for i := 0; ; i++ {
		// Round away the binary noise: 3×0.2 is 0.6, not 0.6000000000000001.
		t, _ := strconv.ParseFloat(strconv.FormatFloat(lo+float64(i)*step, 'g', 12, 64), 64)
		if t > hi+step/2 || i > 100 {
			break
		}
		s.ticks = append(s.ticks, t)
	}
	return s
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || !finite(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	default:
		return 10 * p
	}
}

// logScale spans the positive finite values of vs, with a margin of 4%
// of the span at either end, and ticks at round values: 1-2-5, 1-3 or
// decades, whichever gives a readable number.
func logScale(vs []float64, maxTicks int) scale {
	lo, hi := extent(vs, true)
	switch {
	case lo <= 0 || !finite(hi*4) || lo/4 <= 0:
		lo, hi = 1, 10
	case lo == hi:
		lo, hi = lo/2, hi*2
	}
	dlo, dhi := lo, hi
	pad := math.Pow(10, max(0.04*math.Log10(hi/lo), 0.02))
	if finite(hi*pad) && lo/pad > 0 {
		lo, hi = lo/pad, hi*pad
	}
	s := scale{lo: lo, hi: hi, log: true}
	series := [][]float64{{1, 2, 5}, {1, 3}, {1}}
	for _, ms := range series {
		if t := logTicks(lo, hi, ms); len(t) >= 3 && len(t) <= maxTicks {
			s.ticks = t
			return s
		}
	}
	if decades := logTicks(lo, hi, []float64{1}); len(decades) > maxTicks {
		every := (len(decades) + maxTicks - 1) / max(maxTicks, 1)
		for i := 0; i < len(decades); i += every {
			s.ticks = append(s.ticks, decades[i])
		}
		return s
	}
	for _, ms := range append(series, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		if t := logTicks(lo, hi, ms); len(t) >= 2 && len(t) <= maxTicks {
			s.ticks = t
			return s
		}
	}
	s.ticks = []float64{dlo, dhi}
	return s
}

// logTicks returns the values m×10^k within [lo, hi] for m in ms.
func logTicks(lo, hi float64, ms []float64) []float64 {
	if lo <= 0 || !finite(lo) || !finite(hi) {
		return nil
	}
	var out []float64
	for e := math.Floor(math.Log10(lo)) - 1; e <= math.Ceil(math.Log10(hi))+1; e++ {
		for _, m := range ms {
			if v := m * math.Pow(10, e); v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
				out = append(out, v)
			}
		}
	}
	return out
}

// floor125 returns the largest 1, 2 or 5 times a power of ten at most v.
func floor125(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)+1e-9))
	switch f := v / p; {
	case f >= 5-1e-9:
		return 5 * p
	case f >= 2-1e-9:
		return 2 * p
	case f >= 1-1e-9:
		return p
	default:
		return p / 2
	}
}

// ceil125 returns the smallest 1, 2 or 5 times a power of ten at least v.
func ceil125(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)+1e-9))
	switch f := v / p; {
	case f <= 1+1e-9:
		return p
	case f <= 2+1e-9:
		return 2 * p
	case f <= 5+1e-9:
		return 5 * p
	default:
		return 10 * p
	}
}

// plot is one rectangular plotting area of a chart.
type plot struct {
	c          *chart
	x, y       scale
	l, t, r, b float64 // edges of the area in pixels
}

// newPlot fits a plot into c, leaving room on the left for the y tick
// labels that yf writes, and the given margins elsewhere.
func newPlot(c *chart, x, y scale, yf func(float64) string, top, right, bottom float64) *plot {
	p := &plot{c: c, x: x, y: y, l: leftFor(labelWidth(y, yf)), t: top, r: c.W - right, b: c.H - bottom}
	p.place()
	return p
}

// labelWidth is the length in characters of the widest tick label of s.
func labelWidth(s scale, f func(float64) string) int {
	w := 1
	for _, t := range s.ticks {
		w = max(w, len([]rune(f(t))))
	}
	return w
}

// leftFor is the left margin that holds the y axis title and tick labels
// of the given width in characters.
func leftFor(width int) float64 { return 26 + 6*float64(width) }

// place gives the scales of p the pixels of its area.
func (p *plot) place() {
	p.x.p0, p.x.p1 = p.l, p.r
	p.y.p0, p.y.p1 = p.b, p.t
}

// axes draws grid lines, ticks, tick labels and titles. A nil xf leaves
// the x axis unlabelled.
func (p *plot) axes(xTitle, yTitle string, xf, yf func(float64) string) {
	c := p.c
	for _, t := range placeTicks(&p.y, p.t, p.b, yf, func(string) float64 { return 13 }) {
		c.Segs = append(c.Segs, svgSeg{X1: p.l, Y1: t.px, X2: p.r, Y2: t.px, Class: "grid"})
		c.Texts = append(c.Texts, svgText{X: p.l - 6, Y: t.px + 3.5, Anchor: "end", Class: "tick", S: t.s})
	}
	if xf != nil {
		for _, t := range placeTicks(&p.x, p.l, p.r, xf, func(s string) float64 { return textWidth(s) + 10 }) {
			c.Segs = append(c.Segs, svgSeg{X1: t.px, Y1: p.b, X2: t.px, Y2: p.b + 4, Class: "axis"})
			c.Texts = append(c.Texts, svgText{X: t.px, Y: p.b + 15, Anchor: "middle", Class: "tick", S: t.s})
		}
	}
	c.Segs = append(c.Segs,
		svgSeg{X1: p.l, Y1: p.b, X2: p.r, Y2: p.b, Class: "axis"},
		svgSeg{X1: p.l, Y1: p.t, X2: p.l, Y2: p.b, Class: "axis"},
	)
	if xTitle != "" {
		c.Texts = append(c.Texts, svgText{X: (p.l + p.r) / 2, Y: p.b + 31, Anchor: "middle", Class: "axt", S: xTitle})
	}
	if yTitle != "" {
		c.Texts = append(c.Texts, svgText{X: 11, Y: (p.t + p.b) / 2, Anchor: "middle", Class: "axt", S: yTitle, Vertical: true})
	}
}

// placedTick is a tick with its pixel and label.
type placedTick struct {
	px float64
	s  string
}

// placeTicks returns the ticks of s that fall within pixels [a, b] and
// have a label, keeping every n-th one so that labels taking size pixels
// along the axis do not overlap.
func placeTicks(s *scale, a, b float64, f func(float64) string, size func(string) float64) []placedTick {
	var ts []placedTick
	need := 0.0
	for _, v := range s.ticks {
		px, ok := s.pos(v)
		if !ok || px < min(a, b)-0.5 || px > max(a, b)+0.5 {
			continue
		}
		if lbl := f(v); lbl != "" {
			ts = append(ts, placedTick{px, lbl})
			need = max(need, size(lbl))
		}
	}
	every := 1
	for i := 1; i < len(ts); i++ {
		for math.Abs(ts[i].px-ts[i-1].px)*float64(every) < need && every < len(ts) {
			every++
		}
	}
	out := ts[:0]
	for i, t := range ts {
		if i%every == 0 {
			out = append(out, t)
		}
	}
	return out
}

// textWidth estimates the width in pixels of a tick label.
func textWidth(s string) float64 { return 6 * float64(len([]rune(s))) }

// series draws ys against xs as polylines, broken where a value cannot be
// placed; a point with no placed neighbour becomes a dot when lone is set.
func (p *plot) series(xs, ys []float64, class string, lone bool) {
	var cur []string
	var last [2]float64
	flush := func() {
		switch {
		case len(cur) > 1:
			p.c.Lines = append(p.c.Lines, svgPoly{Points: strings.Join(cur, " "), Class: class})
		case len(cur) == 1 && lone:
			p.c.Dots = append(p.c.Dots, svgDot{X: last[0], Y: last[1], R: 2.5, Class: strings.Replace(class, "ln ", "dot ", 1)})
		}
		cur = cur[:0]
	}
	for i := range xs {
		x, okx := p.x.pos(xs[i])
		y, oky := p.y.pos(ys[i])
		if !okx || !oky {
			flush()
			continue
		}
		cur = append(cur, coord(x)+","+coord(y))
		last = [2]float64{x, y}
	}
	flush()
}

// runs draws y(r) against x(r) over rs as a line.
func (p *plot) runs(rs []*Run, x, y func(*Run) float64, class string) {
	xs, ys := make([]float64, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		xs[i], ys[i] = x(r), y(r)
	}
	p.series(xs, ys, class, false)
}

// dot marks the point (x, y) of run r with a tooltip, ringed in red when
// r is flagged; a point that cannot be placed is left out.
func (p *plot) dot(x, y, radius float64, class string, r *Run, tip string) {
	px, okx := p.x.pos(x)
	py, oky := p.y.pos(y)
	if !okx || !oky {
		return
	}
	if r.Flagged != "" {
		class += " flag"
		tip += "\n⚑ " + r.Flagged
	}
	p.c.Dots = append(p.c.Dots, svgDot{X: px, Y: py, R: radius, Class: class, Tip: tip})
}

// area fills between ys and the bottom of the plot.
func (p *plot) area(xs, ys []float64, class string) {
	var pts []string
	first, last := 0.0, 0.0
	for i := range xs {
		x, okx := p.x.pos(xs[i])
		y, oky := p.y.pos(ys[i])
		if !okx || !oky {
			continue
		}
		if len(pts) == 0 {
			first = x
		}
		last = x
		pts = append(pts, coord(x)+","+coord(y))
	}
	if len(pts) < 2 {
		return
	}
	pts = append(pts, coord(last)+","+coord(p.b), coord(first)+","+coord(p.b))
	p.c.Areas = append(p.c.Areas, svgPoly{Points: strings.Join(pts, " "), Class: class})
}

// axisTitle notes a log scale in the axis title.
func axisTitle(t string, s scale) string {
	if s.log {
		return t + " (log)"
	}
	return t
}

// coord formats a pixel coordinate; it never writes NaN or Inf.
func coord(v float64) string {
	if !finite(v) {
		v = 0
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// roundSig3 rounds v to three significant digits.
func roundSig3(v float64) float64 {
	if v == 0 || !finite(v) {
		return v
	}
	p := math.Pow(10, math.Floor(math.Log10(math.Abs(v)))-2)
	return math.Round(v/p) * p
}

// sig3 formats v with three significant digits (all digits above 999);
// "—" stands for a value that is not finite.
func sig3(v float64) string {
	if !finite(v) {
		return "—"
	}
	v = roundSig3(v)
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// trim drops trailing zeros after a decimal point.
func trim(s string) string {
	if strings.Contains(s, ".") && !strings.ContainsAny(s, "e") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// measured returns a latency, or NaN, which charts leave out, when it is
// not positive: no request takes no time, so zero means not measured.
func measured(us float64) float64 {
	if us <= 0 {
		return math.NaN()
	}
	return us
}

// measuredLatency formats a latency for the table, "—" when not measured.
func measuredLatency(us float64) string { return latency(measured(us)) }

// plural writes n and noun, with an s when n is not one.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// latency formats microseconds in µs, ms or s with three significant digits.
func latency(us float64) string { return latencyUnit(us, false) }

// latencyTick is latency without trailing zeros, for axis ticks.
func latencyTick(us float64) string { return latencyUnit(us, true) }

// latencyUnit formats microseconds in the largest unit that keeps the
// figure at 1 or more; short drops trailing zeros.
func latencyUnit(us float64, short bool) string {
	if !finite(us) {
		return "—"
	}
	f := sig3
	if short {
		f = func(v float64) string { return trim(sig3(v)) }
	}
	a := math.Abs(roundSig3(us))
	switch {
	case a == 0:
		return "0"
	case a < 1e3:
		return f(us) + " µs"
	case a < 1e6:
		return f(us/1e3) + " ms"
	default:
		return f(us/1e6) + " s"
	}
}

// compact formats v with three significant digits and a k, M or G suffix.
func compact(v float64) string {
	if !finite(v) {
		return "—"
	}
	a := math.Abs(roundSig3(v))
	switch {
	case a < 1e3 && v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1e9:
		return sig3(v/1e9) + "G"
	case a >= 1e6:
		return sig3(v/1e6) + "M"
	case a >= 1e3:
		return sig3(v/1e3) + "k"
	default:
		return sig3(v)
	}
}

// compactTick is compact without trailing zeros, for axis ticks.
func compactTick(v float64) string {
	s := compact(v)
	n := strings.TrimRight(s, "kMG")
	return trim(n) + s[len(n):]
}

// countTick labels a count axis: no fractions.
func countTick(v float64) string {
	if v < 1 && v != 0 {
		return ""
	}
	return compactTick(v)
}

// percentTick labels a percentage axis.
func percentTick(v float64) string { return trim(sig3(v)) + "%" }

// percent formats a fraction as a percentage.
func percent(f float64) string {
	switch {
	case !finite(f):
		return "—"
	case f > 0 && f < 0.0001:
		return "<0.01%"
	}
	return trim(sig3(100*f)) + "%"
}

// ratio formats a/b as a multiplier.
func ratio(a, b float64) string {
	if b == 0 || !finite(a/b) {
		return "—"
	}
	return sig3(a/b) + "×"
}

// signed puts a plus on a formatted positive quantity.
func signed(s string) string {
	if s == "—" || s == "0" || strings.HasPrefix(s, "-") {
		return s
	}
	return "+" + s
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// pageTemplate renders a page; f formats a pixel coordinate.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"f": coord}).Parse(pageHTML))

// pageHTML is well-formed XML as well as HTML, so that tests can check its
// structure with encoding/xml.
const pageHTML = `{{define "chart"}}<figure class="chart">
<figcaption><div class="ct">{{.Title}}</div>{{with .Sub}}<div class="cs">{{.}}</div>{{end}}{{with .Warn}}<div class="cw">⚑ {{.}}</div>{{end}}</figcaption>
{{if .Note}}<p class="note">{{.Note}}</p>{{else}}<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{f .W}} {{f .H}}" width="{{f .W}}" height="{{f .H}}" role="img" aria-label="{{.Title}}">
{{range .Segs}}<line x1="{{f .X1}}" y1="{{f .Y1}}" x2="{{f .X2}}" y2="{{f .Y2}}" class="{{.Class}}"/>{{end}}
{{range .Areas}}<polygon points="{{.Points}}" class="{{.Class}}"/>{{end}}
{{range .Rects}}<rect x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}" class="{{.Class}}">{{with .Tip}}<title>{{.}}</title>{{end}}</rect>{{end}}
{{range .Lines}}<polyline points="{{.Points}}" class="{{.Class}}"/>{{end}}
{{range .Dots}}<circle cx="{{f .X}}" cy="{{f .Y}}" r="{{f .R}}" class="{{.Class}}">{{with .Tip}}<title>{{.}}</title>{{end}}</circle>{{end}}
{{range .Texts}}<text x="{{f .X}}" y="{{f .Y}}" class="{{.Class}}"{{with .Anchor}} text-anchor="{{.}}"{{end}}{{if .Vertical}} transform="rotate(-90 {{f .X}} {{f .Y}})"{{end}}>{{.S}}</text>{{end}}
</svg>{{end}}
{{with .Legend}}<div class="legend">{{range .}}<span class="key"><i class="{{.Class}}"></i>{{.Label}}</span>{{end}}</div>{{end}}
{{with .Styles}}<div class="legend styles">{{range .}}<span class="key"><i class="{{.Class}}"></i>{{.Label}}</span>{{end}}</div>{{end}}
</figure>{{end}}{{define "table"}}<div class="rt"><h4>{{.Title}}</h4>{{with .Caveat}}<p class="note">{{.}}</p>{{end}}{{if .Note}}<p class="note">{{.Note}}</p>{{else}}<table class="small">
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range .}}<td{{with .Class}} class="{{.}}"{{end}}{{with .Tip}} title="{{.}}"{{end}}>{{.S}}</td>{{end}}</tr>
{{end}}</tbody></table>{{end}}</div>{{end}}{{define "section"}}{{range .Charts}}{{template "chart" .}}{{end}}{{end}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{{.Title}}</title>
<style>
:root{--ink:#111827;--mute:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--flag:#dc2626}
*{box-sizing:border-box}
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#fff}
main{max-width:1600px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:21px;margin:0 0 2px}h2{font-size:16px;margin:30px 0 4px;padding-top:10px;border-top:1px solid var(--line)}
h3{font-size:14px;margin:14px 0 6px}h4{font-size:12px;margin:0 0 4px;color:#374151;font-weight:600}
.lead{color:var(--mute);margin:0 0 12px}
nav a{color:#2563eb;text-decoration:none;margin-right:14px;font-size:12.5px}
.env{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:2px 18px;margin:10px 0;padding:10px 14px;background:var(--bg);border:1px solid var(--line);border-radius:6px}
.env div{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.env b{font-weight:500;color:var(--mute);margin-right:6px}
.cmd{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:7px 10px;border-radius:4px;white-space:pre-wrap;word-break:break-all;margin:6px 0}
.warn{background:#fef3c7;border:1px solid #f59e0b;color:#78350f;padding:8px 12px;border-radius:6px;margin:10px 0}
.flagbox{background:#fef2f2;border:1px solid #fca5a5;padding:8px 12px;border-radius:6px;margin:10px 0}
.flagbox ul{margin:4px 0 0;padding-left:20px}
.flag-t{color:var(--flag);font-weight:600}
.note{color:var(--mute);font-style:italic;margin:6px 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:#374151;background:#f3f4f6;white-space:nowrap;vertical-align:bottom}
tr.groups th{text-align:center;font-weight:500;color:var(--mute);border-bottom:0}tr.groups th[rowspan]{text-align:left;color:#374151;font-weight:600}
tr.groups th.num[rowspan]{text-align:right}
table.runs td{white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}td.em{font-weight:600}
table.runs{width:100%;font-size:12px}
.scroll{overflow-x:auto}
table.runs td.name{min-width:190px;max-width:320px;white-space:normal}table.runs td.kind{white-space:normal;min-width:120px}
table.runs tr.floor td{background:#f8fafc;color:#374151}
table.runs tr.flagged td{background:#fef2f2}table.runs tr.flagged td:first-child{box-shadow:inset 3px 0 var(--flag)}
.reason{display:block;color:var(--flag);font-size:11px}.notes{display:block;color:var(--mute);font-size:11px}
.mode{color:var(--mute)}.pm{color:var(--mute);font-size:10.5px;margin-left:3px}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;font-weight:600;white-space:nowrap}
.kg{background:#dbeafe;color:#1e40af}.kh{background:#e5e7eb;color:#374151}.ko{background:#ede9fe;color:#5b21b6}.kx{background:#fee2e2;color:#991b1b}
.tag{display:inline-block;font-size:10.5px;color:var(--mute);border:1px solid var(--line);border-radius:3px;padding:0 4px;margin:1px 0 0 3px}
.bad{color:var(--flag);font-weight:600}.mute{color:var(--mute)}
.sep{border-left:2px solid var(--line)}
.model{border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:0 0 12px}
.model h3{margin-top:0}.tables{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}
.rt{margin:0 0 6px;max-width:100%;overflow-x:auto}table.small{font-size:12px}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:18px}
.grid3{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px}
figure.chart{margin:0;padding:8px 10px;border:1px solid var(--line);border-radius:6px;background:#fff;min-width:0}
figure.chart svg{display:block;max-width:100%;height:auto;overflow:visible}
.ct{font-weight:600;font-size:12.5px;word-break:break-all}.cs{color:var(--mute);font-size:11.5px}.cw{color:var(--flag);font-size:11.5px;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:11.5px;color:#374151;margin-top:4px}.legend.styles{color:var(--mute);margin-top:2px}
.key{display:inline-flex;align-items:center;gap:5px}
.key i{display:inline-block;width:22px;height:0;border-top:2px solid var(--c)}.key i.p99{border-top-style:dashed}.key i.p999{border-top-style:dotted;border-top-width:3px}
.key i.flagkey{width:9px;height:9px;border:2px solid var(--flag);border-radius:50%}.key i.errkey{width:3px;height:10px;border:0;background:var(--flag)}
details>summary{cursor:pointer;color:#2563eb;margin:6px 0}
.grid{stroke:#eef0f3;stroke-width:1}.axis{stroke:#9ca3af;stroke-width:1}
.tick{font-size:10.5px;fill:#4b5563}.axt{font-size:11px;fill:#374151}
.k0{--c:#2563eb}.k1{--c:#ea580c}.k2{--c:#16a34a}.k3{--c:#9333ea}.k4{--c:#0891b2}
.k5{--c:#db2777}.k6{--c:#a16207}.k7{--c:#4f46e5}.k8{--c:#65a30d}.k9{--c:#0d9488}.kn{--c:#374151}.kf{--c:#64748b}
.ln{fill:none;stroke:var(--c);stroke-width:1.8;stroke-linejoin:round;stroke-linecap:round}.ln.thin{stroke-width:1.3}
.p99{stroke-dasharray:6 3}.p999{stroke-dasharray:1 3.5}
.dot{fill:var(--c);stroke:#fff;stroke-width:.8}.dot.dp99{fill:#fff;stroke:var(--c);stroke-width:1.4}
.dot.flag{stroke:var(--flag);stroke-width:2.2}
.area{fill:var(--c);opacity:.13;stroke:none}
.err{fill:var(--flag)}
.bar{fill:#93c5fd}.bar:hover,.bar2:hover{fill:#1d4ed8}.bar2{fill:#a78bfa}
.mark{stroke:#111827;stroke-width:1;stroke-dasharray:3 2}.marklbl{font-size:10px;fill:#111827}
.ref{stroke:var(--c);stroke-width:1.2;stroke-dasharray:7 4;opacity:.8}.reflbl{font-size:10.5px;fill:#374151}
circle:hover{stroke:#111827;stroke-width:1.5}
</style></head>
<body><main>
<h1>infergate bench report</h1>
<p class="lead">{{with .Env.Started}}Started {{.}} · {{end}}{{.RunsLine}}{{if .NFlagged}} · <span class="flag-t">{{.NFlagged}} flagged</span>{{end}}</p>
<nav>{{if .Sweeps}}<a href="#sweeps">sweeps</a>{{end}}<a href="#ratios">ratios</a><a href="#runs">runs</a><a href="#latency">latency vs throughput</a><a href="#ort">ort-floor</a><a href="#timelines">over time</a><a href="#histograms">distributions</a><a href="#batches">server batches</a></nav>
{{with .Env.Fields}}<div class="env">{{range .}}<div title="{{.V}}"><b>{{.K}}</b>{{.V}}</div>{{end}}</div>{{end}}
{{with .Env.Command}}<div class="cmd">{{.}}</div>{{end}}
{{if .Env.Shared}}<div class="warn"><b>Shared cores.</b> The load generator ran on the same cores as the server: its CPU use is taken from the gateway, so throughput is understated and tail latency overstated. Pin them apart for clean figures.</div>{{end}}
{{if .Flagged}}<div class="flagbox"><span class="flag-t">⚑ {{.FlaggedLine}}</span>: their figures are not clean.<ul>{{range .Flagged}}<li><a href="#{{.Anchor}}">{{.Name}}</a>: {{.Flagged}}</li>{{end}}{{with .FlaggedMore}}<li>and {{.}} more, marked in the table of runs</li>{{end}}</ul></div>{{end}}

{{with .Sweeps}}<h2 id="sweeps">Sweeps against a p99 bound</h2>
<div class="model">{{template "table" .}}</div>{{end}}

<h2 id="ratios">Ratios to the floors</h2>
<p class="lead">How close the gateway comes to a bare HTTP server (http-floor) and to ONNX Runtime called in-process (ort-floor). Flagged figures carry ⚑; clean runs are preferred when choosing the best.</p>
{{with .Targets}}<div class="model">{{template "table" .}}</div>{{end}}
{{if .Models}}{{range .Models}}<div class="model"><h3>{{.Model}}</h3><div class="tables">{{range .Tables}}{{template "table" .}}{{end}}</div></div>{{end}}{{else}}<p class="note">No gateway run: no ratio to compute.</p>{{end}}

<h2 id="runs">Runs</h2>
{{if .Rows}}<p class="lead">Latency percentiles in open loop are measured from each request's intended send time. Floors are shaded; flagged runs are marked red with their reason.</p>
<div class="scroll"><table class="runs"><thead>
<tr class="groups"><th rowspan="2">run</th><th rowspan="2">kind</th><th rowspan="2" title="closed loop: c=concurrency; open loop: offered rate">load</th><th rowspan="2" class="num">rows<br/>/req</th><th colspan="2" class="sep">throughput</th><th colspan="5" class="sep">latency</th><th colspan="2" class="sep">client</th><th colspan="6" class="sep" title="the server process's CPU time over the measured window (from /proc for the http-floor, from the gateway's /metrics), and averages over the step from the target's /metrics, or from its statistics extension where /metrics has none of infergate's series">server</th></tr>
<tr><th class="num sep">req/s</th><th class="num">rows/s</th><th class="num sep">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">p99.9</th><th class="num">max</th><th class="num sep">errors</th><th class="num">CPU cores</th><th class="num sep">CPU cores</th><th class="num" title="server CPU time per request it saw (answered, shed or failed)">CPU/req</th><th class="num sep">avg batch</th><th class="num">queue</th><th class="num">compute</th><th class="num" title="time from the end of the batch that answered a request to its caller running again">wake</th></tr></thead>
<tbody>{{range .Rows}}<tr id="{{.Anchor}}" class="{{if .Floor}}floor{{end}}{{if .Flagged}} flagged{{end}}"><td class="name">{{range $i, $p := .NameParts}}{{if $i}}<wbr/>{{end}}{{$p}}{{end}}{{with .Flagged}}<span class="reason">⚑ {{.}}</span>{{end}}{{with .Notes}}<span class="notes">{{range $i, $n := .}}{{if $i}} · {{end}}{{$n}}{{end}}</span>{{end}}</td>
<td class="kind"{{with .ConfigTip}} title="{{.}}"{{end}}><span class="badge {{.KindClass}}">{{.Kind}}</span>{{range .Tags}}<span class="tag">{{.}}</span>{{end}}</td><td{{with .LoadTip}} title="{{.}}"{{end}}><span class="mode">{{.Mode}}</span> {{.Load}}</td><td class="num">{{.Rows}}</td><td class="num sep" title="{{.NTip}}">{{.RPS}}{{with .RPSSpread}}<span class="pm">{{.}}</span>{{end}}</td><td class="num">{{.RowsS}}</td>
<td class="num sep"{{with .P50Tip}} title="{{.}}"{{end}}>{{.P50}}</td><td class="num">{{.P90}}</td><td class="num"{{with .P99Tip}} title="{{.}}"{{end}}>{{.P99}}</td><td class="num"{{with .P999Tip}} title="{{.}}"{{end}}>{{.P999}}</td><td class="num">{{.Max}}</td>
<td class="num sep{{if .ErrBad}} bad{{end}}"{{with .ErrTip}} title="{{.}}"{{end}}>{{.Errors}}</td><td class="num">{{.CPU}}</td><td class="num sep">{{.ServerCPU}}</td><td class="num">{{.ServerCPUPerReq}}</td>
{{if .HasServer}}<td class="num sep"{{with .ServerTip}} title="{{.}}"{{end}}>{{.Batch}}</td><td class="num">{{.Queue}}</td><td class="num">{{.Compute}}</td><td class="num">{{.Wake}}</td>{{else}}<td class="num sep">—</td><td class="num">—</td><td class="num">—</td><td class="num">—</td>{{end}}</tr>
{{end}}</tbody></table></div>{{else}}<p class="note">The report holds no run.</p>{{end}}

<h2 id="latency">Latency against throughput</h2>
{{if .LatTP}}<p class="lead">One colour per group of steps (kind, batching, cache, loop); each point is one step. Where the curve turns up, the gateway is saturated.</p>
<div class="grid2">{{range .LatTP}}{{template "chart" .}}{{end}}</div>{{else}}<p class="note">No load run: nothing to draw.</p>{{end}}

<h2 id="ort">ort-floor: rows/s against batch size</h2>
{{with .ORT}}<div class="grid2">{{range .}}{{template "chart" .}}{{end}}</div>{{else}}<p class="note">No ort-floor run.</p>{{end}}
<h2 id="timelines">Latency over time</h2>
{{with .Timeline}}{{if .Charts}}<details{{if .Open}} open=""{{end}}><summary>{{.Summary}}</summary><div class="grid3">{{template "section" .}}</div></details>{{else}}<p class="note">No run recorded a timeline.</p>{{end}}{{end}}

<h2 id="histograms">Latency distributions</h2>
{{with .Hist}}{{if .Charts}}<details{{if .Open}} open=""{{end}}><summary>{{.Summary}}</summary><div class="grid3">{{template "section" .}}</div></details>{{else}}<p class="note">No run recorded a latency histogram.</p>{{end}}{{end}}

<h2 id="batches">Server batch sizes</h2>
{{with .Batch}}{{if .Charts}}<details{{if .Open}} open=""{{end}}><summary>{{.Summary}}</summary><div class="grid3">{{template "section" .}}</div></details>{{else}}<p class="note">No run scraped the server's batch sizes.</p>{{end}}{{end}}

</main></body></html>
`

// roundsTip lists the ratio of each round, "" when there were none.
func roundsTip(rounds []float64) string {
	if len(rounds) < 2 {
		return ""
	}
	parts := make([]string, len(rounds))
	for i, x := range rounds {
		parts[i] = sig3(x)
	}
	return "rounds " + strings.Join(parts, ", ")
}
