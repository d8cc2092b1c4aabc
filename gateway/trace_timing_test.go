package gateway

import (
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// BenchmarkTraceTake measures the tracer's decision for requests of many
// goroutines at once, with tracing on at Triton's default rate of 1 in
// 1,000: what every inference request pays while tracing samples.
func BenchmarkTraceTake(b *testing.B) {
	tr := newTracer(TraceConfig{File: filepath.Join(b.TempDir(), "t.json"), Level: TraceTimestamps, Rate: 1000, LogFrequency: 1000}, metrics.NewSet(), b.Logf)
	defer tr.close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if id, ok := tr.take("m"); ok {
				tr.record(&traceEntry{id: id, model: "m", version: "1"})
			}
		}
	})
}
