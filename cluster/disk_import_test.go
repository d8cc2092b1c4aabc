package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/testenv"
)

// A version whose file sits in --models while the blob store lacks it (a
// node started on a fresh --data beside its old --models) is adopted
// into the store, a copy; with the disk under the guard's minimum it is
// served from the file as it is, and not copied.
func TestLowDiskServesModelsFileWithoutCopy(t *testing.T) {
	trans := inmemNet(2, 7650)
	cfg0 := testConfig(t, "n0", trans[0], "")
	n0 := startTCP(t, cfg0)
	c := &testCluster{t: t, nodes: []*Node{n0}}
	c.waitLeader(n0)
	content := []byte("a model, large in real life")
	sum := sha256.Sum256(content)
	digest := hex.EncodeToString(sum[:])
	if _, _, err := cfg0.Blobs.Put(bytes.NewReader(content), 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: digest,
		Size: int64(len(content)), Created: time.Unix(1, 0).UTC(), Origin: "n0"}); err != nil {
		t.Fatal(err)
	}

	cfg1 := testConfig(t, "n1", trans[1], "http://127.0.0.1:1")
	cfg1.Disk = diskfree.New(cfg1.DataDir, 1<<62) // every write that grows the disk is refused
	// Its --models still holds the version (kept across a fresh --data).
	path := filepath.Join(cfg1.Registry.Dir(), "m", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	n1 := startTCP(t, cfg1)
	if err := n0.JoinLocal(fsm.Member{ID: "n1", RaftAddr: cfg1.RaftAddr, HTTPAddr: cfg1.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := n1.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("n1: m version 1 %+v; want ready from the file", s)
		}
		return nil
	})
	if !cfg1.Disk.Low() {
		t.Fatal("the guard is not low")
	}
	if cfg1.Blobs.Has(digest) {
		t.Fatalf("n1's disk guard is below --min-free-disk, yet the version's %d bytes were copied into its blob store (importFile, no Check)", len(content))
	}
}
