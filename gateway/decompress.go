package gateway

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
)

// Bounds on decompressing a request body. A body's decoded bytes are kept
// up to keepRatio times its compressed size (minKeep at least); past that
// they are only counted, up to the limit, and a body within the limit is
// then decoded again into a buffer of its exact size. A bomb (a few KiB
// that inflate to gigabytes) is so refused having cost its decoding up to
// the limit, but not memory: kept whole, it took four times the limit
// (the buffer's growth), for every such request at once.
const (
	keepRatio = 8
	minKeep   = 256 << 10
	// zstdMaxWindow is the largest zstd window taken, which the HTTP zstd
	// content coding caps at 8 MiB (RFC 9659): a decoder holds a window's
	// worth whatever the body's size.
	zstdMaxWindow = 8 << 20
)

// errZstdWindow is a zstd body whose frames need a window over
// zstdMaxWindow.
var errZstdWindow = errors.New("its frames need a window of more than 8 MiB, which HTTP's zstd coding does not allow (RFC 9659); compress with a window of 8 MiB at most (the zstd tool's default levels do; --long does not)")

// decompress returns body decoded as the content coding ce says (gzip,
// deflate, br or zstd, in any case), or fasthttp.ErrBodyTooLarge when
// that is more than limit bytes, or fasthttp.ErrContentEncodingUnsupported
// for another coding.
func decompress(ce, body []byte, limit int) ([]byte, error) {
	var decode func(w io.Writer, p []byte) error
	switch {
	case bytes.EqualFold(ce, []byte("gzip")):
		decode = func(w io.Writer, p []byte) error { _, err := fasthttp.WriteGunzip(w, p); return err }
	case bytes.EqualFold(ce, []byte("deflate")):
		decode = func(w io.Writer, p []byte) error { _, err := fasthttp.WriteInflate(w, p); return err }
	case bytes.EqualFold(ce, []byte("br")):
		decode = func(w io.Writer, p []byte) error { _, err := fasthttp.WriteUnbrotli(w, p); return err }
	case bytes.EqualFold(ce, []byte("zstd")):
		decode = unzstd
	default:
		return nil, fasthttp.ErrContentEncodingUnsupported
	}
	w := &boundedWriter{keep: min(limit, max(minKeep, keepRatio*len(body))), limit: limit}
	if err := decode(w, body); err != nil {
		return nil, err
	}
	if !w.dropped {
		return w.b, nil
	}
	// Within the limit, but more than was kept: again, into its size.
	n := w.n
	w = &boundedWriter{b: make([]byte, 0, n), keep: n, limit: n}
	if err := decode(w, body); err != nil {
		return nil, err
	}
	return w.b, nil
}

// boundedWriter keeps what a decoder writes up to keep bytes, and beyond
// them drops it and counts; a write past limit bytes fails with
// fasthttp.ErrBodyTooLarge, which ends the decoding.
type boundedWriter struct {
	b           []byte
	n           int
	keep, limit int
	// dropped is set once more than keep bytes came: b is nil then.
	dropped bool
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > w.limit {
		return 0, fasthttp.ErrBodyTooLarge
	}
	if !w.dropped {
		if w.n <= w.keep {
			w.b = append(w.b, p...)
		} else {
			w.b, w.dropped = nil, true
		}
	}
	return len(p), nil
}

// zstdDecoders holds idle zstd decoders: one takes some hundred KiB to
// make.
var zstdDecoders sync.Pool

// unzstd decodes the zstd body p into w, streaming, with a window of
// zstdMaxWindow at most.
func unzstd(w io.Writer, p []byte) error {
	d, _ := zstdDecoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			panic("BUG: cannot make a zstd decoder: " + err.Error())
		}
	}
	// A bytes.Reader, not a Buffer: given a Buffer, the decoder decodes
	// a small body whole, into memory of its own.
	err := d.Reset(bytes.NewReader(p))
	if err == nil {
		_, err = d.WriteTo(w)
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		err = errZstdWindow
	}
	if d.Reset(nil) == nil {
		zstdDecoders.Put(d)
	}
	return err
}
