package bench

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/infergate/infergate/oip"
)

// streamServer serves ModelStreamInfer with handler, and returns a
// stream sender of it.
func streamServer(t *testing.T, handler grpc.StreamHandler) *grpcStreamSender {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(handler), grpc.ForceServerCodecV2(rawCodec{}))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	tgt := &grpcTarget{addr: ln.Addr().String(), pool: &requestPool{bodies: []body{{data: []byte{0x0a, 3, 'c', 't', 'r'}, rows: 1}}}, timeout: 2 * time.Second, stream: true}
	conns, err := tgt.dial(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conns.close)
	snd := newGRPCStreamSender(tgt, conns)
	t.Cleanup(snd.close)
	return snd
}

// TestStreamRefusalIsShed: a stream refused for load, as the
// gateway refuses one beyond --max-connections (RESOURCE_EXHAUSTED with
// the trailer retry-after: 1), is shed in an overload run, as the same
// refusal of a ModelInfer call is (it was grpc_ResourceExhausted: the
// stream's trailer was not read).
func TestStreamRefusalIsShed(t *testing.T) {
	snd := streamServer(t, func(_ any, ss grpc.ServerStream) error {
		ss.SetTrailer(metadata.Pairs("retry-after", "1"))
		return status.Error(codes.ResourceExhausted, "this server has 1 gRPC streams open, its --max-connections")
	})
	snd.shedding = true
	if _, _, kind := snd.send(0); kind != outcomeShed {
		t.Fatalf("a stream refused RESOURCE_EXHAUSTED with retry-after: 1, shedding: got %q; want %q (%q at the least, as streamErrKind's comment says)", kind, outcomeShed, ErrKindShedWithoutRetryAfter)
	}
}

// TestStreamEndedBetweenRequests: a stream the server ended after
// answering (a gateway's shutdown: UNAVAILABLE once what it read is
// answered) fails the next request with the stream's status. SendMsg on
// a stream whose status has arrived returns io.EOF (grpc-go: call
// RecvMsg for the status), which send took for grpc_Unknown.
func TestStreamEndedBetweenRequests(t *testing.T) {
	ended := status.Error(codes.Unavailable, "this server is shutting down")
	snd := streamServer(t, func(_ any, ss grpc.ServerStream) error {
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		inner := oip.AppendModelInferResponse(nil, &oip.InferResponse{ModelName: "ctr"})
		inner = oip.AppendResponseStringParam(inner, oip.ParamErrorCode, "NOT_FOUND")
		out := oip.AppendModelStreamInferResponse(nil, "no such model", inner)
		if err := ss.SendMsg(&out); err != nil {
			return err
		}
		return ended
	})
	if _, _, kind := snd.send(0); kind != "grpc_NotFound" {
		t.Fatalf("first request: got %q; want grpc_NotFound", kind)
	}
	time.Sleep(200 * time.Millisecond) // the stream's status arrives
	// What a ModelInfer call's UNAVAILABLE is, with and without the
	// server's trailer.
	if _, _, kind := snd.send(1); kind != ErrKindTransport && kind != "grpc_Unavailable" {
		t.Fatalf("a request on a stream the server has ended UNAVAILABLE: got %q; want %q or %q, the stream's status", kind, ErrKindTransport, "grpc_Unavailable")
	}
}
