package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/testenv"
)

// A node whose disk keeps less free than its guard asks does not pull a
// version's blob from a peer: the version fails there, saying why, and
// an upload to it is refused before anything is stored.
func TestLowDiskRefusesPullsAndUploads(t *testing.T) {
	trans := inmemNet(2, 7500)
	cfg0 := testConfig(t, "n0", trans[0], "")
	n0 := startTCP(t, cfg0)
	c := &testCluster{t: t, nodes: []*Node{n0}}
	c.waitLeader(n0)
	cfg1 := testConfig(t, "n1", trans[1], "http://127.0.0.1:1")
	cfg1.Disk = diskfree.New(cfg1.DataDir, 1<<62)
	n1 := startTCP(t, cfg1)
	if err := n0.JoinLocal(fsm.Member{ID: "n1", RaftAddr: cfg1.RaftAddr, HTTPAddr: cfg1.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	content := []byte("only on n0")
	if _, _, err := cfg0.Blobs.Put(bytes.NewReader(content), 1<<20); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if _, err := n0.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(content)), Created: time.Unix(1, 0).UTC(), Origin: "n0"}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		s := n1.LocalStatus().Models["m"]["1"]
		if s.State != VersionFailed || !strings.Contains(s.Reason, "--min-free-disk") {
			return fmt.Errorf("n1: m version 1 %+v; want failed for disk space", s)
		}
		return nil
	})
	if cfg1.Blobs.Has(hex.EncodeToString(sum[:])) {
		t.Fatal("n1 stored the blob")
	}
	_, _, err := n1.Upload(t.Context(), "m2", []byte("model bytes"), false, nil)
	if err == nil || !strings.Contains(err.Error(), "--min-free-disk") {
		t.Fatalf("upload on the low node: %v; want it refused for disk space", err)
	}
}
