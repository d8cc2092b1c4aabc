package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

func TestORTFloor(t *testing.T) {
	opts := DefaultOptions()
	opts.ORTLib = testenv.ORTLib(t)
	opts.Warmup = 20 * time.Millisecond
	opts.Duration = 150 * time.Millisecond
	opts.MaxBatch = 4
	s := newSession(context.Background(), opts)
	if err := s.ortFloor("ctr", demoModel("ctr"), 2, 1, ""); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range s.report.Runs {
		names = append(names, r.Name)
		if r.Flagged != "" || r.Errors != 0 || r.Requests == 0 {
			t.Fatalf("%s: flagged %q errors %d requests %d", r.Name, r.Flagged, r.Errors, r.Requests)
		}
		if r.Kind != KindORTFloor || r.Concurrency != 2 || r.BatchSize != r.RowsPerRequest || r.Mode != ModeClosed {
			t.Fatalf("%s: %+v", r.Name, r)
		}
		if d := r.RowsPerS - float64(r.BatchSize)*r.ThroughputRPS; d > 0.5*float64(r.BatchSize) || d < -0.5*float64(r.BatchSize) {
			t.Fatalf("%s: %g rows/s for %g runs/s of %d rows", r.Name, r.RowsPerS, r.ThroughputRPS, r.BatchSize)
		}
		if !(r.Latency.P50 > 0 && r.Latency.P50 <= r.Latency.P99 && r.Latency.P99 <= r.Latency.Max) {
			t.Fatalf("%s: latency %+v", r.Name, r.Latency)
		}
	}
	if got := strings.Join(names, " "); got != "ort-floor/ctr@b1 ort-floor/ctr@b2 ort-floor/ctr@b4" {
		t.Fatalf("runs %s", got)
	}
	if s.report.Env.ORTVersion == "" {
		t.Fatalf("no ONNX Runtime version in the environment")
	}

	// Bytes that differ from the served model flag every run.
	mismatch := modelMismatch(&servedConfig{SHA256: strings.Repeat("ab", 32)}, demoModel("ctr"))
	if !strings.Contains(mismatch, "--model-file") {
		t.Fatalf("mismatch message %q", mismatch)
	}
	if m := modelMismatch(&servedConfig{SHA256: sha256Hex(demoModel("ctr"))}, demoModel("ctr")); m != "" {
		t.Fatalf("same bytes: %q", m)
	}
}
