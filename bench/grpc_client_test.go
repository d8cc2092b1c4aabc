package bench

import (
	"testing"
	"time"

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
	f(true, metadata.Pairs("x", "y"), status.Error(codes.Unavailable, "queue full"), ErrKindShedWithoutRetryAfter)
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
