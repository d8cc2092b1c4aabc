package bench

import (
	"bytes"
	"strings"
	"testing"
)

// ranker's ort-floor runs are all flagged (the gateway serves another
// model file: modelMismatch flags every one of them). The lower floor is
// then unknown, as it is when the http-floor is flagged (hfFlagged), and
// the throughput target must go unchecked, not fall to the http-floor's
// req/s, a target for models whose HTTP costs more than their model (it
// read NOT MET at 0.08).
func TestFlaggedORTFloorLeavesThroughputUnchecked(t *testing.T) {
	runs := targetRuns("ranker", 4_000, 40_000, 400_000, 4_000, 33_000, 380_000)
	for i := range runs {
		if runs[i].Kind == KindORTFloor {
			runs[i].Flagged = "the ort-floor's model (sha256 0123456789ab) is not the one the gateway serves (sha256 ba9876543210); pass the served file with --model-file"
		}
	}
	for _, x := range CheckTargets(&Report{Runs: runs}) {
		if strings.HasPrefix(x.Name, "batched req/s ÷ http-floor") {
			t.Fatalf("with its ort-floor flagged, ranker is judged on %q = %.2f (met %v): the lower floor is unknown, the target must go unchecked",
				x.Name, x.Value, x.Met)
		}
	}
}

// Same when ONNX Runtime could not be loaded at all (ortFloorHere's fail:
// one flagged run without figures).
func TestFailedORTFloorLeavesThroughputUnchecked(t *testing.T) {
	runs := targetRuns("ranker", 4_000, 40_000, 400_000, 4_000, 33_000, 380_000)
	runs = append(runs[2:], Run{Name: "ort-floor/ranker", Kind: KindORTFloor, Model: "ranker", Mode: ModeClosed, Concurrency: 1,
		Flagged: "cannot load the model into ONNX Runtime: boom"})
	for _, x := range CheckTargets(&Report{Runs: runs}) {
		if strings.HasPrefix(x.Name, "batched req/s ÷ http-floor") {
			t.Fatalf("with no clean ort-floor run, ranker is judged on %q = %.2f (met %v)", x.Name, x.Value, x.Met)
		}
	}
}

// A gateway-cached run whose server answered nothing from its cache (all
// misses) is flagged, so that the "cache hits" target is never met on
// uncached throughput.
func TestCachedRunWithoutHitsFlagged(t *testing.T) {
	r := Run{Name: "gateway-cached/ctr@c64", Kind: KindGateway, Model: "ctr", Mode: ModeClosed, Concurrency: 64,
		RowsPerRequest: 1, Cache: true, Requests: 100_000, ThroughputRPS: 380_000, RowsPerS: 380_000,
		Server: &ServerStats{AvgBatch: 1, CacheHits: 0, CacheMisses: 100_000}}
	flagRun(&r, true) // as the suite calls it: unbatched = !v.batching
	if r.Flagged == "" {
		runs := targetRuns("ctr", 100_000, 500_000, 400_000, 50_000, 240_000, 0)
		runs[len(runs)-1] = r
		for _, x := range CheckTargets(&Report{Runs: runs}) {
			if strings.HasPrefix(x.Name, "cache hits") {
				t.Fatalf("a run meant to hit the cache that had 0 hits in 100,000 misses is not flagged; target %q = %.2f, met %v",
					x.Name, x.Value, x.Met)
			}
		}
		t.Fatal("a run meant to hit the cache that had 0 hits in 100,000 misses is not flagged")
	}
}

// The HTML targets table, like the text, writes a value with as many
// decimals as it takes not to read as its bound: 0.7996 against 0.80 must
// not read "0.80 | ≥ 0.80 | not met".
func TestHTMLTargetValueNeverReadsAsBound(t *testing.T) {
	tab := buildTargets([]Target{{Model: "ranker", Name: "batched rows/s ÷ best ort-floor rows/s", Value: 0.7996, Bound: 0.8, Met: false}}, "")
	row := tab.Rows[0]
	value, bound := row[2].S, strings.TrimPrefix(row[3].S, "≥ ")
	if value == bound {
		t.Fatalf("HTML target reads value %q, bound %q, %q; the text table reads %s", row[2].S, row[3].S, row[4].S, formatBeside(0.7996, 0.8))
	}
}

// The idle target's value and bound, in µs, never read the same while
// they differ: 1,234 µs against 1,231 µs must not read "1.23ms, bound
// 1.23ms" next to NOT MET, in the table or in the HTML.
func TestIdleTargetValueNeverReadsAsBound(t *testing.T) {
	ts := []Target{{Model: "ranker", Name: "idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs", Unit: "µs", Value: 1234, Bound: 1231, Met: false}}
	var b bytes.Buffer
	writeTargets(&b, ts, "")
	if strings.Contains(b.String(), "1.23ms, bound 1.23ms") {
		t.Errorf("text table: %s", strings.TrimSpace(b.String()))
	}
	row := buildTargets(ts, "").Rows[0]
	if row[2].S == strings.TrimPrefix(row[3].S, "≤ ") {
		t.Errorf("HTML: value %q, bound %q, %q", row[2].S, row[3].S, row[4].S)
	}
}
