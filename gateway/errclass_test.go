package gateway_test

import (
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/trainer/onnx"
	"github.com/valyala/fasthttp"
)

// embeddingONNX is an embedding lookup, the first layer of most CTR
// models: ids INT64 [-1] -> emb FP32 [-1,4] = Gather(table[10,4], ids).
func embeddingONNX() []byte {
	table := make([]float32, 10*4)
	for i := range table {
		table[i] = float32(i)
	}
	m := onnx.Model{Graph: onnx.Graph{
		Name:         "embedding",
		Inputs:       []onnx.ValueInfo{{Name: "ids", Type: onnx.Int64, Dims: []int64{-1}}},
		Outputs:      []onnx.ValueInfo{{Name: "emb", Type: onnx.Float, Dims: []int64{-1, 4}}},
		Nodes:        []onnx.Node{{OpType: "Gather", Name: "lookup", Inputs: []string{"table", "ids"}, Outputs: []string{"emb"}}},
		Initializers: []onnx.Tensor{{Name: "table", Type: onnx.Float, Dims: []int64{10, 4}, Floats: table}},
	}}
	return m.Marshal()
}

// TestOutOfRangeIDIsClientError sends an id past the end of the
// embedding table. That is the client's mistake (ONNX Runtime names the bad
// index), so the answer is 400 with a message the client can act on, not a
// 500 counted and logged as a server bug.
func TestOutOfRangeIDIsClientError(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: map[string][]byte{"emb/1": embeddingONNX()}})
	ok := s.post(t, "/v2/models/emb/infer", []byte(`{"inputs":[{"name":"ids","datatype":"INT64","shape":[2],"data":[1,9]}]}`))
	if ok.code != fasthttp.StatusOK {
		t.Fatalf("in-range ids: got %s; want 200", ok)
	}
	r := s.post(t, "/v2/models/emb/infer", []byte(`{"inputs":[{"name":"ids","datatype":"INT64","shape":[2],"data":[1,99]}]}`))
	if r.code != fasthttp.StatusBadRequest {
		t.Fatalf("id 99 of a 10-row table: got %s; want 400 naming the bad index (server log: %s)", r, strings.TrimSpace(s.log.String()))
	}
	checkError(t, r, fasthttp.StatusBadRequest, "idx=99")
}
