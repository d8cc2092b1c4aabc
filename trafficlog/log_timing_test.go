package trafficlog

import "testing"

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
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}
