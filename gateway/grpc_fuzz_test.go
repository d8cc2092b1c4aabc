package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/oip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawMessages is a client codec that sends and receives messages as the
// bytes a *[]byte holds, for bytes no encoder would write.
type rawMessages struct{}

func (rawMessages) Name() string { return "proto" }

func (rawMessages) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawMessages) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// FuzzGRPCModelInfer sends mutated ModelInferRequest messages to the gRPC
// front door on ONNX Runtime's ctr and checks the answer: never INTERNAL
// or UNKNOWN (a bug), a status message at most 4 KiB, and an OK answer
// that decodes, with one score per row asked. Each message goes on a
// ModelStreamInfer stream too, whose answer must say what the call's
// did: the same code, and an answer that names the request.
func FuzzGRPCModelInfer(f *testing.F) {
	x := features(41, 2, 64)
	for _, m := range []proto.Message{
		ctrGRPCRequest(x, 2, ""),
		ctrGRPCRequest(x[:64], 1, "1"),
		pbtest.InferRequest("ctr", "", "id-1", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}, FP32: x[:64]}}, nil,
			nil, map[string]map[string]pbtest.Param{"score": {"classification": {Int64: ptr[int64](1)}}}),
		pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}}},
			[][]byte{f32Bytes(x[:64])}, map[string]pbtest.Param{"priority": {Int64: ptr[int64](1)}, "timeout": {Int64: ptr[int64](5_000_000)}}, nil),
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := startDemo(f, gateway.DefaultConfig(), false)
	c := s.serveGRPC(f)
	var stream grpc.ClientStream

	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []byte
		err := c.conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", &in, &out, grpc.ForceCodecV2(rawMessages{}))
		if stream == nil {
			stream, _ = c.conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
				"/inference.GRPCInferenceService/ModelStreamInfer", grpc.ForceCodecV2(rawMessages{}))
		}
		if stream != nil {
			checkStreamAgrees(t, stream, in, err)
		}
		if err != nil {
			st, _ := status.FromError(err)
			switch {
			case st.Code() == codes.Internal || st.Code() == codes.Unknown:
				t.Fatalf("%x: %v; want no bug", in, err)
			case len(st.Message()) > 4096:
				t.Fatalf("%x: a status message of %d bytes", in, len(st.Message()))
			}
			return
		}
		resp, err := pbtest.DecodeInferResponse(out)
		if err != nil {
			t.Fatalf("%x: the answer does not decode: %v", in, err)
		}
		if len(resp.Outputs) != 1 || resp.Model != "ctr" {
			t.Fatalf("%x: got %+v; want ctr's one output", in, resp)
		}
		// FP32 scores, or BYTES classes when classification was asked.
		if o := resp.Outputs[0]; o.Name != "score" || len(o.Shape) != 2 || o.Shape[1] != 1 ||
			o.Datatype == "FP32" && int64(len(o.Raw)) != 4*o.Shape[0] || o.Datatype != "FP32" && o.Datatype != "BYTES" {
			t.Fatalf("%x: output %q %s %s with %d bytes", in, o.Name, o.Datatype, fmt.Sprint(o.Shape), len(o.Raw))
		}
	})
}

// checkStreamAgrees sends in on stream and checks its answer against the
// call's outcome, callErr: an error answer with the call's code (a
// timeout or a shed request may differ: they depend on the moment), or
// an answer with outputs; either names the request's id.
func checkStreamAgrees(t *testing.T, stream grpc.ClientStream, in []byte, callErr error) {
	t.Helper()
	var out []byte
	if err := stream.SendMsg(&in); err != nil {
		t.Fatalf("%x: the stream broke: %v", in, err)
	}
	if err := stream.RecvMsg(&out); err != nil {
		t.Fatalf("%x: the stream broke: %v", in, err)
	}
	msg, r, err := pbtest.DecodeStreamResponse(out)
	if err != nil {
		t.Fatalf("%x: the stream's answer does not decode: %v", in, err)
	}
	if final, _ := r.Params["triton_final_response"].(bool); !final {
		t.Fatalf("%x: answer without triton_final_response: %+v", in, r)
	}
	want := status.Code(callErr)
	switch want {
	case codes.DeadlineExceeded, codes.ResourceExhausted, codes.Unavailable:
		return
	}
	got := codes.OK
	if msg != "" {
		code, _ := r.Params["error_code"].(string)
		got = codes.Unknown
		for c, name := range oip.StatusCodeNames {
			if name == code {
				got = codes.Code(c)
			}
		}
		if len(msg) > 4096 {
			t.Fatalf("%x: an error_message of %d bytes", in, len(msg))
		}
	}
	if got != want {
		t.Fatalf("%x: the stream answered %v (%q); the call %v", in, got, msg, callErr)
	}
	if msg == "" && len(r.Outputs) != 1 {
		t.Fatalf("%x: the stream's answer has %d outputs; want ctr's one", in, len(r.Outputs))
	}
}

func ptr[T any](v T) *T { return &v }
