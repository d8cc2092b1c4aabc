package bench

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestGRPCErrKind: gRPC failures are classified as their HTTP
// counterparts are: the gateway's refusals with a retry-after are shed in
// an overload run (its queue timeout included, which HTTP answers 503),
// a deadline without one is a timeout, and a connection that could not
// be made is a connect error, not the server's shedding.
func TestGRPCErrKind(t *testing.T) {
	f := func(shedding bool, trailer metadata.MD, err error, want string) {
		t.Helper()
		s := &grpcSender{shedding: shedding, trailer: trailer}
		if got := s.errKind(err); got != want {
			t.Fatalf("shedding %v, trailer %v, %v: got %q; want %q", shedding, trailer, err, got, want)
		}
	}
	retry := metadata.Pairs("retry-after", "1")
	f(true, retry, status.Error(codes.Unavailable, "queue full"), outcomeShed)
	f(true, retry, status.Error(codes.ResourceExhausted, "too many calls"), outcomeShed)
	f(true, retry, status.Error(codes.DeadlineExceeded, "timed out in the queue"), outcomeShed)
	f(true, metadata.Pairs("content-type", "application/grpc"), status.Error(codes.Unavailable, "queue full"), ErrKindShedWithoutRetryAfter)
	f(true, nil, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), ErrKindTimeout)
	f(false, retry, status.Error(codes.Unavailable, "queue full"), "grpc_Unavailable")
	f(false, nil, status.Error(codes.InvalidArgument, "bad"), "grpc_InvalidArgument")

	tgt := &grpcTarget{addr: "127.0.0.1:1", pool: &requestPool{bodies: []body{{data: []byte{0x0a, 3, 'c', 't', 'r'}, rows: 1}}}, timeout: 2 * time.Second}
	conns, err := tgt.dial(1)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.close()
	snd := newGRPCSender(tgt, conns)
	snd.shedding = true
	if _, _, kind := snd.send(0); kind != ErrKindConnect {
		t.Fatalf("nothing listening: got %q; want %q", kind, ErrKindConnect)
	}
}

// TestGRPCErrKindRealServer: what errKind makes of the statuses a real
// gRPC server sends, trailers-only and after headers, with and without a
// retry-after: the server's answers, not transport errors.
func TestGRPCErrKindRealServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mode := make(chan string, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in []byte
		_ = stream.RecvMsg(&in)
		switch <-mode {
		case "headers first":
			stream.SendHeader(metadata.Pairs("x-model-version", "1"))
		case "retry-after":
			stream.SetTrailer(metadata.Pairs("retry-after", "1"))
		}
		return status.Error(codes.Unavailable, "model unloading")
	}), grpc.ForceServerCodecV2(rawCodec{}))
	go srv.Serve(ln)
	defer srv.Stop()
	tgt := &grpcTarget{addr: ln.Addr().String(), pool: &requestPool{bodies: []body{{data: []byte{0x0a, 3, 'c', 't', 'r'}, rows: 1}}}, timeout: 2 * time.Second}
	conns, err := tgt.dial(1)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.close()
	for _, c := range []struct {
		mode     string
		shedding bool
		want     string
	}{
		{"plain", false, "grpc_Unavailable"},
		{"plain", true, ErrKindShedWithoutRetryAfter},
		{"retry-after", true, outcomeShed},
		{"headers first", false, "grpc_Unavailable"},
		{"headers first", true, ErrKindShedWithoutRetryAfter},
	} {
		snd := newGRPCSender(tgt, conns)
		snd.shedding = c.shedding
		mode <- c.mode
		if _, _, kind := snd.send(0); kind != c.want {
			t.Errorf("%s, shedding %v: got %q; want %q", c.mode, c.shedding, kind, c.want)
		}
	}
}
