package gateway

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
)

var fuzzCodings = []string{"gzip", "deflate", "br", "zstd"}

// FuzzDecompress decodes mutated bodies with each content coding. Taken
// as a compressed body, data decodes to at most limit bytes, kept in at
// most about keepRatio times the body (or minKeep) or the decoded size,
// or fails; taken as the plain text (repeated rep times, to reach the
// bodies that inflate past what is kept), it comes back whole when within
// limit and as fasthttp.ErrBodyTooLarge when not.
func FuzzDecompress(f *testing.F) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	defer enc.Close()
	compress := func(ce string, p []byte) []byte {
		switch ce {
		case "gzip":
			return fasthttp.AppendGzipBytes(nil, p)
		case "deflate":
			return fasthttp.AppendDeflateBytes(nil, p)
		case "br":
			return fasthttp.AppendBrotliBytes(nil, p)
		}
		return enc.EncodeAll(p, nil)
	}
	for i, ce := range fuzzCodings {
		f.Add(compress(ce, []byte(`{"inputs":[]}`)), uint8(i), uint16(0), uint32(1<<20))
		f.Add(compress(ce, bytes.Repeat([]byte("a"), 1<<20)), uint8(i), uint16(300), uint32(300<<10))
	}
	f.Fuzz(func(t *testing.T, data []byte, coding uint8, rep uint16, limit32 uint32) {
		ce := fuzzCodings[int(coding)%len(fuzzCodings)]
		if coding&4 != 0 {
			ce = strings.ToUpper(ce)
		}
		limit := 1 + int(limit32%(2<<20))

		// data as the body.
		out, err := decompress([]byte(ce), data, limit)
		if err == nil {
			if len(out) > limit {
				t.Fatalf("%s: decoded %d bytes; limit %d", ce, len(out), limit)
			}
			if keep := min(limit, max(minKeep, keepRatio*len(data))); cap(out) > max(2*keep, 4096) && cap(out) != len(out) {
				// 2x: append's growth; 4 KiB: its rounding of small sizes.
				t.Fatalf("%s: %d bytes decoded from %d kept in a buffer of %d; want at most %d, or the decoded size", ce, len(out), len(data), cap(out), max(2*keep, 4096))
			}
			again, err := decompress([]byte(ce), data, limit)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("%s: decoding again: got %d bytes, %v; want the %d bytes of the first time", ce, len(again), err, len(out))
			}
		}

		// data as the plain text.
		plain := bytes.Repeat(data, 1+int(rep)%2048)
		if len(plain) > 1<<20 {
			plain = plain[:1<<20]
		}
		out, err = decompress([]byte(ce), compress(strings.ToLower(ce), plain), limit)
		switch {
		case len(plain) <= limit && (err != nil || !bytes.Equal(out, plain)):
			t.Fatalf("%s: %d bytes (limit %d) came back as %d bytes, %v", ce, len(plain), limit, len(out), err)
		case len(plain) > limit && !errors.Is(err, fasthttp.ErrBodyTooLarge):
			t.Fatalf("%s: %d bytes past the limit %d: got %d bytes, %v; want ErrBodyTooLarge", ce, len(plain), limit, len(out), err)
		}
	})
}
