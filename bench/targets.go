package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// The suite's targets: how close the gateway must come to its floors.
const (
	targetORTShare   = 0.8  // batched rows/s ÷ best ort-floor rows/s
	targetGainShare  = 0.8  // batching's gain ÷ ONNX Runtime's own gain
	targetHTTPShare  = 0.75 // batched req/s ÷ http-floor req/s
	targetCacheShare = 0.9  // cache hits req/s ÷ http-floor req/s
	targetIdleSlack  = 50.0 // µs over http-floor p50 + ort-floor b1 p50
)

// Target is one of the suite's targets checked on one run of it.
type Target struct {
	Model string `json:"model"`
	// Name says what is compared, e.g. "batched rows/s ÷ best ort-floor rows/s".
	Name string `json:"name"`
	// Value is the ratio, or the gateway's p50 in µs for the idle target;
	// Bound is what it must reach (at least; at most for the idle target).
	Value float64 `json:"value"`
	Bound float64 `json:"bound"`
	// Unit is "µs" for the idle target, "" for ratios, "-" for the
	// overload target, which has no single figure.
	Unit string `json:"unit,omitempty"`
	Met  bool   `json:"met"`
	// Detail gives the figures and the runs they come from.
	Detail string `json:"detail"`
}

// cleanClosedRun selects the unflagged closed-loop, one-row runs of model
// m and kind; for the gateway, those with batching and cache as given.
func cleanClosedRun(m, kind string, batching, cache bool) func(*Run) bool {
	return func(x *Run) bool {
		return x.Flagged == "" && x.Model == m && x.Kind == kind && x.Mode == ModeClosed && x.RowsPerRequest <= 1 &&
			(kind != KindGateway || (x.Batching == batching && x.Cache == cache))
	}
}

// CheckTargets checks the suite's targets for every model that r has the
// runs for, at the highest concurrency of its closed-loop, one-row runs:
// the batched gateway's throughput against the lower of its two floors
// (rows/s against the best ort-floor rows/s, and its gain over the
// unbatched gateway against ONNX Runtime's own gain from batch 1 to its
// best; or requests/s against the http-floor's), the cache hits'
// requests/s against the http-floor's, and at concurrency 1 its p50
// against the floors' p50s plus 50 µs; and that no overload run was
// flagged. Flagged runs are left out, so a target whose runs were all
// flagged is not checked.
func CheckTargets(r *Report) []Target {
	var out []Target
	runs := r.Runs
	clean := func(ok func(*Run) bool) func(*Run) bool {
		return func(x *Run) bool { return x.Flagged == "" && ok(x) }
	}
	for _, m := range distinct(runs, func(x *Run) bool { return x.Kind == KindGateway }, func(x *Run) string { return x.Model }) {
		closed := func(kind string, batching, cache bool) func(*Run) bool {
			return cleanClosedRun(m, kind, batching, cache)
		}
		batched := closed(KindGateway, true, false)
		conc := distinct(runs, batched, func(x *Run) int { return x.Concurrency })
		if len(conc) == 0 {
			continue
		}
		top := slices.Max(conc)
		at := func(ok func(*Run) bool, c int) *Run {
			return best(runs, func(x *Run) bool { return ok(x) && x.Concurrency == c }, moreRPS)
		}
		ort := clean(func(x *Run) bool { return x.Model == m && x.Kind == KindORTFloor })
		bo := best(runs, ort, moreRows)
		ob1 := best(runs, func(x *Run) bool { return ort(x) && x.BatchSize == 1 }, lowerP50)
		g := at(batched, top)
		u := at(closed(KindGateway, false, false), top)
		hf := at(closed(KindHTTPFloor, false, false), top)
		add := func(name string, value, bound float64, met bool, detail string) {
			out = append(out, Target{Model: m, Name: name, Value: value, Bound: bound, Met: met, Detail: detail})
		}
		addUS := func(name string, value, bound float64, met bool, detail string) {
			out = append(out, Target{Model: m, Name: name, Value: value, Bound: bound, Unit: "µs", Met: met, Detail: detail})
		}
		// The throughput target is set by the lower floor: a model that
		// costs more than HTTP (ranker) is held to ONNX Runtime's best and
		// to its gain from batching, a cheap one (ctr) to the bare server.
		ortBound := bo != nil && (hf == nil || bo.RowsPerS <= hf.ThroughputRPS)
		if ortBound {
			v := g.RowsPerS / bo.RowsPerS
			add("batched rows/s ÷ best ort-floor rows/s", v, targetORTShare, v >= targetORTShare,
				fmt.Sprintf("%s / %s (%s)", groupThousands(g.RowsPerS), groupThousands(bo.RowsPerS), bo.Name))
			if u != nil && ob1 != nil && u.RowsPerS > 0 && ob1.RowsPerS > 0 {
				gain, ortGain := g.RowsPerS/u.RowsPerS, bo.RowsPerS/ob1.RowsPerS
				v := gain / ortGain
				add("batching's gain ÷ ONNX Runtime's gain", v, targetGainShare, v >= targetGainShare,
					fmt.Sprintf("%.2f (%s ÷ %s) against %.2f (%s ÷ %s)", gain, g.Name, u.Name, ortGain, bo.Name, ob1.Name))
			}
		} else if hf != nil {
			v := g.ThroughputRPS / hf.ThroughputRPS
			add("batched req/s ÷ http-floor req/s", v, targetHTTPShare, v >= targetHTTPShare,
				fmt.Sprintf("%s / %s at %d connections", groupThousands(g.ThroughputRPS), groupThousands(hf.ThroughputRPS), top))
		}
		if hf != nil {
			if c := at(closed(KindGateway, false, true), top); c != nil {
				v := c.ThroughputRPS / hf.ThroughputRPS
				add("cache hits req/s ÷ http-floor req/s", v, targetCacheShare, v >= targetCacheShare,
					fmt.Sprintf("%s / %s at %d connections", groupThousands(c.ThroughputRPS), groupThousands(hf.ThroughputRPS), top))
			}
		}
		g1, hf1 := at(batched, 1), at(closed(KindHTTPFloor, false, false), 1)
		if g1 != nil && hf1 != nil && ob1 != nil {
			bound := hf1.Latency.P50 + ob1.Latency.P50 + targetIdleSlack
			addUS("idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs", g1.Latency.P50, bound, g1.Latency.P50 <= bound,
				fmt.Sprintf("%s against %s + %s + 50µs", formatUS(g1.Latency.P50), formatUS(hf1.Latency.P50), formatUS(ob1.Latency.P50)))
		}
	}
	for i := range runs {
		x := &runs[i]
		if x.Shed == nil || x.Requests == 0 {
			continue
		}
		detail := fmt.Sprintf("shed %.0f%%, shed p99 %s, accepted p99 %s", x.Shed.Fraction*100, formatUS(x.Shed.P99US), formatUS(x.Latency.P99))
		if x.Health != nil {
			detail += ", ready p99 " + formatUS(x.Health.P99US)
		}
		if x.Flagged != "" {
			detail += ": " + x.Flagged
		}
		out = append(out, Target{Model: x.Model, Name: "overload " + x.Name + " not flagged", Unit: "-", Met: x.Flagged == "", Detail: detail})
	}
	return out
}

// writeTargets writes ts as lines after the table, and caveat (see
// targetsCaveat) after them.
func writeTargets(w io.Writer, ts []Target, caveat string) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntargets:\n")
	for _, t := range ts {
		verdict := "met"
		if !t.Met {
			verdict = "NOT MET"
		}
		switch t.Unit {
		case "-":
			fmt.Fprintf(w, "  %-7s  %s: %s (%s)\n", verdict, t.Model, t.Name, t.Detail)
		case "µs":
			fmt.Fprintf(w, "  %-7s  %s: %s: %s, bound %s (%s)\n", verdict, t.Model, t.Name, formatUS(t.Value), formatUS(t.Bound), t.Detail)
		default:
			fmt.Fprintf(w, "  %-7s  %s: %s = %.2f, bound %.2f (%s)\n", verdict, t.Model, t.Name, t.Value, t.Bound, t.Detail)
		}
	}
	if caveat != "" {
		fmt.Fprintf(w, "  (%s)\n", caveat)
	}
}

// targetsCaveat returns what a reader of unmet targets must know about
// the host when the load generator and the gateway shared its cores, and
// "" otherwise: the floors did not have to share in the same way, so the
// ratios measure the host as well as the gateway.
func targetsCaveat(e *Env, ts []Target) string {
	if !e.SharedCores || !slices.ContainsFunc(ts, func(t Target) bool { return !t.Met }) {
		return ""
	}
	return "the load generator and the gateway shared these CPUs, while the ort-floor ran alone and the http-floor does almost no work per request: " +
		"the ratios measure the host as much as the gateway; unless they were already pinned apart, give the gateway CPUs of its own " +
		"(--server-cpus N, or taskset with --target) for figures to hold it to"
}

// writeCPUPerRequest writes, for every model with both, the server CPU
// per request of the batched and cached gateway runs against the
// http-floor's at the highest concurrency: where the load generator set
// the pace of the floor, this says what the throughput ratios cannot,
// how much more the gateway's own work costs per request.
func writeCPUPerRequest(w io.Writer, r *Report) {
	var lines []string
	for _, m := range distinct(r.Runs, func(x *Run) bool { return x.Kind == KindHTTPFloor }, func(x *Run) string { return x.Model }) {
		closed := func(kind string, batching, cache bool) func(*Run) bool {
			run := cleanClosedRun(m, kind, batching, cache)
			return func(x *Run) bool { return run(x) && x.ServerCPUPerRequestUS > 0 }
		}
		floors := closed(KindHTTPFloor, false, false)
		conc := distinct(r.Runs, floors, func(x *Run) int { return x.Concurrency })
		if len(conc) == 0 {
			continue
		}
		top := slices.Max(conc)
		at := func(ok func(*Run) bool) *Run {
			return best(r.Runs, func(x *Run) bool { return ok(x) && x.Concurrency == top }, moreRPS)
		}
		f := at(floors)
		for _, g := range []*Run{at(closed(KindGateway, true, false)), at(closed(KindGateway, false, true))} {
			if g != nil {
				lines = append(lines, fmt.Sprintf("  %s: %s ÷ %s = %.2f (%s ÷ %s)", m, formatUS(g.ServerCPUPerRequestUS), formatUS(f.ServerCPUPerRequestUS),
					g.ServerCPUPerRequestUS/f.ServerCPUPerRequestUS, g.Name, f.Name))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nserver CPU per request, gateway ÷ http-floor:\n%s\n", strings.Join(lines, "\n"))
}
