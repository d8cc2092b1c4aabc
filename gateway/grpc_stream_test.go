package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// openStream opens a ModelStreamInfer stream.
func (c *grpcClient) openStream(t testing.TB, ctx context.Context) grpc.ClientStream {
	t.Helper()
	cs, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/inference.GRPCInferenceService/ModelStreamInfer")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// recvStream reads the next answer of a stream: its error_message and
// infer_response.
func recvStream(cs grpc.ClientStream) (string, *pbtest.Response, error) {
	m := pbtest.New("ModelStreamInferResponse")
	if err := cs.RecvMsg(m); err != nil {
		return "", nil, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return "", nil, err
	}
	return pbtest.DecodeStreamResponse(b)
}

// streamRequest is ctr's request of rows rows with id, for model.
func streamRequest(model, id string, seed uint64, rows int, params map[string]pbtest.Param) proto.Message {
	return pbtest.InferRequest(model, "", id, []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{int64(rows), 64}}},
		[][]byte{f32Bytes(features(seed, rows, 64))}, params, nil)
}

// TestGRPCStreamInfer: the requests of a stream are answered in the order
// they were sent, with what ModelInfer answers them; one that fails gets
// an answer that names it and says why, with its code, and the stream
// goes on; the stream ends OK once the client closes its side; each
// request counts in infergate_grpc_requests_total.
func TestGRPCStreamInfer(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	cs := c.openStream(t, ctx)
	const n = 40
	fails := map[int]struct{ model, code, fragment string }{
		7:  {"nope", "NOT_FOUND", `"nope"`},
		13: {"ctr", "INVALID_ARGUMENT", "features"},
	}
	for i := range n {
		req := streamRequest("ctr", fmt.Sprint("req-", i), uint64(i), 1+i%4, nil)
		if f, ok := fails[i]; ok && f.model != "ctr" {
			req = streamRequest(f.model, fmt.Sprint("req-", i), uint64(i), 1, nil)
		} else if ok {
			req = pbtest.InferRequest("ctr", "", fmt.Sprint("req-", i), []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 63}}},
				[][]byte{f32Bytes(features(1, 1, 63))}, nil, nil)
		}
		if err := cs.SendMsg(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg, r, err := recvStream(cs)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := fmt.Sprint("req-", i); r.ID != want {
			t.Fatalf("answer %d has id %q; want %q (answers in the order of their requests)", i, r.ID, want)
		}
		if final, _ := r.Params["triton_final_response"].(bool); !final {
			t.Fatalf("answer %d: triton_final_response %v; want true", i, r.Params["triton_final_response"])
		}
		if f, ok := fails[i]; ok {
			if !bytes.Contains([]byte(msg), []byte(f.fragment)) || r.Params["error_code"] != f.code || r.Model != f.model || len(r.Outputs) != 0 {
				t.Fatalf("answer %d: error %q, code %v, model %q, %d outputs; want %s with %q for model %q, no outputs",
					i, msg, r.Params["error_code"], r.Model, len(r.Outputs), f.code, f.fragment, f.model)
			}
			continue
		}
		if msg != "" {
			t.Fatalf("answer %d: error %q", i, msg)
		}
		want, err := c.infer(ctx, ctrGRPCRequest(features(uint64(i), 1+i%4, 64), 1+i%4, ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != "1" || len(r.Outputs) != 1 || !bytes.Equal(r.Outputs[0].Raw, want.Outputs[0].Raw) ||
			fmt.Sprint(r.Outputs[0].Shape) != fmt.Sprint([]int64{int64(1 + i%4), 1}) {
			t.Fatalf("answer %d: version %q, outputs %+v; want version 1 and ModelInfer's %+v", i, r.Version, r.Outputs, want.Outputs)
		}
	}
	if _, _, err := recvStream(cs); err != io.EOF {
		t.Fatalf("after the last answer: %v; want the stream to end OK", err)
	}
	text := s.metricsText(t)
	checkMetric(t, text, `infergate_grpc_requests_total{method="ModelStreamInfer",code="OK"}`, n-2)
	checkMetric(t, text, `infergate_grpc_requests_total{method="ModelStreamInfer",code="NotFound"}`, 1)
	checkMetric(t, text, `infergate_grpc_requests_total{method="ModelStreamInfer",code="InvalidArgument"}`, 1)
	checkMetric(t, text, `infergate_grpc_streams_open`, 0)
}

// TestGRPCStreamTritonGRPCError: with the metadata triton_grpc_error:
// true, a stream ends with the status of its first request that fails,
// after the answers of those before it.
func TestGRPCStreamTritonGRPCError(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	cs := c.openStream(t, metadata.AppendToOutgoingContext(context.Background(), "triton_grpc_error", "true"))
	for i, model := range []string{"ctr", "nope", "ctr"} {
		if err := cs.SendMsg(streamRequest(model, fmt.Sprint(i), 1, 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if msg, r, err := recvStream(cs); err != nil || msg != "" || r.ID != "0" {
		t.Fatalf("first answer: %q %+v %v; want request 0's", msg, r, err)
	}
	_, _, err := recvStream(cs)
	checkCode(t, err, codes.NotFound, `"nope"`)
}

// TestGRPCStreamNeedsToken: the inference token guards streams as it
// guards ModelInfer.
func TestGRPCStreamNeedsToken(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "s3cret"
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	cs := c.openStream(t, context.Background())
	_ = cs.SendMsg(streamRequest("ctr", "a", 1, 1, nil))
	_, _, err := recvStream(cs)
	checkCode(t, err, codes.Unauthenticated, "inference token")

	cs = c.openStream(t, metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer s3cret"))
	if err := cs.SendMsg(streamRequest("ctr", "a", 1, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if msg, r, err := recvStream(cs); err != nil || msg != "" || len(r.Outputs) != 1 {
		t.Fatalf("with the token: %q %+v %v", msg, r, err)
	}
}

// TestGRPCStreamOutlivesCallDeadline: a stream is not held to the
// deadline a unary call gets (--read-timeout + --request-timeout): it
// lasts while its client keeps it.
func TestGRPCStreamOutlivesCallDeadline(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.ReadTimeout, cfg.RequestTimeout = 150*time.Millisecond, 100*time.Millisecond
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	cs := c.openStream(t, context.Background())
	for i := range 3 {
		if i > 0 {
			time.Sleep(400 * time.Millisecond)
		}
		if err := cs.SendMsg(streamRequest("ctr", fmt.Sprint(i), 1, 1, nil)); err != nil {
			t.Fatal(err)
		}
		if msg, r, err := recvStream(cs); err != nil || msg != "" || r.ID != fmt.Sprint(i) {
			t.Fatalf("request %d, %s after the stream began: %q %+v %v", i, time.Duration(i)*400*time.Millisecond, msg, r, err)
		}
	}
}

// TestGRPCStreamShutdown: a shutdown answers what a stream sent before it
// and then ends the stream UNAVAILABLE (an idle stream at once), runs
// nothing sent after it, and does not wait for its time to run out.
func TestGRPCStreamShutdown(t *testing.T) {
	b := newFakeBackend()
	b.mode.Store(fakeBlock)
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	c := s.serveGRPC(t)
	ctx := context.Background()
	req := func(id string) proto.Message {
		return pbtest.InferRequest("fake", "", id, []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	}
	idle := c.openStream(t, ctx)
	busy := c.openStream(t, ctx)
	for i := range 3 {
		if err := busy.SendMsg(req(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// All three read (a request the server has not read when the
	// shutdown begins is not run), and one running.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, err := metricValue(s.metricsText(t), "infergate_inference_requests_in_flight{"+fakeSeries+"}")
		if err == nil && n == 3 && b.running.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("in flight %v (%v), running %d after 5s; want 3 and 1", n, err, b.running.Load())
		}
	}
	stopped := make(chan error, 1)
	start := time.Now()
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(sctx)
	}()
	_, _, err := recvStream(idle)
	checkCode(t, err, codes.Unavailable, "shutting down")
	if err := busy.SendMsg(req("late")); err != nil {
		t.Fatal(err)
	}
	b.unblock()
	for i := range 3 {
		msg, r, err := recvStream(busy)
		if err != nil || msg != "" || r.ID != fmt.Sprint(i) {
			t.Fatalf("answer %d: %q %+v %v; want request %d answered", i, msg, r, err, i)
		}
	}
	_, _, err = recvStream(busy)
	checkCode(t, err, codes.Unavailable, "shutting down")
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Shutdown took %s; want it not to wait for its timeout", took)
	}
}

// TestGRPCStreamsAreBounded: a server holds at most --max-connections
// streams open; one beyond is refused RESOURCE_EXHAUSTED with retry-after.
func TestGRPCStreamsAreBounded(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 1
	s := startDemo(t, cfg, false)
	c := s.serveGRPC(t)
	ctx := context.Background()
	first := c.openStream(t, ctx)
	if err := first.SendMsg(streamRequest("ctr", "a", 1, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := recvStream(first); err != nil {
		t.Fatal(err)
	}
	second := c.openStream(t, ctx)
	_ = second.SendMsg(streamRequest("ctr", "b", 1, 1, nil))
	_, _, err := recvStream(second)
	checkCode(t, err, codes.ResourceExhausted, "--max-connections")
	if got := second.Trailer().Get("retry-after"); len(got) != 1 {
		t.Fatalf("retry-after %v; want one", got)
	}
	checkMetric(t, s.metricsText(t), `infergate_grpc_streams_open`, 1)
	if page := s.do(t, "GET", "/", nil); !strings.Contains(string(page.body), "</code> (1 stream open)") {
		t.Fatalf("the status page does not say a stream is open:\n%s", page.body)
	}
}

// TestGRPCStreamArmsAndCache: a stream's requests get the arm of their
// unit_id parameter, else of the stream's x-unit-id metadata, as HTTP's
// requests of that unit do, and say it in experiment_arm.
func TestGRPCStreamArms(t *testing.T) {
	s, _ := restartNode(t, t.TempDir(), 1<<20)
	s.repo.SetExperiment("ctr", abExperiment(1, time.Now(), 1, 1))
	c := s.serveGRPC(t)
	armOf := func(unit string) string {
		r := s.post(t, "/v2/models/ctr/infer", ctrRequest(features(1, 1, 64), 1), gateway.HeaderUnitID, unit)
		return r.header[gateway.HeaderExperimentArm]
	}
	seen := map[string]bool{}
	for i := range 8 {
		streamUnit := fmt.Sprint("stream-", i)
		cs := c.openStream(t, metadata.AppendToOutgoingContext(context.Background(), "x-unit-id", streamUnit))
		units := []string{"", fmt.Sprint("user-", i), fmt.Sprint("user-", i+100)}
		for j, u := range units {
			var params map[string]pbtest.Param
			if u != "" {
				params = map[string]pbtest.Param{"unit_id": {String: &units[j]}}
			}
			if err := cs.SendMsg(streamRequest("ctr", fmt.Sprint(j), 1, 1, params)); err != nil {
				t.Fatal(err)
			}
		}
		for j, u := range units {
			if u == "" {
				u = streamUnit
			}
			msg, r, err := recvStream(cs)
			if err != nil || msg != "" {
				t.Fatalf("%q %v", msg, err)
			}
			want := armOf(u)
			if got := r.Params["experiment_arm"]; got != want {
				t.Fatalf("request %d of unit %q: arm %v; want %q, as over HTTP", j, u, got, want)
			}
			seen[want] = true
		}
	}
	if !seen["control"] || !seen["treatment"] {
		t.Fatalf("arms %v; want both", seen)
	}
}

// TestGRPCStreamCacheHit: an answer of the response cache says
// cache_hit.
func TestGRPCStreamCacheHit(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	c := s.serveGRPC(t)
	cs := c.openStream(t, context.Background())
	for i := range 2 {
		req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
		if err := cs.SendMsg(req); err != nil {
			t.Fatal(err)
		}
		msg, r, err := recvStream(cs)
		if err != nil || msg != "" {
			t.Fatalf("%q %v", msg, err)
		}
		if hit, _ := r.Params["cache_hit"].(bool); hit != (i == 1) {
			t.Fatalf("request %d: cache_hit %v; want %v", i, r.Params["cache_hit"], i == 1)
		}
	}
}

// TestGRPCStreamsUnderLoad: many streams at once, each sending more
// requests than its window before reading, all answered in order (run
// with -race).
func TestGRPCStreamsUnderLoad(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	const streams, each = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for k := range streams {
		wg.Go(func() {
			cs := c.openStream(t, context.Background())
			sent := make(chan error, 1)
			go func() {
				for i := range each {
					if err := cs.SendMsg(streamRequest("ctr", fmt.Sprint(k, "-", i), uint64(i), 1+i%3, nil)); err != nil {
						sent <- err
						return
					}
				}
				sent <- cs.CloseSend()
			}()
			for i := range each {
				msg, r, err := recvStream(cs)
				if err != nil || msg != "" || r.ID != fmt.Sprint(k, "-", i) || len(r.Outputs) != 1 || r.Outputs[0].Shape[0] != int64(1+i%3) {
					errs <- fmt.Errorf("stream %d answer %d: %q %+v %v", k, i, msg, r, err)
					return
				}
			}
			if _, _, err := recvStream(cs); err != io.EOF {
				errs <- fmt.Errorf("stream %d after its answers: %v", k, err)
			}
			if err := <-sent; err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestGRPCStreamWindowIs64: a stream has at most 64 requests in flight
// at once (README, "Streams"): with the model blocked and a client that
// sends 100 requests without reading, the version has no more than 64 of
// them in flight.
func TestGRPCStreamWindowIs64(t *testing.T) {
	b := newFakeBackend()
	b.mode.Store(fakeBlock)
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{})
	c := s.serveGRPC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.openStream(t, ctx)
	go func() {
		for i := range 100 {
			req := pbtest.InferRequest("fake", "", fmt.Sprint(i), []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
			if cs.SendMsg(req) != nil {
				return
			}
		}
	}()
	// Wait until the count stops growing.
	last, since := -1.0, time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n, err := metricValue(s.metricsText(t), "infergate_inference_requests_in_flight{"+fakeSeries+"}")
		if err != nil {
			continue
		}
		if n != last {
			last, since = n, time.Now()
		} else if last > 0 && time.Since(since) > 500*time.Millisecond {
			break
		}
	}
	if last > 64 {
		t.Fatalf("one stream has %v requests in flight; want at most 64 (its window)", last)
	}
	if last < 64 {
		t.Fatalf("one stream has %v requests in flight; want it to fill its window of 64", last)
	}
}

// TestGRPCStreamOversizeEndsStream: a message over --max-body ends its
// stream RESOURCE_EXHAUSTED at once, as the README says: grpc-go's
// serverStream.RecvMsg writes that status itself as it refuses the
// message, before the answers of requests still running can go out (found
// with @grpc/grpc-js: 30 requests run, 3 to 15 answered). It counts in
// infergate_grpc_requests_total under ModelStreamInfer, as a unary call's
// counts under ModelInfer.
func TestGRPCStreamOversizeEndsStream(t *testing.T) {
	b := newFakeBackend()
	b.mode.Store(fakeBlock)
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 8 << 10
	s := startFake(t, b, cfg, registry.ModelConfig{})
	c := s.serveGRPC(t)
	cs := c.openStream(t, context.Background())
	small := pbtest.InferRequest("fake", "", "0", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
	if err := cs.SendMsg(small); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); b.running.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("request 0 not running after 5s")
		}
	}
	big := pbtest.InferRequest("fake", "", "1", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4096}}}, [][]byte{make([]byte, 16<<10)}, nil, nil)
	if err := cs.SendMsg(big); err != nil {
		t.Fatal(err)
	}
	_, _, err := recvStream(cs)
	checkCode(t, err, codes.ResourceExhausted, "larger than max")
	b.unblock()
	// Counted once the server's read returns, which may be after the
	// client has the status.
	series := `infergate_grpc_requests_total{method="ModelStreamInfer",code="ResourceExhausted"}`
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, err := metricValue(s.metricsText(t), series); err == nil && n == 1 || time.Now().After(deadline) {
			break
		}
	}
	checkMetric(t, s.metricsText(t), series, 1)
}
