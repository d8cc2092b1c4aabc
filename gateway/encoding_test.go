package gateway

import "testing"

func TestResponseEncoding(t *testing.T) {
	f := func(accept, want string) {
		t.Helper()
		if got := responseEncoding([]byte(accept)); got != want {
			t.Fatalf("Accept-Encoding %q: got %q; want %q", accept, got, want)
		}
	}
	f("", "")
	f("gzip", "gzip")
	f("GZIP", "gzip")
	f("deflate", "deflate")
	f("gzip, deflate, br", "gzip")
	f("br, deflate", "deflate")
	f(" deflate ; q=0.5 , gzip;q=1.0", "gzip")
	f("gzip;q=0, deflate", "deflate")
	f("gzip; q=0.000, deflate;q=0", "")
	f("*", "gzip")
	f("identity", "")
	f("br, zstd", "")
	f("gzipx, xdeflate", "")
}
