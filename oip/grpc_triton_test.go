package oip_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/oip"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// decodeTriton decodes b as message typ with the protobuf library and
// returns it as protojson's text with sorted keys; it fails the test for
// a field the protocol does not give that number.
func decodeTriton(t *testing.T, typ string, b []byte, all bool) string {
	t.Helper()
	m := pbtest.New(typ)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	if u := pbtest.Unknown(m); len(u) > 0 {
		t.Fatalf("%s: fields the protocol does not have: %v", typ, u)
	}
	text, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: all}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(text, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v) // sorted keys, no spaces
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestAppendModelConfigResponse(t *testing.T) {
	f := func(c oip.TritonModelConfig, want string) {
		t.Helper()
		prefix := []byte("kept")
		b := oip.AppendModelConfigResponse(prefix, &c)
		if string(b[:4]) != "kept" {
			t.Fatalf("the bytes before were changed: %q", b[:4])
		}
		if got := decodeTriton(t, "ModelConfigResponse", b[4:], false); got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
	// Every field, with names long enough that the messages' lengths
	// take two bytes.
	long := strings.Repeat("n", 200)
	f(oip.TritonModelConfig{
		Name: "ctr", Platform: "onnxruntime_onnx", Backend: "onnxruntime",
		VersionPolicy:  oip.TritonVersionPolicy{Latest: 2},
		MaxBatchSize:   8,
		Inputs:         []oip.TritonTensor{{Name: "features", Datatype: oip.FP32, Dims: []int64{64}}, {Name: long, Datatype: oip.BYTES, Dims: []int64{-1, 3}}},
		Outputs:        []oip.TritonTensor{{Name: "score", Datatype: oip.FP16, Dims: []int64{1}}},
		InstanceGroups: []oip.TritonInstanceGroup{{Count: 2, Kind: "KIND_GPU", GPUs: []int{1}}},
		DynamicBatching: &oip.TritonDynamicBatching{PreferredBatchSize: []int{4, 8}, MaxQueueDelayMicroseconds: 300,
			PriorityLevels: 3, DefaultPriorityLevel: 2},
		ResponseCache: ptr(true),
	}, `{"config":{"backend":"onnxruntime","dynamic_batching":{"default_priority_level":"2","max_queue_delay_microseconds":"300","preferred_batch_size":[4,8],"priority_levels":"3"},`+
		`"input":[{"data_type":"TYPE_FP32","dims":["64"],"name":"features"},{"data_type":"TYPE_STRING","dims":["-1","3"],"name":"`+long+`"}],`+
		`"instance_group":[{"count":2,"gpus":[1],"kind":"KIND_GPU"}],"max_batch_size":8,"name":"ctr",`+
		`"output":[{"data_type":"TYPE_FP16","dims":["1"],"name":"score"}],"platform":"onnxruntime_onnx","response_cache":{"enable":true},`+
		`"version_policy":{"latest":{"num_versions":2}}}}`)
	// No batching: max_batch_size 0 is left out, as proto3 leaves it;
	// a dynamic batching block with only priorities; the other policies.
	f(oip.TritonModelConfig{
		Name: "fixed", VersionPolicy: oip.TritonVersionPolicy{All: true},
		Inputs:          []oip.TritonTensor{{Name: "x", Datatype: oip.INT64, Dims: []int64{3, 4}}},
		InstanceGroups:  []oip.TritonInstanceGroup{{Count: 1, Kind: "KIND_CPU"}},
		DynamicBatching: &oip.TritonDynamicBatching{PriorityLevels: 2},
		ResponseCache:   ptr(false),
	}, `{"config":{"dynamic_batching":{"priority_levels":"2"},"input":[{"data_type":"TYPE_INT64","dims":["3","4"],"name":"x"}],`+
		`"instance_group":[{"count":1,"kind":"KIND_CPU"}],"name":"fixed","response_cache":{},"version_policy":{"all":{}}}}`)
	f(oip.TritonModelConfig{Name: "m", VersionPolicy: oip.TritonVersionPolicy{Specific: []int64{1, 300}}},
		`{"config":{"name":"m","version_policy":{"specific":{"versions":["1","300"]}}}}`)

	// Every data type, by the number of Triton's enum.
	for dt, want := range map[oip.DataType]string{oip.BOOL: "TYPE_BOOL", oip.UINT8: "TYPE_UINT8", oip.UINT16: "TYPE_UINT16",
		oip.UINT32: "TYPE_UINT32", oip.UINT64: "TYPE_UINT64", oip.INT8: "TYPE_INT8", oip.INT16: "TYPE_INT16", oip.INT32: "TYPE_INT32",
		oip.INT64: "TYPE_INT64", oip.FP16: "TYPE_FP16", oip.FP32: "TYPE_FP32", oip.FP64: "TYPE_FP64", oip.BYTES: "TYPE_STRING"} {
		b := oip.AppendModelConfigResponse(nil, &oip.TritonModelConfig{Outputs: []oip.TritonTensor{{Name: "o", Datatype: dt}}})
		if got := decodeTriton(t, "ModelConfigResponse", b, false); !strings.Contains(got, `"data_type":"`+want+`"`) {
			t.Fatalf("%s: got %s; want data_type %s", dt, got, want)
		}
	}
}

func TestAppendModelConfigResponsePanicsOnUnknownKind(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "KIND_MODEL") {
			t.Fatalf("got panic %v; want one naming KIND_MODEL", p)
		}
	}()
	oip.AppendModelConfigResponse(nil, &oip.TritonModelConfig{InstanceGroups: []oip.TritonInstanceGroup{{Kind: "KIND_MODEL"}}})
}

func TestAppendModelStatisticsResponse(t *testing.T) {
	d := func(c, ns uint64) oip.DurationStat { return oip.DurationStat{Count: c, NS: ns} }
	stats := []oip.ModelStat{{
		Name: "ctr", Version: "1", LastInference: 1_700_000_000_123, InferenceCount: 4, ExecutionCount: 2,
		InferenceStats: oip.InferenceStats{Success: d(2, 2000), Fail: d(1, 300), Queue: d(2, 40), ComputeInput: d(2, 0),
			ComputeInfer: d(2, 1500), ComputeOutput: d(2, 0), CacheHit: d(5, 7), CacheMiss: d(6, 8)},
		BatchStats: []oip.BatchStats{{BatchSize: 1, ComputeInput: d(1, 0), ComputeInfer: d(1, 500), ComputeOutput: d(1, 0)},
			{BatchSize: 3, ComputeInput: d(1, 0), ComputeInfer: d(1, 1000), ComputeOutput: d(1, 0)}},
	}, {Name: "fixed", Version: "2"}}
	got := decodeTriton(t, "ModelStatisticsResponse", oip.AppendModelStatisticsResponse(nil, stats), true)
	// The answer of HTTP's GET .../stats for the same figures, but for
	// the 64-bit integers, which protojson writes as strings.
	zero := `{"count":"0","ns":"0"}`
	zeros := `{"cache_hit":` + zero + `,"cache_miss":` + zero + `,"compute_infer":` + zero + `,"compute_input":` + zero + `,"compute_output":` + zero +
		`,"fail":` + zero + `,"queue":` + zero + `,"success":` + zero + `}`
	want := `{"model_stats":[{"batch_stats":[` +
		`{"batch_size":"1","compute_infer":{"count":"1","ns":"500"},"compute_input":{"count":"1","ns":"0"},"compute_output":{"count":"1","ns":"0"}},` +
		`{"batch_size":"3","compute_infer":{"count":"1","ns":"1000"},"compute_input":{"count":"1","ns":"0"},"compute_output":{"count":"1","ns":"0"}}],` +
		`"execution_count":"2","inference_count":"4","inference_stats":{"cache_hit":{"count":"5","ns":"7"},"cache_miss":{"count":"6","ns":"8"},` +
		`"compute_infer":{"count":"2","ns":"1500"},"compute_input":{"count":"2","ns":"0"},"compute_output":{"count":"2","ns":"0"},` +
		`"fail":{"count":"1","ns":"300"},"queue":{"count":"2","ns":"40"},"success":{"count":"2","ns":"2000"}},` +
		`"last_inference":"1700000000123","memory_usage":[],"name":"ctr","response_stats":{},"version":"1"},` +
		`{"batch_stats":[],"execution_count":"0","inference_count":"0","inference_stats":` + zeros + `,"last_inference":"0","memory_usage":[],` +
		`"name":"fixed","response_stats":{},"version":"2"}]}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if b := oip.AppendModelStatisticsResponse(nil, nil); len(b) != 0 {
		t.Fatalf("no statistics: got %x; want an empty message", b)
	}
}

func TestAppendRepositoryIndexResponse(t *testing.T) {
	got := decodeTriton(t, "RepositoryIndexResponse", oip.AppendRepositoryIndexResponse(nil, []oip.ModelIndex{
		{Name: "ctr", Version: "1", State: "READY"},
		{Name: "fixed", Version: "2", State: "UNAVAILABLE", Reason: "unloaded"},
		{Name: "empty"},
	}), false)
	want := `{"models":[{"name":"ctr","state":"READY","version":"1"},{"name":"fixed","reason":"unloaded","state":"UNAVAILABLE","version":"2"},{"name":"empty"}]}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeModelStatisticsRequest(t *testing.T) {
	f := func(name, version, wantName, wantVersion, wantErr string) {
		t.Helper()
		m := pbtest.New("ModelStatisticsRequest")
		fs := m.Descriptor().Fields()
		m.Set(fs.ByName("name"), protoreflect.ValueOfString(name))
		m.Set(fs.ByName("version"), protoreflect.ValueOfString(version))
		n, v, err := oip.DecodeModelStatisticsRequest(marshal(t, m))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%q %q: got error %v; want one with %q", name, version, err, wantErr)
			}
			return
		}
		if err != nil || string(n) != wantName || string(v) != wantVersion || (version == "" && v != nil) || (name == "" && n != nil) {
			t.Fatalf("%q %q: got %q %q %v; want %q %q", name, version, n, v, err, wantName, wantVersion)
		}
	}
	f("", "", "", "", "")
	f("ctr", "", "ctr", "", "")
	f("ctr", "3", "ctr", "3", "")
	f("", "3", "", "", "version \"3\" of no model")
	f(strings.Repeat("m", 300), "", "", "", "at most 256")
	f("ctr", strings.Repeat("9", 40), "", "", "a version is a number")

	// A field of the wrong wire type.
	if _, _, err := oip.DecodeModelStatisticsRequest([]byte{1<<3 | 0, 1}); err == nil || !strings.Contains(err.Error(), "wire type 0") {
		t.Fatalf("name as a varint: got %v; want a wire type error", err)
	}
}

func TestDecodeRepositoryIndexRequest(t *testing.T) {
	f := func(repo string, ready, want bool) {
		t.Helper()
		m := pbtest.New("RepositoryIndexRequest")
		fs := m.Descriptor().Fields()
		m.Set(fs.ByName("repository_name"), protoreflect.ValueOfString(repo))
		m.Set(fs.ByName("ready"), protoreflect.ValueOfBool(ready))
		got, err := oip.DecodeRepositoryIndexRequest(marshal(t, m))
		if err != nil || got != want {
			t.Fatalf("%q %v: got %v, %v; want %v", repo, ready, got, err, want)
		}
	}
	f("", false, false)
	f("", true, true)
	f("models", true, true)
	if _, err := oip.DecodeRepositoryIndexRequest([]byte{2<<3 | 2, 0}); err == nil || !strings.Contains(err.Error(), "wire type 2") {
		t.Fatalf("ready as bytes: got %v; want a wire type error", err)
	}
	if _, err := oip.DecodeRepositoryIndexRequest([]byte{2 << 3}); err == nil {
		t.Fatal("a truncated message: no error")
	}
}

func TestDecodeRepositoryModelLoadRequest(t *testing.T) {
	f := func(name string, params map[string]any, wantName, wantConfig, wantErr string) {
		t.Helper()
		m := pbtest.RepositoryRequest("RepositoryModelLoadRequest", name, params)
		m.Set(m.Descriptor().Fields().ByName("repository_name"), protoreflect.ValueOfString("elsewhere")) // not read
		n, c, err := oip.DecodeRepositoryModelLoadRequest(marshal(t, m))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%q %v: got error %v; want one with %q", name, params, err, wantErr)
			}
			return
		}
		if err != nil || string(n) != wantName || string(c) != wantConfig || (wantConfig == "" && c != nil) {
			t.Fatalf("%q %v: got %q %q %v; want %q %q", name, params, n, c, err, wantName, wantConfig)
		}
	}
	f("ctr", nil, "ctr", "", "")
	f("ctr", map[string]any{"config": `{"max_batch_size":4}`}, "ctr", `{"max_batch_size":4}`, "")
	f("ctr", map[string]any{"config": ""}, "ctr", "", "")
	f("", nil, "", "", "names no model: set model_name")
	f(strings.Repeat("m", 300), nil, "", "", "at most 256")
	f("ctr", map[string]any{"config": []byte(`{}`)}, "", "", `parameter "config" is a bytes_param; give config.json's text as string_param`)
	f("ctr", map[string]any{"config": true}, "", "", `parameter "config" is bool_param true`)
	f("ctr", map[string]any{"config": int64(4)}, "", "", `parameter "config" is int64_param 4`)
	f("ctr", map[string]any{"file:1/model.onnx": []byte("onnx")}, "", "", `parameter "file:1/model.onnx": model files are not taken in the call`)
	f("ctr", map[string]any{"confg": "{}"}, "", "", `parameter "confg" is not one RepositoryModelLoad takes; it takes "config"`)

	// A field of the wrong wire type.
	if _, _, err := oip.DecodeRepositoryModelLoadRequest([]byte{2<<3 | 0, 1}); err == nil || !strings.Contains(err.Error(), "wire type 0") {
		t.Fatalf("model_name as a varint: got %v; want a wire type error", err)
	}
	if _, _, err := oip.DecodeRepositoryModelLoadRequest([]byte{3<<3 | 0, 1}); err == nil || !strings.Contains(err.Error(), "wire type 0") {
		t.Fatalf("parameters as a varint: got %v; want a wire type error", err)
	}
	if _, _, err := oip.DecodeRepositoryModelLoadRequest([]byte{2<<3 | 2, 5, 'c'}); err == nil {
		t.Fatal("a truncated message: no error")
	}
}

func TestDecodeRepositoryModelUnloadRequest(t *testing.T) {
	f := func(name string, params map[string]any, wantName, wantErr string) {
		t.Helper()
		m := pbtest.RepositoryRequest("RepositoryModelUnloadRequest", name, params)
		n, err := oip.DecodeRepositoryModelUnloadRequest(marshal(t, m))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%q %v: got error %v; want one with %q", name, params, err, wantErr)
			}
			return
		}
		if err != nil || string(n) != wantName {
			t.Fatalf("%q %v: got %q %v; want %q", name, params, n, err, wantName)
		}
	}
	f("ctr", nil, "ctr", "")
	f("ctr", map[string]any{"unload_dependents": true}, "ctr", "")
	f("ctr", map[string]any{"unload_dependents": false}, "ctr", "")
	f("", nil, "", "names no model: set model_name")
	f("ctr", map[string]any{"unload_dependents": "yes"}, "", `parameter "unload_dependents" is a string_param; it must be bool_param`)
	f("ctr", map[string]any{"config": "{}"}, "", `parameter "config" is not one RepositoryModelUnload takes; it takes "unload_dependents"`)
}
