package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// twoOutBackend: "x" FP32 [-1,4] -> "y" FP32 [-1,1] (each row's sum) and
// "z" FP32 [-1,2] (each row's first two elements).
type twoOutBackend struct{}

func (twoOutBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 4}}}
}
func (twoOutBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 1}}, {Name: "z", Datatype: oip.FP32, Shape: []int64{-1, 2}}}
}
func (twoOutBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	x := bytesF32(in[0].Data)
	rows := len(x) / 4
	var y, z []float32
	for r := range rows {
		y = append(y, x[4*r]+x[4*r+1]+x[4*r+2]+x[4*r+3])
		z = append(z, x[4*r], x[4*r+1])
	}
	return append(dst[:0],
		oip.Tensor{Name: "y", Datatype: oip.FP32, Shape: []int64{int64(rows), 1}, Data: f32Bytes(y)},
		oip.Tensor{Name: "z", Datatype: oip.FP32, Shape: []int64{int64(rows), 2}, Data: f32Bytes(z)}), nil
}
func (twoOutBackend) Close() error { return nil }

// TestSharedMemoryOutputsAllOrNone: a request whose second output does not
// fit its room fails with 400 and leaves the first output's region as it
// was: every output's room is checked before any is written. Before, the
// first was written, and the client, told the request failed, found its
// region overwritten.
func TestSharedMemoryOutputsAllOrNone(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.SharedMemory = true
	load := func([]byte, registry.ModelConfig) (registry.Backend, error) { return twoOutBackend{}, nil }
	s := startServer(t, serverOptions{cfg: cfg, load: load, files: map[string][]byte{"two/1": []byte("fake")}})
	out := shmObject(t, "out", make([]byte, 12))
	for _, r := range []struct {
		name        string
		offset, len int
	}{{"ry", 0, 4}, {"rz", 4, 8}} {
		if resp := s.post(t, "/v2/systemsharedmemory/region/"+r.name+"/register", []byte(fmt.Sprintf(`{"key":%q,"offset":%d,"byte_size":%d}`, out, r.offset, r.len))); resp.code != 200 {
			t.Fatalf("register %s: %s", r.name, resp)
		}
	}
	req := func(zSize int) []byte {
		return []byte(fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],`+
			`"outputs":[{"name":"y","parameters":{"shared_memory_region":"ry","shared_memory_byte_size":4}},`+
			`{"name":"z","parameters":{"shared_memory_region":"rz","shared_memory_byte_size":%d}}]}`, zSize))
	}
	checkError(t, s.post(t, "/v2/models/two/infer", req(4)), fasthttp.StatusBadRequest, "the output has 8 bytes but shared_memory_byte_size gives it 4")
	if got := bytesF32(shmRead(t, out[1:], 12)); got[0] != 0 {
		t.Fatalf("after the failed request the regions hold %v; want them untouched (zeros)", got)
	}
	if r := s.post(t, "/v2/models/two/infer", req(8)); r.code != 200 {
		t.Fatalf("infer: %s", r)
	}
	if got := bytesF32(shmRead(t, out[1:], 12)); got[0] != 10 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("the regions hold %v; want [10 1 2]", got)
	}
}
