package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// TestGRPCReflectionStreamEndsAtShutdown: a shutdown ends a reflection
// stream that a grpcurl (or an IDE's gRPC client, which keeps it open
// while its window is) has open, as it ends an idle ModelStreamInfer
// stream: GracefulStop waits for every stream, and this one held it until
// the shutdown's time ran out.
func TestGRPCReflectionStreamEndsAtShutdown(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	stream, err := reflectionv1.NewServerReflectionClient(c.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = s.srv.Shutdown(ctx)
	if took := time.Since(start); err != nil || took > time.Second {
		t.Fatalf("Shutdown with an idle reflection stream open: took %v, %v; want it done at once, as with an idle ModelStreamInfer", took.Round(time.Millisecond), err)
	}
}
