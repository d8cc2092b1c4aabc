package bench

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/infergate/infergate/oip"
)

// TestStatsDelta reads the statistics extension as a Triton server writes
// it (field names from its protocol documentation) and checks the step's
// figures: versions summed, a version loaded again during the step counted
// from its new start, one that came or went left out, and cache hits kept
// out of the queue figure.
func TestStatsDelta(t *testing.T) {
	stat := func(version string, rows, execs, queueN, queueNS, hits, b2, b2ns int) string {
		b, _ := json.Marshal(map[string]any{
			"name": "m", "version": version, "last_inference": 1, "inference_count": rows, "execution_count": execs,
			"inference_stats": map[string]any{
				"success":        map[string]int{"count": queueN, "ns": 1},
				"fail":           map[string]int{"count": 0, "ns": 0},
				"queue":          map[string]int{"count": queueN, "ns": queueNS},
				"compute_input":  map[string]int{"count": queueN - hits, "ns": 1000 * b2},
				"compute_infer":  map[string]int{"count": queueN - hits, "ns": 0},
				"compute_output": map[string]int{"count": queueN - hits, "ns": 1000 * b2},
				"cache_hit":      map[string]int{"count": hits, "ns": 7},
			},
			"batch_stats": []map[string]any{{
				"batch_size":     2,
				"compute_input":  map[string]int{"count": b2, "ns": 1000 * b2},
				"compute_infer":  map[string]int{"count": b2, "ns": b2ns},
				"compute_output": map[string]int{"count": b2, "ns": 1000 * b2},
			}},
		})
		return string(b)
	}
	read := func(stats ...string) *oip.ModelStatistics {
		var st oip.ModelStatistics
		body := `{"model_stats":[`
		for i, s := range stats {
			if i > 0 {
				body += ","
			}
			body += s
		}
		if err := json.Unmarshal([]byte(body+"]}"), &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	// Version 1 runs 100 executions of 2 rows (48 µs each, 50 µs with
	// the input and output copies) for 200 requests, 20 of them cache
	// hits, waiting 30 µs each on average; version 2 is loaded again in
	// the middle and runs 10 executions after; version 3 appears.
	before := read(stat("1", 1000, 500, 1000, 9e6, 0, 500, 500*48000), stat("2", 500, 250, 500, 1e6, 0, 250, 250*48000))
	after := read(
		stat("1", 1200, 600, 1200, 9e6+180*30000, 20, 600, 600*48000),
		stat("2", 20, 10, 20, 20*30000, 0, 10, 10*48000),
		stat("3", 999, 999, 999, 999, 0, 999, 999),
	)
	d := statsDelta{before: before, after: after}
	want := &ServerStats{
		AvgBatch:     2,  // 220 rows / 110 executions
		QueueUSAvg:   30, // (180 + 20) × 30 µs over the 200 queued, hits left out
		ComputeUSAvg: 50,
		CacheHits:    20,
		From:         ServerStatsFromStatistics,
	}
	if got := d.stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\ngot  %+v\nwant %+v", got, want)
	}
	if got, want := batchBins(d.computeBySize()), []BatchBin{{Size: 2, Count: 110}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %+v; want %+v", got, want)
	}
	// 110 executions of 2 rows at 50 µs.
	if got, want := d.computeBySize(), []SizeCompute{{Size: 2, Count: 110, ComputeUS: 5500}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("compute by size %+v; want %+v", got, want)
	}
}

func TestSameSizeCost(t *testing.T) {
	floor := func(b int, meanUS float64) *Run {
		return &Run{Kind: KindORTFloor, BatchSize: b, Latency: Latency{Mean: meanUS}}
	}
	floors := []*Run{floor(8, 24), floor(2, 12), nil, floor(4, 16), floor(16, 0)} // a nil and a run without a mean are skipped
	bySize := []SizeCompute{
		{Size: 1, Count: 2, ComputeUS: 30},  // below the smallest floor: its 12 µs each
		{Size: 3, Count: 1, ComputeUS: 30},  // between 2 and 4: 14 µs
		{Size: 4, Count: 1, ComputeUS: 20},  // at 4: 16 µs
		{Size: 16, Count: 1, ComputeUS: 99}, // above the largest: 24 µs × 16/8
		{Size: 0, Count: 5, ComputeUS: 1e6}, // not a batch: skipped
	}
	inside, alone, ok := sameSizeCost(bySize, floors)
	const rows = 2 + 3 + 4 + 16
	if !ok || inside != 179.0/rows || alone != (2*12+14+16+48)/float64(rows) {
		t.Fatalf("got %g, %g, %v; want %g, %g", inside, alone, ok, 179.0/rows, (2*12+14+16+48)/float64(rows))
	}
	if _, _, ok := sameSizeCost(nil, floors); ok {
		t.Fatal("no executions: ok")
	}
	if _, _, ok := sameSizeCost(bySize, []*Run{nil}); ok {
		t.Fatal("no floors: ok")
	}
}
