package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestRemoveClusterModel: DELETE /v1/models/{m} takes a cluster model off
// (there was no way: production is never retired, and the repository
// API's unload of a cluster model is refused). Its requests get 404 saying
// it was removed, not that it is unknown; GET /v1/models/{m} keeps its
// history with every version retired; a later upload continues the
// numbering. ctr was registered from the node's --models
// (--register-local-models), whose file is still there: the node does not
// serve it again.
func TestRemoveClusterModel(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	if r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload version 2: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/beta", []byte(`{"version": 2}`)); r.code != 200 {
		t.Fatalf("alias: %s", r)
	}
	if r := s.admin(t, "PUT", "/v1/models/ctr/shadow", []byte(`{"version": 2, "percent": 10}`)); r.code != 200 {
		t.Fatalf("shadow: %s", r)
	}
	body := ctrRequest(features(1, 1, 64), 1)
	if r := s.do(t, "POST", "/v2/models/ctr/infer", body); r.code != 200 {
		t.Fatalf("infer before the removal: %s", r)
	}

	checkError(t, s.do(t, "DELETE", "/v1/models/ctr", nil), fasthttp.StatusUnauthorized, "")
	checkError(t, s.admin(t, "DELETE", "/v1/models/nosuch", nil), fasthttp.StatusNotFound, `model "nosuch" is not registered in the cluster`)
	r := s.admin(t, "DELETE", "/v1/models/ctr", nil)
	var ans struct {
		Model   string  `json:"model"`
		Removed bool    `json:"removed"`
		Retired []int64 `json:"retired_versions"`
	}
	if r.code != 200 || json.Unmarshal(r.body, &ans) != nil || ans.Model != "ctr" || !ans.Removed || fmt.Sprint(ans.Retired) != "[1 2]" {
		t.Fatalf("remove: %s; want 200 naming ctr removed, versions 1 and 2 retired", r)
	}
	checkError(t, s.admin(t, "DELETE", "/v1/models/ctr", nil), fasthttp.StatusNotFound, `model "ctr" was removed already`)

	const removed = `model "ctr" was removed from the cluster`
	for _, c := range []struct{ method, uri string }{
		{"POST", "/v2/models/ctr/infer"},
		{"POST", "/v2/models/ctr/versions/1/infer"},
		{"POST", "/v2/models/ctr/versions/2/infer"},
		{"GET", "/v2/models/ctr/ready"},
		{"GET", "/v2/models/ctr"},
	} {
		testenv.CheckFor(t, 10*time.Second, func() error {
			r := s.do(t, c.method, c.uri, body)
			if msg, _ := errorMessage(r.body); r.code != 404 || !strings.Contains(msg, removed) {
				return fmt.Errorf("%s %s after the removal: %s; want 404 saying %s", c.method, c.uri, r, removed)
			}
			return nil
		})
	}
	var mv struct {
		Removed    bool             `json:"removed"`
		Production int64            `json:"production"`
		Aliases    map[string]int64 `json:"aliases"`
		Shadow     any              `json:"shadow"`
		Versions   []struct {
			Version int64  `json:"version"`
			Stage   string `json:"stage"`
		} `json:"versions"`
	}
	r = s.admin(t, "GET", "/v1/models/ctr", nil)
	if r.code != 200 || json.Unmarshal(r.body, &mv) != nil || !mv.Removed || mv.Production != 0 || len(mv.Aliases) != 0 || mv.Shadow != nil ||
		len(mv.Versions) != 2 || mv.Versions[0].Stage != "retired" || mv.Versions[1].Stage != "retired" {
		t.Fatalf("GET /v1/models/ctr after the removal: %s; want removed, both versions retired, no aliases or shadow", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		var idx []registry.IndexEntry
		if r := s.do(t, "POST", "/v2/repository/index", nil); json.Unmarshal(r.body, &idx) != nil {
			return fmt.Errorf("index: %s", r)
		} else {
			for _, e := range idx {
				if e.Name == "ctr" && e.State == registry.StateReady {
					return fmt.Errorf("index: %s; want no ctr version ready", r)
				}
			}
		}
		return nil
	})
	// The removal stays: its file in --models, which the node registered,
	// is not served again by a later pass of the reconciler (one that
	// loads another model).
	if r := s.admin(t, "POST", "/v1/models/other/versions", ctrONNX()); r.code/100 != 2 {
		t.Fatalf("upload other: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.do(t, "GET", "/v2/models/other/ready", nil); r.code != 200 {
			return fmt.Errorf("other: %s", r)
		}
		return nil
	})
	if r := s.do(t, "GET", "/v2/models/ctr/ready", nil); r.code != 404 {
		t.Fatalf("ctr ready after a later reconciler pass: %s; want 404", r)
	}

	// An upload of the name begins again, numbered on: version 3, which
	// becomes production.
	r = s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX())
	var up struct {
		Version int64 `json:"version"`
	}
	if r.code/100 != 2 || json.Unmarshal(r.body, &up) != nil || up.Version != 3 {
		t.Fatalf("upload after the removal: %s; want version 3", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.do(t, "POST", "/v2/models/ctr/infer", body); r.code != 200 || r.header["X-Model-Version"] != "3" {
			return fmt.Errorf("infer after the new upload: %s (version %q); want 200 from version 3", r, r.header["X-Model-Version"])
		}
		return nil
	})
}
