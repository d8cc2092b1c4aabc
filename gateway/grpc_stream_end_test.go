package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// fakeStreamRequest is a request of the fake model with id.
func fakeStreamRequest(id string) proto.Message {
	return pbtest.InferRequest("fake", "", id, []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
}

// TestGRPCStreamTritonGRPCErrorEndsPromptly: with triton_grpc_error: true,
// the first failure ends the stream at once, after the answers of the
// requests before it: a request sent after the failing one and still
// running does not hold the end (it held it until it finished, or its
// timeout ran out).
func TestGRPCStreamTritonGRPCErrorEndsPromptly(t *testing.T) {
	b := newFakeBackend()
	b.mode.Store(fakeBlock)
	cfg := gateway.DefaultConfig()
	cfg.RequestTimeout = 30 * time.Second
	s := startFake(t, b, cfg, registry.ModelConfig{})
	c := s.serveGRPC(t)
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "triton_grpc_error", "true"))
	defer cancel()
	cs := c.openStream(t, ctx)
	bad := pbtest.InferRequest("nope", "", "0", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	if err := cs.SendMsg(bad); err != nil {
		t.Fatal(err)
	}
	// io.EOF: the stream has ended already (request 0's failure came
	// first), as grpc-go's SendMsg says; RecvMsg below has the status.
	if err := cs.SendMsg(fakeStreamRequest("1")); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	// Request 1 mostly begins before request 0's failure ends the
	// stream, and then blocks in the model; when the end comes first, it
	// is not run at all. Either way the end must not wait for it.
	for deadline := time.Now().Add(2 * time.Second); b.running.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := recvStream(cs)
		got <- err
	}()
	select {
	case err := <-got:
		checkCode(t, err, codes.NotFound, `"nope"`)
	case <-time.After(3 * time.Second):
		t.Fatalf("the stream had not ended with request 0's NOT_FOUND 3s after it failed: it waits for request 1, sent after it (up to --request-timeout %s)", cfg.RequestTimeout)
	}
}

// TestGRPCStreamTritonGRPCErrorKeepsRetryAfter: with triton_grpc_error:
// true, a request shed for load ends the stream RESOURCE_EXHAUSTED with
// the trailer retry-after, as a ModelInfer call refused the same way has
// (without the metadata, its answer has retry_after).
func TestGRPCStreamTritonGRPCErrorKeepsRetryAfter(t *testing.T) {
	b := newFakeBackend()
	b.mode.Store(fakeBlock)
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 2 // 2 streams, 66 calls in flight
	cfg.RequestTimeout = 30 * time.Second
	s := startFake(t, b, cfg, registry.ModelConfig{})
	c := s.serveGRPC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One stream takes 64 places (its window), two ModelInfer calls the
	// last two.
	filler := c.openStream(t, ctx)
	for i := range 70 {
		if err := filler.SendMsg(fakeStreamRequest(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		go func() { _, _ = c.infer(ctx, fakeStreamRequest("unary"), nil) }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, err := metricValue(s.metricsText(t), "infergate_inference_requests_in_flight{"+fakeSeries+"}"); err == nil && n == 66 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 66 places never filled")
		}
	}
	cs := c.openStream(t, metadata.AppendToOutgoingContext(ctx, "triton_grpc_error", "true"))
	if err := cs.SendMsg(fakeStreamRequest("shed")); err != nil {
		t.Fatal(err)
	}
	_, _, err := recvStream(cs)
	checkCode(t, err, codes.ResourceExhausted, "--max-connections")
	if got := cs.Trailer().Get("retry-after"); len(got) != 1 {
		t.Fatalf("stream ended RESOURCE_EXHAUSTED for a request shed for load: trailer retry-after %v; want one, as ModelInfer's refusal has", got)
	}
}

// TestGRPCStreamShutdownEndsUnreadStream: a shutdown ends a stream whose
// client has stopped reading its answers and sends nothing more (a hung
// client), once the server has waited a second to send and heard nothing
// for a second, rather than waiting for --shutdown-timeout: gRPC's
// trailers would queue behind the answers the client does not take, so
// its connection is closed.
func TestGRPCStreamShutdownEndsUnreadStream(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.openStream(t, ctx)
	// Small answers: thousands fill the stream's flow-control window and
	// gRPC's write quota, and the server's send waits; then its reads,
	// and the client's sends.
	go func() {
		for i := 0; ; i++ {
			if cs.SendMsg(streamRequest("ctr", fmt.Sprint(i), 1, 1, nil)) != nil {
				return
			}
		}
	}()
	last, since := -1.0, time.Now()
	series := `infergate_grpc_requests_total{method="ModelStreamInfer",code="OK"}`
	for deadline := time.Now().Add(20 * time.Second); time.Since(since) < 500*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		n, _ := metricValue(s.metricsText(t), series)
		if n != last {
			last, since = n, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still answers after 20s (%v answers): the client's window never filled", last)
		}
	}
	start := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown after %s: %v; want the unread stream ended, not cut off at the timeout", time.Since(start), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Shutdown took %s with a stream whose client reads nothing; want about a second or two", took)
	}
}
