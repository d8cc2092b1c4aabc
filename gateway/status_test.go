package gateway

import "testing"

func TestMeanDuration(t *testing.T) {
	f := func(ns, n uint64, want string) {
		t.Helper()
		if got := meanDuration(ns, n); got != want {
			t.Fatalf("meanDuration(%d, %d) = %q; want %q", ns, n, got, want)
		}
	}
	f(0, 3, "0s")
	f(900, 2, "450ns")
	f(55_912, 1, "55.9µs")
	f(3*72_240, 3, "72.2µs")
	f(1_234_567, 1, "1.23ms")
	f(2_500_000_000, 2, "1.25s")
}
