package gateway_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// Loading a model whose config.json cannot be read (here: it is a
// directory) answers 400 naming the file, as one that does not parse does,
// not 500: it is no bug of the server.
func TestLoadWithUnreadableConfig(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	dir := filepath.Join(s.repo.Dir(), "other")
	if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1", "model.onnx"), []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := s.post(t, "/v2/repository/models/other/load", nil)
	if r.code == fasthttp.StatusInternalServerError {
		t.Fatalf("load of a model whose config.json is a directory: got %s; want a 4xx naming config.json, not a 500 (500 only for real bugs)", r)
	}
	checkError(t, r, fasthttp.StatusBadRequest, "config.json")
}
