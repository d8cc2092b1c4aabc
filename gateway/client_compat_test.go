package gateway_test

// Client compatibility: each test sends what Triton's or KServe's
// clients send (or what the protocol documents say a server must take)
// and checks what those clients parse.

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/valyala/fasthttp"
)

// KServe's InferenceRESTClient (python/kserve/kserve/inference_client.py)
// answers is_server_live with response.json().get("live") and
// is_server_ready with response.json().get("ready"); the Open Inference
// Protocol's REST spec (inference_rest.md, "Server Live"/"Server Ready")
// gives those bodies. An empty body makes both calls raise a JSON decode
// error instead of returning True.
func TestKServeServerHealthJSONBody(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	for _, c := range []struct{ path, key string }{
		{"/v2/health/live", "live"},
		{"/v2/health/ready", "ready"},
	} {
		r := s.do(t, fasthttp.MethodGet, c.path, nil, "Accept", "*/*")
		if r.code != fasthttp.StatusOK {
			t.Errorf("GET %s: got %s; want 200", c.path, r)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Errorf("GET %s: body %q (Content-Type %q) is not a JSON object: %s; KServe's client calls response.json().get(%q) on it",
				c.path, r.body, r.header["Content-Type"], err, c.key)
			continue
		}
		if m[c.key] != true {
			t.Errorf("GET %s: body %s; want %q: true", c.path, r.body, c.key)
		}
	}
}

// The OIP REST spec's model ready answer is {"name": ..., "ready": ...};
// KServe's InferenceRESTClient before kserve commit 2925c919b (KServe 0.14
// and earlier, inference_client.py:682 there) returns
// response.json().get("ready") for the v2 protocol.
func TestKServeModelReadyJSONBody(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	for _, path := range []string{"/v2/models/ctr/ready", "/v2/models/ctr/versions/1/ready"} {
		r := s.do(t, fasthttp.MethodGet, path, nil)
		if r.code != fasthttp.StatusOK {
			t.Errorf("GET %s: got %s; want 200", path, r)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Errorf("GET %s: body %q is not the spec's {\"name\",\"ready\"} object: %s", path, r.body, err)
			continue
		}
		if m["name"] != "ctr" || m["ready"] != true {
			t.Errorf("GET %s: body %s; want name ctr, ready true", path, r.body)
		}
	}
}

// Triton's statistics extension (docs/protocol/extension_statistics.md,
// "$model_stat") gives every model_stat "response_stats" (an object) and
// "memory_usage" (an array); only "version" is marked #optional. Scripts
// reading get_inference_statistics()'s dict hit a KeyError.
func TestStatisticsModelStatFields(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	for _, path := range []string{"/v2/models/stats", "/v2/models/ctr/stats", "/v2/models/ctr/versions/1/stats"} {
		r := s.do(t, fasthttp.MethodGet, path, nil)
		var st struct {
			ModelStats []map[string]json.RawMessage `json:"model_stats"`
		}
		if r.code != fasthttp.StatusOK || json.Unmarshal(r.body, &st) != nil || len(st.ModelStats) != 1 {
			t.Fatalf("GET %s: got %s; want 200 with one model_stat", path, r)
		}
		var missing []string
		for _, f := range []string{"name", "version", "last_inference", "inference_count", "execution_count", "inference_stats", "response_stats", "batch_stats", "memory_usage"} {
			if _, ok := st.ModelStats[0][f]; !ok {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			t.Errorf("GET %s: model_stat lacks %v (Triton's $model_stat has them)", path, missing)
		}
	}
}

// Triton reports "schedule_policy" in the server metadata's extensions
// when it takes the "priority" and "timeout" request parameters
// (docs/protocol/extension_schedule_policy.md); infergate takes both.
func TestServerMetadataSchedulePolicy(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	r := s.do(t, fasthttp.MethodGet, "/v2", nil)
	var sm struct {
		Extensions []string `json:"extensions"`
	}
	if err := json.Unmarshal(r.body, &sm); err != nil {
		t.Fatalf("GET /v2: %s: %s", r, err)
	}
	if !slices.Contains(sm.Extensions, "schedule_policy") {
		t.Errorf("GET /v2 extensions %v; want %q, the extension that defines the priority and timeout parameters served here", sm.Extensions, "schedule_policy")
	}
}

// Triton's InferenceRequest::SetPriority (core/src/infer_request.cc:241)
// runs a request whose priority is 0 or above the model's priority levels
// at the model's default level. tritonclient sends "priority" whenever it
// is not 0 (_utils.py _get_inference_request), so a client that sends
// priority 2 to every model works on Triton against models with fewer
// levels (or none configured); here it gets 400.
func TestTritonPriorityAboveLevelsRunsAtDefault(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(60, 1, 64)
	body := `{"parameters":{"priority":2},"inputs":[{"name":"features","shape":[1,64],"datatype":"FP32","data":` + jsonFloats(x) + `}],"outputs":[{"name":"score","parameters":{"binary_data":false}}]}`
	r := s.post(t, "/v2/models/ctr/infer", []byte(body))
	if r.code != fasthttp.StatusOK {
		t.Fatalf("priority 2 on a model without priority levels: got %s; want 200 (Triton runs it at the default priority)", r)
	}
	checkScores(t, bytesF32(decodeInfer(t, r).Outputs[0].Data), x, 1)
}

// tritonclient.http serializes requests with python-rapidjson, whose dumps
// writes NaN and infinities as the bare tokens NaN, Infinity and -Infinity
// (allow_nan defaults to true); InferInput.set_data_from_numpy(...,
// binary_data=False) puts the array's values in "data" as they are
// (tritonclient/http/_utils.py _get_inference_request: json.dumps). The
// C++ client (perf_analyzer's) writes them the same way (TritonJson with
// kWriteNanAndInfFlag). Triton parses them (triton_json.h:
// kParseNanAndInfFlag). A missing feature sent as NaN is a 400 here.
func TestTritonClientBareNaNInput(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(59, 1, 64)
	for _, tok := range []string{"NaN", "Infinity", "-Infinity"} {
		data := strings.Replace(jsonFloats(x), "[", "["+tok+",", 1)
		data = data[:strings.LastIndexByte(data, ',')] + "]" // still 64 values
		body := `{"inputs":[{"name":"features","shape":[1,64],"datatype":"FP32","data":` + data + `}],"outputs":[{"name":"score","parameters":{"binary_data":false}}]}`
		r := s.post(t, "/v2/models/ctr/infer", []byte(body))
		if r.code != fasthttp.StatusOK {
			t.Errorf("FP32 data with a bare %s, as tritonclient's rapidjson writes it: got %s; want 200", tok, r)
		}
	}
}

// Triton's binary tensor extension (docs/protocol/extension_binary_data.md,
// "Raw Binary Request"): a request whose Inference-Header-Content-Length is
// 0 has no JSON header; its body is the one input's bytes, taken as a
// batch-1 request (one variable dimension at most), and every output comes
// back binary. Triton's http_server.cc (EVBufferToRawInput) serves it;
// infergate advertises "binary_tensor_data" and says its binary tensors
// follow Triton's extension.
func TestTritonRawBinaryRequest(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(58, 1, 64)
	r := s.do(t, fasthttp.MethodPost, "/v2/models/ctr/infer", f32Bytes(x),
		"Content-Type", "application/octet-stream", "Inference-Header-Content-Length", "0")
	if r.code != fasthttp.StatusOK {
		t.Fatalf("raw binary request (256 bytes of FP32, Inference-Header-Content-Length: 0): got %s; want 200", r)
	}
	h, ok := r.header["Inference-Header-Content-Length"]
	n, err := strconv.Atoi(h)
	if !ok || err != nil || n+4 != len(r.body) {
		t.Fatalf("response: Inference-Header-Content-Length %q for %d bytes; want the JSON length and 4 bytes of score after it", h, len(r.body))
	}
	checkScores(t, bytesF32(r.body[n:]), x, 1)
}
