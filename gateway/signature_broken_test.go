package gateway_test

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
)

// TestPromotionPastABrokenProduction: a production version that this node
// cannot load (its blob fails here) takes no client's requests, so it
// cannot tell what they send: the promotion of a working version, the
// way out, goes through without ?force=true. Before, the trial load of
// production's blob failed and every promotion got 409 "cannot tell
// whether version 1 ... takes what production takes".
func TestPromotionPastABrokenProduction(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	initORT(t)
	v1 := ctrONNX()
	var broken atomic.Bool // version 1's bytes fail to load from now on
	load := func(data []byte, c registry.ModelConfig) (registry.Backend, error) {
		if broken.Load() && bytes.Equal(data, v1) {
			return nil, errors.New("this node cannot load it")
		}
		return loadEngine(data, c)
	}
	s := startServer(t, serverOptions{cfg: cfg, load: load, files: map[string][]byte{"ctr/1": v1}})
	attachNode(t, s, adminToken, func(cc *cluster.Config) {
		cc.RegisterLocal = true
		cc.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
			if broken.Load() && bytes.Equal(b, v1) {
				return nil, nil, errors.New("this node cannot load it")
			}
			return engineCheck(b)
		}
	})
	waitCtrRegistered(t, s)
	broken.Store(true)
	if err := s.repo.Unload("ctr"); err != nil { // as a failed load leaves it here
		t.Fatal(err)
	}
	fix := onnx.DemoCTR()
	fix.DocString += " (the fix)"
	r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", fix.Model().Marshal())
	if r.code != 201 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("upload of a fix with promote past a broken production: %s", r)
	}
	// And a promotion by alias: back to version 1 (forced: it cannot be
	// read here), then past it again.
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production?force=true", []byte(`{"version":1}`)); r.code != 200 {
		t.Fatalf("promoting version 1: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)); r.code != 200 {
		t.Fatalf("promoting version 2 past broken version 1: %s", r)
	}
}
