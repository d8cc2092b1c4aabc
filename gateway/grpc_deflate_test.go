package gateway_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"net"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// deflateCodec is gRPC's "deflate" message encoding as gRPC's C core
// (and so Triton's Python and C++ clients and Triton's server) has it: a
// zlib stream (RFC 1950), windowBits 15. It is given to the client's
// connection alone (grpc.WithCompressor), not registered with gRPC's
// encoding package, so that the server under test decodes it only if it
// registers "deflate" itself.
type deflateCodec struct{}

func (deflateCodec) Type() string { return "deflate" }

func (deflateCodec) Do(w io.Writer, p []byte) error {
	z := zlib.NewWriter(w)
	if _, err := z.Write(p); err != nil {
		return err
	}
	return z.Close()
}

type deflateDecompressor struct{}

func (deflateDecompressor) Type() string { return "deflate" }

func (deflateDecompressor) Do(r io.Reader) ([]byte, error) {
	z, err := zlib.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(z)
	return b.Bytes(), err
}

// TestGRPCDeflateMessages: tritonclient.grpc's infer, async_infer and
// start_stream take compression_algorithm "deflate" beside "gzip", and
// Triton's server (gRPC's C core, which registers identity, deflate and
// gzip) takes both. A ModelInfer call compressed with deflate must be
// answered as an uncompressed or gzip one is, not UNIMPLEMENTED ("grpc:
// Decompressor is not installed for grpc-encoding \"deflate\"", which is
// what tritonclient got from infergate).
func TestGRPCDeflateMessages(t *testing.T) {
	c := deflateClient(t, startDemo(t, gateway.DefaultConfig(), false))
	x := features(1, 3, 64)
	m, err := c.call(context.Background(), "ModelInfer", ctrGRPCRequest(x, 3, ""), "ModelInferResponse")
	if err != nil {
		t.Fatalf("a deflate-compressed call (tritonclient's compression_algorithm=\"deflate\"): %v", err)
	}
	raw := field(m, "raw_output_contents").List()
	if raw.Len() != 1 {
		t.Fatalf("a deflate-compressed call: got %v", m)
	}
	checkScores(t, bytesF32(raw.Get(0).Bytes()), x, 3)
}

// TestGRPCDeflateBombRefused: a deflate message that inflates past
// --max-body is refused RESOURCE_EXHAUSTED, read no further than the
// limit.
func TestGRPCDeflateBombRefused(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	c := deflateClient(t, startDemo(t, cfg, false))
	// 4 MiB of zeros as input data: a few KiB deflated.
	req := pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{16384, 64}}},
		[][]byte{make([]byte, 16384*64*4)}, nil, nil)
	_, err := c.call(context.Background(), "ModelInfer", req, "ModelInferResponse")
	checkCode(t, err, codes.ResourceExhausted, "larger than max")
}

// deflateClient serves s's gRPC front door and returns a client whose
// messages go deflated, both ways.
func deflateClient(t *testing.T, s *testServer) *grpcClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serveGRPCOn(ln)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithCompressor(deflateCodec{}),          //nolint:staticcheck // per-connection, so the server's registry is left as it is
		grpc.WithDecompressor(deflateDecompressor{}), //nolint:staticcheck // the answer may come back deflated
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcClient{conn: conn}
}
