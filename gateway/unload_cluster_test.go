package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// TestUnloadClusterModelConflicts: the repository API's unload of a model
// the cluster serves is refused with 409 saying how to stop serving it, and
// the model goes on serving; it answered 200 and took the model off this
// node for seconds until the cluster loaded it again. A model the node
// serves from its directory alone still unloads.
func TestUnloadClusterModelConflicts(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	r := s.admin(t, "POST", "/v2/repository/models/ctr/unload", nil)
	if r.code != 409 || !strings.Contains(string(r.body), "models retire") || !strings.Contains(string(r.body), "models remove ctr --yes") {
		t.Fatalf("unload of the cluster's ctr: %s; want 409 naming models retire and models remove", r)
	}
	if r := s.do(t, "GET", "/v2/models/ctr/ready", nil); r.code != 200 {
		t.Fatalf("ctr after a refused unload: %s; want 200", r)
	}
	local := filepath.Join(s.repo.Dir(), "local", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, ctrONNX(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.repo.Load("local", nil); err != nil {
		t.Fatal(err)
	}
	if r := s.admin(t, "POST", "/v2/repository/models/local/unload", nil); r.code != 200 {
		t.Fatalf("unload of a model served from the directory alone: %s; want 200", r)
	}
	if r := s.do(t, "GET", "/v2/models/local/ready", nil); r.code != 404 {
		t.Fatalf("local after its unload: %s; want 404", r)
	}
}
