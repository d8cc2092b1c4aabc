package trafficlog

import (
	"errors"
	"testing"
)

// BenchmarkAppend is what a sampled prediction costs the request that
// logs it: encoding it and handing it to the writer goroutine (whose
// writes and fsyncs run elsewhere).
func BenchmarkAppend(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	l, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := prediction(1)
	dropped := 0
	b.ReportAllocs()
	for b.Loop() {
		err := l.Append(e)
		if errors.Is(err, ErrFull) {
			dropped++ // the writer lags: dropped, as designed
		} else if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(dropped), "dropped")
}
