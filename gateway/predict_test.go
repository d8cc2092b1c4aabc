package gateway_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

const fakePredict = "/v1/models/fake:predict"

// checkBody checks that r is a 200 whose body is want.
func checkBody(t *testing.T, r response, want string) {
	t.Helper()
	if r.code != fasthttp.StatusOK || string(r.body) != want {
		t.Fatalf("got %s; want 200 %s", r, want)
	}
}

// KServe's v1 protocol: rows and whole tensors in, the same layout out,
// through the infer path (metrics count them); and errors that say what
// to send instead.
func TestPredictV1(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	r := s.post(t, fakePredict, []byte(`{"instances":[[1,2,3,4],[0,0,0,1]]}`))
	checkBody(t, r, `{"predictions":[[10],[1]]}`)
	if r.header["X-Model-Version"] != "1" || r.header["Content-Type"] != "application/json" {
		t.Fatalf("headers: %v; want X-Model-Version 1 and JSON", r.header)
	}
	checkBody(t, s.post(t, "/v1/models/fake/versions/1:predict", []byte(`{"instances":[{"x":[1,1,1,1]}],"signature_name":"serving_default"}`)),
		`{"predictions":[[4]]}`)
	checkBody(t, s.post(t, fakePredict, []byte(`{"inputs":[[1,2,3,4],[1,1,1,1]]}`)), `{"outputs":[[10],[4]]}`)
	checkBody(t, s.post(t, fakePredict, []byte(`{"inputs":{"x":[[2,2,2,2]]}}`)), `{"outputs":[[8]]}`)
	checkMetric(t, s.metricsText(t), "infergate_inference_request_success_total{"+fakeSeries+"}", 4)

	f := func(method, uri, body string, code int, fragment string, headers ...string) {
		t.Helper()
		checkError(t, s.do(t, method, uri, []byte(body), headers...), code, fragment)
	}
	row := `{"instances":[[1,2,3,4]]}`
	f("POST", "/v1/models/fake/versions/2:predict", row, fasthttp.StatusNotFound, `version 2`)
	f("POST", "/v1/models/nope:predict", row, fasthttp.StatusNotFound, `"nope"`)
	f("POST", "/v1/models/fake/labels/stable:predict", row, fasthttp.StatusNotFound,
		"infergate serves versions by number here: POST /v1/models/fake/versions/{N}:predict")
	f("POST", "/v1/models/fake/versions/:predict", row, fasthttp.StatusNotFound, "use POST /v1/models/{name}[/versions/{N}]:predict")
	f("POST", "/v1/models/fake/other/1:predict", row, fasthttp.StatusNotFound, "use POST /v1/models/{name}[/versions/{N}]:predict")
	f("POST", "/v1/models/fake:explain", row, fasthttp.StatusNotFound, "asks for :explain; of KServe's v1 protocol infergate serves :predict")
	f("GET", fakePredict, "", fasthttp.StatusMethodNotAllowed, "POST")
	f("POST", fakePredict, row, fasthttp.StatusBadRequest, "KServe's v1 protocol has no binary tensors", "Inference-Header-Content-Length", "0")
	f("POST", fakePredict, `{"instances":[[1,2,3]]}`, fasthttp.StatusBadRequest, `input "x"`)
	f("POST", fakePredict, `{"instances":[1,2,3,4]}`, fasthttp.StatusBadRequest, `each row of "instances" must be a value of shape [4]`)
	f("POST", fakePredict, `{"instances":[]}`, fasthttp.StatusBadRequest, `"instances" is empty`)
	f("POST", fakePredict, `{"inputs":[]}`, fasthttp.StatusBadRequest, `input "x"`)
	f("POST", fakePredict, `{}`, fasthttp.StatusBadRequest, `neither "instances"`)
	f("POST", fakePredict, `{"instances":[[1,2,3,4]],"outputs":[{"name":"y"}]}`+"x", fasthttp.StatusBadRequest, "invalid JSON")
	text := s.metricsText(t)
	checkMetric(t, text, "infergate_inference_request_success_total{"+fakeSeries+"}", 4)
	// Refused once the model was found: counted as bad requests.
	checkMetric(t, text, `infergate_inference_request_failure_total{`+fakeSeries+`,reason="bad_request"}`, 7)
}

// The response cache answers v1 and v2 requests of the same inputs from
// one entry, each in its own format; a v1 body replayed answers only v1.
func TestPredictV1Cache(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}})
	hit := func(r response, want bool) {
		t.Helper()
		if got := r.header["X-Cache"] == "hit"; got != want {
			t.Fatalf("X-Cache hit: got %v; want %v (%s)", got, want, r)
		}
	}
	row := []byte(`{"instances":[[1,2,3,4]]}`)
	r := s.post(t, fakePredict, row)
	checkBody(t, r, `{"predictions":[[10]]}`)
	hit(r, false)
	waitCache(t, s)
	r = s.post(t, fakePredict, row) // the same bytes: replayed
	checkBody(t, r, `{"predictions":[[10]]}`)
	hit(r, true)
	r = s.post(t, fakeInfer, fakeRequest) // the same input over v2
	hit(r, true)
	checkFakeAnswer(t, r)
	r = s.post(t, fakePredict, []byte(`{"inputs":{"x":[[1,2,3,4]]}}`))
	checkBody(t, r, `{"outputs":[[10]]}`)
	hit(r, true)
	checkMetric(t, s.metricsText(t), "infergate_inference_exec_count_total{"+fakeSeries+"}", 1)
	// The bytes of a v2 request whose answer is cached, sent as a v1
	// request: not replayed (they mean nothing in v1).
	checkError(t, s.post(t, fakePredict, fakeRequest), fasthttp.StatusBadRequest, `"inputs" holds objects, as in the v2 protocol`)
}

// A v1 predict request needs the inference token, as a v2 infer request
// does, and not the admin token that the rest of /v1 needs.
func TestPredictV1Token(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "infer-token"
	cfg.AdminToken = adminToken
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	row := []byte(`{"instances":[[1,2,3,4]]}`)
	checkError(t, s.post(t, fakePredict, row), fasthttp.StatusUnauthorized, "inference token")
	checkError(t, s.post(t, fakePredict, row, "Authorization", "Bearer "+adminToken), fasthttp.StatusUnauthorized, "inference token")
	checkBody(t, s.post(t, fakePredict, row, "Authorization", "Bearer infer-token"), `{"predictions":[[10]]}`)
}

// On ONNX Runtime, with the traffic log on: a v1 prediction equals the v2
// one of the same rows, carries an id, and takes feedback by it.
func TestPredictV1Demo(t *testing.T) {
	s, _, _ := startTraffic(t, 100, registry.ModelConfig{})
	x := features(7, 2, 64)
	rows := "[" + jsonFloats(x[:64]) + "," + jsonFloats(x[64:]) + "]"
	r := s.post(t, "/v1/models/ctr:predict", []byte(`{"instances":`+rows+`}`))
	if r.code != 200 {
		t.Fatalf("predict: %s", r)
	}
	var v1 struct {
		Predictions [][]float32 `json:"predictions"`
		ID          string      `json:"id"`
	}
	if err := json.Unmarshal(r.body, &v1); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	v2 := decodeInfer(t, s.post(t, "/v2/models/ctr/infer", []byte(inputs(input("features", "FP32", "[2,64]", jsonFloats(x))))))
	want := bytesF32(v2.Outputs[0].Data)
	if len(v1.Predictions) != 2 || len(v1.Predictions[0]) != 1 || v1.Predictions[0][0] != want[0] || v1.Predictions[1][0] != want[1] {
		t.Fatalf("v1 predictions %v; want those of v2, %v", v1.Predictions, want)
	}
	if len(v1.ID) != 16 {
		t.Fatalf("id %q; want the 16 hex digits the traffic log made up", v1.ID)
	}
	fb := s.post(t, "/v2/models/ctr/feedback", []byte(`{"id":"`+v1.ID+`","label":1}`))
	if fb.code != 200 || !strings.Contains(string(fb.body), `"accepted":1`) {
		t.Fatalf("feedback for the v1 prediction: %s", fb)
	}
	// A client's own id, as in v2.
	r = s.post(t, "/v1/models/ctr:predict", []byte(`{"id":"imp-1","inputs":`+rows+`}`))
	if r.code != 200 || !strings.HasSuffix(string(r.body), `,"id":"imp-1"}`) {
		t.Fatalf("predict with an id: %s", r)
	}
}

// FuzzPredictHandler sends bodies to ctr's v1 predict endpoint: the server
// answers 200 with the Go forward pass's scores where the body decodes to
// rows ctr takes, else 400 with a JSON error; never anything else.
func FuzzPredictHandler(f *testing.F) {
	row := jsonFloats(features(3, 1, 64))
	for _, b := range []string{
		`{"instances":[` + row + `]}`,
		`{"instances":[{"features":` + row + `}],"id":"a"}`,
		`{"inputs":[` + row + `,` + row + `]}`,
		`{"inputs":{"features":[` + row + `]}}`,
		`{"instances":[[1,2]]}`,
		`{"instances":[` + row + `],"inputs":[]}`,
	} {
		f.Add([]byte(b))
	}
	s := startDemo(f, gateway.DefaultConfig(), false)
	handle := s.srv.Handler()
	mlp := ctrMLP()
	meta := []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, 64}}}

	f.Fuzz(func(t *testing.T, body []byte) {
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/v1/models/ctr:predict")
		req.Header.SetHost("gateway.test")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		handle(&ctx)
		r := response{code: ctx.Response.StatusCode(), body: ctx.Response.Body()}

		var in oip.InferRequest
		format, decodeErr := oip.DecodePredictRequest(&in, body, meta)
		switch r.code {
		case fasthttp.StatusOK:
			if decodeErr != nil {
				t.Fatalf("200 for a request that does not decode (%s): %s", decodeErr, r)
			}
			x := bytesF32(in.Inputs[0].Data)
			rows := int(in.Inputs[0].Shape[0])
			var got []float32
			if format == oip.PredictRows {
				var v struct{ Predictions [][]float32 }
				if err := json.Unmarshal(r.body, &v); err != nil || len(v.Predictions) != rows {
					t.Fatalf("%d rows: got %s (%v)", rows, r.body, err)
				}
				for _, p := range v.Predictions {
					got = append(got, p...)
				}
			} else {
				var v struct{ Outputs [][]float32 }
				if err := json.Unmarshal(r.body, &v); err != nil || len(v.Outputs) != rows {
					t.Fatalf("%d rows: got %s (%v)", rows, r.body, err)
				}
				for _, p := range v.Outputs {
					got = append(got, p...)
				}
			}
			if len(got) != rows {
				t.Fatalf("%d scores for %d rows: %s", len(got), rows, r.body)
			}
			for _, v := range x {
				if !(math.Abs(float64(v)) <= 10) {
					return // rounding may differ too much between the two
				}
			}
			want := mlp.Forward(x, rows)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-4) {
					t.Fatalf("score %d: got %v; want %v (within 1e-4)", i, got[i], want[i])
				}
			}
		case fasthttp.StatusBadRequest:
			if _, err := errorMessage(r.body); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("got %s (decoding here: %v)", r, decodeErr)
		}
	})
}

// TensorFlow Serving's and KServe v1's model status call, GET
// /v1/models/{m}, is the cluster's admin API here: for a model served from
// --models, outside the cluster, its 404 says where readiness is.
func TestV1ModelStatusPointsToReady(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	attachNode(t, s, "", nil)
	checkError(t, s.do(t, "GET", "/v1/models/ctr", nil), fasthttp.StatusNotFound,
		`this node serves "ctr" from its --models directory, outside the cluster: GET /v2/models/ctr/ready says whether it is ready`)
	checkError(t, s.do(t, "GET", "/v1/models/nope", nil), fasthttp.StatusNotFound, `model "nope" is not registered in the cluster`)
}
