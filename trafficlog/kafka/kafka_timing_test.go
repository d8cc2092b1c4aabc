package kafka

import (
	"testing"
)

// BenchmarkAppend is what a sampled prediction costs the request that
// logs it to Kafka: encoding it and handing it to the producer (the
// brokers' work, here an in-process one, runs elsewhere).
func BenchmarkAppend(b *testing.B) {
	w, _ := open(b, broker(b))
	e := prediction(1)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}
