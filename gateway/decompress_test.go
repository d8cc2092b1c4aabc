package gateway_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// compressBody compresses b with the content coding ce.
func compressBody(t testing.TB, ce string, b []byte) []byte {
	t.Helper()
	switch ce {
	case "gzip":
		return fasthttp.AppendGzipBytes(nil, b)
	case "deflate":
		return fasthttp.AppendDeflateBytes(nil, b)
	case "br":
		return fasthttp.AppendBrotliBytes(nil, b)
	case "zstd":
		// A window of 1 MiB, as HTTP clients use (RFC 9659 allows 8).
		zw, err := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer zw.Close()
		return zw.EncodeAll(b, nil)
	}
	t.Fatalf("BUG: unknown coding %q", ce)
	return nil
}

// A compressed body that decompresses past --max-body is answered 413
// without the server holding what it decompresses to: a request of a few
// KiB made the server allocate four times the limit (a 1 MiB gzip bomb
// took 264 MB of RSS at the default 64 MiB; 16 of them at once, 2.1 GB),
// so that a few hundred such requests ran it out of memory. Each coding
// still decodes a body within the limit, one that compresses well
// included.
func TestCompressionBombAllocatesLittle(t *testing.T) {
	cfg := gateway.DefaultConfig()
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	// A good request padded with spaces to a ratio no bomb check may
	// refuse: 4 MiB that compress to a few KiB.
	padded := append(bytes.Repeat([]byte(" "), 4<<20), fakeRequest...)
	bomb := make([]byte, cfg.MaxBodyBytes+1<<20)
	for _, ce := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(ce, func(t *testing.T) {
			checkFakeAnswer(t, s.post(t, fakeInfer, compressBody(t, ce, fakeRequest), "Content-Encoding", ce))
			checkFakeAnswer(t, s.post(t, fakeInfer, compressBody(t, ce, padded), "Content-Encoding", ce))

			body := compressBody(t, ce, bomb)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := s.post(t, fakeInfer, body, "Content-Encoding", ce)
			runtime.ReadMemStats(&after)
			checkError(t, r, fasthttp.StatusRequestEntityTooLarge, "decompresses to more than the 67108864-byte limit")
			// What the decoders hold, whatever the body: a brotli window
			// (4 MiB here, 16 at most) or a zstd one (1 MiB here, 8 at
			// most), and the bytes kept before the ratio is too high.
			if got, most := after.TotalAlloc-before.TotalAlloc, uint64(cfg.MaxBodyBytes/4); got > most {
				t.Errorf("a %d-byte %s body over the limit: the server allocated %d bytes; want at most %d", len(body), ce, got, most)
			}
		})
	}
}

// A zstd body whose frames need a window over 8 MiB, which HTTP's zstd
// coding does not allow (RFC 9659), is a 400 that says so: a decoder
// holds a window's worth of memory, whatever the body.
func TestZstdWindowOverEightMiB(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	zw, err := zstd.NewWriter(nil, zstd.WithWindowSize(16<<20), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	body := zw.EncodeAll(append(bytes.Repeat([]byte(" "), 12<<20), fakeRequest...), nil)
	checkError(t, s.post(t, fakeInfer, body, "Content-Encoding", "zstd"), fasthttp.StatusBadRequest, "window of more than 8 MiB")
	checkFakeAnswer(t, s.post(t, fakeInfer, compressBody(t, "zstd", fakeRequest), "Content-Encoding", "zstd"))
}
