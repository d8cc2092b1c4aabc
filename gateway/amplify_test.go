package gateway_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
	"github.com/valyala/fasthttp"
)

// wideEmbeddingONNX is ids INT64 [-1] -> emb FP32 [-1,dim], a lookup in a
// table of 2 rows: each 2-byte JSON id ("0,") becomes 4*dim bytes of
// output, and about 10*dim bytes of JSON.
func wideEmbeddingONNX(dim int) []byte {
	table := make([]float32, 2*dim)
	for i := range table {
		table[i] = 0.123456 + float32(i%7)
	}
	m := onnx.Model{Graph: onnx.Graph{
		Name:         "wide",
		Inputs:       []onnx.ValueInfo{{Name: "ids", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs:      []onnx.ValueInfo{{Name: "emb", Type: onnx.Float, Dims: []int64{-1, int64(dim)}}},
		Nodes:        []onnx.Node{{OpType: "Gather", Name: "lookup", Inputs: []string{"table", "ids"}, Outputs: []string{"emb"}}},
		Initializers: []onnx.Tensor{{Name: "table", Type: onnx.Float, Dims: []int64{2, int64(dim)}, Floats: table}},
	}}
	return m.Marshal()
}

// TestOutputAmplificationRefused sends a 4 KiB request to a model whose
// output grows with the batch (an embedding lookup): with max_output_bytes
// at 1 MiB, the 32 MiB output is refused with 413 before it is allocated,
// instead of costing the process hundreds of MiB.
func TestOutputAmplificationRefused(t *testing.T) {
	const dim, rows = 4096, 2048
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	s := startServer(t, serverOptions{cfg: cfg, defaults: registry.ModelConfig{MaxOutputBytes: 1 << 20},
		files: map[string][]byte{"wide/1": wideEmbeddingONNX(dim)}})
	body := fmt.Appendf(nil, `{"inputs":[{"name":"ids","datatype":"INT64","shape":[%d],"data":[%s]}]}`,
		rows, strings.TrimSuffix(strings.Repeat("0,", rows), ","))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := s.post(t, "/v2/models/wide/infer", body)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("request %d bytes -> status %d, response %d bytes; process allocated %d MiB", len(body), r.code, len(r.body), allocated>>20)
	checkError(t, r, fasthttp.StatusRequestEntityTooLarge, "send fewer rows per request, or raise max_output_bytes")
	if allocated > 16<<20 {
		t.Fatalf("a %d-byte request (limit %d) got a %d-byte answer (%dx) and made the process allocate %d MiB; want it refused before the output is allocated",
			len(body), cfg.MaxBodyBytes, len(r.body), len(r.body)/len(body), allocated>>20)
	}
}
