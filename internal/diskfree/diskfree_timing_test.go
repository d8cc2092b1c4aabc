package diskfree

import "testing"

// BenchmarkCheck is the guard's cost on the traffic log's append, with
// room to spare: `go test -run '^$' -bench Check ./internal/diskfree`.
func BenchmarkCheck(b *testing.B) {
	g := New(b.TempDir(), 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := g.Check(300); err != nil {
				b.Fatal(err)
			}
		}
	})
}
