package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// traceRecord is one object of a trace file.
type traceRecord struct {
	ID           uint64 `json:"id"`
	ModelName    string `json:"model_name"`
	ModelVersion *int64 `json:"model_version"`
	RequestID    string `json:"request_id"`
	Timestamps   []struct {
		Name string `json:"name"`
		NS   int64  `json:"ns"`
	} `json:"timestamps"`
}

// readTraces reads a trace file and returns its traces by id: the
// object that names the request, and the one of its timestamps.
func readTraces(t *testing.T, path string) map[uint64][2]traceRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []traceRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%s is not a JSON array of traces: %v\n%s", path, err, b)
	}
	out := make(map[uint64][2]traceRecord)
	for _, r := range recs {
		p := out[r.ID]
		if r.Timestamps != nil {
			p[1] = r
		} else {
			p[0] = r
		}
		out[r.ID] = p
	}
	return out
}

// checkTrace checks a trace of model fake version 1 that ran: its
// timestamps in the order of a request's life, within since and now.
func checkTrace(t *testing.T, tr [2]traceRecord, since time.Time) {
	t.Helper()
	if tr[0].ModelName != "fake" || tr[0].ModelVersion == nil || *tr[0].ModelVersion != 1 {
		t.Fatalf("trace %d names %+v; want model fake version 1", tr[1].ID, tr[0])
	}
	var names []string
	last := since.UnixNano()
	for _, ts := range tr[1].Timestamps {
		names = append(names, ts.Name)
		if ts.NS < last || ts.NS > time.Now().UnixNano() {
			t.Fatalf("trace %d: %s at %d, out of order or out of the test's time (last %d)", tr[1].ID, ts.Name, ts.NS, last)
		}
		last = ts.NS
	}
	if got, want := strings.Join(names, " "), "REQUEST_START QUEUE_START COMPUTE_START COMPUTE_END REQUEST_END"; got != want {
		t.Fatalf("trace %d timestamps: got %s; want %s", tr[1].ID, got, want)
	}
}

// Triton's trace extension over HTTP: the settings read and changed, for
// the node and a model; requests sampled at the rate; files of
// log_frequency traces each, in Triton's format; and every mistake a
// 400 that names it.
func TestTraceHTTP(t *testing.T) {
	dir := t.TempDir()
	cfg := gateway.DefaultConfig()
	cfg.Trace.File = filepath.Join(dir, "trace.json")
	cfg.AdminToken = "adm"
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	admin := []string{"Authorization", "Bearer adm"}
	want := func(r response, body string) {
		t.Helper()
		if r.code != 200 || string(r.body) != body {
			t.Fatalf("got %s; want 200 %s", r, body)
		}
	}
	def := func(level, rate, count, freq string) string {
		return fmt.Sprintf(`{"trace_file":%q,"trace_level":[%q],"trace_rate":%q,"trace_count":%q,"log_frequency":%q,"trace_mode":"triton"}`, cfg.Trace.File, level, rate, count, freq)
	}
	want(s.do(t, "GET", "/v2/trace/setting", nil), def("OFF", "1000", "-1", "0"))
	want(s.do(t, "GET", "/v2/models/fake/trace/setting", nil), def("OFF", "1000", "-1", "0"))

	// Changes take the admin token; reads do not.
	checkError(t, s.post(t, "/v2/trace/setting", []byte(`{"trace_level":["TIMESTAMPS"]}`)), fasthttp.StatusUnauthorized, "admin token")
	for body, fragment := range map[string]string{
		`{"trace_level":["TENSORS"]}`:                        "infergate traces timestamps only",
		`{"trace_level":["OFF","TIMESTAMPS"]}`:               "not both",
		`{"trace_level":[]}`:                                 "give a string, a list of strings, or null",
		`{"trace_rate":"0"}`:                                 `trace_rate is "0"; give an integer of at least 1`,
		`{"trace_count":"-2"}`:                               "at least -1",
		`{"trace_file":"/etc/passwd"}`:                       "cannot be changed through the API",
		`{"trace_mode":"opentelemetry"}`:                     `this server's is "triton", serve's --trace-mode`,
		`{"trace_level":["TIMESTAMPS"],"bogus":"1"}`:         `unknown trace setting "bogus"`,
		`{"trace_rate":{"a":1}}`:                             "give a string, a list of strings, or null",
		`[1]`:                                                "JSON object of trace settings",
		`{"trace_level":["TIMESTAMPS"],"log_frequency":"x"}`: `log_frequency is "x"`,
	} {
		checkError(t, s.post(t, "/v2/trace/setting", []byte(body), admin...), fasthttp.StatusBadRequest, fragment)
	}
	// A refused change changes nothing, its valid settings included.
	want(s.do(t, "GET", "/v2/trace/setting", nil), def("OFF", "1000", "-1", "0"))
	checkError(t, s.post(t, "/v2/models/fake/trace/setting", []byte(`{"log_frequency":"2"}`), admin...), fasthttp.StatusBadRequest, "log_frequency is the node's")
	checkError(t, s.do(t, "GET", "/v2/models/nope/trace/setting", nil), fasthttp.StatusNotFound, `model "nope"`)
	checkError(t, s.do(t, "GET", "/v2/models/fake/versions/1/trace/setting", nil), fasthttp.StatusNotFound, "not a version's")
	checkError(t, s.do(t, "PUT", "/v2/trace/setting", nil), fasthttp.StatusMethodNotAllowed, "")

	// Every second request, two traces a file.
	since := time.Now()
	want(s.post(t, "/v2/trace/setting", []byte(`{"trace_level":["TIMESTAMPS"],"trace_rate":"2","log_frequency":2}`), admin...), def("TIMESTAMPS", "2", "-1", "2"))
	for range 8 {
		checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	}
	var ids []uint64
	for i := range 2 {
		path := fmt.Sprintf("%s.%d", cfg.Trace.File, i)
		var traces map[uint64][2]traceRecord
		testenv.CheckFor(t, 5*time.Second, func() error {
			if _, err := os.Stat(path); err != nil {
				return err
			}
			traces = readTraces(t, path)
			return nil
		})
		if len(traces) != 2 {
			t.Fatalf("%s holds %d traces; want 2", path, len(traces))
		}
		for id, tr := range traces {
			checkTrace(t, tr, since)
			ids = append(ids, id)
		}
	}
	if _, err := os.Stat(cfg.Trace.File + ".2"); err == nil {
		t.Fatalf("a third file for 4 traces of 2 a file")
	}
	checkMetric(t, s.metricsText(t), "infergate_traces_total", 4)

	// A model's own rate; the node's unchanged; null gives it back.
	want(s.post(t, "/v2/models/fake/trace/setting", []byte(`{"trace_rate":"3","trace_count":"1"}`), admin...), def("TIMESTAMPS", "3", "1", "2"))
	want(s.do(t, "GET", "/v2/trace/setting", nil), def("TIMESTAMPS", "2", "-1", "2"))
	for range 4 {
		checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	}
	// Its count ran out after one: written at once, though the file is
	// not full.
	testenv.CheckFor(t, 5*time.Second, func() error {
		if _, err := os.Stat(cfg.Trace.File + ".2"); err != nil {
			return err
		}
		return nil
	})
	if n := len(readTraces(t, cfg.Trace.File+".2")); n != 1 {
		t.Fatalf("after the model's count of 1 ran out its file holds %d traces; want 1", n)
	}
	want(s.do(t, "GET", "/v2/models/fake/trace/setting", nil), def("TIMESTAMPS", "3", "0", "2"))
	want(s.post(t, "/v2/models/fake/trace/setting", []byte(`{"trace_rate":null,"trace_count":null}`), admin...), def("TIMESTAMPS", "2", "-1", "2"))

	// Off: nothing more is traced.
	want(s.post(t, "/v2/trace/setting", []byte(`{"trace_level":null,"trace_rate":null,"log_frequency":null}`), admin...), def("OFF", "1000", "-1", "0"))
	for range 4 {
		checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	}
	checkMetric(t, s.metricsText(t), "infergate_traces_total", 5)
}

// With log_frequency 0 the file holds every trace: written when the
// settings change, and again at shutdown.
func TestTraceFileWholeAtShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := gateway.DefaultConfig()
	cfg.Trace = gateway.TraceConfig{File: filepath.Join(dir, "t.json"), Level: gateway.TraceTimestamps, Rate: 1}
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	since := time.Now()
	for range 3 {
		checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	}
	// A change writes what is held (settings left as they are).
	if r := s.post(t, "/v2/trace/setting", []byte(`{"trace_rate":"1"}`)); r.code != 200 {
		t.Fatalf("POST: %s", r)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if _, err := os.Stat(cfg.Trace.File); err != nil {
			return err
		}
		if n := len(readTraces(t, cfg.Trace.File)); n != 3 {
			return fmt.Errorf("%d traces; want 3", n)
		}
		return nil
	})
	for range 2 {
		checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	traces := readTraces(t, cfg.Trace.File)
	if len(traces) != 5 {
		t.Fatalf("after shutdown the file holds %d traces; want all 5", len(traces))
	}
	for _, tr := range traces {
		checkTrace(t, tr, since)
	}
}

// Tracing cannot be turned on without a trace file, from the flags or the
// API.
func TestTraceNeedsFile(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Trace.Level = gateway.TraceTimestamps
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--trace-file") {
		t.Fatalf("Validate with TIMESTAMPS and no file: %v; want it to ask for --trace-file", err)
	}
	cfg.Trace = gateway.TraceConfig{File: "/nonexistent-dir/x.json"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Validate with a file in no directory: %v", err)
	}
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkError(t, s.post(t, "/v2/trace/setting", []byte(`{"trace_level":["TIMESTAMPS"]}`)), fasthttp.StatusBadRequest, "start serve with --trace-file FILE")
}

// gRPC's TraceSetting reads with the inference token and changes with the
// admin token, as HTTP does, and traces gRPC calls.
func TestTraceGRPC(t *testing.T) {
	dir := t.TempDir()
	cfg := gateway.DefaultConfig()
	cfg.Trace.File = filepath.Join(dir, "g.json")
	cfg.AdminToken = "adm"
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	c := s.serveGRPC(t)
	ctx := context.Background()
	req := func(model string, kv ...string) *dynamicpb.Message {
		m := pbtest.New("TraceSettingRequest")
		fs := m.Descriptor().Fields()
		settings := m.Mutable(fs.ByName("settings")).Map()
		for i := 0; i < len(kv); i += 2 {
			v := settings.NewValue().Message()
			list := v.Mutable(v.Descriptor().Fields().ByName("value")).List()
			if kv[i+1] != "" {
				list.Append(protoreflect.ValueOfString(kv[i+1]))
			}
			settings.Set(protoreflect.ValueOfString(kv[i]).MapKey(), protoreflect.ValueOfMessage(v))
		}
		if model != "" {
			m.Set(fs.ByName("model_name"), protoreflect.ValueOfString(model))
		}
		return m
	}
	get := func(resp *dynamicpb.Message, name string) string {
		settings := resp.Get(resp.Descriptor().Fields().ByName("settings")).Map()
		v := settings.Get(protoreflect.ValueOfString(name).MapKey())
		if !v.IsValid() {
			return "<none>"
		}
		list := v.Message().Get(v.Message().Descriptor().Fields().ByName("value")).List()
		var out []string
		for i := range list.Len() {
			out = append(out, list.Get(i).String())
		}
		return strings.Join(out, ",")
	}
	resp, err := c.call(ctx, "TraceSetting", req(""), "TraceSettingResponse")
	if err != nil {
		t.Fatal(err)
	}
	if get(resp, "trace_level") != "OFF" || get(resp, "trace_rate") != "1000" || get(resp, "trace_file") != cfg.Trace.File {
		t.Fatalf("settings: level %s rate %s file %s", get(resp, "trace_level"), get(resp, "trace_rate"), get(resp, "trace_file"))
	}
	_, err = c.call(ctx, "TraceSetting", req("", "trace_level", "TIMESTAMPS"), "TraceSettingResponse")
	checkCode(t, err, codes.Unauthenticated, "admin token")
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer adm")
	_, err = c.call(actx, "TraceSetting", req("nope", "trace_rate", "1"), "TraceSettingResponse")
	checkCode(t, err, codes.NotFound, `model "nope"`)
	_, err = c.call(actx, "TraceSetting", req("", "trace_level", "TENSORS"), "TraceSettingResponse")
	checkCode(t, err, codes.InvalidArgument, "timestamps only")
	resp, err = c.call(actx, "TraceSetting", req("fake", "trace_level", "TIMESTAMPS", "trace_rate", "1", "trace_count", "2"), "TraceSettingResponse")
	if err != nil {
		t.Fatal(err)
	}
	if get(resp, "trace_level") != "TIMESTAMPS" || get(resp, "trace_count") != "2" {
		t.Fatalf("after the change: level %s count %s", get(resp, "trace_level"), get(resp, "trace_count"))
	}
	since := time.Now()
	for range 3 {
		req := pbtest.InferRequest("fake", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}, FP32: []float32{1, 2, 3, 4}}}, nil, nil, nil)
		if _, err := c.infer(ctx, req, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Two traced, then the count ran out and the file was written.
	testenv.CheckFor(t, 5*time.Second, func() error {
		if _, err := os.Stat(cfg.Trace.File); err != nil {
			return err
		}
		return nil
	})
	traces := readTraces(t, cfg.Trace.File)
	if len(traces) != 2 {
		t.Fatalf("the file holds %d traces; want 2", len(traces))
	}
	for _, tr := range traces {
		checkTrace(t, tr, since)
	}
	// An empty value clears the model's setting: it follows the node's.
	resp, err = c.call(actx, "TraceSetting", req("fake", "trace_level", "", "trace_rate", "", "trace_count", ""), "TraceSettingResponse")
	if err != nil {
		t.Fatal(err)
	}
	if get(resp, "trace_level") != "OFF" || get(resp, "trace_count") != "-1" {
		t.Fatalf("after clearing: level %s count %s", get(resp, "trace_level"), get(resp, "trace_count"))
	}
}

// With both an inference and an admin token, a change of the trace
// settings takes the admin token alone, over HTTP and gRPC, as the
// repository's load and unload do: a request carries one Authorization
// header, which cannot hold both. Reading still takes the inference
// token.
func TestTraceSettingWithBothTokens(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Trace.File = filepath.Join(t.TempDir(), "t.json")
	cfg.InferenceToken, cfg.AdminToken = "inf", "adm"
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	inf, adm := []string{"Authorization", "Bearer inf"}, []string{"Authorization", "Bearer adm"}
	for _, path := range []string{"/v2/trace/setting", "/v2/models/fake/trace/setting"} {
		if r := s.post(t, path, []byte(`{"trace_rate":"7"}`), adm...); r.code != 200 || !strings.Contains(string(r.body), `"trace_rate":"7"`) {
			t.Fatalf("POST %s with the admin token: got %s; want 200 and trace_rate 7", path, r)
		}
		checkError(t, s.post(t, path, []byte(`{"trace_rate":"8"}`), inf...), fasthttp.StatusUnauthorized, "admin token")
		if r := s.do(t, "GET", path, nil, inf...); r.code != 200 {
			t.Fatalf("GET %s with the inference token: got %s; want 200", path, r)
		}
		checkError(t, s.do(t, "GET", path, nil), fasthttp.StatusUnauthorized, "inference token")
	}
	c := s.serveGRPC(t)
	ctx := context.Background()
	req := pbtest.New("TraceSettingRequest")
	settings := req.Mutable(req.Descriptor().Fields().ByName("settings")).Map()
	v := settings.NewValue().Message()
	v.Mutable(v.Descriptor().Fields().ByName("value")).List().Append(protoreflect.ValueOfString("9"))
	settings.Set(protoreflect.ValueOfString("trace_rate").MapKey(), protoreflect.ValueOfMessage(v))
	if _, err := c.call(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer adm"), "TraceSetting", req, "TraceSettingResponse"); err != nil {
		t.Fatalf("gRPC TraceSetting change with the admin token: %v", err)
	}
	_, err := c.call(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer inf"), "TraceSetting", req, "TraceSettingResponse")
	checkCode(t, err, codes.Unauthenticated, "admin token")
	read := pbtest.New("TraceSettingRequest")
	if _, err := c.call(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer inf"), "TraceSetting", read, "TraceSettingResponse"); err != nil {
		t.Fatalf("gRPC TraceSetting read with the inference token: %v", err)
	}
	_, err = c.call(ctx, "TraceSetting", read, "TraceSettingResponse")
	checkCode(t, err, codes.Unauthenticated, "inference token")
}
