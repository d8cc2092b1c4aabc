package gateway

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// traceOne traces a request of model m, as traceRequest does, if tr
// samples it.
func traceOne(tr *tracer, at time.Time) {
	if tr.sample("m") {
		tr.record(&traceEntry{model: "m", version: "1", start: at, queued: at, ran: at, done: at, end: at})
	}
}

// BenchmarkTraceTake measures the tracer's decision for requests of many
// goroutines at once, with tracing on at Triton's default rate of 1 in
// 1,000: what every inference request pays while tracing samples.
func BenchmarkTraceTake(b *testing.B) {
	tr := newTracer(TraceConfig{File: filepath.Join(b.TempDir(), "t.json"), Level: TraceTimestamps, Rate: 1000, LogFrequency: 1000}, metrics.NewSet(), b.Logf)
	defer tr.close(context.Background())
	at := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			traceOne(tr, at)
		}
	})
}

// BenchmarkTraceEvery measures tracing every request (rate 1) from many
// goroutines at once: the decision, the trace's JSON, holding it, and
// handing a file of log frequency traces to the writer (log frequency
// 10,000; 0: held until close, as the whole file is, up to the 65,536
// held).
func BenchmarkTraceEvery(b *testing.B) {
	for _, freq := range []int64{10000, 0} {
		name := "logfreq10000"
		if freq == 0 {
			name = "logfreq0"
		}
		b.Run(name, func(b *testing.B) {
			tr := newTracer(TraceConfig{File: filepath.Join(b.TempDir(), "t.json"), Level: TraceTimestamps, Rate: 1, LogFrequency: freq}, metrics.NewSet(), b.Logf)
			at := time.Now()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					traceOne(tr, at)
				}
			})
			b.StopTimer()
			tr.close(context.Background())
		})
	}
}
