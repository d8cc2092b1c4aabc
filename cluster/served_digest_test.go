package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A restarted node loads the versions it served before (served.json)
// before raft replays, and the digest check waits for the replay: with
// no leader, a file that rotted on disk served for as long as the group
// had none. served.json records each version's digest, and a file that
// no longer matches is left out of the restored loads.
func TestRestoredLoadsLeaveOutRottedFiles(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.nodes[0]
	for _, content := range []string{"version one bytes", "version two bytes"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, v := range []string{"1", "2"} {
			if s := n.LocalStatus().Models["m"][v]; s.State != VersionReady {
				return fmt.Errorf("version %s: %+v; want ready", v, s)
			}
		}
		return nil
	})
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	rot := func(v string) {
		t.Helper()
		path := filepath.Join(n.cfg.Registry.Dir(), "m", v, "model.onnx")
		// A link to the blob, read-only: the disk, not a writer, did it.
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("version "+v+" bytez"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rot("2")
	restored, err := RestoredLoads(n.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckRestoredFiles(n.cfg.DataDir, n.cfg.Registry.Dir(), restored)
	if err == nil || !strings.Contains(err.Error(), `model "m" version 2`) {
		t.Fatalf("CheckRestoredFiles: got %v; want an error naming model m version 2", err)
	}
	if got := restored["m"].VersionPolicy.Specific.Versions; !slices.Equal(got, []int64{1}) {
		t.Fatalf("restored versions of m: got %v; want [1]", got)
	}

	rot("1")
	restored, _ = RestoredLoads(n.cfg.DataDir)
	if err := CheckRestoredFiles(n.cfg.DataDir, n.cfg.Registry.Dir(), restored); err == nil {
		t.Fatal("CheckRestoredFiles: got nil; want an error naming both versions")
	}
	if cfg, ok := restored["m"]; !ok || cfg != nil {
		t.Fatalf("restored[m] = %v, %v; want present and nil: load nothing of m before raft replays", cfg, ok)
	}
}
