package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// TestRestartWithClusterConfigKeepsLoads: as
// TestRestartedNodeServesAsBeforeWhenReady, with a registered
// configuration in Triton's spelling (instance_group, dynamic_batching):
// the restart loads both versions with it from served.json, and the
// reconciler keeps those loads instead of loading them again.
func TestRestartWithClusterConfigKeepsLoads(t *testing.T) {
	cfg, n := startSolo(t)
	conf := json.RawMessage(`{"max_batch_size":4,"instance_group":[{"count":2,"kind":"KIND_CPU"}],"dynamic_batching":{"max_queue_delay_microseconds":200,"preferred_batch_size":[2,4]}}`)
	for i, content := range []string{"conf one", "conf two"} {
		if _, _, err := n.cfg.Blobs.Put(bytes.NewReader([]byte(content)), 1<<20); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		if res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]),
			Size: int64(len(content)), Created: time.Unix(1, 0).UTC(), Origin: n.ID(), Config: conf, Promote: i == 0}); err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		var served map[string]servedModel
		if err := loadJSON(filepath.Join(cfg.DataDir, servedFile), &served); err != nil {
			return err
		}
		if len(served["m"].Versions) != 2 {
			return fmt.Errorf("served.json %+v", served)
		}
		return nil
	})
	var before map[int64]*registry.Version
	repo, again := restartAsServe(t, cfg, n, func(repo *registry.Repository) {
		lm := repo.Model("m")
		if lm == nil || lm.Version(1) == nil || lm.Version(2) == nil {
			t.Fatalf("after the initial loads m serves %v; want 1 and 2", loadedVersions(repo, "m"))
		}
		if c := lm.Version(1).Config; c.Instances != 2 || c.MaxBatchSize != 4 {
			t.Fatalf("version 1 loaded with %+v; want the cluster's configuration", c)
		}
		before = map[int64]*registry.Version{1: lm.Version(1), 2: lm.Version(2)}
	})
	checkKeptLoads(t, again, repo, before)
}
