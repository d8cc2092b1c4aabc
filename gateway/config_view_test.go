package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
)

// fixedONNX is y = x + 1 over a fixed FP32 [3,4]: no batch dimension.
func fixedONNX() []byte {
	m := onnx.Model{Graph: onnx.Graph{
		Name:         "fixed",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{3, 4}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", Type: onnx.Float, Dims: []int64{3, 4}}},
		Nodes:        []onnx.Node{{OpType: "Add", Name: "add", Inputs: []string{"x", "one"}, Outputs: []string{"y"}}},
		Initializers: []onnx.Tensor{{Name: "one", Type: onnx.Float, Dims: []int64{1}, Floats: []float32{1}}},
	}}
	return m.Marshal()
}

// GET .../config says max_batch_size 0 for a model that cannot batch, as
// Triton does: perf_analyzer takes a max_batch_size above 0
// to mean that the first dimension of the metadata's shapes is the batch,
// and would send [1,4] for a [3,4] input. A model that batches reports it.
func TestConfigMaxBatchSizeOfUnbatchableModel(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 64},
		files:    map[string][]byte{"fixed/1": fixedONNX(), "ctr/1": ctrONNX()}})
	f := func(model string, want int64) {
		t.Helper()
		r := s.do(t, fasthttp.MethodGet, "/v2/models/"+model+"/config", nil)
		if r.code != fasthttp.StatusOK {
			t.Fatalf("GET %s config: %s", model, r)
		}
		var c map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		var got int64
		if raw, ok := c["max_batch_size"]; ok {
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
		}
		if got != want {
			t.Fatalf("%s: max_batch_size %d in %s; want %d", model, got, r.body, want)
		}
	}
	f("fixed", 0)
	f("ctr", 64)
	r := s.post(t, "/v2/models/fixed/infer", []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[3,4],"data":[0,0,0,0,0,0,0,0,0,0,0,0]}]}`))
	if r.code != fasthttp.StatusOK {
		t.Fatalf("fixed model: %s", r)
	}
}

// GET .../config carries Triton's description of the version (platform,
// backend, input, output, instance_group), and what it answers loads back
// as it is, version and sha256 included (a load ignores them); a
// configuration in Triton's
// own spelling loads too, and one that disagrees with the model is a 400
// that leaves the loaded version serving.
func TestConfigTritonFieldsRoundTrip(t *testing.T) {
	// The defaults that serve fills in, so that the view names them.
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 64, Instances: 1, Device: "cpu"},
		files:    map[string][]byte{"fixed/1": fixedONNX(), "ctr/1": ctrONNX()}})
	get := func(model string) map[string]any {
		t.Helper()
		r := s.do(t, fasthttp.MethodGet, "/v2/models/"+model+"/config", nil)
		if r.code != fasthttp.StatusOK {
			t.Fatalf("GET %s config: %s", model, r)
		}
		var c map[string]any
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	load := func(model string, config any) response {
		t.Helper()
		text, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(map[string]any{"parameters": map[string]string{"config": string(text)}})
		if err != nil {
			t.Fatal(err)
		}
		return s.post(t, "/v2/repository/models/"+model+"/load", body)
	}
	field := func(c map[string]any, key string) string {
		t.Helper()
		b, err := json.Marshal(c[key])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	f := func(model, wantInput, wantOutput string) {
		t.Helper()
		c := get(model)
		for key, want := range map[string]string{
			"name":           `"` + model + `"`,
			"platform":       `"onnxruntime_onnx"`,
			"backend":        `"onnxruntime"`,
			"input":          wantInput,
			"output":         wantOutput,
			"instance_group": `[{"count":1,"kind":"KIND_CPU"}]`,
		} {
			if got := field(c, key); got != want {
				t.Fatalf("%s: %s is %s; want %s", model, key, got, want)
			}
		}
		if r := load(model, c); r.code != fasthttp.StatusOK {
			t.Fatalf("%s: loading its own configuration back: %s", model, r)
		}
		delete(c, "version")
		delete(c, "sha256")
		again := get(model)
		delete(again, "version")
		delete(again, "sha256")
		if a, b := field(map[string]any{"c": c}, "c"), field(map[string]any{"c": again}, "c"); a != b {
			t.Fatalf("%s: configuration after the round trip\n%s\nwant\n%s", model, b, a)
		}
	}
	// ctr batches: dims leave the batch dimension out. fixed does not.
	f("ctr", `[{"data_type":"TYPE_FP32","dims":[64],"name":"features"}]`, `[{"data_type":"TYPE_FP32","dims":[1],"name":"score"}]`)
	f("fixed", `[{"data_type":"TYPE_FP32","dims":[3,4],"name":"x"}]`, `[{"data_type":"TYPE_FP32","dims":[3,4],"name":"y"}]`)

	triton := map[string]any{
		"name": "ctr", "platform": "onnxruntime_onnx", "max_batch_size": 16,
		"input":          []any{map[string]any{"name": "features", "data_type": "TYPE_FP32", "dims": []string{"64"}}},
		"instance_group": []any{map[string]any{"count": 2, "kind": "KIND_CPU"}},
		"dynamic_batching": map[string]any{"preferred_batch_size": []int{8}, "max_queue_delay_microseconds": "200",
			"default_queue_policy": map[string]any{"max_queue_size": "32", "default_timeout_microseconds": "9000"}},
	}
	if r := load("ctr", triton); r.code != fasthttp.StatusOK {
		t.Fatalf("loading a Triton configuration: %s", r)
	}
	c := get("ctr")
	for key, want := range map[string]string{
		"instances":        "null", // said once, in instance_group
		"max_batch_size":   "16",
		"max_queue":        "32",
		"instance_group":   `[{"count":2,"kind":"KIND_CPU"}]`,
		"dynamic_batching": `{"default_queue_timeout_us":9000,"max_queue_delay_us":200,"preferred_batch_sizes":[8]}`,
	} {
		if got := field(c, key); got != want {
			t.Fatalf("after a Triton configuration: %s is %s; want %s", key, got, want)
		}
	}

	bad := map[string]any{"input": []any{map[string]any{"name": "features", "data_type": "TYPE_FP32", "dims": []int{-1, 64}}}}
	checkError(t, load("ctr", bad), fasthttp.StatusBadRequest, `input "features" has dims [64] in the model (its shape [-1,64] without the batch dimension`)
	if got := field(get("ctr"), "instance_group"); got != `[{"count":2,"kind":"KIND_CPU"}]` {
		t.Fatalf("a refused configuration changed the loaded one: instance_group %s; want a count of 2", got)
	}
	r := s.post(t, "/v2/models/ctr/infer", []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[1,64],"data":[`+strings.TrimSuffix(strings.Repeat("0.5,", 64), ",")+`]}]}`))
	if r.code != fasthttp.StatusOK {
		t.Fatalf("ctr after a refused configuration: %s", r)
	}
}

// The view of a version that does not batch says max_batch_size 0, as
// Triton does, and leaves out the preferred batch sizes it does not use:
// loaded back, they would have to fit the node's max_batch_size.
func TestConfigViewOfUnbatchableModelLoadsBack(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 4, Instances: 1, Device: "cpu"},
		files:    map[string][]byte{"fixed/1": fixedONNX()}})
	load := func(config []byte) response {
		t.Helper()
		body, err := json.Marshal(map[string]any{"parameters": map[string]string{"config": string(config)}})
		if err != nil {
			t.Fatal(err)
		}
		return s.post(t, "/v2/repository/models/fixed/load", body)
	}
	if r := load([]byte(`{"max_batch_size":8,"dynamic_batching":{"preferred_batch_sizes":[8],"priority_levels":2}}`)); r.code != fasthttp.StatusOK {
		t.Fatalf("first load: %s", r)
	}
	r := s.do(t, fasthttp.MethodGet, "/v2/models/fixed/config", nil)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("GET config: %s", r)
	}
	var c map[string]any
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	if got, err := json.Marshal([]any{c["max_batch_size"], c["dynamic_batching"]}); err != nil || string(got) != `[0,{"priority_levels":2}]` {
		t.Fatalf("max_batch_size and dynamic_batching: %s; want [0,{\"priority_levels\":2}]", got)
	}
	delete(c, "version")
	delete(c, "sha256")
	view, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if r := load(view); r.code != fasthttp.StatusOK {
		t.Fatalf("loading the view back:\n%s\n%s", view, r)
	}
}

// GET .../config says the instance count once, as Triton's instance_group
// (with instances beside it, an edit of either disagreed with the other
// and the load was refused): get, edit, load changes it.
func TestGetEditLoadChangesInstanceCount(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 64, Instances: 1, Device: "cpu"},
		files:    map[string][]byte{"ctr/1": ctrONNX()}})
	get := func() map[string]any {
		t.Helper()
		r := s.do(t, fasthttp.MethodGet, "/v2/models/ctr/config", nil)
		if r.code != fasthttp.StatusOK {
			t.Fatalf("GET ctr config: %s", r)
		}
		var c map[string]any
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	load := func(c map[string]any) response {
		t.Helper()
		body, err := json.Marshal(map[string]any{"parameters": map[string]any{"config": c}})
		if err != nil {
			t.Fatal(err)
		}
		return s.post(t, "/v2/repository/models/ctr/load", body)
	}

	count := func() string {
		t.Helper()
		b, _ := json.Marshal(get()["instance_group"])
		return string(b)
	}
	// A Triton user's edit: instance_group's count.
	c := get()
	c["instance_group"].([]any)[0].(map[string]any)["count"] = 2
	if r := load(c); r.code != fasthttp.StatusOK {
		t.Fatalf("get, edit instance_group[0].count to 2, load: %s; want 200", r)
	}
	if got := count(); got != `[{"count":2,"kind":"KIND_CPU"}]` {
		t.Fatalf("after editing instance_group[0].count to 2: instance_group %s", got)
	}
	// infergate's spelling in place of Triton's.
	c = get()
	delete(c, "instance_group")
	c["instances"] = 3
	if r := load(c); r.code != fasthttp.StatusOK {
		t.Fatalf("get, instances 3 in place of instance_group, load: %s; want 200", r)
	}
	if got := count(); got != `[{"count":3,"kind":"KIND_CPU"}]` {
		t.Fatalf("after instances 3: instance_group %s", got)
	}
}
