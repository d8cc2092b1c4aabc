package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
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

// TestPromotionSignatureCheckBusy: a promotion whose check needs the
// trial load of production's blob (production is not loaded on this
// node) while every trial load is taken is told to come back (429), as
// one whose own version needs a trial load is: before, the busy trial
// load read as "cannot tell", and the promotion of a version that
// changes what clients send went through unchecked.
func TestPromotionSignatureCheckBusy(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	initORT(t)
	v1 := ctrONNX()
	var away atomic.Bool // version 1 does not load on this node from now on
	load := func(data []byte, c registry.ModelConfig) (registry.Backend, error) {
		if away.Load() && bytes.Equal(data, v1) {
			return nil, errors.New("not loaded on this node for the test")
		}
		return loadEngine(data, c)
	}
	hold := make(chan struct{})
	var held atomic.Int32
	s := startServer(t, serverOptions{cfg: cfg, load: load, files: map[string][]byte{"ctr/1": v1}})
	attachNode(t, s, adminToken, func(cc *cluster.Config) {
		cc.RegisterLocal = true
		cc.TrialLoadWait = 300 * time.Millisecond
		cc.Check = func(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
			if bytes.HasPrefix(b, []byte("hold")) {
				held.Add(1)
				<-hold
				return nil, nil, errors.New("not a model")
			}
			return engineCheck(b)
		}
	})
	waitCtrRegistered(t, s)
	away.Store(true)
	if err := s.repo.Unload("ctr"); err != nil {
		t.Fatal(err)
	}
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", rankerONNX()); r.code != 201 {
		t.Fatalf("upload of version 2, another signature: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if m := s.repo.Model("ctr"); m == nil || m.Version(2) == nil {
			return fmt.Errorf("version 2 not loaded yet")
		}
		return nil
	})
	// Two uploads hold the trial loads.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { s.admin(t, "POST", fmt.Sprintf("/v1/models/h%d/versions", i), []byte("hold")) })
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := held.Load(); n != 2 {
			return fmt.Errorf("%d trial loads held; want 2", n)
		}
		return nil
	})
	r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`))
	close(hold)
	wg.Wait()
	checkError(t, r, fasthttp.StatusTooManyRequests, "trial loads")
	if r.header["Retry-After"] == "" {
		t.Fatalf("429 without Retry-After: %v", r.header)
	}
	// With the trial loads free, production's blob is read, and the
	// promotion refused for what it would change.
	checkError(t, s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)), fasthttp.StatusConflict, "would change what clients send")
}
