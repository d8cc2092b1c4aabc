package gateway_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// A load that changes only the version policy keeps the version that
// still serves (nothing about how it runs changed), and GET .../config
// then reports the new policy: get, edit one setting, load changes that
// setting only, and does not bring back the versions the earlier policy
// served.
func TestConfigViewAfterPolicyOnlyLoad(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{MaxBatchSize: 8, Instances: 1, Device: "cpu", MaxQueue: 16})
	p := filepath.Join(s.repo.Dir(), "fake", "2", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("fake2"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(config string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"parameters": map[string]string{"config": config}})
		if r := s.post(t, "/v2/repository/models/fake/load", body); r.code != fasthttp.StatusOK {
			t.Fatalf("load %s: %s", config, r)
		}
	}
	load(`{"version_policy":{"all":{}}}`)
	load(`{"version_policy":{"latest":{"num_versions":1}}}`)
	r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/config", nil)
	if r.code != fasthttp.StatusOK {
		t.Fatalf("GET config: %s", r)
	}
	var c map[string]any
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(c["version_policy"]); string(got) != `{"latest":{"num_versions":1}}` {
		t.Errorf("GET config after a load with latest 1: version_policy %s; want the policy loaded", got)
	}
	// Get, edit one setting, load.
	c["max_queue"] = 32
	edited, _ := json.Marshal(c)
	load(string(edited))
	if r := s.do(t, fasthttp.MethodGet, "/v2/models/fake/versions/1/ready", nil); r.code == fasthttp.StatusOK {
		t.Fatalf("version 1 serves again after get, edit max_queue, load: the configuration brought back the earlier version policy")
	}
}
