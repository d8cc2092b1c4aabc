package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
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
	run := closedRun(m, kind, batching, cache)
	return func(x *Run) bool { return x.Flagged == "" && run(x) }
}

// closedRun is cleanClosedRun with flagged runs too, for topConcurrency.
func closedRun(m, kind string, batching, cache bool) func(*Run) bool {
	return func(x *Run) bool {
		return x.Model == m && x.Kind == kind && x.Mode == ModeClosed && x.RowsPerRequest <= 1 &&
			(kind != KindGateway || (x.Batching == batching && x.Cache == cache))
	}
}

// topConcurrency returns the highest concurrency of the runs that sel
// selects, flagged ones too: the level a figure is read at, so that a
// flagged run there leaves its figure out rather than one at a lower level
// standing in for it. ok is false when sel selects none.
func topConcurrency(runs []Run, sel func(*Run) bool) (top int, ok bool) {
	conc := distinct(runs, sel, func(x *Run) int { return x.Concurrency })
	if len(conc) == 0 {
		return 0, false
	}
	return slices.Max(conc), true
}

// CheckTargets checks the suite's targets for every model that r has the
// runs for, at the highest concurrency of its closed-loop, one-row runs:
// the batched gateway's throughput against the lower of its two floors
// (rows/s against the best ort-floor rows/s, and its gain over the
// unbatched gateway against ONNX Runtime's own gain from batch 1 to its
// best; or requests/s against the http-floor's), the cache hits'
// requests/s against the http-floor's, and at concurrency 1 its p50
// against the floors' p50s plus 50 µs; and that no overload run was
// flagged (one that measured nothing is not met). Flagged runs are left
// out, so a target whose runs were all
// flagged is not checked. When the suite ran in rounds (Env.Rounds), each
// target is judged on each round's own figures (see judgeRounds).
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
		top, ok := topConcurrency(runs, closedRun(m, KindGateway, true, false))
		if !ok {
			continue
		}
		at := func(ok func(*Run) bool, c int) *Run {
			return best(runs, func(x *Run) bool { return ok(x) && x.Concurrency == c }, moreRPS)
		}
		ort := clean(func(x *Run) bool { return x.Model == m && x.Kind == KindORTFloor })
		bo := best(runs, ort, moreRows)
		ob1 := best(runs, func(x *Run) bool { return ort(x) && x.BatchSize == 1 }, lowerP50)
		g := at(batched, top)
		u := at(closed(KindGateway, false, false), top)
		hf := at(closed(KindHTTPFloor, false, false), top)
		// An http-floor run there that was flagged leaves the lower floor
		// unknown: the throughput targets are then not checked.
		hfFlagged := hf == nil && at(closedRun(m, KindHTTPFloor, false, false), top) != nil
		orts := all(runs, ort)
		// add judges a target on figure f (at least its bound, or at most
		// with atMost) as the summaries give it and, when rs, the runs it
		// reads, were measured in rounds, on each round (see judgeRounds).
		add := func(name, unit string, atMost bool, rs []*Run, f func(pick func(*Run) *Run) figure, detail string) {
			whole := f(func(r *Run) *Run { return r })
			t := Target{Model: m, Name: name, Unit: unit, Value: whole.value, Bound: whole.bound, Detail: detail}
			var per []figure
			if r.Env.Rounds > 1 {
				for _, i := range roundsOf(rs...) {
					per = append(per, f(func(r *Run) *Run { return inRound(r, i) }))
				}
			}
			t.Met = whole.met(atMost)
			if len(per) > 1 {
				t.Value, t.Bound, t.Met = judgeRounds(per, atMost)
				t.Detail = describeRounds(per, atMost, unit) + "; medians: " + detail
			}
			out = append(out, t)
		}
		// bestORT is the best ort-floor rows/s as pick sees the runs.
		bestORT := func(pick func(*Run) *Run) float64 {
			v := 0.0
			for _, o := range orts {
				if p := pick(o); p != nil {
					v = max(v, p.RowsPerS)
				}
			}
			return v
		}
		// The throughput target is set by the lower floor: a model that
		// costs more than HTTP (ranker) is held to ONNX Runtime's best and
		// to its gain from batching, a cheap one (ctr) to the bare server.
		// So does an ort-floor whose every run was flagged (a model file
		// other than the served one, ONNX Runtime that did not load).
		ortFlagged := bo == nil && best(runs, func(x *Run) bool { return x.Model == m && x.Kind == KindORTFloor }, moreRows) != nil
		ortBound := g != nil && bo != nil && !hfFlagged && (hf == nil || bo.RowsPerS <= hf.ThroughputRPS)
		if ortBound {
			add("batched rows/s ÷ best ort-floor rows/s", "", false, append([]*Run{g}, orts...), func(pick func(*Run) *Run) figure {
				return figure{pick(g).RowsPerS / bestORT(pick), targetORTShare}
			}, fmt.Sprintf("%s / %s (%s)", groupThousands(g.RowsPerS), groupThousands(bo.RowsPerS), bo.Name))
			if u != nil && ob1 != nil && u.RowsPerS > 0 && ob1.RowsPerS > 0 {
				gain, ortGain := g.RowsPerS/u.RowsPerS, bo.RowsPerS/ob1.RowsPerS
				add("batching's gain ÷ ONNX Runtime's gain", "", false, append([]*Run{g, u}, orts...), func(pick func(*Run) *Run) figure {
					return figure{pick(g).RowsPerS / pick(u).RowsPerS / (bestORT(pick) / pick(ob1).RowsPerS), targetGainShare}
				}, fmt.Sprintf("%.2f (%s ÷ %s) against %.2f (%s ÷ %s)", gain, g.Name, u.Name, ortGain, bo.Name, ob1.Name))
			}
		} else if g != nil && hf != nil && !ortFlagged {
			add("batched req/s ÷ http-floor req/s", "", false, []*Run{g, hf}, func(pick func(*Run) *Run) figure {
				return figure{pick(g).ThroughputRPS / pick(hf).ThroughputRPS, targetHTTPShare}
			}, fmt.Sprintf("%s / %s at %d connections", groupThousands(g.ThroughputRPS), groupThousands(hf.ThroughputRPS), top))
		}
		if hf != nil {
			if c := at(closed(KindGateway, false, true), top); c != nil {
				add("cache hits req/s ÷ http-floor req/s", "", false, []*Run{c, hf}, func(pick func(*Run) *Run) figure {
					return figure{pick(c).ThroughputRPS / pick(hf).ThroughputRPS, targetCacheShare}
				}, fmt.Sprintf("%s / %s at %d connections", groupThousands(c.ThroughputRPS), groupThousands(hf.ThroughputRPS), top))
			}
		}
		g1, hf1 := at(batched, 1), at(closed(KindHTTPFloor, false, false), 1)
		if g1 != nil && hf1 != nil && ob1 != nil {
			add("idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs", "µs", true, []*Run{g1, hf1, ob1}, func(pick func(*Run) *Run) figure {
				return figure{pick(g1).Latency.P50, pick(hf1).Latency.P50 + pick(ob1).Latency.P50 + targetIdleSlack}
			}, fmt.Sprintf("%s against %s + %s + 50µs", formatUS(g1.Latency.P50), formatUS(hf1.Latency.P50), formatUS(ob1.Latency.P50)))
		}
	}
	for i := range runs {
		x := &runs[i]
		if x.Overload <= 1 {
			continue
		}
		// An overload run that measured nothing (no sustainable rate to
		// multiply, say) is listed as not met, not left out.
		measured := x.Shed != nil && x.Requests > 0
		detail := "nothing was measured"
		if measured {
			detail = fmt.Sprintf("shed %.0f%%, shed p99 %s, accepted p99 %s", x.Shed.Fraction*100, formatUS(x.Shed.P99US), formatUS(x.Latency.P99))
			if x.Health != nil {
				detail += ", ready p99 " + formatUS(x.Health.P99US)
			}
		}
		if x.Flagged != "" {
			detail += ": " + x.Flagged
		}
		out = append(out, Target{Model: x.Model, Name: "overload " + x.Name + " not flagged", Unit: "-", Met: measured && x.Flagged == "", Detail: detail})
	}
	return out
}

// figure is a target's figure and the bound it must reach.
type figure struct{ value, bound float64 }

// met reports whether f reaches its bound: at least, or at most.
func (f figure) met(atMost bool) bool {
	if atMost {
		return f.value <= f.bound
	}
	return f.value >= f.bound
}

// judgeRounds judges a target on its figures in each round, each held to
// its own round's bound (so that a floor measured fast in one round and
// the gateway slow in another do not meet together), by the round whose
// margin over its bound is the median: the lower of the middle two for an
// even count, so that a tie does not meet. That round's value and bound
// are returned with the verdict, so that the three agree.
func judgeRounds(per []figure, atMost bool) (value, bound float64, met bool) {
	margin := func(f figure) float64 {
		if atMost {
			return f.bound - f.value
		}
		return f.value - f.bound
	}
	sorted := slices.Clone(per)
	slices.SortStableFunc(sorted, func(a, b figure) int { return cmp.Compare(margin(a), margin(b)) })
	m := sorted[(len(sorted)-1)/2]
	return m.value, m.bound, margin(m) >= 0
}

// describeRounds says how the target fared in each round.
func describeRounds(per []figure, atMost bool, unit string) string {
	met := 0
	parts := make([]string, len(per))
	for i, f := range per {
		if f.met(atMost) {
			met++
		}
		if unit == "µs" {
			v, b := formatUSPair(f.value, f.bound)
			parts[i] = v + " against " + b
		} else {
			parts[i] = fmt.Sprintf("%.2f", f.value)
		}
	}
	return fmt.Sprintf("rounds %s, met in %d of %d", strings.Join(parts, ", "), met, len(per))
}

// roundsOf returns the rounds that every run of rs has a repetition of,
// in order; nil when one has no repetitions. Only a report whose runs
// were measured in rounds (Env.Rounds) may be read this way: repetitions
// of steps repeated in a row are numbered alike.
func roundsOf(rs ...*Run) []int {
	var out []int
	for i, r := range rs {
		if len(r.Repetitions) < 2 {
			return nil
		}
		var have []int
		for j := range r.Repetitions {
			if n := r.Repetitions[j].Repetition; i == 0 || slices.Contains(out, n) {
				have = append(have, n)
			}
		}
		out = have
	}
	return out
}

// inRound returns the repetition of r measured in round i; r itself when
// it has no repetitions.
func inRound(r *Run, i int) *Run {
	for j := range r.Repetitions {
		if r.Repetitions[j].Repetition == i {
			return &r.Repetitions[j]
		}
	}
	if len(r.Repetitions) == 0 {
		return r
	}
	return nil
}

// all returns the runs that ok accepts.
func all(runs []Run, ok func(*Run) bool) []*Run {
	var out []*Run
	for i := range runs {
		if ok(&runs[i]) {
			out = append(out, &runs[i])
		}
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
			v, b := formatUSPair(t.Value, t.Bound)
			fmt.Fprintf(w, "  %-7s  %s: %s: %s, bound %s (%s)\n", verdict, t.Model, t.Name, v, b, t.Detail)
		default:
			fmt.Fprintf(w, "  %-7s  %s: %s = %s, bound %.2f (%s)\n", verdict, t.Model, t.Name, formatBeside(t.Value, t.Bound), t.Bound, t.Detail)
		}
	}
	if caveat != "" {
		fmt.Fprintf(w, "  (%s)\n", caveat)
	}
}

// formatBeside writes v with two decimals, or with as many more (up to
// six) as it takes not to read the same as bound: 0.8997 against 0.90
// must not read "0.90, bound 0.90" next to NOT MET.
func formatBeside(v, bound float64) string {
	if v == bound {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	for prec := 2; ; prec++ {
		s := strconv.FormatFloat(v, 'f', prec, 64)
		if shown, _ := strconv.ParseFloat(s, 64); shown != bound || prec == 6 {
			return s
		}
	}
}

// formatUSPair writes a value and its bound in µs as formatUS does, or in
// whole µs, or with up to three decimals, where that would write them the
// same though they differ: 1,234 µs against 1,231 µs must not read
// "1.23ms, bound 1.23ms", nor 1,001 against 1,000.5 "1,001µs, bound
// 1,001µs".
func formatUSPair(v, bound float64) (string, string) {
	a, b := formatUS(v), formatUS(bound)
	if a != b || v == bound {
		return a, b
	}
	a, b = groupThousands(math.Round(v))+"µs", groupThousands(math.Round(bound))+"µs"
	for prec := 1; a == b && prec <= 3; prec++ {
		a, b = strconv.FormatFloat(v, 'f', prec, 64)+"µs", strconv.FormatFloat(bound, 'f', prec, 64)+"µs"
	}
	return a, b
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
		top, ok := topConcurrency(r.Runs, closedRun(m, KindHTTPFloor, false, false))
		if !ok {
			continue
		}
		at := func(ok func(*Run) bool) *Run {
			return best(r.Runs, func(x *Run) bool { return ok(x) && x.Concurrency == top }, moreRPS)
		}
		f := at(floors)
		if f == nil {
			continue // flagged there
		}
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

// rowCost is ONNX Runtime's time per row inside a model's batched gateway
// at the highest concurrency (its compute per batch over its rows per
// batch) and in the ort-floor at the batch size nearest the gateway's
// batches. Where the gateway falls short of the ort-floor with its
// batches as large as the load makes them, it says whether batching or
// the model's speed inside a loaded server is why. The gateway's compute
// includes gathering inputs and scattering outputs.
type rowCost struct {
	model          string
	gateway, floor *Run
	rows           float64 // the gateway's mean rows per batch
	inside, alone  float64 // µs per row
	// sameSizes is set when alone is the ort-floor's time for the very
	// batch sizes the gateway ran (Run.ComputeBySize), each interpolated
	// between the floor's sizes, rather than the floor's per-row time at
	// the size nearest the gateway's mean: a mix of small and large
	// batches costs more per row than batches of its mean size.
	sameSizes bool
	// onCPU is the share of the gateway's compute time that the thread
	// running ONNX Runtime had a CPU (ServerStats.ComputeOnCPU), 0 when
	// unknown. Well below 1, the CPUs were oversubscribed: the row took
	// longer because its thread waited, not because it ran slower.
	onCPU float64
	// rounds holds each round's ratio when the suite ran in rounds; the
	// figures above are then those of the round with the median ratio.
	rounds []float64
}

// ratio is how many times longer a row takes inside the gateway.
func (c rowCost) ratio() float64 { return c.inside / c.alone }

// costOf returns the rowCost of gateway run g and ort-floor run o (the
// floor's batch size nearest g's mean), false when a figure is missing
// or not finite. With g's compute by batch size and the floor's runs at
// several sizes (floors), alone is the floors' time for g's very batches.
func costOf(g, o *Run, floors []*Run) (rowCost, bool) {
	if g == nil || o == nil || g.Server == nil || o.BatchSize < 1 {
		return rowCost{}, false
	}
	c := rowCost{model: g.Model, gateway: g, floor: o, rows: g.Server.AvgBatch,
		inside: g.Server.ComputeUSAvg / g.Server.AvgBatch, alone: o.Latency.Mean / float64(o.BatchSize),
		onCPU: g.Server.ComputeOnCPU}
	if inside, alone, ok := sameSizeCost(g.ComputeBySize, floors); ok {
		c.inside, c.alone, c.sameSizes = inside, alone, true
	}
	for _, v := range []float64{c.rows, c.inside, c.alone} {
		if !(v > 0) || math.IsInf(v, 0) {
			return rowCost{}, false
		}
	}
	return c, true
}

// sameSizeCost returns, for the executions in bySize, the gateway's
// compute per row and what the ort-floor takes per row for batches of the
// same sizes: each size's floor time interpolated linearly between the
// floor's nearest sizes, the smallest's time below them (a batch that
// small costs about its fixed part), and the largest's time per row
// above. ok is false without both.
func sameSizeCost(bySize []SizeCompute, floors []*Run) (inside, alone float64, ok bool) {
	var fs []*Run
	for _, f := range floors {
		if f != nil && f.BatchSize >= 1 && f.Latency.Mean > 0 {
			fs = append(fs, f)
		}
	}
	if len(bySize) == 0 || len(fs) == 0 {
		return 0, 0, false
	}
	slices.SortFunc(fs, func(a, b *Run) int { return cmp.Compare(a.BatchSize, b.BatchSize) })
	floorUS := func(k int) float64 {
		lo, hi := fs[0], fs[len(fs)-1]
		switch {
		case k <= lo.BatchSize:
			return lo.Latency.Mean
		case k >= hi.BatchSize:
			return hi.Latency.Mean * float64(k) / float64(hi.BatchSize)
		}
		i, _ := slices.BinarySearchFunc(fs, k, func(f *Run, k int) int { return cmp.Compare(f.BatchSize, k) })
		a, b := fs[i-1], fs[i]
		if b.BatchSize == k {
			return b.Latency.Mean
		}
		w := float64(k-a.BatchSize) / float64(b.BatchSize-a.BatchSize)
		return a.Latency.Mean + w*(b.Latency.Mean-a.Latency.Mean)
	}
	var rows, insideUS, aloneUS float64
	for _, s := range bySize {
		if s.Size < 1 || s.Count == 0 {
			continue
		}
		rows += float64(s.Size) * float64(s.Count)
		insideUS += s.ComputeUS
		aloneUS += float64(s.Count) * floorUS(s.Size)
	}
	if rows == 0 {
		return 0, 0, false
	}
	return insideUS / rows, aloneUS / rows, true
}

// rowCosts returns the rowCost of every model of r that has both runs.
// When the suite ran in rounds, each round is read on its own figures,
// as CheckTargets reads them, and the round with the median ratio speaks.
func rowCosts(r *Report) []rowCost {
	var out []rowCost
	runs := r.Runs
	for _, m := range distinct(runs, func(x *Run) bool { return x.Kind == KindORTFloor }, func(x *Run) string { return x.Model }) {
		batched := func(x *Run) bool {
			return cleanClosedRun(m, KindGateway, true, false)(x) && x.Server != nil
		}
		top, ok := topConcurrency(runs, closedRun(m, KindGateway, true, false))
		if !ok {
			continue
		}
		g := best(runs, func(x *Run) bool { return batched(x) && x.Concurrency == top }, moreRPS)
		if g == nil {
			continue // flagged there, or without the server's figures
		}
		rows := g.Server.AvgBatch
		if !(rows > 0) || math.IsInf(rows, 0) {
			continue
		}
		var o *Run
		var floors []*Run
		for i := range runs {
			x := &runs[i]
			if x.Flagged != "" || x.Model != m || x.Kind != KindORTFloor || x.BatchSize < 1 || !(x.Latency.Mean > 0) {
				continue
			}
			floors = append(floors, x)
			// Nearest on a log scale: the midpoint of 16 and 32 is 22.6.
			if o == nil || math.Abs(math.Log(float64(x.BatchSize)/rows)) < math.Abs(math.Log(float64(o.BatchSize)/rows)) {
				o = x
			}
		}
		c, ok := costOf(g, o, floors)
		if !ok {
			continue
		}
		if r.Env.Rounds > 1 {
			var per []rowCost
			for _, i := range roundsOf(g, o) {
				var fl []*Run
				for _, f := range floors {
					fl = append(fl, inRound(f, i))
				}
				if rc, ok := costOf(inRound(g, i), inRound(o, i), fl); ok {
					per = append(per, rc)
				}
			}
			if len(per) > 1 {
				ratios := make([]float64, len(per))
				for i, rc := range per {
					ratios[i] = rc.ratio()
				}
				sorted := slices.Clone(per)
				slices.SortStableFunc(sorted, func(a, b rowCost) int { return cmp.Compare(a.ratio(), b.ratio()) })
				c = sorted[(len(sorted)-1)/2]
				c.gateway, c.floor, c.rounds = g, o, ratios
			}
		}
		if r.Env.IntraOpThreads > 1 {
			// The calling thread does part of the work only.
			c.onCPU = 0
		}
		out = append(out, c)
	}
	return out
}

// writeComputePerRow writes rowCosts' figures as lines after the targets.
func writeComputePerRow(w io.Writer, r *Report) {
	var lines []string
	for _, c := range rowCosts(r) {
		rounds := ""
		if len(c.rounds) > 1 {
			parts := make([]string, len(c.rounds))
			for i, x := range c.rounds {
				parts[i] = fmt.Sprintf("%.2f", x)
			}
			rounds = "rounds " + strings.Join(parts, ", ") + "; "
		}
		onCPU := ""
		if c.onCPU > 0 {
			onCPU = fmt.Sprintf("; its thread on a CPU %.0f%% of the time", 100*c.onCPU)
		}
		floor := c.floor.Name
		if c.sameSizes {
			floor = "ort-floor at the same batch sizes"
		}
		lines = append(lines, fmt.Sprintf("  %s: %s ÷ %s = %.2f (%sbatches of %.1f rows in %s; %s%s)",
			c.model, formatRowUS(c.inside), formatRowUS(c.alone), c.ratio(), rounds, c.rows, c.gateway.Name, floor, onCPU))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nONNX Runtime per row, inside the gateway ÷ alone:\n%s\n", strings.Join(lines, "\n"))
}

// formatRowUS writes a time per row: with a decimal below 100 µs, where
// formatUS's whole microseconds would hide the difference.
func formatRowUS(us float64) string {
	if us < 100 {
		return strconv.FormatFloat(us, 'f', 1, 64) + "µs"
	}
	return formatUS(us)
}
