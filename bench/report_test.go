package bench

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestReportSchema pins the JSON names that other tools read (issue 3):
// they may gain siblings, never change.
func TestReportSchema(t *testing.T) {
	r := Report{
		Env: Env{CPUModel: "x"},
		Runs: []Run{{
			Name: "gateway-batched/ranker@c64", Kind: KindGateway, Model: "ranker", Batching: true,
			Mode: ModeClosed, Concurrency: 64, RowsPerRequest: 1, DurationS: 5, Requests: 10,
			ThroughputRPS: 2, RowsPerS: 2, Latency: Latency{P50: 1, P90: 2, P99: 3, P999: 4, Max: 5},
			Server: &ServerStats{AvgBatch: 3.5, QueueUSAvg: 10, ComputeUSAvg: 20},
		}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"env", "runs"} {
		if _, ok := top[k]; !ok {
			t.Fatalf("report has no %q: %s", k, b)
		}
	}
	var runs []map[string]json.RawMessage
	if err := json.Unmarshal(top["runs"], &runs); err != nil {
		t.Fatal(err)
	}
	run := runs[0]
	for _, k := range []string{
		"name", "kind", "model", "batching", "cache", "mode", "concurrency", "rate",
		"rows_per_request", "batch_size", "duration_s", "requests", "errors",
		"throughput_rps", "rows_per_s", "latency_us", "server",
	} {
		if _, ok := run[k]; !ok {
			t.Fatalf("run has no %q: %s", k, b)
		}
	}
	keys := func(raw json.RawMessage) []string {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if !slices.Contains(keys(run["latency_us"]), k) {
			t.Fatalf("latency_us has no %q: %s", k, run["latency_us"])
		}
	}
	for _, k := range []string{"avg_batch", "queue_us_avg", "compute_us_avg"} {
		if !slices.Contains(keys(run["server"]), k) {
			t.Fatalf("server has no %q: %s", k, run["server"])
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Runs[0].Latency.P999 != 4 || back.Runs[0].Server.AvgBatch != 3.5 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	// Kinds and modes as the issue spells them.
	for got, want := range map[string]string{
		KindGateway: "gateway", KindHTTPFloor: "http-floor", KindORTFloor: "ort-floor",
		ModeClosed: "closed", ModeOpen: "open",
	} {
		if got != want {
			t.Fatalf("constant %q; want %q", got, want)
		}
	}
}

// TestBuildCommitPrefersVersion: a test binary carries no VCS stamp, so
// the version the build names itself wins over the working directory's
// git head.
func TestBuildCommitPrefersVersion(t *testing.T) {
	if got := buildCommit("v1.2-3-gabcdef0-dirty"); got != "v1.2-3-gabcdef0-dirty" {
		t.Fatalf("buildCommit with a version: got %q; want the version", got)
	}
}
