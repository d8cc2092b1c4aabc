package gateway_test

import (
	"encoding/json"
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

// GET .../config leaves max_batch_size out for a model that cannot batch,
// as Triton reports 0 there: perf_analyzer takes a max_batch_size above 0
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
