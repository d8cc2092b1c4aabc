package bench

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// targetRuns returns the runs of one model as the suite makes them:
// ort-floor at batch 1 and 64, http-floor, the gateway unbatched, batched
// and cached at 64 connections, and batched and http-floor at 1.
func targetRuns(model string, ortB1, ortB64, http, unbatched, batched, cached float64) []Run {
	closed := func(name, kind string, conc int, batching, cache bool, rps, p50 float64) Run {
		return Run{Name: name, Kind: kind, Model: model, Mode: ModeClosed, Concurrency: conc, RowsPerRequest: 1,
			Batching: batching, Cache: cache, ThroughputRPS: rps, RowsPerS: rps, Latency: Latency{P50: p50}}
	}
	return []Run{
		{Name: "ort-floor/" + model + "@b1", Kind: KindORTFloor, Model: model, BatchSize: 1, RowsPerS: ortB1, ThroughputRPS: ortB1, Latency: Latency{P50: 100}},
		{Name: "ort-floor/" + model + "@b64", Kind: KindORTFloor, Model: model, BatchSize: 64, RowsPerS: ortB64, ThroughputRPS: ortB64 / 64, Latency: Latency{P50: 900}},
		closed("http-floor/"+model+"@c64", KindHTTPFloor, 64, false, false, http, 100),
		closed("http-floor/"+model+"@c1", KindHTTPFloor, 1, false, false, 20_000, 40),
		closed("gateway/"+model+"@c64", KindGateway, 64, false, false, unbatched, 1000),
		closed("gateway-batched/"+model+"@c64", KindGateway, 64, true, false, batched, 1000),
		closed("gateway-batched/"+model+"@c1", KindGateway, 1, true, false, 5_000, 180),
		closed("gateway-cached/"+model+"@c64", KindGateway, 64, false, true, cached, 100),
	}
}

func TestCheckTargets(t *testing.T) {
	// ranker-like: ONNX Runtime is the lower floor (40k < 400k).
	runs := targetRuns("heavy", 4_000, 40_000, 400_000, 4_000, 33_000, 380_000)
	// ctr-like: the bare server is (300k < 500k).
	runs = append(runs, targetRuns("cheap", 100_000, 500_000, 300_000, 50_000, 240_000, 250_000)...)
	overload := Run{Name: "gateway-overload/heavy@3x", Kind: KindGateway, Model: "heavy", Mode: ModeOpen, Overload: 3, Requests: 100,
		Shed: &ShedStats{Fraction: 0.6, P99US: 500}, Latency: Latency{P99: 100_000}}
	runs = append(runs, overload)
	got := CheckTargets(&Report{Runs: runs})
	want := []string{
		"heavy|batched rows/s ÷ best ort-floor rows/s|0.82|true",                // 33k / 40k
		"heavy|batching's gain ÷ ONNX Runtime's gain|0.82|true",                 // 8.25 / 10
		"heavy|cache hits req/s ÷ http-floor req/s|0.95|true",                   // 380k / 400k
		"heavy|idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs|180.00|true", // 180 ≤ 40+100+50
		"cheap|batched req/s ÷ http-floor req/s|0.80|true",                      // 240k / 300k
		"cheap|cache hits req/s ÷ http-floor req/s|0.83|false",                  // 250k / 300k
		"cheap|idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs|180.00|true",
		"heavy|overload gateway-overload/heavy@3x not flagged|0.00|true",
	}
	var lines []string
	for _, x := range got {
		lines = append(lines, strings.Join([]string{x.Model, x.Name, formatFloat2(x.Value), boolString(x.Met)}, "|"))
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// A flagged run does not count: with the batched runs flagged, the
	// model's throughput and idle targets go unchecked (its cache target,
	// which reads other runs, stays); a flagged overload run fails its
	// target and says why.
	for i := range runs {
		if strings.HasPrefix(runs[i].Name, "gateway-batched/cheap") {
			runs[i].Flagged = "errors 5% > 1%"
		}
		if runs[i].Shed != nil {
			runs[i].Flagged = "shed p99 40ms > 10ms"
		}
	}
	got = CheckTargets(&Report{Runs: runs})
	for _, x := range got {
		if x.Model == "cheap" && !strings.HasPrefix(x.Name, "cache hits") {
			t.Fatalf("targets checked on flagged runs: %+v", x)
		}
		if x.Unit == "-" && (x.Met || !strings.Contains(x.Detail, "shed p99 40ms > 10ms")) {
			t.Fatalf("flagged overload run: got %+v; want not met, saying why", x)
		}
	}
	var b bytes.Buffer
	writeTargets(&b, got, targetsCaveat(&Env{}, got))
	if !strings.Contains(b.String(), "NOT MET  heavy: overload") || !strings.Contains(b.String(), "met      heavy: batched rows/s ÷ best ort-floor rows/s = 0.82, bound 0.80") {
		t.Fatalf("written targets:\n%s", b.String())
	}
	if strings.Contains(b.String(), "shared these CPUs") {
		t.Fatalf("written targets on cores of their own carry the shared-cores caveat:\n%s", b.String())
	}
	// An overload run that measured nothing (no sustainable rate) is not
	// met, and listed as such rather than left out.
	none := Run{Name: "gateway-overload/cheap@3x", Kind: KindGateway, Model: "cheap", Mode: ModeOpen, Overload: 3,
		Flagged: "no sustainable rate to overload"}
	got = CheckTargets(&Report{Runs: []Run{none}})
	if len(got) != 1 || got[0].Met || got[0].Detail != "nothing was measured: no sustainable rate to overload" {
		t.Fatalf("overload run that measured nothing: got %+v; want one target, not met, saying why", got)
	}
	// On shared cores, with a target not met, the report says what that
	// is worth.
	shared := Env{SharedCores: true}
	b.Reset()
	writeTargets(&b, got, targetsCaveat(&shared, got))
	if !strings.Contains(b.String(), "shared these CPUs") || !strings.Contains(b.String(), "--server-cpus N") {
		t.Fatalf("written targets on shared cores:\n%s", b.String())
	}
	if c := targetsCaveat(&shared, []Target{{Met: true}}); c != "" {
		t.Fatalf("caveat with every target met: %q; want none", c)
	}
	b.Reset()
	if err := WriteHTML(&b, &Report{Env: shared, Runs: runs, Targets: got}); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); !strings.Contains(page, "The suite&#39;s targets, checked on these runs") || !strings.Contains(page, `class="bad">not met`) || !strings.Contains(page, "shared these CPUs") {
		t.Fatalf("the HTML report does not list the targets with the one not met and the shared-cores caveat")
	}
}

func TestFormatBeside(t *testing.T) {
	f := func(v, bound float64, want string) {
		t.Helper()
		if got := formatBeside(v, bound); got != want {
			t.Fatalf("formatBeside(%g, %g) = %q; want %q", v, bound, got, want)
		}
	}
	f(0.82, 0.8, "0.82")
	f(0.8997, 0.9, "0.8997")
	f(0.9004, 0.9, "0.9004")
	f(0.9, 0.9, "0.90")
	f(1.06, 0.9, "1.06")
}

func formatFloat2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func boolString(b bool) string { return strconv.FormatBool(b) }

// withRounds gives r one repetition per value, numbered from 1 as a
// suite's rounds number them, each with its figure set by set, and sets
// the summary's figure to their median, as summarize does.
func withRounds(r Run, set func(p *Run, v float64), vals ...float64) Run {
	for i, v := range vals {
		p := r
		p.Repetition = i + 1
		set(&p, v)
		r.Repetitions = append(r.Repetitions, p)
	}
	r.Repeats = len(vals)
	set(&r, median(slices.Clone(vals)))
	return r
}

// TestCheckTargetsRounds checks that targets measured in rounds are judged
// on each round's ratio, not on the ratio of the medians: a floor that was
// fast in one round and a gateway fast in another must not meet a target
// together.
func TestCheckTargetsRounds(t *testing.T) {
	rps := func(p *Run, v float64) { p.ThroughputRPS, p.RowsPerS = v, v }
	p50 := func(p *Run, v float64) { p.Latency.P50 = v }
	byName := func(runs []Run) map[string]*Run {
		m := map[string]*Run{}
		for i := range runs {
			m[runs[i].Name] = &runs[i]
		}
		return m
	}
	set := func(runs []Run, name string, f func(p *Run, v float64), vals ...float64) {
		r := byName(runs)[name]
		*r = withRounds(*r, f, vals...)
	}
	// ctr-like. The medians give 240k / 300k = 0.80, but the rounds
	// 0.80, 0.70 and 0.65: not met.
	cheap := targetRuns("cheap", 100_000, 500_000, 300_000, 50_000, 240_000, 330_000)
	set(cheap, "ort-floor/cheap@b1", p50, 100, 100, 100)
	set(cheap, "ort-floor/cheap@b64", rps, 500_000, 500_000, 500_000)
	set(cheap, "http-floor/cheap@c64", rps, 300_000, 200_000, 400_000)
	set(cheap, "gateway-batched/cheap@c64", rps, 240_000, 140_000, 260_000)
	set(cheap, "gateway-cached/cheap@c64", rps, 330_000, 220_000, 440_000)
	// Idle: bounds 40+100+50 = 190, 210 and 170 µs against 180, 200 and
	// 150: met in every round.
	set(cheap, "http-floor/cheap@c1", p50, 40, 60, 20)
	set(cheap, "gateway-batched/cheap@c1", p50, 180, 200, 150)
	// ranker-like, with a second ort-floor batch size whose rows/s is the
	// best in round 2 only: each round is held to its own best (40k, 36k
	// and 44k rows/s).
	heavy := targetRuns("heavy", 4_000, 40_000, 400_000, 4_000, 33_000, 380_000)
	b32 := *byName(heavy)["ort-floor/heavy@b64"]
	b32.Name, b32.BatchSize = "ort-floor/heavy@b32", 32
	heavy = append(heavy, b32)
	set(heavy, "ort-floor/heavy@b1", rps, 4_000, 4_000, 4_000)
	set(heavy, "ort-floor/heavy@b64", rps, 40_000, 30_000, 44_000)
	set(heavy, "ort-floor/heavy@b32", rps, 38_000, 36_000, 30_000)
	set(heavy, "gateway/heavy@c64", rps, 4_000, 4_000, 4_000)
	set(heavy, "gateway-batched/heavy@c64", rps, 32_800, 30_000, 35_200)
	runs := append(cheap, heavy...)
	got := CheckTargets(&Report{Env: Env{Rounds: 3}, Runs: runs})
	want := []string{
		"cheap|batched req/s ÷ http-floor req/s|0.70|0.75|false|rounds 0.80, 0.70, 0.65, met in 1 of 3",
		"cheap|cache hits req/s ÷ http-floor req/s|1.10|0.90|true|rounds 1.10, 1.10, 1.10, met in 3 of 3",
		"cheap|idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs|200.00|210.00|true|rounds 180µs against 190µs, 200µs against 210µs, 150µs against 170µs, met in 3 of 3",
		"heavy|batched rows/s ÷ best ort-floor rows/s|0.82|0.80|true|rounds 0.82, 0.83, 0.80, met in 3 of 3",
		"heavy|batching's gain ÷ ONNX Runtime's gain|0.82|0.80|true|rounds 0.82, 0.83, 0.80, met in 3 of 3",
		// Single runs are judged as before.
		"heavy|cache hits req/s ÷ http-floor req/s|0.95|0.90|true|",
		"heavy|idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs|180.00|190.00|true|",
	}
	var lines []string
	for _, x := range got {
		rounds := ""
		if r, _, ok := strings.Cut(x.Detail, "; medians: "); ok {
			rounds = r
		}
		lines = append(lines, strings.Join([]string{x.Model, x.Name, formatFloat2(x.Value), formatFloat2(x.Bound), boolString(x.Met), rounds}, "|"))
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// The same runs from a report that does not say they were measured
	// in rounds are judged on the medians.
	found := false
	for _, x := range CheckTargets(&Report{Runs: runs}) {
		if x.Model == "cheap" && strings.HasPrefix(x.Name, "batched") {
			found = true
			if !x.Met || x.Value != 0.8 || strings.Contains(x.Detail, "rounds") {
				t.Fatalf("without Env.Rounds: %+v; want 240k / 300k = 0.80, met, on the medians", x)
			}
		}
	}
	if !found {
		t.Fatal("without Env.Rounds: no batched target for cheap")
	}
}

func TestWriteComputePerRow(t *testing.T) {
	ort := func(m string, batch int, meanUS float64) Run {
		return Run{Name: fmt.Sprintf("ort-floor/%s@b%d", m, batch), Kind: KindORTFloor, Model: m, BatchSize: batch, Requests: 10, Latency: Latency{Mean: meanUS}}
	}
	gw := func(m string, c int, batch, computeUS float64) Run {
		return Run{Name: fmt.Sprintf("gateway-batched/%s@c%d", m, c), Kind: KindGateway, Model: m, Mode: ModeClosed, Concurrency: c, RowsPerRequest: 1,
			Batching: true, Requests: 10, Server: &ServerStats{AvgBatch: batch, ComputeUSAvg: computeUS}}
	}
	flaggedORT := ort("ranker", 32, 100)
	flaggedORT.Flagged = "noisy"
	multiRow := gw("ctr", 64, 23, 10000)
	multiRow.Name, multiRow.RowsPerRequest = "gateway-sustainable/ctr@c64", 16
	multiRow.ThroughputRPS = 1e9 // would win a pick that did not skip it
	rankerGW := gw("ranker", 64, 32, 960)
	rankerGW.Server.ComputeOnCPU = 0.684
	r := &Report{Runs: []Run{
		flaggedORT,
		ort("ranker", 16, 334), ort("ranker", 32, 659), ort("ranker", 64, 1450),
		rankerGW, gw("ranker", 1, 1, 216),
		// 23 rows: nearer 16 on a linear scale, nearer 32 on a log one.
		ort("ctr", 16, 34), ort("ctr", 32, 64),
		gw("ctr", 64, 23, 69), multiRow,
	}}
	var b strings.Builder
	r.Env.IntraOpThreads = 2
	writeComputePerRow(&b, r)
	if strings.Contains(b.String(), "on a CPU") {
		t.Fatalf("a CPU share with two intra-op threads:\n%s", b.String())
	}
	r.Env.IntraOpThreads = 1
	b.Reset()
	writeComputePerRow(&b, r)
	want := "\nONNX Runtime per row, inside the gateway ÷ alone:\n" +
		"  ranker: 30.0µs ÷ 20.6µs = 1.46 (batches of 32.0 rows in gateway-batched/ranker@c64; ort-floor/ranker@b32; its thread on a CPU 68% of the time)\n" +
		"  ctr: 3.0µs ÷ 2.0µs = 1.50 (batches of 23.0 rows in gateway-batched/ctr@c64; ort-floor/ctr@b32)\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	// With the gateway's compute by batch size, alone is the floors' time
	// for those sizes: 10 batches of 16 rows and 10 of 48 (between 32 at
	// 659 µs and 64 at 1,450: 1,054.5 µs), against 640 rows.
	mixed := gw("ranker", 64, 32, 960)
	mixed.ComputeBySize = []SizeCompute{{Size: 16, Count: 10, ComputeUS: 10 * 500}, {Size: 48, Count: 10, ComputeUS: 10 * 1500}}
	b.Reset()
	writeComputePerRow(&b, &Report{Runs: []Run{ort("ranker", 16, 334), ort("ranker", 32, 659), ort("ranker", 64, 1450), mixed}})
	if want := "  ranker: 31.2µs ÷ 21.7µs = 1.44 (batches of 32.0 rows in gateway-batched/ranker@c64; ort-floor at the same batch sizes)\n"; !strings.HasSuffix(b.String(), want) {
		t.Fatalf("same sizes: got:\n%s\nwant a line:\n%s", b.String(), want)
	}

	// In rounds, each round on its own figures; the median round speaks.
	g := gw("ctr", 64, 16, 48)
	o := ort("ctr", 16, 32)
	for i, x := range []struct{ batch, compute, mean float64 }{{16, 48, 32}, {16, 64, 32}, {16, 40, 40}} {
		gr, or := gw("ctr", 64, x.batch, x.compute), ort("ctr", 16, x.mean)
		gr.Repetition, or.Repetition = i+1, i+1
		g.Repetitions = append(g.Repetitions, gr)
		o.Repetitions = append(o.Repetitions, or)
	}
	rounds := &Report{Env: Env{Rounds: 3}, Runs: []Run{o, g}}
	b.Reset()
	writeComputePerRow(&b, rounds)
	// Rounds: 3/2 = 1.50, 4/2 = 2.00, 2.5/2.5 = 1.00; the median is 1.50.
	want = "\nONNX Runtime per row, inside the gateway ÷ alone:\n" +
		"  ctr: 3.0µs ÷ 2.0µs = 1.50 (rounds 1.50, 2.00, 1.00; batches of 16.0 rows in gateway-batched/ctr@c64; ort-floor/ctr@b16)\n"
	if b.String() != want {
		t.Fatalf("in rounds: got:\n%s\nwant:\n%s", b.String(), want)
	}

	// Figures that are missing, zero, NaN or infinite: nothing, not NaN.
	nan, inf := math.NaN(), math.Inf(1)
	for _, c := range []struct{ batch, compute, mean float64 }{{nan, 10, 10}, {inf, 10, 10}, {10, inf, 10}, {10, nan, 10}, {10, 10, nan}, {10, 10, inf}, {0, 10, 10}, {10, 10, 0}} {
		bad := &Report{Runs: []Run{ort("m", 8, c.mean), gw("m", 64, c.batch, c.compute)}}
		b.Reset()
		writeComputePerRow(&b, bad)
		if b.Len() != 0 {
			t.Fatalf("batch %v, compute %v, ort mean %v: got %q; want nothing", c.batch, c.compute, c.mean, b.String())
		}
	}
	// A gateway without infergate's figures (no compute time): nothing.
	for i := range r.Runs {
		r.Runs[i].Server = nil
	}
	b.Reset()
	writeComputePerRow(&b, r)
	if b.Len() != 0 {
		t.Fatalf("without the gateway's compute figures: got %q; want nothing", b.String())
	}
}

// A flagged batched run at the loaded level leaves the throughput targets
// unchecked: the idle run at 1 connection does not stand in for it.
func TestFlaggedLoadedRunNotReplacedByIdle(t *testing.T) {
	runs := targetRuns("cheap", 100_000, 500_000, 300_000, 50_000, 240_000, 250_000)
	runs = append(runs, targetRuns("heavy", 4_000, 40_000, 400_000, 4_000, 33_000, 380_000)...)
	for i := range runs {
		if strings.HasPrefix(runs[i].Name, "gateway-batched/") && runs[i].Concurrency == 64 {
			runs[i].Flagged = "errors 5% > 1%"
		}
	}
	for _, x := range CheckTargets(&Report{Runs: runs}) {
		if strings.HasPrefix(x.Name, "batched") || strings.HasPrefix(x.Name, "batching") {
			t.Errorf("%s: throughput target %q judged without a clean loaded run: value %.3f, met %v (%s)", x.Model, x.Name, x.Value, x.Met, x.Detail)
		}
	}
}

// A flagged http-floor run at the loaded level leaves the lower floor
// unknown: a cheap model is not held to the ort-floor instead.
func TestFlaggedHTTPFloorDoesNotSwitchFloor(t *testing.T) {
	runs := targetRuns("cheap", 100_000, 500_000, 300_000, 50_000, 240_000, 250_000)
	for i := range runs {
		if runs[i].Name == "http-floor/cheap@c64" {
			runs[i].Flagged = "errors 2% > 1%"
		}
	}
	for _, x := range CheckTargets(&Report{Runs: runs}) {
		if strings.Contains(x.Name, "ort-floor rows/s") || strings.HasPrefix(x.Name, "batching's gain") || strings.Contains(x.Name, "http-floor req/s") {
			t.Errorf("%s: judged with the loaded http-floor run flagged: %q = %.2f, met %v (%s)", x.Model, x.Name, x.Value, x.Met, x.Detail)
		}
	}
}
