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
	// A coding refused with q=0 stays refused whatever "*" says; "*" gives
	// its weight to the codings not listed.
	f("gzip;q=0, *", "deflate")
	f("*, gzip;q=0", "deflate")
	f("gzip;q=0, deflate;q=0, *", "")
	f("*;q=0", "")
	f("*;q=0, deflate", "deflate")
	f("br, *;q=0.5", "gzip")
	// The weight's name is case-insensitive; the higher weight wins.
	f("gzip;Q=0, deflate", "deflate")
	f("gzip;Q=0", "")
	f("deflate;Q=0.0", "")
	f("deflate, gzip;q=0.1", "deflate")
	f("deflate;q=0.5, gzip;q=0.5", "gzip")
	// A weight that does not parse, or is out of range, counts as 1.
	f("gzip;q=x", "gzip")
	f("gzip;q=7", "gzip")
}
