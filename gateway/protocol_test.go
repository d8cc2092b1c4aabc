package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/valyala/fasthttp"
)

// rawExchange writes request, bytes as a client puts them on the wire, to
// a new TCP connection to addr and reads one response with net/http's
// parser, an implementation independent of the server's.
func rawExchange(t testing.TB, addr, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %s", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %s", err)
	}
	return resp, body
}

// httpRequest writes a POST of body to path with the given extra header
// lines, as HTTP/1.1 with a Content-Length.
func httpRequest(addr, path, body string, headerLines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
	for _, h := range headerLines {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// wireTensor and wireResponse are an infer response as the protocol
// spells it; decoding refuses members they do not name.
type wireTensor struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int64        `json:"shape"`
	Data       []float64      `json:"data"`
	Parameters map[string]any `json:"parameters"`
}

type wireResponse struct {
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version"`
	ID           *string      `json:"id"`
	Outputs      []wireTensor `json:"outputs"`
}

func decodeWire(t testing.TB, header []byte) wireResponse {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	var w wireResponse
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("response header %q: %s", truncate(header, 500), err)
	}
	if dec.More() {
		t.Fatalf("response header %q: data after the JSON", truncate(header, 500))
	}
	return w
}

// checkFloats compares got with want within 1e-5.
func checkFloats(t testing.TB, got []float64, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("data: got %d values; want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i] - float64(want[i])); !(d <= 1e-5) {
			t.Fatalf("data[%d]: got %v; want %v (within 1e-5)", i, got[i], want[i])
		}
	}
}

// TestKServeJSON sends a KServe v2 JSON request with nested data, an id
// and a list of outputs, and checks every member of the answer.
func TestKServeJSON(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	addr := s.listenTCP(t)
	x := features(21, 2, 64)
	body := `{"id":"req-42","inputs":[{"name":"features","shape":[2,64],"datatype":"FP32","data":` +
		jsonRows(x, 64) + `}],"outputs":[{"name":"score"}]}`

	for _, path := range []string{"/v2/models/ctr/infer", "/v2/models/ctr/versions/1/infer"} {
		resp, got := rawExchange(t, addr, httpRequest(addr, path, body, "Content-Type: application/json"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: got %d %q; want 200", path, resp.StatusCode, truncate(got, 300))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type: got %q; want application/json", ct)
		}
		if h := resp.Header.Values("Inference-Header-Content-Length"); len(h) != 0 {
			t.Fatalf("Inference-Header-Content-Length on a JSON answer: %q", h)
		}
		if v := resp.Header.Get("X-Model-Version"); v != "1" {
			t.Fatalf("X-Model-Version: got %q; want 1", v)
		}
		w := decodeWire(t, got)
		if w.ModelName != "ctr" || w.ModelVersion != "1" {
			t.Fatalf("model_name, model_version: got %q, %q; want ctr, 1", w.ModelName, w.ModelVersion)
		}
		if w.ID == nil || *w.ID != "req-42" {
			t.Fatalf("id: got %v; want req-42", w.ID)
		}
		if len(w.Outputs) != 1 {
			t.Fatalf("outputs: got %d; want 1", len(w.Outputs))
		}
		o := w.Outputs[0]
		if o.Name != "score" || o.Datatype != "FP32" || !reflect.DeepEqual(o.Shape, []int64{2, 1}) || o.Parameters != nil {
			t.Fatalf("output: got %s %s %v parameters %v; want score FP32 [2 1] and no parameters", o.Name, o.Datatype, o.Shape, o.Parameters)
		}
		checkFloats(t, o.Data, ctrMLP().Forward(x, 2))
	}
}

// TestTritonClientBinary sends requests shaped exactly as the Python
// tritonclient.http library sends binary inputs and asks for binary
// outputs, and reads the answer as it does.
func TestTritonClientBinary(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	addr := s.listenTCP(t)
	x := features(22, 2, 64)
	want := ctrMLP().Forward(x, 2)
	raw := string(f32Bytes(x))
	if len(raw) != 512 {
		t.Fatalf("BUG: %d bytes of features; want 512", len(raw))
	}

	f := func(name, header string, headerName string, chunked bool) {
		t.Run(name, func(t *testing.T) {
			body := header + raw
			var req string
			if chunked {
				req = fmt.Sprintf("POST /v2/models/ctr/infer HTTP/1.1\r\nHost: %s\r\n%s: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n",
					addr, headerName, len(header), len(header), header, len(raw), raw)
			} else {
				req = httpRequest(addr, "/v2/models/ctr/infer", body, fmt.Sprintf("%s: %d", headerName, len(header)))
			}
			resp, got := rawExchange(t, addr, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %q; want 200", resp.StatusCode, truncate(got, 300))
			}
			h := resp.Header.Get("Inference-Header-Content-Length")
			n, err := strconv.Atoi(h)
			if err != nil || n < 0 || n > len(got) {
				t.Fatalf("Inference-Header-Content-Length: got %q for a body of %d bytes", h, len(got))
			}
			if len(got) != n+8 {
				t.Fatalf("body: got %d bytes; want the %d-byte JSON header and 8 bytes of scores", len(got), n)
			}
			if v := resp.Header.Get("X-Model-Version"); v != "1" {
				t.Fatalf("X-Model-Version: got %q; want 1", v)
			}
			w := decodeWire(t, got[:n])
			if w.ModelName != "ctr" || w.ModelVersion != "1" || w.ID != nil || len(w.Outputs) != 1 {
				t.Fatalf("response header: got %s", got[:n])
			}
			o := w.Outputs[0]
			wantParams := map[string]any{"binary_data_size": float64(8)}
			if o.Name != "score" || o.Datatype != "FP32" || !reflect.DeepEqual(o.Shape, []int64{2, 1}) ||
				o.Data != nil || !reflect.DeepEqual(o.Parameters, wantParams) {
				t.Fatalf("output: got %s; want score FP32 [2,1] with parameters %v and no data", got[:n], wantParams)
			}
			scores := bytesF32(got[n:])
			checkFloats(t, []float64{float64(scores[0]), float64(scores[1])}, want)
		})
	}
	compact := `{"inputs":[{"name":"features","shape":[2,64],"datatype":"FP32","parameters":{"binary_data_size":512}}],"outputs":[{"name":"score","parameters":{"binary_data":true}}]}`
	// Python's json.dumps, which tritonclient uses, puts a space after ':' and ','.
	spaced := `{"inputs": [{"name": "features", "shape": [2, 64], "datatype": "FP32", "parameters": {"binary_data_size": 512}}], "outputs": [{"name": "score", "parameters": {"binary_data": true}}]}`
	f("compact", compact, "Inference-Header-Content-Length", false)
	f("json.dumps", spaced, "Inference-Header-Content-Length", false)
	// Proxies speaking HTTP/2 pass header names in lower case.
	f("lower-case header", spaced, "inference-header-content-length", false)
	f("chunked", compact, "Inference-Header-Content-Length", true)
}

// TestBinaryDataOutputParameter checks the request-level
// "binary_data_output" parameter, and that an output's own "binary_data"
// wins over it.
func TestBinaryDataOutputParameter(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(23, 3, 64)
	want := ctrMLP().Forward(x, 3)
	f := func(params, outputs string, binary bool) {
		t.Helper()
		body := `{"parameters":` + params + `,"inputs":[{"name":"features","datatype":"FP32","shape":[3,64],"data":` + jsonFloats(x) + `}]` + outputs + `}`
		r := s.post(t, "/v2/models/ctr/infer", []byte(body))
		if r.code != fasthttp.StatusOK {
			t.Fatalf("%s %s: got %s; want 200", params, outputs, r)
		}
		h, hasHeader := r.header["Inference-Header-Content-Length"]
		if hasHeader != binary {
			t.Fatalf("%s %s: Inference-Header-Content-Length %q present %v; want %v", params, outputs, h, hasHeader, binary)
		}
		if !binary {
			w := decodeWire(t, r.body)
			checkFloats(t, w.Outputs[0].Data, want)
			return
		}
		n, err := strconv.Atoi(h)
		if err != nil || n+12 != len(r.body) {
			t.Fatalf("%s %s: header length %q for a body of %d bytes; want 12 bytes after the JSON", params, outputs, h, len(r.body))
		}
		w := decodeWire(t, r.body[:n])
		o := w.Outputs[0]
		if o.Data != nil || !reflect.DeepEqual(o.Parameters, map[string]any{"binary_data_size": float64(12)}) {
			t.Fatalf("%s %s: output %s; want binary_data_size 12 and no data", params, outputs, r.body[:n])
		}
		scores := bytesF32(r.body[n:])
		checkFloats(t, []float64{float64(scores[0]), float64(scores[1]), float64(scores[2])}, want)
	}
	f(`{"binary_data_output":true}`, ``, true)
	f(`{"binary_data_output":false}`, ``, false)
	f(`{"binary_data_output":true}`, `,"outputs":[{"name":"score"}]`, true)
	f(`{"binary_data_output":true}`, `,"outputs":[{"name":"score","parameters":{"binary_data":false}}]`, false)
	f(`{"binary_data_output":false}`, `,"outputs":[{"name":"score","parameters":{"binary_data":true}}]`, true)
	f(`{}`, `,"outputs":[{"name":"score","parameters":{"binary_data":true}}]`, true)
}

// checkJSON checks that body is the JSON document want, member for member.
func checkJSON(t testing.TB, what string, body []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %s", what, truncate(body, 300), err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("BUG: want %s: %s", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: got %s; want %s", what, body, want)
	}
}

// TestMetadataAndHealth checks the metadata and health endpoints against
// the shapes of the OIP v2 REST API.
func TestMetadataAndHealth(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Name, cfg.Version = "infergate", "1.2.3"
	s := startDemo(t, cfg, true)
	get := func(uri string) response {
		t.Helper()
		return s.do(t, fasthttp.MethodGet, uri, nil)
	}
	// ok checks a health or ready answer: 200 with the protocol's JSON
	// body, which KServe's clients read.
	ok := func(uri, body string) {
		t.Helper()
		r := get(uri)
		if r.code != fasthttp.StatusOK || r.header["Content-Type"] != "application/json" {
			t.Fatalf("GET %s: got %s, Content-Type %q; want 200 JSON", uri, r, r.header["Content-Type"])
		}
		checkJSON(t, "GET "+uri, r.body, body)
	}

	ctrMeta := `{"name":"ctr","versions":["1"],"platform":"onnxruntime_onnx",
		"inputs":[{"name":"features","datatype":"FP32","shape":[-1,64]}],
		"outputs":[{"name":"score","datatype":"FP32","shape":[-1,1]}]}`
	for _, uri := range []string{"/v2/models/ctr", "/v2/models/ctr/versions/1"} {
		r := get(uri)
		if r.code != fasthttp.StatusOK || r.header["Content-Type"] != "application/json" {
			t.Fatalf("GET %s: got %s, Content-Type %q; want 200 JSON", uri, r, r.header["Content-Type"])
		}
		checkJSON(t, "GET "+uri, r.body, ctrMeta)
	}
	checkJSON(t, "GET /v2/models/ranker", get("/v2/models/ranker").body,
		`{"name":"ranker","versions":["1"],"platform":"onnxruntime_onnx",
		"inputs":[{"name":"features","datatype":"FP32","shape":[-1,256]}],
		"outputs":[{"name":"score","datatype":"FP32","shape":[-1,1]}]}`)
	checkError(t, get("/v2/models/ctr/versions/2"), fasthttp.StatusNotFound, `model "ctr" has no ready version 2`)
	checkError(t, get("/v2/models/ctr/versions/x"), fasthttp.StatusBadRequest, "not a positive integer")

	r := get("/v2")
	if r.code != fasthttp.StatusOK {
		t.Fatalf("GET /v2: got %s", r)
	}
	// The extension list grows with the server; its shape is fixed.
	var sm struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sm); err != nil {
		t.Fatalf("GET /v2: %s: %s", r.body, err)
	}
	if sm.Name != "infergate" || sm.Version != "1.2.3" || !slices.Contains(sm.Extensions, "binary_tensor_data") {
		t.Fatalf("GET /v2: got %s; want name infergate, version 1.2.3, extensions with binary_tensor_data", r.body)
	}

	ok("/v2/health/live", `{"live":true}`)
	ok("/v2/health/ready", `{"ready":true}`)
	ok("/v2/models/ctr/ready", `{"name":"ctr","ready":true}`)
	ok("/v2/models/ctr/versions/1/ready", `{"name":"ctr","ready":true}`)
	ok("/v2/models/ranker/ready", `{"name":"ranker","ready":true}`)
	checkError(t, get("/v2/models/ctr/versions/2/ready"), fasthttp.StatusNotFound, `model "ctr" has no ready version 2`)
	checkError(t, get("/v2/models/nope/ready"), fasthttp.StatusNotFound, `model "nope" is not served here`)
	checkError(t, get("/v2/models/ctr/versions/0/ready"), fasthttp.StatusBadRequest, "not a positive integer")

	// Not ready: live stays 200, ready says 503.
	s.srv.SetReady(false)
	ok("/v2/health/live", `{"live":true}`)
	r = get("/v2/health/ready")
	if r.code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("GET /v2/health/ready while not ready: got %s; want 503", r)
	}
	checkJSON(t, "GET /v2/health/ready while not ready", r.body, `{"ready":false,"error":"the server is still loading its initial models"}`)
	s.srv.SetReady(true)
	ok("/v2/health/ready", `{"ready":true}`)
}

// TestModelVersionHeader checks that every successful infer answer, JSON
// or binary, with or without a version in the path, says which version
// answered.
func TestModelVersionHeader(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(24, 1, 64)
	jsonBody := ctrRequest(x, 1)
	binHeader := `{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"parameters":{"binary_data_size":256}}],"parameters":{"binary_data_output":true}}`
	binBody := append([]byte(binHeader), f32Bytes(x)...)
	for _, path := range []string{"/v2/models/ctr/infer", "/v2/models/ctr/versions/1/infer"} {
		for _, c := range []struct {
			body    []byte
			headers []string
		}{
			{jsonBody, nil},
			{binBody, []string{"Inference-Header-Content-Length", strconv.Itoa(len(binHeader))}},
		} {
			r := s.post(t, path, c.body, c.headers...)
			if r.code != fasthttp.StatusOK {
				t.Fatalf("POST %s: got %s; want 200", path, r)
			}
			if v, ok := r.header["X-Model-Version"]; !ok || v != "1" {
				t.Fatalf("POST %s: X-Model-Version %q (present %v); want 1", path, v, ok)
			}
			checkScores(t, bytesF32(decodeInfer(t, r).Outputs[0].Data), x, 1)
		}
	}
}

// TestOIPClient talks to the server through the project's own client.
func TestOIPClient(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := oip.NewClient("http://" + s.listenTCP(t))
	defer c.CloseIdleConnections()
	x := features(25, 4, 64)
	for _, binary := range []bool{false, true} {
		req := oip.InferRequest{ID: "c", Inputs: []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{4, 64}, Data: f32Bytes(x)}}, BinaryDataOutput: binary}
		var resp oip.InferResponse
		v, err := c.Infer("ctr", "", &req, &resp, binary)
		if err != nil {
			t.Fatalf("Infer (binary %v): %s", binary, err)
		}
		if v != "1" || resp.ID != "c" || len(resp.Outputs) != 1 || resp.Outputs[0].Binary != binary {
			t.Fatalf("Infer (binary %v): version %q id %q outputs %d", binary, v, resp.ID, len(resp.Outputs))
		}
		checkScores(t, bytesF32(resp.Outputs[0].Data), x, 4)
	}
	md, err := c.ModelMetadata("ctr", "1")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "ctr" || md.Platform != gateway.Platform || len(md.Inputs) != 1 || md.Inputs[0].Name != "features" {
		t.Fatalf("ModelMetadata: got %+v", md)
	}
	for name, call := range map[string]func() (bool, error){
		"ServerLive":  c.ServerLive,
		"ServerReady": c.ServerReady,
		"ModelReady":  func() (bool, error) { return c.ModelReady("ctr", "") },
	} {
		if ok, err := call(); !ok || err != nil {
			t.Fatalf("%s: got %v, %v; want true", name, ok, err)
		}
	}
	_, err = c.Infer("nope", "", &oip.InferRequest{}, &oip.InferResponse{}, false)
	if se, ok := err.(*oip.StatusError); !ok || se.Code != fasthttp.StatusNotFound || !strings.Contains(se.Message, `model "nope"`) {
		t.Fatalf("Infer of an unknown model: got %v; want a 404 StatusError", err)
	}
}
