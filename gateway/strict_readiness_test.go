package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
)

// readiness returns GET /v2/health/ready's status and error, failing the
// test unless the body is the protocol's JSON.
func readiness(t *testing.T, s *testServer) (int, string) {
	t.Helper()
	r := s.do(t, "GET", "/v2/health/ready", nil)
	var body struct {
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Ready != (r.code == 200) {
		t.Fatalf("readiness: %s: %v; want JSON whose ready matches the status", r, err)
	}
	return r.code, body.Error
}

// TestStrictReadiness: with StrictReadiness (serve --strict-readiness, as
// Triton's), a model that serves nothing because its load failed makes
// the node not ready, naming it, so that a balancer sends its requests
// elsewhere; without it the node is ready. Unloading the model on
// purpose makes it ready again.
func TestStrictReadiness(t *testing.T) {
	files := map[string][]byte{"ctr/1": ctrONNX()}
	broken := func(s *testServer) {
		t.Helper()
		placeByHand(t, s, "broken/1", "not an onnx model")
		if err := s.repo.Poll(); err == nil {
			t.Fatal("poll with a broken model: nil error")
		}
	}
	lax := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: files})
	broken(lax)
	if code, why := readiness(t, lax); code != 200 {
		t.Fatalf("without strict readiness: %d %q; want ready", code, why)
	}
	cfg := gateway.DefaultConfig()
	cfg.StrictReadiness = true
	s := startServer(t, serverOptions{cfg: cfg, files: files})
	if code, why := readiness(t, s); code != 200 {
		t.Fatalf("strict, before: %d %q; want ready", code, why)
	}
	broken(s)
	code, why := readiness(t, s)
	if code != 503 || !strings.HasPrefix(why, `model "broken" version 1 failed here and no version of the model serves on this node (--strict-readiness): `) {
		t.Fatalf("strict, broken failing: %d %q; want 503 naming broken version 1 and why", code, why)
	}
	if r := s.post(t, "/v2/repository/models/broken/unload", nil); r.code != 200 {
		t.Fatalf("unload: %s", r)
	}
	if code, why := readiness(t, s); code != 200 {
		t.Fatalf("strict, broken unloaded on purpose: %d %q; want ready", code, why)
	}
}

// TestStrictReadinessInCluster: a cluster model whose file on this node
// holds other bytes fails here before the registry sees it; strict
// readiness counts it too.
func TestStrictReadinessInCluster(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	cfg.StrictReadiness = true
	s := startAdmin(t, cfg)
	if code, why := readiness(t, s); code != 200 {
		t.Fatalf("before: %d %q; want ready", code, why)
	}
	path := placeByHand(t, s, "clash/1", "bytes put here by hand")
	if r := s.admin(t, "POST", "/v1/models/clash/versions?promote=true", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		code, why := readiness(t, s)
		if code != 503 || !strings.Contains(why, `model "clash" version 1 failed here and no version of the model serves on this node (--strict-readiness): `+path+" holds other bytes") {
			return fmt.Errorf("readiness: %d %q; want 503 naming clash version 1 and why", code, why)
		}
		return nil
	})
}
