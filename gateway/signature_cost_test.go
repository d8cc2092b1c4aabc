package gateway_test

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// TestPromotingProductionTakesNoTrialLoad: a write that sends requests to
// production itself (promoting it again, an experiment's control arm, as
// the trainer's canary has) cannot change what clients send, and takes
// no trial load of its blob while this node still loads it. Before, it
// took two per such arm: one as the version written, one as production
// (a large model's load each, inside the admin call's timeout, beside the
// real load).
func TestPromotingProductionTakesNoTrialLoad(t *testing.T) {
	initORT(t)
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	v1 := ctrONNX()
	release := make(chan struct{})
	var block atomic.Bool
	load := func(data []byte, c registry.ModelConfig) (registry.Backend, error) {
		if block.Load() && bytes.Equal(data, v1) {
			<-release // production stays loading
		}
		return loadEngine(data, c)
	}
	s := startServer(t, serverOptions{cfg: cfg, load: load, files: map[string][]byte{"ctr/1": v1}})
	var trials atomic.Int64
	attachNode(t, s, adminToken, func(cc *cluster.Config) {
		cc.RegisterLocal = true
		cc.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
			trials.Add(1)
			return engineCheck(b)
		}
	})
	t.Cleanup(func() { close(release) })
	waitCtrRegistered(t, s)
	// Production not loaded here: unloaded, and any reload held.
	block.Store(true)
	if err := s.repo.Unload("ctr"); err != nil {
		t.Fatal(err)
	}
	before := trials.Load()
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":1}`)); r.code != 200 {
		t.Fatalf("promoting production again: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/experiment", []byte(`{"name":"e","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":1,"weight":1}]}`)); r.code != 200 {
		t.Fatalf("an experiment of production's arms: %s", r)
	}
	if n := trials.Load() - before; n != 0 {
		t.Fatalf("%d trial loads; want none", n)
	}
}
