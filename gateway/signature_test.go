package gateway_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestPromotionRefusesAnotherSignature: a version whose inputs differ from
// production's (ranker's bytes uploaded as ctr) cannot take production's
// requests, by promotion or as an experiment's arm, without ?force=true:
// every client would get 400 (found by a walk on real servers).
func TestPromotionRefusesAnotherSignature(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", rankerONNX()); r.code != 201 {
		t.Fatalf("upload: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if m := s.repo.Model("ctr"); m == nil || m.Version(2) == nil {
			return fmt.Errorf("version 2 not loaded yet")
		}
		return nil
	})
	const want = `input "features" would be FP32 [-1,256] instead of FP32 [-1,64]`
	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)), fasthttp.StatusConflict, "promoting version 2 of model \"ctr\" would change what clients send and get: "+want)
	exp := []byte(`{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`)
	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/experiment", exp), fasthttp.StatusConflict, `arm "b" of the experiment`)
	// A paused arm, and another alias, take no requests: allowed.
	if r := s.admin(t, "PUT", "/v1/models/ctr/experiment", []byte(`{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":0}]}`)); r.code != 200 {
		t.Fatalf("an experiment whose other arm is paused: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/beta", []byte(`{"version":2}`)); r.code != 200 {
		t.Fatalf("alias beta: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production?force=true", []byte(`{"version":2}`)); r.code != 200 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("promotion with force=true: %s", r)
	}
}

// TestUploadPromoteRefusesAnotherSignature: an upload with ?promote=true
// is checked as a promotion is, on the trial load's inputs and outputs,
// before anything is stored (before, it went through, and every client
// of production got 400 a second later: found by a walk of the README).
func TestUploadPromoteRefusesAnotherSignature(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	checkError(t, s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", rankerONNX()), fasthttp.StatusConflict,
		`promoting the uploaded version of model "ctr" would change what clients send and get: input "features" would be FP32 [-1,256] instead of FP32 [-1,64]; requests that fit production (version 1) would fail. If the clients have moved to the new version's, add ?force=true (infergate models upload --promote --force)`)
	if r := s.admin(t, "GET", "/v1/models/ctr", nil); strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("the refused upload was registered: %s", r.body)
	}
	// The same signature goes through; so does another with force.
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX()); r.code != 201 {
		t.Fatalf("upload of ctr's signature: %s", r)
	}
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true&force=true", rankerONNX()); r.code != 201 || !strings.Contains(string(r.body), `"version":3`) {
		t.Fatalf("upload with force=true: %s", r)
	}
}

// TestPromotionChecksAVersionNotLoadedYet: a promotion of a version that
// this node is still loading is checked on the trial load of its blob
// (before, it went through unchecked: upload then promote at once, as the
// README's workflow does, found by a walk of the README).
func TestPromotionChecksAVersionNotLoadedYet(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	release := make(chan struct{})
	ranker := rankerONNX()
	load := func(data []byte, c registry.ModelConfig) (registry.Backend, error) {
		if bytes.Equal(data, ranker) {
			<-release // version 2 stays loading
		}
		return loadEngine(data, c)
	}
	s := startAdminWith(t, serverOptions{cfg: cfg, load: load, files: map[string][]byte{"ctr/1": ctrONNX()}})
	// Registered after the server's: cleanups run last first, and its
	// stop waits for the load.
	t.Cleanup(func() { close(release) })
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ranker); r.code != 201 {
		t.Fatalf("upload: %s", r)
	}
	if m := s.repo.Model("ctr"); m != nil && m.Version(2) != nil {
		t.Fatal("version 2 loaded; the test needs it loading")
	}
	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)), fasthttp.StatusConflict,
		`promoting version 2 of model "ctr" would change what clients send and get: input "features" would be FP32 [-1,256] instead of FP32 [-1,64]`)
}
