package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// gpuLessLoad is a node without the GPU a configuration names: a load on
// device cuda:N fails, any other loads.
func gpuLessLoad(b []byte, cfg registry.ModelConfig) (registry.Backend, error) {
	if cfg.Device != "" && cfg.Device != "cpu" {
		return nil, fmt.Errorf("no device %s on this node", cfg.Device)
	}
	return textBackend{}, nil
}

// TestServedFileRecordsWhatServes: a promoted version whose config this
// node cannot load (a GPU device) leaves versions 1 and 2 serving as the
// experiment's arms; served.json records those, not the load that failed,
// so the restart serves them again (found by a reviewing helper: it
// recorded [1 2 3] with the GPU config, and the restart fell back to the
// directory's latest version alone, outside any arm).
func TestServedFileRecordsWhatServes(t *testing.T) {
	_, tr := raft.NewInmemTransport("unused")
	cfg := testConfig(t, "solo", tr, "")
	cfg.inmem = nil
	cfg.RaftAddr = testenv.FreeAddr(t)
	repo, err := registry.New(registry.Config{Dir: cfg.Registry.Dir(), Load: gpuLessLoad, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	cfg.Registry = repo
	n := startLeading(t, cfg)
	c := &testCluster{t: t, nodes: []*Node{n}}
	for _, content := range []string{"cfg one", "cfg two"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	e := &route.Experiment{Name: "exp", Arms: []route.Arm{
		{Name: "control", Version: 1, Weight: 1},
		{Name: "treatment", Version: 2, Weight: 1},
	}}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetExperiment, Model: "m", Experiment: e}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if got := loadedVersions(repo, "m"); !slices.Equal(got, []int64{1, 2}) {
			return fmt.Errorf("m serves %v; want 1 and 2", got)
		}
		return nil
	})
	// Version 3, promoted, with a configuration for a GPU.
	const three = "cfg three, for a GPU"
	if _, _, err := n.cfg.Blobs.Put(bytes.NewReader([]byte(three)), 1<<20); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(three))
	if res, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(three)), Created: time.Unix(1, 0).UTC(), Origin: n.ID(), Promote: true,
		Config: json.RawMessage(`{"device":"cuda:7"}`)}); err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["3"]; s.State != VersionFailed {
			return fmt.Errorf("m/3: %+v; want failed", s)
		}
		if got := loadedVersions(repo, "m"); !slices.Equal(got, []int64{1, 2}) {
			return fmt.Errorf("m serves %v; want 1 and 2", got)
		}
		var served map[string]servedModel
		if err := loadJSON(filepath.Join(cfg.DataDir, servedFile), &served); err != nil {
			return err
		}
		if !slices.Equal(served["m"].Versions, []int64{1, 2}) || len(served["m"].Config) != 0 {
			return fmt.Errorf("served.json: %+v; want versions 1 and 2 with no config, what serves", served)
		}
		return nil
	})
	var served map[string]servedModel
	_ = loadJSON(filepath.Join(cfg.DataDir, servedFile), &served)
	t.Logf("before the restart m serves %v (arms 1 and 2, unversioned -> 1); served.json says %v with config %s", loadedVersions(repo, "m"), served["m"].Versions, served["m"].Config)

	// The restart, as restartAsServe does it, on the same node.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	again, err := registry.New(registry.Config{Dir: cfg.Registry.Dir(), Load: gpuLessLoad, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if err := RestoreProduction(cfg.DataDir, again); err != nil {
		t.Log(err)
	}
	restored, err := RestoredLoads(cfg.DataDir)
	if err != nil {
		t.Log(err)
	}
	if err := again.LoadRestored(restored); err != nil {
		t.Logf("LoadRestored: %v", err)
	}
	var errs []error
	if got := loadedVersions(again, "m"); !slices.Contains(got, 1) || !slices.Contains(got, 2) {
		errs = append(errs, fmt.Errorf("after the restart m serves versions %v; before it served 1 and 2, the experiment's arms", got))
	}
	for i := range 20 {
		unit := fmt.Sprint("user-", i)
		v, arm, err := again.AcquireUnversioned("m", []byte(unit))
		if err != nil {
			errs = append(errs, fmt.Errorf("unit %s: %v", unit, err))
			break
		}
		v.Release()
		if arm == "" {
			errs = append(errs, fmt.Errorf("unit %s: served by version %d (device %q) outside any arm; before the restart its arm served it", unit, v.Number, v.Config.Device))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
