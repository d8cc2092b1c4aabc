package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestIndexClusterOnlyRowsSorted: a model this
// node knows only from the cluster (ten versions whose blobs no peer can
// give) gets one row per version in the repository index, numbered 1 to
// 10 in order (not 1, 10, 2), none READY, none in {"ready":true}, and
// the local model's rows are untouched.
func TestIndexClusterOnlyRowsSorted(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startDemo(t, cfg, false)
	node := attachNode(t, s, cfg.AdminToken, nil)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if !node.IsLeader() {
			return fmt.Errorf("not leader")
		}
		return nil
	})
	for i := 1; i <= 10; i++ {
		sha := strings.Repeat(fmt.Sprintf("%x", i%16), 64)
		if _, err := node.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "ghost", SHA256: sha, Size: 100,
			Created: time.Unix(1, 0).UTC(), Origin: "elsewhere"}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 15*time.Second, func() error {
		r := s.do(t, "POST", "/v2/repository/index", nil)
		var idx []registry.IndexEntry
		if err := json.Unmarshal(r.body, &idx); err != nil {
			return fmt.Errorf("index %s: %v", r, err)
		}
		var got []string
		for _, e := range idx {
			if e.Name == "ghost" {
				if e.State == registry.StateReady {
					return fmt.Errorf("ghost %s READY", e.Version)
				}
				got = append(got, e.Version)
			}
		}
		if want := "1 2 3 4 5 6 7 8 9 10"; strings.Join(got, " ") != want {
			return fmt.Errorf("ghost rows %v; want %s", got, want)
		}
		for i := 1; i < len(idx); i++ {
			if idx[i-1].Name > idx[i].Name {
				return fmt.Errorf("rows out of name order: %+v", idx)
			}
		}
		return nil
	})
	if r := s.do(t, "POST", "/v2/repository/index", []byte(`{"ready":true}`)); strings.Contains(string(r.body), `"ghost"`) {
		t.Fatalf("the ready index lists ghost: %s", r.body)
	}
}
