package gateway_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/registry/blobs"
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
	store, err := blobs.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cc := cluster.DefaultConfig()
	cc.NodeID = "n1"
	cc.RaftAddr = testenv.FreeAddr(t)
	cc.HTTPAddr = "http://" + s.listenTCP(t)
	cc.DataDir = t.TempDir()
	cc.Token = cfg.AdminToken
	cc.Registry = s.repo
	cc.Blobs = store
	cc.Logf = s.log.printf
	cc.Metrics = s.set
	node, err := cluster.Start(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Stop() })
	s.srv.AttachCluster(node, store)
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
