package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
)

// TestSharedMemoryMixedRawInputsGRPC: over gRPC, inputs in shared memory
// take no raw_input_contents entry and the others take theirs in order,
// whichever place the shared one has.
func TestSharedMemoryMixedRawInputsGRPC(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.SharedMemory = true
	load := func([]byte, registry.ModelConfig) (registry.Backend, error) { return twoVarBackend{}, nil }
	s := startServer(t, serverOptions{cfg: cfg, defaults: registry.ModelConfig{MaxBatchSize: 64}, load: load, files: map[string][]byte{"two/1": []byte("fake")}})
	if r := s.post(t, "/v2/repository/models/two/load", []byte(`{"parameters":{"config":{"max_batch_size":0}}}`)); r.code != 200 {
		t.Fatalf("load: %s", r)
	}
	c := s.serveGRPC(t)
	key := shmObject(t, "in", f32Bytes([]float32{100, 200}))
	if r := s.post(t, "/v2/systemsharedmemory/region/in/register", []byte(fmt.Sprintf(`{"key":%q,"byte_size":8}`, key))); r.code != 200 {
		t.Fatalf("register: %s", r)
	}
	str := func(s string) *string { return &s }
	i64 := func(x int64) *int64 { return &x }
	shared := map[string]pbtest.Param{"shared_memory_region": {String: str("in")}, "shared_memory_byte_size": {Int64: i64(8)}}
	for i, ins := range [][]pbtest.Tensor{
		{{Name: "a", Datatype: "FP32", Shape: []int64{2}, Params: shared}, {Name: "b", Datatype: "FP32", Shape: []int64{3}}},
		{{Name: "a", Datatype: "FP32", Shape: []int64{3}}, {Name: "b", Datatype: "FP32", Shape: []int64{2}, Params: shared}},
	} {
		req := pbtest.InferRequest("two", "", "", ins, [][]byte{f32Bytes([]float32{1, 2, 3})}, nil, nil)
		resp, err := c.infer(context.Background(), req, nil)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := bytesF32(resp.Outputs[0].Raw); len(got) != 1 || got[0] != 306 {
			t.Fatalf("case %d: y = %v; want [306]", i, got)
		}
	}
}
