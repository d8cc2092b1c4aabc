package gateway_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestGRPCRepositoryIndexReasonIsUTF8: a model directory holding a
// stray file whose name is not UTF-8 (a Latin-1 name copied from another
// system) fails to load, and the reason, which names the file, goes out
// in RepositoryIndexResponse.models.reason, a protobuf string, made valid
// UTF-8: a client's protobuf library refused the whole index, every
// model's entry with it.
func TestGRPCRepositoryIndexReasonIsUTF8(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	for key, data := range map[string][]byte{"ctr/1": ctrONNX(), "bad/v\xe9": ctrONNX()} {
		p := filepath.Join(dir, filepath.FromSlash(key), "model.onnx")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set := metrics.NewSet()
	logs := &syncLog{}
	repo, err := registry.New(registry.Config{Dir: dir, Load: loadEngine, Metrics: set, Logf: logs.printf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	t.Logf("LoadAll: %v", repo.LoadAll()) // bad fails: no version
	cfg := gateway.DefaultConfig()
	cfg.Logf = logs.printf
	srv, err := gateway.New(cfg, repo, set)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeGRPC(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &grpcClient{conn: conn}
	ctx := context.Background()

	in := pbtest.New("RepositoryIndexRequest")
	if _, err := c.call(ctx, "RepositoryIndex", in, "RepositoryIndexResponse"); err != nil {
		t.Errorf("RepositoryIndex: %v", err)
	}
}

// TestGRPCModelOutputNameIsUTF8: an ONNX model's tensor names are
// proto2 strings, which neither ONNX's library nor ONNX Runtime check
// for UTF-8; a model whose output is named in Latin-1 loads, and its
// name goes out in ModelMetadataResponse and in every ModelInferResponse
// (outputs[].name, protobuf strings), made valid UTF-8: a client's
// protobuf library refused each answer whole, so the model served no one
// over gRPC.
func TestGRPCModelOutputNameIsUTF8(t *testing.T) {
	m := onnx.Model{Graph: onnx.Graph{
		Name:         "latin1",
		Inputs:       []onnx.ValueInfo{{Name: "x", Type: onnx.Float, Dims: []int64{3, 4}}},
		Outputs:      []onnx.ValueInfo{{Name: "y\xe9", Type: onnx.Float, Dims: []int64{3, 4}}},
		Nodes:        []onnx.Node{{OpType: "Add", Name: "add", Inputs: []string{"x", "one"}, Outputs: []string{"y\xe9"}}},
		Initializers: []onnx.Tensor{{Name: "one", Type: onnx.Float, Dims: []int64{1}, Floats: []float32{1}}},
	}}
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(),
		defaults: registry.ModelConfig{MaxBatchSize: 64},
		files:    map[string][]byte{"latin1/1": m.Marshal()}})
	c := s.serveGRPC(t)
	ctx := context.Background()
	if _, err := c.call(ctx, "ModelMetadata", modelRequest("ModelMetadataRequest", "latin1", ""), "ModelMetadataResponse"); err != nil {
		t.Errorf("ModelMetadata latin1: %v", err)
	}
	req := pbtest.InferRequest("latin1", "", "", []pbtest.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{3, 4}}},
		[][]byte{make([]byte, 3*4*4)}, nil, nil)
	if _, err := c.call(ctx, "ModelInfer", req, "ModelInferResponse"); err != nil {
		t.Errorf("ModelInfer latin1: %v", err)
	}
}
