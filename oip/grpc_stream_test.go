package oip_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/oip"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestModelStreamInferResponse: a stream's answer, with an error or with
// outputs, and the parameters infergate adds, reads back with the
// protobuf library as a Triton client reads it, and with oip's decoders.
func TestModelStreamInferResponse(t *testing.T) {
	f := func(errMsg string, r *oip.InferResponse, params func([]byte) []byte, want map[string]any) {
		t.Helper()
		inner := params(oip.AppendModelInferResponse(nil, r))
		b := oip.AppendModelStreamInferResponse(nil, errMsg, inner)
		if n := oip.ModelStreamInferResponseSize(errMsg, len(inner)); n != len(b) {
			t.Fatalf("ModelStreamInferResponseSize %d; appended %d bytes", n, len(b))
		}
		gotMsg, got, err := pbtest.DecodeStreamResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if gotMsg != errMsg || got.Model != r.ModelName || got.Version != r.ModelVersion || got.ID != r.ID || len(got.Outputs) != len(r.Outputs) {
			t.Fatalf("got %q %+v; want %q %+v", gotMsg, got, errMsg, r)
		}
		if !maps.Equal(got.Params, want) {
			t.Fatalf("parameters %v; want %v", got.Params, want)
		}
		msg2, inner2, err := oip.DecodeModelStreamInferResponse(b)
		if err != nil || msg2 != errMsg || string(inner2) != string(inner) {
			t.Fatalf("DecodeModelStreamInferResponse: %q %d bytes %v", msg2, len(inner2), err)
		}
		params2 := map[string]any{}
		if err := oip.DecodeResponseParams(inner2, func(k string, v oip.ResponseParam) {
			switch v.Kind {
			case oip.ParamBool:
				params2[k] = v.Bool
			case oip.ParamInt:
				params2[k] = v.Int
			case oip.ParamString:
				params2[k] = v.String
			}
		}); err != nil || !maps.Equal(params2, want) {
			t.Fatalf("DecodeResponseParams: %v %v; want %v", params2, err, want)
		}
	}
	ok := &oip.InferResponse{ModelName: "ctr", ModelVersion: "2", ID: "req-1", Outputs: []oip.OutputTensor{
		{Tensor: oip.Tensor{Name: "score", Datatype: oip.FP32, Shape: []int64{1, 1}, Data: []byte{0, 0, 128, 63}}}}}
	f("", ok, func(b []byte) []byte {
		b = oip.AppendResponseBoolParam(b, oip.ParamFinalResponse, true)
		b = oip.AppendResponseStringParam(b, oip.ParamExperimentArm, "treatment")
		return oip.AppendResponseBoolParam(b, oip.ParamCacheHit, true)
	}, map[string]any{"triton_final_response": true, "experiment_arm": "treatment", "cache_hit": true})
	f(`unknown model "nope"`, &oip.InferResponse{ModelName: "nope", ID: "req-2"}, func(b []byte) []byte {
		b = oip.AppendResponseBoolParam(b, oip.ParamFinalResponse, true)
		b = oip.AppendResponseStringParam(b, oip.ParamErrorCode, "NOT_FOUND")
		return oip.AppendResponseIntParam(b, oip.ParamRetryAfter, 3)
	}, map[string]any{"triton_final_response": true, "error_code": "NOT_FOUND", "retry_after": int64(3)})
	// An error for a request that named nothing: the infer_response is
	// still there, empty.
	f("the message does not parse", &oip.InferResponse{}, func(b []byte) []byte { return b }, map[string]any{})
}

// TestModelInferRequestID: the id of a request, also of one that turns out
// malformed after it.
func TestModelInferRequestID(t *testing.T) {
	req := oip.AppendModelInferRequest(nil, "ctr", "", &oip.InferRequest{ID: "abc"})
	if got := oip.ModelInferRequestID(req); got != "abc" {
		t.Fatalf("got %q; want abc", got)
	}
	if got := oip.ModelInferRequestID(append(req, 0xff)); got != "abc" {
		t.Fatalf("with a broken tail: got %q; want abc", got)
	}
	if got := oip.ModelInferRequestID([]byte{0xff}); got != "" {
		t.Fatalf("garbage: got %q; want none", got)
	}
}

// FuzzStreamDecoders: the readers of a stream's messages (the server's
// ModelInferRequestID of any request, the client's of an answer and its
// parameters) take any bytes without panicking, and what an answer's
// encoder wrote reads back.
func FuzzStreamDecoders(f *testing.F) {
	inner := oip.AppendResponseStringParam(oip.AppendModelInferResponse(nil, &oip.InferResponse{ModelName: "ctr", ID: "7"}), oip.ParamErrorCode, "NOT_FOUND")
	f.Add(oip.AppendModelStreamInferResponse(nil, "no such model", inner), "msg")
	f.Add(oip.AppendModelInferRequest(nil, "ctr", "1", &oip.InferRequest{ID: "abc"}), "")
	f.Fuzz(func(t *testing.T, b []byte, msg string) {
		_ = oip.ModelInferRequestID(b)
		if _, inner, err := oip.DecodeModelStreamInferResponse(b); err == nil {
			_ = oip.DecodeResponseParams(inner, func(string, oip.ResponseParam) {})
		}
		_ = oip.DecodeResponseParams(b, func(string, oip.ResponseParam) {})
		// b as an infer_response: the answer carries it whole.
		out := oip.AppendModelStreamInferResponse(nil, msg, b)
		gotMsg, gotInner, err := oip.DecodeModelStreamInferResponse(out)
		if err != nil || gotMsg != msg || string(gotInner) != string(b) {
			t.Fatalf("round trip of %q, %d bytes: %q, %d bytes, %v", msg, len(b), gotMsg, len(gotInner), err)
		}
	})
}

// TestModelInferRequestStringsAreUTF8: a request's model name, version
// and id, which answers carry back, are refused when they are not UTF-8,
// as a protobuf library refuses such a string (and a client's would
// refuse the answer).
func TestModelInferRequestStringsAreUTF8(t *testing.T) {
	f := func(model, version, id, fragment string) {
		t.Helper()
		// Written by hand: the encoders make their strings valid.
		var b []byte
		for i, v := range []string{model, version, id} {
			if v != "" {
				b = protowire.AppendTag(b, protowire.Number(i+1), protowire.BytesType)
				b = protowire.AppendString(b, v)
			}
		}
		_, _, _, err := oip.PeekModelInferRequest(b)
		if err == nil {
			var req oip.InferRequest
			_, _, err = oip.DecodeModelInferRequest(&req, b)
		}
		if err == nil || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("model %q version %q id %q: got %v; want an error with %q", model, version, id, err, fragment)
		}
	}
	f("00\x800", "", "", "model_name is not valid UTF-8")
	f("ctr", "1\xff", "", "model_version is not valid UTF-8")
	f("ctr", "", "a\xc3", "id is not valid UTF-8")
}

// TestGRPCFileJSONNames: the descriptor's fields have protoc's JSON
// names, as tools such as grpcurl print and read them.
func TestGRPCFileJSONNames(t *testing.T) {
	f := func(msg, field, want string) {
		t.Helper()
		md := oip.GRPCFile().Messages().ByName(protoreflect.Name(msg))
		if md == nil {
			t.Fatalf("no message %s", msg)
		}
		fd := md.Fields().ByName(protoreflect.Name(field))
		if fd == nil || fd.JSONName() != want {
			t.Fatalf("%s.%s: JSON name %v; want %s", msg, field, fd, want)
		}
	}
	f("ModelInferRequest", "model_name", "modelName")
	f("ModelInferRequest", "raw_input_contents", "rawInputContents")
	f("ModelStreamInferResponse", "error_message", "errorMessage")
	f("ModelInferRequest", "id", "id")
}

// TestGRPCFileOneofs: the descriptor has Triton's oneofs, as tools that
// build code or forms from reflection expect them.
func TestGRPCFileOneofs(t *testing.T) {
	f := func(msg, field, want string) {
		t.Helper()
		fd := oip.GRPCFile().Messages().ByName(protoreflect.Name(msg)).Fields().ByName(protoreflect.Name(field))
		if o := fd.ContainingOneof(); o == nil || string(o.Name()) != want {
			t.Fatalf("%s.%s: oneof %v; want %s", msg, field, o, want)
		}
	}
	f("ModelConfig", "dynamic_batching", "scheduling_choice")
	f("ModelVersionPolicy", "latest", "policy_choice")
	f("ModelVersionPolicy", "specific", "policy_choice")
	f("InferParameter", "uint64_param", "parameter_choice")
	f("ModelRepositoryParameter", "bytes_param", "parameter_choice")
}

// TestResponseParamsDoNotAllocate: the parameters every stream answer
// carries are appended in place, with no buffer of their own (they took
// 13 allocations for these three).
func TestResponseParamsDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(1000, func() {
		b := oip.AppendResponseBoolParam(buf[:0], oip.ParamFinalResponse, true)
		b = oip.AppendResponseStringParam(b, oip.ParamExperimentArm, "treatment")
		_ = oip.AppendResponseIntParam(b, oip.ParamRetryAfter, 1)
	})
	if n != 0 {
		t.Fatalf("%v allocations for an answer's parameters; want none", n)
	}
}
