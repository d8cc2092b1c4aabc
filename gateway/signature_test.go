package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
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
