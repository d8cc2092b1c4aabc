package gateway

import (
	"compress/zlib"
	"io"
	"sync"

	"google.golang.org/grpc/encoding"
)

// grpcDeflate is gRPC's "deflate" message encoding: a zlib stream (RFC
// 1950), as gRPC's C core writes and reads it, so that Triton's clients
// (tritonclient's compression_algorithm="deflate") are answered as
// Triton answers them. Registered with gRPC's encoding package, beside
// gzip, for the whole process.
//
// Decompress hands gRPC a reader, not the message: gRPC reads it through
// its own limit (--max-body), so a message that inflates past it is
// refused without being held.
type grpcDeflate struct {
	writers sync.Pool // *zlib.Writer
}

func init() { encoding.RegisterCompressor(&grpcDeflate{}) }

func (*grpcDeflate) Name() string { return "deflate" }

func (c *grpcDeflate) Compress(w io.Writer) (io.WriteCloser, error) {
	z, ok := c.writers.Get().(*zlib.Writer)
	if !ok {
		return &deflateWriter{Writer: zlib.NewWriter(w), pool: &c.writers}, nil
	}
	z.Reset(w)
	return &deflateWriter{Writer: z, pool: &c.writers}, nil
}

// deflateWriter returns its zlib writer to the pool when closed.
type deflateWriter struct {
	*zlib.Writer
	pool *sync.Pool
}

func (w *deflateWriter) Close() error {
	if w.Writer == nil {
		return nil // closed already: the writer may be another's now
	}
	err := w.Writer.Close()
	w.pool.Put(w.Writer)
	w.Writer = nil
	return err
}

func (*grpcDeflate) Decompress(r io.Reader) (io.Reader, error) {
	z, err := zlib.NewReader(r)
	if err != nil {
		return nil, err
	}
	return z, nil
}
