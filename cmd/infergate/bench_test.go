package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/bench"
	"github.com/infergate/infergate/internal/affinity"
	"github.com/infergate/infergate/internal/testenv"
)

// runBenchCommand runs the infergate binary with args and returns its
// output and the report it wrote to the file after --json.
func runBenchCommand(t *testing.T, args ...string) (string, *bench.Report) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	args = append(args, "--quiet", "--json", out)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("infergate %s: %s\n%s", strings.Join(args, " "), err, output)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("the report is not JSON: %s\n%s", err, data)
	}
	return string(output), &rep
}

// checkRun checks the figures of a run that was measured.
func checkRun(t *testing.T, r *bench.Run) {
	t.Helper()
	l := r.Latency
	if r.Requests <= 0 || r.ThroughputRPS <= 0 || r.DurationS <= 0 {
		t.Fatalf("%s: requests %d, %g req/s over %gs", r.Name, r.Requests, r.ThroughputRPS, r.DurationS)
	}
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("%s: latency percentiles out of order: %+v", r.Name, l)
	}
	if r.ClientCPU <= 0 || len(r.Timeline) == 0 || len(r.Histogram) == 0 {
		t.Fatalf("%s: cpu %g, %d timeline points, %d histogram bins", r.Name, r.ClientCPU, len(r.Timeline), len(r.Histogram))
	}
}

func TestBenchSuiteShort(t *testing.T) {
	start := time.Now()
	// One CPU for the gateway and the http floor, the others for the
	// suite, where there are two or more.
	split := runtime.NumCPU() >= 2
	serverCPUs := "0"
	if split {
		serverCPUs = "1"
	}
	// A shell that exports the tokens of its gateways does not lock the suite
	// out of the one it starts, which gets none of them: tokens other than
	// the shell's get through.
	t.Setenv("INFERGATE_ADMIN_TOKEN", "shell-admin")
	t.Setenv("INFERGATE_INFERENCE_TOKEN", "shell-infer")
	output, rep := runBenchCommand(t, "bench", "suite",
		"--duration", "300ms", "--warmup", "100ms", "--models", "ctr", "--max-batch", "4",
		"--server-cpus", serverCPUs, "--ort-lib", testenv.ORTLib(t),
		"--token", "not-the-shells", "--admin-token", "not-the-shells")
	t.Logf("suite took %s", time.Since(start).Round(time.Millisecond))

	want := []string{
		"ort-floor/ctr@b1", "ort-floor/ctr@b2", "ort-floor/ctr@b4",
		"http-floor/ctr@c64", "http-floor/ctr@c1",
		"gateway/ctr@c64", "gateway/ctr@c1",
		"gateway-batched/ctr@c64", "gateway-batched/ctr@c1",
		"gateway-cached/ctr@c64",
	}
	var got []string
	for i := range rep.Runs {
		r := &rep.Runs[i]
		got = append(got, r.Name)
		if r.Model != "ctr" || r.Mode != bench.ModeClosed {
			t.Fatalf("%s: model %q mode %q", r.Name, r.Model, r.Mode)
		}
		// A configuration the gateway does not know yet is reported, not
		// measured.
		if strings.Contains(r.Flagged, "refused the model configuration") {
			if r.Requests != 0 || r.Kind != bench.KindGateway {
				t.Fatalf("%s: refused but measured: %+v", r.Name, r)
			}
			continue
		}
		checkRun(t, r)
		if r.Errors != 0 {
			t.Fatalf("%s: %d errors %v", r.Name, r.Errors, r.ErrorKinds)
		}
		if r.Kind == bench.KindGateway && r.Server == nil {
			t.Fatalf("%s: no server figures", r.Name)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("runs:\n%s\nwant:\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
	e := rep.Env
	if e.ORTVersion == "" || e.ServerVersion == "" || e.CPUs == 0 || e.GOMAXPROCS == 0 || e.Instances != 1 || e.IntraOpThreads != 1 {
		t.Fatalf("env %+v", e)
	}
	if split && (e.SharedCores || e.ServerCPUs == "" || e.ClientCPUs == "" || e.GOMAXPROCS != runtime.NumCPU()-1 || e.ORTFloorCPUs != e.ServerCPUs ||
		!strings.Contains(output, "client and server share cores: no (servers on CPUs "+e.ServerCPUs) ||
		!strings.Contains(output, "; ort floor on CPUs "+e.ServerCPUs+" while the servers idle")) {
		t.Fatalf("--server-cpus 1: env %+v; output:\n%s", e, output)
	}
	if !split && (!e.SharedCores || e.ORTFloorCPUs != "") {
		t.Fatalf("--server-cpus 0: env %+v", e)
	}
	if !strings.Contains(output, "gateway-cached/ctr@c64") || !strings.Contains(output, "p99.9") {
		t.Fatalf("no table in the output:\n%s", output)
	}
	// ctr's HTTP costs more than its model: it is held to the http floor.
	names := make([]string, 0, len(rep.Targets))
	for _, x := range rep.Targets {
		names = append(names, x.Model+": "+x.Name)
	}
	if !slices.Contains(names, "ctr: batched req/s ÷ http-floor req/s") || !strings.Contains(output, "\ntargets:\n") {
		t.Fatalf("targets %q; output:\n%s", names, output)
	}
}

func TestBenchOneModel(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t))
	_, rep := runBenchCommand(t, "bench", "--target", "http://"+s.addr, "--model", "ranker",
		"--concurrency", "2", "--rate", "300", "--poisson", "--encoding", "binary", "--rows", "3",
		"--floors", "http,ort", "--max-batch", "2",
		"--duration", "300ms", "--warmup", "100ms", "--ort-lib", testenv.ORTLib(t))
	var got []string
	for i := range rep.Runs {
		r := &rep.Runs[i]
		got = append(got, r.Name)
		checkRun(t, r)
		if r.Flagged != "" {
			t.Fatalf("%s: flagged %q", r.Name, r.Flagged)
		}
		if r.Kind != bench.KindORTFloor && (r.RowsPerRequest != 3 || r.Encoding != "binary") {
			t.Fatalf("%s: rows %d encoding %q", r.Name, r.RowsPerRequest, r.Encoding)
		}
		if r.Mode == bench.ModeOpen && (!r.Poisson || r.Rate != 300 || r.SentRPS < 200) {
			t.Fatalf("%s: poisson %v rate %g sent %g", r.Name, r.Poisson, r.Rate, r.SentRPS)
		}
	}
	want := "gateway/ranker@c2 gateway/ranker@r300 http-floor/ranker@c2 http-floor/ranker@r300 ort-floor/ranker@b1 ort-floor/ranker@b2"
	if strings.Join(got, " ") != want {
		t.Fatalf("runs %s; want %s", strings.Join(got, " "), want)
	}
}

// TestBenchOverload overloads a real gateway briefly: the closed-loop step
// measures the sustainable rate, the overload step offers 3 times it.
// The figures on a shared machine vary too much to check the bounds; the
// structure of the runs is checked.
func TestBenchOverload(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t))
	output, rep := runBenchCommand(t, "bench", "--target", "http://"+s.addr, "--model", "ranker", "--rows", "16",
		"--overload", "3", "--duration", "500ms", "--warmup", "200ms")
	if len(rep.Runs) != 2 || rep.Runs[0].Name != "gateway/ranker@c64" || rep.Runs[1].Name != "gateway-overload/ranker@3x" {
		t.Fatalf("runs %+v; want gateway/ranker@c64 and gateway-overload/ranker@3x", rep.Runs)
	}
	sus, r := &rep.Runs[0], &rep.Runs[1]
	checkRun(t, sus)
	if sus.Shed != nil || sus.Health != nil || sus.Concurrency != 64 {
		t.Fatalf("sustainable run %+v", sus)
	}
	if r.SustainableRun != sus.Name || r.SustainableRPS != sus.ThroughputRPS || r.Rate != r.OfferedRPS || r.Mode != bench.ModeOpen || r.RowsPerRequest != 16 {
		t.Fatalf("overload run offered %g/s (rate %g) of %q %g/s", r.OfferedRPS, r.Rate, r.SustainableRun, r.SustainableRPS)
	}
	if r.Shed == nil || r.Health == nil || r.Health.Probes == 0 || r.Requests == 0 || r.MaxAcceptedP99US != 1e6 {
		t.Fatalf("overload run: shed %+v health %+v requests %d", r.Shed, r.Health, r.Requests)
	}
	// The gateway sheds with 503 and Retry-After: never an error here.
	if r.ErrorKinds["http_503"] != 0 || r.ErrorKinds["shed_without_retry_after"] != 0 {
		t.Fatalf("overload run errors %v", r.ErrorKinds)
	}
	t.Logf("sustained %g/s; overload: %g/s accepted, p99 %gµs, shed %+v, health %+v, flagged %q",
		sus.ThroughputRPS, r.ThroughputRPS, r.Latency.P99, *r.Shed, *r.Health, r.Flagged)
	if !strings.Contains(output, "overload gateway-overload/ranker@3x: offered") || !strings.Contains(output, "shed (p99)") {
		t.Fatalf("no overload summary in the output:\n%s", output)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	f := func(wantCode int, wantOut string, args ...string) {
		t.Helper()
		checkExit(t, wantCode, wantOut, args...)
	}
	f(0, "configuration is valid", "bench", "--dry-run")
	f(0, "configuration is valid", "bench", "suite", "--dry-run")
	f(0, "-max-p99 duration", "bench", "--help")
	f(0, "gateway-batched/M@cC", "bench", "suite", "--help")
	f(1, "--encoding \"xml\"", "bench", "--encoding", "xml", "--dry-run")
	f(1, "--floors: unknown floor \"gpu\"", "bench", "--floors", "gpu", "--dry-run")
	f(1, "pass --model-file", "bench", "--model", "other", "--floors", "ort", "--dry-run")
	f(1, "not a demo model", "bench", "suite", "--models", "other", "--dry-run")
	f(1, "is not a JSON object", "bench", "suite", "--batched-config", "nope", "--dry-run")
	f(0, "-max-accepted-p99 duration", "bench", "--help")
	f(0, "gateway-overload/ranker@Xx", "bench", "suite", "--help")
	f(1, "--overload 1 must be 0 (off) or above 1", "bench", "--overload", "1", "--dry-run")
	f(1, "--overload sets the open-loop rate itself", "bench", "--overload", "3", "--rate", "100", "--dry-run")
	f(1, "--max-accepted-p99 applies to the overload run only", "bench", "--max-accepted-p99", "2s", "--dry-run")
	f(1, "--max-accepted-p99 0s must be positive", "bench", "--overload", "3", "--max-accepted-p99", "0s", "--dry-run")
	f(0, "configuration is valid", "bench", "--overload", "2.5", "--dry-run")
	f(1, "which --models ctr does not list", "bench", "suite", "--overload", "3", "--models", "ctr", "--dry-run")
	f(1, "has none of its own here", "bench", "suite", "--server-cpus", "0", "--runtime-cpus", "1", "--dry-run")
	f(0, "configuration is valid", "bench", "suite", "--overload", "0", "--dry-run")
	f(1, "--max-accepted-p99 applies to the overload run only", "bench", "suite", "--overload", "0", "--max-accepted-p99", "2s", "--dry-run")
	f(1, "--reload-every 10ms must be between 50ms and 1h0m0s", "bench", "--reload-every", "10ms", "--dry-run")
	f(1, "--reload-every and --overload measure different things", "bench", "--reload-every", "1s", "--overload", "3", "--dry-run")
	f(0, "configuration is valid", "bench", "--reload-every", "500ms", "--dry-run")
	f(2, "not a positive integer", "bench", "--concurrency", "0")
	f(1, "cannot benchmark the target", "bench", "--target", "http://127.0.0.1:1", "--concurrency", "1", "--duration", "10ms")
}

// TestBenchReport prints a saved report again and writes its page, and
// refuses what is not a report.
func TestBenchReport(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "r.json")
	r := &bench.Report{
		Env: bench.Env{StartedAt: "2026-11-27T12:00:00Z", CPUs: 16},
		Runs: []bench.Run{
			{Name: "ort-floor/ctr@b16", Kind: bench.KindORTFloor, Model: "ctr", BatchSize: 16, Requests: 10, RowsPerS: 470e3, Latency: bench.Latency{Mean: 34}},
			{Name: "gateway-batched/ctr@c64", Kind: bench.KindGateway, Model: "ctr", Mode: bench.ModeClosed, Concurrency: 64, RowsPerRequest: 1,
				Batching: true, Requests: 10, ThroughputRPS: 235e3, RowsPerS: 235e3, Server: &bench.ServerStats{AvgBatch: 16, ComputeUSAvg: 48}},
		},
	}
	if err := bench.SaveJSON(saved, r); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "r.html")
	out, err := exec.Command(binPath, "bench", "report", "--html", page, saved).CombinedOutput()
	if err != nil {
		t.Fatalf("bench report: %v\n%s", err, out)
	}
	for _, want := range []string{"gateway-batched/ctr@c64", "ONNX Runtime per row, inside the gateway ÷ alone", "ctr: 3.0µs ÷ 2.1µs = 1.41"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the printed report lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "gateway-batched/ctr@c64") {
		t.Fatalf("the page: %v, %d bytes; want it written with the runs", err, len(b))
	}

	notReport := filepath.Join(dir, "x.json")
	os.WriteFile(notReport, []byte(`{"hello": 1}`), 0o644)
	f := func(wantCode int, wantOut string, args ...string) {
		t.Helper()
		checkExit(t, wantCode, wantOut, args...)
	}
	f(2, "missing argument REPORT.json", "bench", "report")
	f(2, `unexpected argument "r2.json"`, "bench", "report", saved, "r2.json")
	// The flag may come after the file too.
	page2 := filepath.Join(dir, "r2.html")
	f(0, "gateway-batched/ctr@c64", "bench", "report", saved, "--html", page2)
	if _, err := os.Stat(page2); err != nil {
		t.Fatalf("--html after the file: %v; want the page written", err)
	}
	f(1, "cannot read the report", "bench", "report", filepath.Join(dir, "missing.json"))
	f(1, "is not a bench report", "bench", "report", notReport)
	f(1, "is not a bench report", "bench", "report", "/dev/null")
}

// TestBenchNeighbors runs bench neighbors briefly on ctr and checks its
// table, its JSON, and its refusals.
func TestBenchNeighbors(t *testing.T) {
	f := func(wantCode int, wantOut string, args ...string) {
		t.Helper()
		checkExit(t, wantCode, wantOut, args...)
	}
	f(0, "configuration is valid", "bench", "neighbors", "--dry-run")
	f(0, "physical core (which the guest's CPU topology may not", "bench", "neighbors", "--help")
	f(2, `"1-x" is not a CPU number or range`, "bench", "neighbors", "--neighbors", "1-x")
	f(1, `neighbor load "disk"`, "bench", "neighbors", "--load", "disk", "--dry-run")
	f(1, "is not one this process may use", "bench", "neighbors", "--cpu", "100000", "--duration", "10ms")
	allowed, err := affinity.Allowed()
	if err != nil || len(allowed) < 2 {
		return // the refusals above are all there is to check
	}
	saved := filepath.Join(t.TempDir(), "n.json")
	out, err := exec.Command(binPath, "bench", "neighbors", "--ort-lib", testenv.ORTLib(t), "--model", "ctr", "--batch", "4",
		"--cpu", strconv.Itoa(allowed[0]), "--neighbors", strconv.Itoa(allowed[1]),
		// Long enough that a CI host busy with other tests still gives
		// CPU 0 a run in each step (150 ms once saw none).
		"--duration", "400ms", "--warmup", "20ms", "--json", saved).CombinedOutput()
	if err != nil {
		t.Fatalf("bench neighbors: %v\n%s", err, out)
	}
	for _, want := range []string{"ctr in batches of 4 rows on CPU ", "rows/s on CPU ", "alone: ", "below 0.85"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var r bench.NeighborReport
	if b, err := os.ReadFile(saved); err != nil || json.Unmarshal(b, &r) != nil || len(r.Steps) != 1 || r.Steps[0].RowsPerSec <= 0 || len(r.Alone) != 2 {
		t.Fatalf("the JSON: %v, %+v", err, r)
	}
}

// checkExit runs the binary with args and expects its exit code and a
// fragment of its output.
func checkExit(t *testing.T, wantCode int, wantOut string, args ...string) {
	t.Helper()
	out, err := exec.Command(binPath, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != wantCode || !strings.Contains(string(out), wantOut) {
		t.Fatalf("infergate %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(args, " "), code, out, wantCode, wantOut)
	}
}

// A gateway started with tokens is measured with them: --token for the
// inference and metadata calls (the statistics each step reads too), or
// INFERGATE_INFERENCE_TOKEN as serve reads it; without one, bench stops at
// the first call with the gateway's own message.
func TestBenchTokens(t *testing.T) {
	s := startServer(t, "--models", demoRepo(t), "--load", "ctr", "--inference-token", "infer-secret")
	args := []string{"bench", "--target", "http://" + s.addr, "--model", "ctr", "--concurrency", "2", "--duration", "300ms", "--warmup", "100ms"}
	check := func(rep *bench.Report) {
		t.Helper()
		r := &rep.Runs[0]
		checkRun(t, r)
		if r.Flagged != "" || r.Errors != 0 || len(r.ComputeBySize) == 0 {
			t.Fatalf("%s: flagged %q, %d errors, %d batch sizes from the statistics; want a clean run that read them", r.Name, r.Flagged, r.Errors, len(r.ComputeBySize))
		}
	}
	_, rep := runBenchCommand(t, append(args, "--token", "infer-secret")...)
	check(rep)
	t.Setenv("INFERGATE_INFERENCE_TOKEN", "infer-secret")
	_, rep = runBenchCommand(t, args...)
	check(rep)

	t.Setenv("INFERGATE_INFERENCE_TOKEN", "")
	out, err := exec.Command(binPath, append(args, "--quiet")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "this server needs the inference token") {
		t.Fatalf("bench without the token: %v\n%s; want a failure with the gateway's message", err, out)
	}
}
