package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// plainJSON decodes JSON text into maps, slices and json.Numbers, where
// a string that holds an integer is that number: protojson writes 64-bit
// integers as strings, HTTP's answers write numbers. Both sides of a
// comparison go through it, so a name such as "1" compares equal too.
func plainJSON(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			if _, err := strconv.ParseInt(x, 10, 64); err == nil {
				return json.Number(x)
			}
			if _, err := strconv.ParseUint(x, 10, 64); err == nil {
				return json.Number(x)
			}
		}
		return v
	}
	return walk(v)
}

// protoJSON is m in protojson's form (the .proto's field names; with
// every field when all is set), through plainJSON; it fails the test
// when m holds fields the protocol does not name.
func protoJSON(t *testing.T, m *dynamicpb.Message, all bool) map[string]any {
	t.Helper()
	if u := pbtest.Unknown(m); len(u) > 0 {
		t.Fatalf("fields the protocol does not have: %v", u)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: all}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, b).(map[string]any)
}

// httpJSON is the body of GET (or POST) uri, through plainJSON.
func (s *testServer) httpJSON(t *testing.T, method, uri string, body []byte) any {
	t.Helper()
	r := s.do(t, method, uri, body)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("%s %s: %s", method, uri, r)
	}
	return plainJSON(t, r.body)
}

// modelRequest returns a request message of type typ naming name and
// version (each left unset when empty).
func modelRequest(typ, name, version string) *dynamicpb.Message {
	m := pbtest.New(typ)
	fs := m.Descriptor().Fields()
	if name != "" {
		m.Set(fs.ByName("name"), protoreflect.ValueOfString(name))
	}
	if version != "" {
		m.Set(fs.ByName("version"), protoreflect.ValueOfString(version))
	}
	return m
}

// tritonTestServer serves ctr (loaded with a configuration that sets what
// ModelConfig answers: max_batch_size, two instances, dynamic batching
// with preferred sizes, a delay and priorities) and fixed, which does not
// batch, over gRPC too.
func tritonTestServer(t *testing.T, cfg gateway.Config) (*testServer, *grpcClient) {
	s := startServer(t, serverOptions{cfg: cfg,
		defaults: registry.ModelConfig{MaxBatchSize: 64, Instances: 1, Device: "cpu"},
		files:    map[string][]byte{"ctr/1": ctrONNX(), "fixed/1": fixedONNX()}})
	config := `{"max_batch_size":8,"instance_group":[{"count":2,"kind":"KIND_CPU"}],` +
		`"dynamic_batching":{"preferred_batch_size":[4,8],"max_queue_delay_microseconds":150,"priority_levels":3,"default_priority_level":2},` +
		`"version_policy":{"latest":{"num_versions":2}}}`
	body, err := json.Marshal(map[string]any{"parameters": map[string]string{"config": config}})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.post(t, "/v2/repository/models/ctr/load", body); r.code != fasthttp.StatusOK {
		t.Fatalf("loading ctr with %s: %s", config, r)
	}
	return s, s.serveGRPC(t)
}

// TestGRPCModelConfig checks that ModelConfig answers, in Triton's
// messages, what GET /v2/models/{m}[/versions/{v}]/config reports, and
// nothing more.
func TestGRPCModelConfig(t *testing.T) {
	s, c := tritonTestServer(t, gateway.DefaultConfig())
	ctx := context.Background()
	f := func(model, version string, wantKeys []string) {
		t.Helper()
		out, err := c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", model, version), "ModelConfigResponse")
		if err != nil {
			t.Fatalf("ModelConfig %s %q: %v", model, version, err)
		}
		if !field(out, "config").Message().IsValid() {
			t.Fatalf("ModelConfig %s: no config in %v", model, out)
		}
		got := protoJSON(t, out, false)["config"].(map[string]any)
		uri := "/v2/models/" + model + "/config"
		if version != "" {
			uri = "/v2/models/" + model + "/versions/" + version + "/config"
		}
		want := s.httpJSON(t, "GET", uri, nil).(map[string]any)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		if fmt.Sprint(slices.Sorted(slices.Values(keys))) != fmt.Sprint(slices.Sorted(slices.Values(wantKeys))) {
			t.Fatalf("%s: config has %v; want %v\n%v", model, keys, wantKeys, got)
		}
		for _, k := range []string{"name", "platform", "backend", "input", "output", "instance_group"} {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Fatalf("%s: %s is %v over gRPC, %v over HTTP", model, k, got[k], want[k])
			}
		}
		mbs := got["max_batch_size"]
		if mbs == nil {
			mbs = json.Number("0") // proto3 leaves 0 out
		}
		if !reflect.DeepEqual(mbs, want["max_batch_size"]) {
			t.Fatalf("%s: max_batch_size is %v over gRPC, %v over HTTP", model, mbs, want["max_batch_size"])
		}
		// dynamic_batching in Triton's spelling, from infergate's.
		if db, ok := got["dynamic_batching"].(map[string]any); ok {
			hdb, _ := want["dynamic_batching"].(map[string]any)
			for gk, hk := range map[string]string{"preferred_batch_size": "preferred_batch_sizes", "max_queue_delay_microseconds": "max_queue_delay_us",
				"priority_levels": "priority_levels", "default_priority_level": "default_priority_level"} {
				if !reflect.DeepEqual(db[gk], hdb[hk]) {
					t.Fatalf("%s: dynamic_batching.%s is %v over gRPC; HTTP says %s %v", model, gk, db[gk], hk, hdb[hk])
				}
			}
		}
		if vp := got["version_policy"]; vp != nil && len(want["version_policy"].(map[string]any)) > 0 && !reflect.DeepEqual(vp, want["version_policy"]) {
			t.Fatalf("%s: version_policy is %v over gRPC, %v over HTTP", model, vp, want["version_policy"])
		}
	}
	all := []string{"name", "platform", "backend", "version_policy", "max_batch_size", "input", "output", "instance_group", "dynamic_batching"}
	f("ctr", "", all)
	f("ctr", "1", all)
	// No batch dimension: max_batch_size 0 (left out), whole shapes, and
	// no dynamic batching block, as HTTP has none.
	f("fixed", "", []string{"name", "platform", "backend", "version_policy", "input", "output", "instance_group"})

	// The values themselves, not only their agreement with HTTP.
	out, err := c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "ctr", ""), "ModelConfigResponse")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(protoJSON(t, out, false)["config"])
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"backend":"onnxruntime","dynamic_batching":{"default_priority_level":2,"max_queue_delay_microseconds":150,"preferred_batch_size":[4,8],"priority_levels":3},` +
		`"input":[{"data_type":"TYPE_FP32","dims":[64],"name":"features"}],"instance_group":[{"count":2,"kind":"KIND_CPU"}],"max_batch_size":8,"name":"ctr",` +
		`"output":[{"data_type":"TYPE_FP32","dims":[1],"name":"score"}],"platform":"onnxruntime_onnx","version_policy":{"latest":{"num_versions":2}}}`
	if string(got) != want {
		t.Fatalf("ctr's config over gRPC:\n%s\nwant\n%s", got, want)
	}
	out, err = c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "fixed", ""), "ModelConfigResponse")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = json.Marshal(protoJSON(t, out, false)["config"])
	const wantFixed = `{"backend":"onnxruntime","input":[{"data_type":"TYPE_FP32","dims":[3,4],"name":"x"}],"instance_group":[{"count":1,"kind":"KIND_CPU"}],` +
		`"name":"fixed","output":[{"data_type":"TYPE_FP32","dims":[3,4],"name":"y"}],"platform":"onnxruntime_onnx","version_policy":{"latest":{"num_versions":1}}}`
	if string(got) != wantFixed {
		t.Fatalf("fixed's config over gRPC:\n%s\nwant\n%s", got, wantFixed)
	}

	_, err = c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "nope", ""), "ModelConfigResponse")
	checkCode(t, err, codes.NotFound, `model "nope"`)
	_, err = c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "ctr", "7"), "ModelConfigResponse")
	checkCode(t, err, codes.NotFound, "version 7")
	_, err = c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "ctr", "seven"), "ModelConfigResponse")
	checkCode(t, err, codes.InvalidArgument, "seven")
	_, err = c.call(ctx, "ModelConfig", modelRequest("ModelConfigRequest", "", ""), "ModelConfigResponse")
	checkCode(t, err, codes.InvalidArgument, "names no model")
	checkMetric(t, s.metricsText(t), `infergate_grpc_requests_total{method="ModelConfig",code="OK"}`, 5)
	checkMetric(t, s.metricsText(t), `infergate_grpc_requests_total{method="ModelConfig",code="NotFound"}`, 2)
}

// A model that batches without a dynamic_batching block says so over
// both protocols, with an empty block (HTTP left it out while gRPC had it:
// found running perf_analyzer).
func TestConfigSaysDefaultBatching(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	c := s.serveGRPC(t)
	h := s.httpJSON(t, "GET", "/v2/models/ctr/config", nil).(map[string]any)
	if db, ok := h["dynamic_batching"].(map[string]any); !ok || len(db) != 0 {
		t.Fatalf("HTTP: dynamic_batching is %v; want {}", h["dynamic_batching"])
	}
	out, err := c.call(context.Background(), "ModelConfig", modelRequest("ModelConfigRequest", "ctr", ""), "ModelConfigResponse")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := protoJSON(t, out, false)["config"].(map[string]any)["dynamic_batching"]; !ok {
		t.Fatal("gRPC: no dynamic_batching")
	}
	// Loaded back as it is, it means the same.
	cfg, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"parameters": map[string]string{"config": string(cfg)}})
	if r := s.post(t, "/v2/repository/models/ctr/load", body); r.code != fasthttp.StatusOK {
		t.Fatalf("loading the config back: %s", r)
	}
}

// TestGRPCModelStatistics checks that ModelStatistics answers the figures
// of GET /v2/models[/{m}[/versions/{v}]]/stats, after calls that succeed,
// fail, and run in batches of more than one row.
func TestGRPCModelStatistics(t *testing.T) {
	s, c := tritonTestServer(t, gateway.DefaultConfig())
	ctx := context.Background()
	if _, err := c.infer(ctx, ctrGRPCRequest(features(1, 3, 64), 3, ""), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.infer(ctx, ctrGRPCRequest(features(2, 1, 64), 1, "1"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.infer(ctx, pbtest.InferRequest("ctr", "", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 63}}},
		[][]byte{f32Bytes(features(1, 1, 63))}, nil, nil), nil)
	checkCode(t, err, codes.InvalidArgument, "dimension 1 must be 64")

	f := func(model, version, uri string) map[string]any {
		t.Helper()
		out, err := c.call(ctx, "ModelStatistics", modelRequest("ModelStatisticsRequest", model, version), "ModelStatisticsResponse")
		if err != nil {
			t.Fatalf("ModelStatistics %q %q: %v", model, version, err)
		}
		got := protoJSON(t, out, true)
		want := s.httpJSON(t, "GET", uri, nil)
		if !reflect.DeepEqual(any(got), want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Fatalf("ModelStatistics %q %q:\n%s\nover HTTP (%s):\n%s", model, version, g, uri, w)
		}
		return got
	}
	one := f("ctr", "", "/v2/models/ctr/stats")
	f("ctr", "1", "/v2/models/ctr/versions/1/stats")
	all := f("", "", "/v2/models/stats")
	if n := len(all["model_stats"].([]any)); n != 2 {
		t.Fatalf("statistics of every model: %d entries; want ctr's and fixed's", n)
	}
	// The figures are those of the calls above, not zeros on both sides.
	st := one["model_stats"].([]any)[0].(map[string]any)
	is := st["inference_stats"].(map[string]any)
	for _, c := range []struct {
		what string
		got  any
		want string
	}{
		{"version", st["version"], "1"},
		{"inference_count", st["inference_count"], "4"},
		{"execution_count", st["execution_count"], "2"},
		{"success.count", is["success"].(map[string]any)["count"], "2"},
		{"fail.count", is["fail"].(map[string]any)["count"], "1"},
		{"batch sizes", fmt.Sprint(st["batch_stats"].([]any)[0].(map[string]any)["batch_size"], " ", st["batch_stats"].([]any)[1].(map[string]any)["batch_size"]), "1 3"},
	} {
		if fmt.Sprint(c.got) != c.want {
			t.Fatalf("ctr's %s: got %v; want %s", c.what, c.got, c.want)
		}
	}
	if ns := is["compute_infer"].(map[string]any)["ns"].(json.Number); ns == "0" {
		t.Fatalf("ctr's compute_infer.ns is 0 after two executions")
	}

	_, err = c.call(ctx, "ModelStatistics", modelRequest("ModelStatisticsRequest", "nope", ""), "ModelStatisticsResponse")
	checkCode(t, err, codes.NotFound, `model "nope"`)
	_, err = c.call(ctx, "ModelStatistics", modelRequest("ModelStatisticsRequest", "ctr", "7"), "ModelStatisticsResponse")
	checkCode(t, err, codes.NotFound, "version 7")
	_, err = c.call(ctx, "ModelStatistics", modelRequest("ModelStatisticsRequest", "", "1"), "ModelStatisticsResponse")
	checkCode(t, err, codes.InvalidArgument, "version")
}

// TestGRPCRepositoryIndex checks that RepositoryIndex answers what POST
// /v2/repository/index does, with and without ready, a version that is
// not ready among them.
func TestGRPCRepositoryIndex(t *testing.T) {
	s, c := tritonTestServer(t, gateway.DefaultConfig())
	ctx := context.Background()
	if r := s.post(t, "/v2/repository/models/fixed/unload", nil); r.code != fasthttp.StatusOK {
		t.Fatalf("unloading fixed: %s", r)
	}
	f := func(ready bool, body string, wantRows int) {
		t.Helper()
		in := pbtest.New("RepositoryIndexRequest")
		in.Set(in.Descriptor().Fields().ByName("ready"), protoreflect.ValueOfBool(ready))
		out, err := c.call(ctx, "RepositoryIndex", in, "RepositoryIndexResponse")
		if err != nil {
			t.Fatalf("RepositoryIndex ready=%v: %v", ready, err)
		}
		got := protoJSON(t, out, false)["models"]
		want := s.httpJSON(t, "POST", "/v2/repository/index", []byte(body))
		if !reflect.DeepEqual(got, want) || len(want.([]any)) != wantRows {
			t.Fatalf("RepositoryIndex ready=%v: %v; HTTP says %v (%d rows expected)", ready, got, want, wantRows)
		}
	}
	f(false, "", 2)
	f(true, `{"ready":true}`, 1)
	checkMetric(t, s.metricsText(t), `infergate_grpc_requests_total{method="RepositoryIndex",code="OK"}`, 2)
}

// TestGRPCTritonExtensionsToken checks that the inference token guards
// ModelConfig and ModelStatistics, as it guards /v2/models/..., and
// leaves RepositoryIndex open, as /v2/repository/index is.
func TestGRPCTritonExtensionsToken(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "s3cret"
	_, c := tritonTestServer(t, cfg)
	ctx := context.Background()
	right := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	for _, m := range []struct{ method, in, out, name string }{
		{"ModelConfig", "ModelConfigRequest", "ModelConfigResponse", "ctr"},
		{"ModelStatistics", "ModelStatisticsRequest", "ModelStatisticsResponse", "ctr"},
		{"ModelStatistics", "ModelStatisticsRequest", "ModelStatisticsResponse", ""},
	} {
		_, err := c.call(ctx, m.method, modelRequest(m.in, m.name, ""), m.out)
		checkCode(t, err, codes.Unauthenticated, "inference token")
		if _, err := c.call(right, m.method, modelRequest(m.in, m.name, ""), m.out); err != nil {
			t.Fatalf("%s %q with the token: %v", m.method, m.name, err)
		}
	}
	if _, err := c.call(ctx, "RepositoryIndex", pbtest.New("RepositoryIndexRequest"), "RepositoryIndexResponse"); err != nil {
		t.Fatalf("RepositoryIndex without the token: %v; want it open, as /v2/repository/index is", err)
	}
}
