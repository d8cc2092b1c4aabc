package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// A model that does not batch (fixed [3,4] input), max_batch_size left to
// the node: its model_warmup dims are whole shapes, as its input dims are
// ([3,4], as GET .../config says); batch_size 3 and dims [4] are refused,
// saying so. What GET .../config answers loads back.
func TestWarmupOfUnbatchableModel(t *testing.T) {
	initORT(t)
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 64, Instances: 1, Device: "cpu"},
		load:     loadEngine,
		files:    map[string][]byte{"fixed/1": fixedONNX()}})
	load := func(config string) response {
		t.Helper()
		body, err := json.Marshal(map[string]any{"parameters": map[string]string{"config": config}})
		if err != nil {
			t.Fatal(err)
		}
		return s.post(t, "/v2/repository/models/fixed/load", body)
	}
	split := `{"model_warmup":[{"name":"w","batch_size":3,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[4],"zero_data":true}}}]}`
	if r := load(split); r.code != fasthttp.StatusBadRequest || !strings.Contains(string(r.body), `model_warmup \"w\": batch_size is 3, but this version has no batch dimension: leave batch_size out and give the whole shapes as dims`) {
		t.Fatalf("warm-up as batch_size 3, dims [4], on a model without a batch dimension: %s; want 400 saying dims are the whole shape", r)
	}
	whole := `{"model_warmup":[{"name":"w","inputs":{"x":{"data_type":"TYPE_FP32","dims":[3,4],"random_data":true}}}]}`
	if r := load(whole); r.code != fasthttp.StatusOK {
		t.Fatalf("warm-up with the model's whole shape as dims (as its input dims are given): %s", r)
	}
	r := s.do(t, fasthttp.MethodGet, "/v2/models/fixed/config", nil)
	if r.code != fasthttp.StatusOK || !strings.Contains(string(r.body), `"model_warmup"`) {
		t.Fatalf("GET config: %s", r)
	}
	if back := load(string(r.body)); back.code != fasthttp.StatusOK {
		t.Fatalf("loading back what GET .../config answered (%s): %s", r.body, back)
	}
}
