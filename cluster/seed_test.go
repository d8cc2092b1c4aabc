package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// A lone node that bootstraps a group registers its local models with
// their configuration, config.pbtxt included: without it the reconciler
// would load the model again with the node's defaults.
func TestSeedKeepsConfigPbtxt(t *testing.T) {
	cfg := seedConfig(t, "instance_group [ { count: 3, kind: KIND_CPU } ]\n")
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	var registered []byte
	testenv.CheckFor(t, 5*time.Second, func() error {
		st, _ := n.FSM().State()
		if st.Models["m"] == nil || st.Models["m"].Version(1) == nil {
			return fmt.Errorf("m not registered yet")
		}
		registered = st.Models["m"].Version(1).Config
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("status %+v; want ready", s)
		}
		return nil
	})
	c, err := registry.ParseModelConfig(registered)
	if err != nil || c.Instances != 3 || c.Device != "cpu" {
		t.Fatalf("registered configuration %q parses to instances %d, device %q, %v; want 3 on cpu, as config.pbtxt says", registered, c.Instances, c.Device, err)
	}
	if v := cfg.Registry.Model("m").Version(1); v.Config.Instances != 3 {
		t.Fatalf("version 1 serves with %d instances; want 3", v.Config.Instances)
	}
}

// A lone node that bootstraps a group with --register-local-models is
// settling (not ready) until its local models are registered: a script
// that waits for readiness and then uploads a version of one of them was
// refused ("served from this node's --models directory, outside the
// cluster") in the moment between.
func TestSettlingUntilLocalModelsRegistered(t *testing.T) {
	cfg := seedConfig(t, "")
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	settling, why := n.Settling()
	if !settling || !strings.Contains(why, "registering") {
		t.Fatalf("just started: settling %v (%q); want settling while it registers its local models", settling, why)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if settling, why := n.Settling(); settling {
			return fmt.Errorf("still settling: %s", why)
		}
		return nil
	})
	if st, _ := n.FSM().State(); st.Models["m"] == nil {
		t.Fatal("settled before model m was registered")
	}
}

// seedConfig returns the configuration of a lone node that registers its
// local models, whose repository holds model "m" version 1, loaded, with
// pbtxt as its config.pbtxt when not empty.
func seedConfig(t *testing.T, pbtxt string) Config {
	t.Helper()
	_, tr := raft.NewInmemTransport("127.0.0.9:7000")
	cfg := testConfig(t, "seed", tr, "")
	cfg.RegisterLocal = true
	dir := cfg.Registry.Dir()
	if err := os.MkdirAll(filepath.Join(dir, "m", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m", "1", "model.onnx"), []byte("good one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pbtxt != "" {
		if err := os.WriteFile(filepath.Join(dir, "m", "config.pbtxt"), []byte(pbtxt), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfg.Registry.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A lone node that registers its local models says, per model, which
// version became production and which version directories it left out
// (by the model's version_policy): after a wiped --data, the highest
// directory may be a candidate the cluster rolled back, and the log is
// where the operator sees that it is production now.
func TestSeedLogsProductionAndVersionsLeftOut(t *testing.T) {
	cfg := seedConfig(t, "")
	dir := filepath.Join(cfg.Registry.Dir(), "m", "2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("rolled back"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Registry.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	log := &nodeLog{}
	tlogf := cfg.Logf
	cfg.Logf = func(format string, args ...any) {
		log.add(fmt.Sprintf(format, args...))
		tlogf(format, args...)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	testenv.CheckFor(t, 10*time.Second, func() error {
		if settling, why := n.Settling(); settling {
			return fmt.Errorf("still settling: %s", why)
		}
		return nil
	})
	if got := log.count(`model "m": production is version 2`, "version_policy", "not registered: version 1"); got != 1 {
		t.Fatalf("lines naming production 2 and version 1 left out: got %d; want 1", got)
	}
}
