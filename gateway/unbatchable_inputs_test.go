package gateway_test

import (
	"context"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// twoVarBackend: a model with no batch dimension whose two inputs have
// independent variable lengths: "a" FP32 [-1], "b" FP32 [-1] -> "y" FP32 [1]
// (the sum of all elements).
type twoVarBackend struct{}

func (twoVarBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "a", Datatype: oip.FP32, Shape: []int64{-1}}, {Name: "b", Datatype: oip.FP32, Shape: []int64{-1}}}
}
func (twoVarBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{1}}}
}
func (twoVarBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	var s float32
	for _, t := range in {
		for _, v := range bytesF32(t.Data) {
			s += v
		}
	}
	return append(dst[:0], oip.Tensor{Name: "y", Datatype: oip.FP32, Shape: []int64{1}, Data: f32Bytes([]float32{s})}), nil
}
func (twoVarBackend) Close() error { return nil }

// A model the gateway does not batch (its output's first dimension is
// fixed; or max_batch_size 0, which says it has no batch dimension, as in
// Triton) takes inputs whose variable first dimensions differ: they are
// each input's own, not a batch size to agree on.
func TestUnbatchableInputsOfDifferentLengths(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		load := func([]byte, registry.ModelConfig) (registry.Backend, error) { return twoVarBackend{}, nil }
		s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), defaults: registry.ModelConfig{MaxBatchSize: 64}, load: load,
			files: map[string][]byte{"two/1": []byte("fake")}})
		if explicit {
			if r := s.post(t, "/v2/repository/models/two/load", []byte(`{"parameters":{"config":{"max_batch_size":0}}}`)); r.code != 200 {
				t.Fatalf("load with max_batch_size 0: %s", r)
			}
		}
		r := s.post(t, "/v2/models/two/infer", []byte(`{"inputs":[{"name":"a","datatype":"FP32","shape":[3],"data":[1,2,3]},{"name":"b","datatype":"FP32","shape":[2],"data":[4,5]}]}`))
		if r.code != fasthttp.StatusOK {
			t.Errorf("explicit max_batch_size 0 %v: a [3] and b [2] for a model without a batch dimension: got %s; want 200 with y [15]", explicit, r)
		}
	}
}
