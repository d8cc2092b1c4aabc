package bench

import (
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	r := &Report{
		Env: Env{CPUModel: "AMD EPYC", CPUs: 2, GOMAXPROCS: 2, GoVersion: "go1.26", Target: "http://x", SharedCores: true, Instances: 1, IntraOpThreads: 1},
		Runs: []Run{
			{Name: "gateway/ctr@c64", Kind: KindGateway, ThroughputRPS: 12345.6, RowsPerS: 12345.6, Requests: 100,
				Latency: Latency{P50: 950, P99: 12_340, P999: 1_500_000}, ClientCPU: 0.5, ServerCPU: 0.98, ServerCPUPerRequestUS: 31.5,
				Server: &ServerStats{AvgBatch: 3.25, QueueUSAvg: 120, ComputeUSAvg: 45}},
			{Name: "http-floor/ctr@c64", Kind: KindHTTPFloor, ThroughputRPS: 40000, Requests: 100, ClientCPU: 1.9, ServerCPU: 0.5, ServerCPUPerRequestUS: 12.4},
			{Name: "gateway-batched/ctr@c64", Kind: KindGateway, Flagged: "the gateway refused the model configuration {}: no"},
			{Name: "ort-floor/ctr@b8", Kind: KindORTFloor, BatchSize: 8, ThroughputRPS: 5, Requests: 10, Errors: 1},
		},
		Sweeps: []Sweep{{Kind: KindGateway, Model: "ctr", Mode: ModeOpen, MaxP99US: 5000, Best: "gateway/ctr@r2000", BestLoad: 2000, BestThroughputRPS: 1999.5, StoppedAt: "gateway/ctr@r4000"}},
	}
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"AMD EPYC, 2 CPUs, GOMAXPROCS 2",
		"client and server share cores: yes",
		"gateway/ctr@c64          gateway     12,346  12,346  950µs  12.3ms  1.50s          0   0.50     0.98     32µs   3.25  120µs     45µs",
		"http-floor/ctr@c64       http-floor  40,000     0.0      0       0      0          0  1.90!     0.50     12µs      -      -        -",
		"gateway-batched/ctr@c64  gateway          -       -      -       -      -          -      -        -        -      -      -        -     -  FLAGGED[1]",
		"1.90!",
		"FLAGGED[1]",
		"[1] gateway-batched/ctr@c64: the gateway refused the model configuration {}: no",
		"! the load generator used 90% or more of its 2 cores",
		"1 (10.0%)",
		"sweep gateway/ctr (open loop), p99 <= 5.00ms: highest load 2,000/s (2,000 req/s achieved, gateway/ctr@r2000); stopped at gateway/ctr@r4000",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatting(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("got %q; want %q", got, want)
		}
	}
	f(formatUS(0), "0")
	f(formatUS(17), "17µs")
	f(formatUS(999), "999µs")
	f(formatUS(1234), "1.23ms")
	f(formatUS(12_345), "12.3ms")
	f(formatUS(123_456), "123ms")
	f(formatUS(2_500_000), "2.50s")
	f(groupThousands(0), "0.0")
	f(groupThousands(99.94), "99.9")
	f(groupThousands(1234567.4), "1,234,567")
	f(groupThousands(100), "100")
	f(groupThousands(-12345), "-12,345")
}

func TestWriteTableOverload(t *testing.T) {
	r := &Report{
		Env: Env{GOMAXPROCS: 2},
		Runs: []Run{
			{Name: "gateway/ranker@c64", Kind: KindGateway, ThroughputRPS: 1000, Requests: 100, Latency: Latency{P99: 90e3}},
			{Name: "gateway-overload/ranker@3x", Kind: KindGateway, Mode: ModeOpen, Rate: 3000, Overload: 3,
				OfferedRPS: 3000, SustainableRPS: 1000, SustainableRun: "gateway/ranker@c64", SentRPS: 2999, MaxAcceptedP99US: 1e6,
				ThroughputRPS: 950, Requests: 15000, Errors: 3, Latency: Latency{P50: 300e3, P99: 420e3},
				Shed:    &ShedStats{Count: 10245, Fraction: 0.683, P50US: 310, P99US: 2100, MaxUS: 9000},
				Health:  &HealthStats{Probes: 500, Failures: 2, P50US: 250, P99US: 1200, MaxUS: 4000},
				Flagged: "/v2/health/ready failed 2 of 500 probes"},
		},
	}
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"compute  wake      shed (p99)         ready p99  flag",
		"-               -                 -\n",
		"-  68.3% (2.10ms)  1.20ms, 2 failed  FLAGGED[1]",
		"overload gateway-overload/ranker@3x: offered 3,000/s = 3 × 1,000/s sustained by gateway/ranker@c64 (sent 2,999/s); " +
			"accepted 950/s, p99 420ms (bound 1.00s); shed 10,245 of 15,000 requests (68.3%), p50 310µs, p99 2.10ms, max 9.00ms; " +
			"errors 3 (0.0%); /v2/health/ready p50 250µs, p99 1.20ms, max 4.00ms, 2 of 500 probes failed",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	// Without overload runs, no such columns.
	r.Runs = r.Runs[:1]
	b.Reset()
	WriteTable(&b, r)
	if strings.Contains(b.String(), "shed") || strings.Contains(b.String(), "ready") {
		t.Fatalf("table of a plain run shows overload columns:\n%s", b.String())
	}
}
