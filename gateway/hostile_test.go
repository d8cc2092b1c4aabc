package gateway_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// hostileCase is one request a careless or hostile client sends, and the
// answer it must get: the status code and a fragment of the error message
// that tells the person what to fix.
type hostileCase struct {
	name     string
	method   string // default POST
	uri      string // default /v2/models/ctr/infer
	body     string
	headers  []string
	code     int
	fragment string
	allow    string // the Allow header a 405 must carry
}

// input writes one input tensor object; name and dtype go in as they are,
// unescaped.
func input(name, dtype, shape, data string) string {
	return `{"name":"` + name + `","datatype":"` + dtype + `","shape":` + shape + `,"data":` + data + `}`
}

// inputs writes a request body holding the given input objects.
func inputs(ts ...string) string {
	return `{"inputs":[` + strings.Join(ts, ",") + `]}`
}

// binaryBody is a JSON header followed by n raw bytes, and the header's
// length as the Inference-Header-Content-Length value.
func binaryBody(header string, n int) (body, headerLen string) {
	return header + strings.Repeat("\x00", n), fmt.Sprint(len(header))
}

func hostileCases() []hostileCase {
	row := jsonFloats(features(1, 1, 64))
	two := jsonFloats(features(2, 2, 64))
	ints := "[" + strings.TrimSuffix(strings.Repeat("1,", 64), ",") + "]"
	row63 := jsonFloats(features(3, 1, 63))
	row65 := jsonFloats(features(4, 1, 65))
	good := input("features", "FP32", "[1,64]", row)
	withData := func(data string) string { return inputs(input("features", "FP32", "[1,64]", data)) }
	// Replace the first element of row, which has 64, to keep the count.
	first := func(elem string) string {
		_, rest, _ := strings.Cut(row, ",")
		return withData("[" + elem + "," + rest)
	}
	withParams := func(params string) string {
		return `{"parameters":` + params + `,"inputs":[` + good + `]}`
	}
	const bad, notFound = fasthttp.StatusBadRequest, fasthttp.StatusNotFound

	binHeader := func(size int, extra string) string {
		return fmt.Sprintf(`{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64]%s,"parameters":{"binary_data_size":%d}}]}`, extra, size)
	}
	b256, h256 := binaryBody(binHeader(256, ""), 256)
	bShort, hShort := binaryBody(binHeader(1024, ""), 256)
	bLong, hLong := binaryBody(binHeader(256, ""), 512)
	bSize, hSize := binaryBody(binHeader(512, ""), 512)
	bBoth, hBoth := binaryBody(binHeader(256, `,"data":`+row), 256)
	bNeg, hNeg := binaryBody(binHeader(-1, ""), 0)

	return []hostileCase{
		// Not JSON, or not an object.
		{name: "invalid JSON", body: `{"inputs":[`, code: bad, fragment: "invalid JSON"},
		{name: "trailing garbage", body: inputs(good) + "}", code: bad, fragment: "follows the end"},
		{name: "empty body", body: "", code: bad, fragment: "expected an object"},
		{name: "null", body: "null", code: bad, fragment: "must be an object, not null"},
		{name: "array", body: "[]", code: bad, fragment: "must be an object, not an array"},
		{name: "string", body: `"x"`, code: bad, fragment: "must be an object, not a string"},
		{name: "invalid UTF-8", body: inputs(input("f\xffeatures", "FP32", "[1,64]", row)), code: bad, fragment: "not UTF-8"},
		{name: "control character", body: inputs(input("fea\x01tures", "FP32", "[1,64]", row)), code: bad, fragment: "control character"},

		// Inputs that do not fit the model.
		{name: "no inputs", body: `{}`, code: bad, fragment: `no "inputs"`},
		{name: "inputs null", body: `{"inputs":null}`, code: bad, fragment: `"inputs" must be an array`},
		{name: "inputs object", body: `{"inputs":{}}`, code: bad, fragment: `"inputs" must be an array`},
		{name: "missing input", body: `{"inputs":[]}`, code: bad, fragment: `missing input "features"`},
		{name: "unknown input", body: inputs(input("feature", "FP32", "[1,64]", row)), code: bad, fragment: `unknown input "feature"`},
		{name: "unknown and missing", body: inputs(good, input("extra", "FP32", "[1,64]", row)), code: bad, fragment: `unknown input "extra"`},
		{name: "duplicate input", body: inputs(good, good), code: bad, fragment: `two inputs named "features"`},
		{name: "input without name", body: `{"inputs":[{"datatype":"FP32","shape":[1,64],"data":` + row + `}]}`, code: bad, fragment: `no "name"`},
		{name: "input without shape", body: `{"inputs":[{"name":"features","datatype":"FP32","data":` + row + `}]}`, code: bad, fragment: `no "shape"`},
		{name: "input without data", body: `{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64]}]}`, code: bad, fragment: `no "data"`},
		{name: "wrong datatype", body: inputs(input("features", "INT64", "[1,64]", ints)), code: bad, fragment: "INT64 but the model takes FP32"},
		{name: "unknown datatype", body: inputs(input("features", "FLOAT32", "[1,64]", row)), code: bad, fragment: `unknown datatype "FLOAT32"`},
		{name: "lower-case datatype", body: inputs(input("features", "fp32", "[1,64]", row)), code: bad, fragment: `unknown datatype "fp32"`},
		{name: "rank too low", body: inputs(input("features", "FP32", "[64]", row)), code: bad, fragment: "shape [64] has 1 dimension but the model's [-1,64] has 2"},
		{name: "rank too high", body: inputs(input("features", "FP32", "[1,1,64]", row)), code: bad, fragment: "has 3 dimensions"},
		{name: "scalar", body: inputs(input("features", "FP32", "[]", "[1]")), code: bad, fragment: "has 0 dimensions"},
		{name: "wrong fixed dimension", body: inputs(input("features", "FP32", "[1,63]", row63)), code: bad, fragment: "dimension 1 must be 64"},
		{name: "negative dimension", body: inputs(input("features", "FP32", "[-1,64]", row)), code: bad, fragment: "must not be negative"},
		{name: "fractional dimension", body: inputs(input("features", "FP32", "[1.5,64]", row)), code: bad, fragment: "not an integer"},
		{name: "dimension in exponent form", body: inputs(input("features", "FP32", "[1e12,64]", row)), code: bad, fragment: "dimension 0"},
		{name: "absurd dimension", body: inputs(input("features", "FP32", "[1000000000000,64]", row)), code: bad, fragment: "at most 268435456"},
		{name: "dimension beyond int64", body: inputs(input("features", "FP32", "[99999999999999999999999,64]", row)), code: bad, fragment: "at most 268435456"},
		{name: "overflowing product", body: inputs(input("features", "FP32", "[268435456,268435456,268435456,268435456]", row)), code: bad, fragment: "more than 268435456 elements"},
		{name: "product over the limit", body: inputs(input("features", "FP32", "[4194305,64]", row)), code: bad, fragment: "more than 268435456 elements"},
		{name: "dimension as string", body: inputs(input("features", "FP32", `["1",64]`, row)), code: bad, fragment: "must be an array of integers"},
		{name: "shape not an array", body: inputs(input("features", "FP32", `"1,64"`, row)), code: bad, fragment: `"shape" must be an array`},
		{name: "zero rows", body: inputs(input("features", "FP32", "[0,64]", "[]")), code: bad, fragment: "[0,64]"},

		// Data that does not match its shape or type.
		{name: "too few elements", body: inputs(input("features", "FP32", "[2,64]", row)), code: bad, fragment: "data has 64 elements but shape [2,64] needs 128"},
		{name: "too many elements", body: inputs(input("features", "FP32", "[1,64]", two)), code: bad, fragment: "data has 128 elements but shape [1,64] needs 64"},
		{name: "strings for FP32", body: first(`"0.5"`), code: bad, fragment: `data element 0 is the string "0.5" but FP32 needs numbers`},
		{name: "boolean for FP32", body: first(`true`), code: bad, fragment: "data element 0 is a boolean but FP32 needs numbers"},
		{name: "null element", body: first(`null`), code: bad, fragment: "data element 0 is null"},
		{name: "object element", body: first(`{}`), code: bad, fragment: "data element 0 is an object"},
		{name: "data not an array", body: withData(`"AAAA"`), code: bad, fragment: `"data" must be an array, not a string`},
		{name: "data null", body: withData(`null`), code: bad, fragment: `"data" must be an array, not null`},
		{name: "ragged rows, too many", body: inputs(input("features", "FP32", "[1,64]", "["+row+",[1]]")), code: bad, fragment: `"data" is ragged`},
		{name: "ragged rows, too few", body: inputs(input("features", "FP32", "[2,64]", "["+row+","+row63+"]")), code: bad, fragment: `"data" is ragged`},
		{name: "ragged rows, one too long", body: inputs(input("features", "FP32", "[2,64]", "["+row65+","+row+"]")), code: bad, fragment: `"data" is ragged`},
		{name: "ragged rows, total matches", body: inputs(input("features", "FP32", "[2,64]", "["+row65+","+row63+"]")), code: bad, fragment: `"data" is ragged: an array at depth 2 has 63 elements, an earlier one 65`},
		// NaN, Infinity and -Infinity are taken bare, as Triton takes them;
		// other spellings are not.
		{name: "Nan literal", body: first("Nan"), code: bad, fragment: "invalid JSON"},
		{name: "Inf literal", body: first("Inf"), code: bad, fragment: "invalid JSON"},
		{name: "-Inf literal", body: first("-Inf"), code: bad, fragment: "invalid JSON"},
		{name: "unknown special string", body: first(`"nan"`), code: bad, fragment: `"NaN", "Infinity", "-Infinity"`},
		{name: "leading zero", body: first("01"), code: bad, fragment: "invalid JSON"},
		{name: "hex number", body: first("0x10"), code: bad, fragment: "invalid JSON"},
		{name: "deep nesting", body: withData(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)), code: bad, fragment: "nest deeper than 64"},
		{name: "deep nesting unclosed", body: withData(strings.Repeat("[", 10000)), code: bad, fragment: "nest deeper than 64"},
		{name: "deep nesting of objects", body: `{"x":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + `,"inputs":[` + good + `]}`, code: bad, fragment: "nest deeper than 64"},
		{name: "huge number", body: first("1e400"), code: bad, fragment: "data element 0 is 1e400, out of the range of FP32"},
		{name: "over float32 range", body: first("1e39"), code: bad, fragment: "out of the range of FP32"},

		// Binary framing.
		{name: "header longer than body", body: b256, headers: []string{"Inference-Header-Content-Length", fmt.Sprint(len(b256) + 1)}, code: bad, fragment: "but the body has only"},
		{name: "header negative", body: b256, headers: []string{"Inference-Header-Content-Length", "-5"}, code: bad, fragment: "must be the byte length of the JSON"},
		{name: "header not a number", body: b256, headers: []string{"Inference-Header-Content-Length", "abc"}, code: bad, fragment: "must be the byte length of the JSON"},
		{name: "header empty", body: b256, headers: []string{"Inference-Header-Content-Length", ""}, code: bad, fragment: "Inference-Header-Content-Length"},
		{name: "header overflows", body: b256, headers: []string{"Inference-Header-Content-Length", "99999999999999999999999"}, code: bad, fragment: "must be the byte length of the JSON"},
		{name: "header zero", body: b256, headers: []string{"Inference-Header-Content-Length", "0"}, code: bad, fragment: "not a whole number of FP32 elements"},
		{name: "header cuts the JSON", body: b256, headers: []string{"Inference-Header-Content-Length", "20"}, code: bad, fragment: "invalid JSON"},
		{name: "header too short by one", body: b256, headers: []string{"Inference-Header-Content-Length", fmt.Sprint(len(b256) - 256 - 1)}, code: bad, fragment: "invalid JSON"},
		{name: "binary_data_size too large", body: bShort, headers: []string{"Inference-Header-Content-Length", hShort}, code: bad, fragment: "binary_data_size of input \"features\" is 1024 but only 256 bytes follow"},
		{name: "binary_data_size too small", body: bLong, headers: []string{"Inference-Header-Content-Length", hLong}, code: bad, fragment: "512 bytes follow the JSON header but the binary_data_size parameters of the inputs add up to 256"},
		{name: "binary_data_size disagrees with shape", body: bSize, headers: []string{"Inference-Header-Content-Length", hSize}, code: bad, fragment: "binary_data_size is 512 but shape [1,64] of FP32 needs 256 bytes"},
		{name: "binary_data_size negative", body: bNeg, headers: []string{"Inference-Header-Content-Length", hNeg}, code: bad, fragment: `parameter "binary_data_size" is -1`},
		{name: "binary and data", body: bBoth, headers: []string{"Inference-Header-Content-Length", hBoth}, code: bad, fragment: `both "data" and a binary_data_size parameter`},
		{name: "binary without header", body: binHeader(256, ""), code: bad, fragment: "no Inference-Header-Content-Length header"},
		{name: "binary bytes without header", body: b256, code: bad, fragment: "no Inference-Header-Content-Length header"},
		{name: "binary header on JSON", body: inputs(good), headers: []string{"Inference-Header-Content-Length", h256}, code: bad, fragment: "invalid JSON"},

		// Outputs and parameters.
		{name: "unknown output", body: `{"inputs":[` + good + `],"outputs":[{"name":"prob"}]}`, code: bad, fragment: `unknown output "prob"`},
		{name: "output twice", body: `{"inputs":[` + good + `],"outputs":[{"name":"score"},{"name":"score"}]}`, code: bad, fragment: `output "score"`},
		{name: "output without name", body: `{"inputs":[` + good + `],"outputs":[{}]}`, code: bad, fragment: `no "name"`},
		{name: "binary_data not a boolean", body: `{"inputs":[` + good + `],"outputs":[{"name":"score","parameters":{"binary_data":1}}]}`, code: bad, fragment: `"binary_data" must be true or false`},
		{name: "timeout negative", body: withParams(`{"timeout":-5}`), code: bad, fragment: `parameter "timeout" is -5`},
		{name: "timeout fractional", body: withParams(`{"timeout":1.5}`), code: bad, fragment: `parameter "timeout" must be an integer`},
		{name: "timeout string", body: withParams(`{"timeout":"100"}`), code: bad, fragment: `parameter "timeout" must be an integer, not a string`},
		{name: "timeout beyond int64", body: withParams(`{"timeout":99999999999999999999}`), code: bad, fragment: `parameter "timeout"`},
		{name: "binary_data_output not a boolean", body: withParams(`{"binary_data_output":"yes"}`), code: bad, fragment: `"binary_data_output" must be true or false`},
		{name: "parameters not an object", body: withParams(`[]`), code: bad, fragment: `"parameters" must be an object`},
		{name: "id not a string", body: `{"id":5,"inputs":[` + good + `]}`, code: bad, fragment: `"id" must be a string`},

		// Routing.
		{name: "version 0", uri: "/v2/models/ctr/versions/0/infer", body: inputs(good), code: bad, fragment: `model version "0" is not a positive integer`},
		{name: "version abc", uri: "/v2/models/ctr/versions/abc/infer", body: inputs(good), code: bad, fragment: `model version "abc" is not a positive integer`},
		{name: "version negative", uri: "/v2/models/ctr/versions/-1/infer", body: inputs(good), code: bad, fragment: "not a positive integer"},
		{name: "version beyond int64", uri: "/v2/models/ctr/versions/99999999999999999999/infer", body: inputs(good), code: bad, fragment: "not a positive integer"},
		{name: "version 99", uri: "/v2/models/ctr/versions/99/infer", body: inputs(good), code: notFound, fragment: `model "ctr" has no ready version 99; ready versions: 1`},
		{name: "unknown model", uri: "/v2/models/nope/infer", body: inputs(good), code: notFound, fragment: `model "nope" is not served here`},
		{name: "model name with path tricks", uri: "/v2/models/..%2F..%2Fetc/infer", body: inputs(good), code: notFound, fragment: "no such endpoint"},
		{name: "model name with dots", uri: "/v2/models/%2E%2E/infer", body: inputs(good), code: notFound, fragment: "no such endpoint"},
		{name: "model name with NUL", uri: "/v2/models/ctr%00/infer", body: inputs(good), code: notFound, fragment: `model "ctr\x00" is not served here`},
		{name: "metadata of unknown model", method: "GET", uri: "/v2/models/nope", code: notFound, fragment: `model "nope" is not served here`},
		{name: "GET infer", method: "GET", uri: "/v2/models/ctr/infer", code: fasthttp.StatusMethodNotAllowed, fragment: "method GET is not allowed here; use POST", allow: "POST"},
		{name: "PUT infer", method: "PUT", uri: "/v2/models/ctr/infer", body: inputs(good), code: fasthttp.StatusMethodNotAllowed, fragment: "use POST", allow: "POST"},
		{name: "POST metadata", uri: "/v2/models/ctr", body: inputs(good), code: fasthttp.StatusMethodNotAllowed, fragment: "use GET", allow: "GET, HEAD"},
		{name: "DELETE ready", method: "DELETE", uri: "/v2/health/ready", code: fasthttp.StatusMethodNotAllowed, fragment: "use GET", allow: "GET, HEAD"},
		{name: "POST live", uri: "/v2/health/live", code: fasthttp.StatusMethodNotAllowed, fragment: "use GET", allow: "GET, HEAD"},
		{name: "unknown endpoint", method: "GET", uri: "/v2/foo", code: notFound, fragment: "no such endpoint"},
		{name: "unknown model endpoint", uri: "/v2/models/ctr/explain", body: inputs(good), code: notFound, fragment: "no such endpoint"},
		{name: "repository: model name with a slash", uri: "/v2/repository/models/a%2Fb/load", code: bad, fragment: `invalid model name "a/b"`},
		{name: "repository: model name with path tricks", uri: "/v2/repository/models/..%2F..%2Fetc/load", code: notFound, fragment: "no such endpoint"},
		{name: "repository: unknown model", uri: "/v2/repository/models/nope/load", code: notFound, fragment: `no directory for model "nope"`},
		{name: "repository: unknown action", uri: "/v2/repository/models/ctr/reload", code: notFound, fragment: "/load or /unload"},
		{name: "repository: GET load", method: "GET", uri: "/v2/repository/models/ctr/load", code: fasthttp.StatusMethodNotAllowed, fragment: "use POST", allow: "POST"},
		{name: "repository: bad override", uri: "/v2/repository/models/ctr/load", body: `{"parameters":{"config":"{\"instances\":-1}"}}`, code: bad, fragment: "instances must be between 1 and 64, got -1"},
		{name: "repository: override not JSON", uri: "/v2/repository/models/ctr/load", body: `{"parameters":{"config":"{"}}`, code: bad, fragment: "parameters.config"},
		{name: "repository: body not JSON", uri: "/v2/repository/models/ctr/load", body: `{`, code: bad, fragment: "not the expected JSON"},
		{name: "repository index: ready not a boolean", uri: "/v2/repository/index", body: `{"ready":"yes"}`, code: bad, fragment: "not the expected JSON"},
		{name: "v2 body at the v1 endpoint", uri: "/v1/models/ctr:predict", body: inputs(good), code: fasthttp.StatusBadRequest, fragment: `"inputs" holds objects, as in the v2 protocol`},
	}
}

// TestHostileInput sends one bad request after another to one server and
// checks each answer; then a good request still gets the right answer.
func TestHostileInput(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = fasthttp.MethodPost
			}
			uri := c.uri
			if uri == "" {
				uri = "/v2/models/ctr/infer"
			}
			var body []byte
			if method != fasthttp.MethodGet {
				body = []byte(c.body)
			}
			r := s.do(t, method, uri, body, c.headers...)
			if r.code >= 500 {
				t.Fatalf("a client's mistake got %s", r)
			}
			checkError(t, r, c.code, c.fragment)
			if c.code == fasthttp.StatusMethodNotAllowed {
				if got := r.header["Allow"]; got != c.allow {
					t.Fatalf("Allow: got %q; want %q", got, c.allow)
				}
			}
		})
	}
	// The server stayed up and still answers right.
	x := features(42, 3, 64)
	resp := decodeInfer(t, s.post(t, "/v2/models/ctr/infer", ctrRequest(x, 3)))
	checkScores(t, bytesF32(resp.Outputs[0].Data), x, 3)
	if got := s.do(t, fasthttp.MethodGet, "/v2/health/live", nil); got.code != fasthttp.StatusOK {
		t.Fatalf("live after the hostile requests: got %s; want 200", got)
	}
}

// TestBodyTooLarge checks that a body over MaxBodyBytes gets 413 and the
// JSON error body, and that the server serves the next request.
func TestBodyTooLarge(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 1024
	s := startDemo(t, cfg, false)

	x := features(5, 3, 64) // about 2.5 KB of JSON
	body := ctrRequest(x, 3)
	if len(body) <= cfg.MaxBodyBytes {
		t.Fatalf("BUG: the test body has %d bytes; want more than %d", len(body), cfg.MaxBodyBytes)
	}
	checkError(t, s.post(t, "/v2/models/ctr/infer", body), fasthttp.StatusRequestEntityTooLarge, "exceeds the 1024-byte limit")
	checkMetric(t, s.metricsText(t), "infergate_http_protocol_errors_total", 1)

	// A request under the limit is served.
	x = features(6, 1, 64)
	body = fmt.Appendf(nil, `{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"parameters":{"binary_data_size":256}}]}`)
	headerLen := len(body)
	body = append(body, f32Bytes(x)...)
	resp := decodeInfer(t, s.post(t, "/v2/models/ctr/infer", body, "Inference-Header-Content-Length", fmt.Sprint(headerLen)))
	checkScores(t, bytesF32(resp.Outputs[0].Data), x, 1)
}

// TestHugeTimeoutParameter checks that a request whose "timeout"
// parameter is larger than the server's own bound runs under the
// server's bound, however large the number.
func TestHugeTimeoutParameter(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(7, 1, 64)
	f := func(timeout string) {
		t.Helper()
		body := fmt.Appendf(nil, `{"parameters":{"timeout":%s},"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":%s}]}`, timeout, jsonFloats(x))
		r := s.post(t, "/v2/models/ctr/infer", body)
		if r.code != fasthttp.StatusOK {
			t.Fatalf("timeout %s µs: got %s; want 200", timeout, r)
		}
		checkScores(t, bytesF32(decodeInfer(t, r).Outputs[0].Data), x, 1)
	}
	f("0")                   // no timeout
	f("60000000")            // a minute, more than RequestTimeout
	f("9223372036854775")    // the largest that fits time.Duration in µs
	f("9223372036854776")    // one more: overflows µs -> ns
	f("9223372036854775807") // math.MaxInt64
}

// TestMaxBatchSize checks that a request with more rows than the model's
// max_batch_size is not refused: it runs alone, whole.
func TestMaxBatchSize(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{MaxBatchSize: 2})
	three := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[3,4],"data":[1,2,3,4,5,6,7,8,9,10,11,12]}]}`)
	r := s.post(t, fakeInfer, three)
	if r.code != fasthttp.StatusOK || !strings.Contains(string(r.body), `"shape":[3,1],"data":[10,26,42]`) {
		t.Fatalf("three rows with max_batch_size 2: got %s; want 200 with the three sums", r)
	}
	checkMetric(t, s.metricsText(t), "infergate_inference_batch_size_bucket{"+fakeSeries+`,le="4"}`, 1)
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
}

// TestMalformedHTTP checks that requests fasthttp cannot parse get 400
// with the JSON error body.
func TestMalformedHTTP(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	addr := s.listenTCP(t)
	f := func(request, fragment string) {
		t.Helper()
		resp, body := rawExchange(t, addr, request)
		r := response{code: resp.StatusCode, header: map[string]string{"Content-Type": resp.Header.Get("Content-Type")}, body: body}
		checkError(t, r, fasthttp.StatusBadRequest, fragment)
	}
	f("POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", "malformed HTTP request")
	f("POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", "malformed HTTP request")
	f("POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "malformed HTTP request")
	checkMetric(t, s.metricsText(t), "infergate_http_protocol_errors_total", 3)
}
