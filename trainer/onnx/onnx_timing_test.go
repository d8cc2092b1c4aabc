package onnx

import "testing"

func BenchmarkMarshalRanker(b *testing.B) {
	m := DemoRanker().Model()
	b.SetBytes(int64(len(m.Marshal())))
	b.ReportAllocs()
	for b.Loop() {
		m.Marshal()
	}
}

func BenchmarkForwardCTR(b *testing.B) {
	const rows = 64
	m := DemoCTR()
	x := uniformInputs(1, rows, m.In())
	b.ReportAllocs()
	for b.Loop() {
		m.Forward(x, rows)
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
