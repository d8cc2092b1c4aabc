package gateway_test

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
	"github.com/valyala/fasthttp"
)

// fuzzSeeds are valid JSON and binary requests of ctr, with the value of
// their Inference-Header-Content-Length header ("" for none). More seeds,
// and inputs the fuzzer found, are in testdata/fuzz/FuzzInferHandler.
func fuzzSeeds() [][2]string {
	x1 := features(31, 1, 64)
	x2 := features(32, 2, 64)
	bin := func(json string, x []float32) [2]string {
		return [2]string{json + string(f32Bytes(x)), strconv.Itoa(len(json))}
	}
	return [][2]string{
		{string(ctrRequest(x1, 1)), ""},
		{`{"id":"a","inputs":[{"name":"features","datatype":"FP32","shape":[2,64],"data":` + jsonRows(x2, 64) + `}],"outputs":[{"name":"score"}]}`, ""},
		{`{"parameters":{"binary_data_output":true,"timeout":5000000},"inputs":[{"name":"features","shape":[1,64],"datatype":"FP32","data":` + jsonFloats(x1) + `}]}`, ""},
		bin(`{"inputs":[{"name":"features","shape":[1,64],"datatype":"FP32","parameters":{"binary_data_size":256}}]}`, x1),
		bin(`{"inputs":[{"name":"features","shape":[2,64],"datatype":"FP32","parameters":{"binary_data_size":512}}],"outputs":[{"name":"score","parameters":{"binary_data":true}}]}`, x2),
		{`{}`, ""},
		{string(f32Bytes(x1)), "0"}, // raw binary: the body is the one input's data
	}
}

// FuzzInferHandler sends mutated bodies, with or without an
// Inference-Header-Content-Length header, through the server's handler
// for POST /v2/models/ctr/infer on ONNX Runtime and checks the answer:
// never 5xx (but a 503 for a request that asked for less than a second
// and did not get it); a 200 carries the right outputs; anything else the
// JSON error body.
func FuzzInferHandler(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s[0]), s[1])
	}
	s := startDemo(f, gateway.DefaultConfig(), false)
	handle := s.srv.Handler()
	mlp := ctrMLP()

	f.Fuzz(func(t *testing.T, body []byte, header string) {
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/v2/models/ctr/infer")
		req.Header.SetHost("gateway.test")
		if header != "" {
			req.Header.Set("Inference-Header-Content-Length", header)
		}
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		handle(&ctx)

		r := response{code: ctx.Response.StatusCode(), header: map[string]string{}, body: ctx.Response.Body()}
		for k, v := range ctx.Response.Header.All() {
			r.header[string(k)] = string(v)
		}

		// What the server should have made of the request.
		headerLen := -1
		if header != "" {
			n, err := fasthttp.ParseUint([]byte(header))
			if err != nil {
				n = -2 // the server must refuse it
			}
			headerLen = n
		}
		var in oip.InferRequest
		decodeErr := fmt.Errorf("header %q", header)
		switch {
		case headerLen == 0:
			decodeErr = rawCtrRequest(&in, body)
		case headerLen >= -1:
			decodeErr = oip.DecodeRequest(&in, body, headerLen)
		}

		switch {
		case r.code == fasthttp.StatusOK:
			if decodeErr != nil {
				t.Fatalf("200 for a request that does not decode (%s): %s", decodeErr, r)
			}
			checkFuzzAnswer(t, r, &in, mlp)
		case r.code == fasthttp.StatusServiceUnavailable && decodeErr == nil &&
			in.TimeoutMicros > 0 && in.TimeoutMicros < int64(time.Second/time.Microsecond):
			// The client's own deadline was too short to run the model.
			checkRetryAfter(t, r)
			if _, err := errorMessage(r.body); err != nil {
				t.Fatal(err)
			}
		case r.code == fasthttp.StatusBadRequest:
			if _, err := errorMessage(r.body); err != nil {
				t.Fatal(err)
			}
			if ct := r.header["Content-Type"]; ct != "application/json" {
				t.Fatalf("Content-Type of an error: got %q", ct)
			}
			if _, ok := r.header["Inference-Header-Content-Length"]; ok {
				t.Fatalf("an error answer with Inference-Header-Content-Length: %s", r)
			}
		default:
			t.Fatalf("got %s (timeout parameter %d µs, decoding here: %v)", r, in.TimeoutMicros, decodeErr)
		}
	})
}

// rawCtrRequest fills in as the server reads a raw binary request
// (Inference-Header-Content-Length: 0) for ctr: the body is one row of
// features, and the output comes back as binary data.
func rawCtrRequest(in *oip.InferRequest, body []byte) error {
	if len(body) != 4*64 {
		return fmt.Errorf("a raw body of %d bytes; ctr takes one row of %d", len(body), 4*64)
	}
	in.Inputs = []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, 64}, Data: bytes.Clone(body)}}
	in.BinaryDataOutput = true
	return nil
}

// checkFuzzAnswer checks a 200 answer to in: one FP32 output "score" of
// shape [rows,1], sent as binary or JSON as in asked, with the scores of
// the Go forward pass where the inputs are small enough to compare.
func checkFuzzAnswer(t *testing.T, r response, in *oip.InferRequest, mlp *onnx.MLP) {
	t.Helper()
	if len(in.Inputs) != 1 || len(in.Inputs[0].Shape) != 2 {
		t.Fatalf("200 for inputs %+v", in.Inputs)
	}
	rows := in.Inputs[0].Shape[0]
	if v := r.header["X-Model-Version"]; v != "1" {
		t.Fatalf("X-Model-Version: got %q; want 1", v)
	}
	resp := decodeInfer(t, r)
	if resp.ModelName != "ctr" || resp.ModelVersion != "1" || resp.ID != in.ID {
		t.Fatalf("model %q version %q id %q; want ctr, 1, %q", resp.ModelName, resp.ModelVersion, resp.ID, in.ID)
	}
	if len(resp.Outputs) != 1 {
		t.Fatalf("outputs: got %d; want 1", len(resp.Outputs))
	}
	o := &resp.Outputs[0]
	if o.Name != "score" || o.Datatype != oip.FP32 || len(o.Shape) != 2 || o.Shape[0] != rows || o.Shape[1] != 1 || int64(len(o.Data)) != 4*rows {
		t.Fatalf("output %s %s %v with %d bytes; want score FP32 [%d,1] with %d bytes", o.Name, o.Datatype, o.Shape, len(o.Data), rows, 4*rows)
	}
	wantBinary := in.BinaryDataOutput
	for _, ro := range in.Outputs {
		if ro.HasBinary {
			wantBinary = ro.Binary
		}
	}
	if o.Binary != wantBinary {
		t.Fatalf("output sent as binary %v; want %v", o.Binary, wantBinary)
	}
	x := bytesF32(in.Inputs[0].Data)
	for _, v := range x {
		if !(math.Abs(float64(v)) <= 10) {
			return // rounding may differ too much between the two
		}
	}
	got := bytesF32(o.Data)
	want := mlp.Forward(x, int(rows))
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-4) {
			t.Fatalf("score %d: got %v; want %v (within 1e-4)", i, got[i], want[i])
		}
	}
}
