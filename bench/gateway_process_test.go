package bench

import "testing"

// The suite finds the address of the gateway it starts in serve's log,
// plain or HTTPS (with --server-arg=--tls-cert=...).
func TestServingLine(t *testing.T) {
	f := func(line, want string) {
		t.Helper()
		got := ""
		if m := servingLine.FindStringSubmatch(line); m != nil {
			got = m[1]
		}
		if got != want {
			t.Fatalf("servingLine in %q: got %q; want %q", line, got, want)
		}
	}
	f("2026/11/28 12:00:54.222821 infergate dev serving on http://127.0.0.1:28543 (ONNX Runtime 1.30.0, models in models)", "http://127.0.0.1:28543")
	f("2026/11/28 12:00:54.222821 infergate dev serving on https://127.0.0.1:28543 (ONNX Runtime 1.30.0, models in models)", "https://127.0.0.1:28543")
	f("floor serving on http://127.0.0.1:1", "http://127.0.0.1:1")
	f("loaded model", "")
}
