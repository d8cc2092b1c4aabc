package cluster

// What a node does with model bytes that no longer say what they said
// when written.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
)

// rotInPlace overwrites the file at path (and so every hard link to it)
// with rotten bytes of the same size, keeping its modification time, as
// bit rot does.
func rotInPlace(t *testing.T, path string, rotten []byte) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(rotten)) != st.Size() {
		t.Fatalf("rotten bytes: %d; want %d", len(rotten), st.Size())
	}
	os.Chmod(path, 0o644)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rotten, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Chmod(path, 0o444)
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// registerReady registers content as version 1 of model m on n, waits
// until n serves it, and returns its sha256.
func registerReady(t *testing.T, c *testCluster, n *Node, content string) string {
	t.Helper()
	if _, err := c.register(n, "m", content); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

// waitReady waits until n reports version 1 of model m ready.
func waitReady(t *testing.T, n *Node) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("status %+v; want ready", s)
		}
		return nil
	})
}

// A lone node's only copy of a version rots while the node is down (the
// stored blob, and with it the repository file, a hard link to it).
// serve loads the repository before the control plane starts, so the
// rotten file is loaded; the reconciler finds the digest wrong, reports
// the version failed, and unloads it: with no peer to fetch a good copy
// from, nothing serves it (before, the rotten bytes served for good).
func TestRottenFileLoadedAtStartIsUnloaded(t *testing.T) {
	cfg, n := startSolo(t)
	c := &testCluster{t: t, nodes: []*Node{n}}
	good := "model bytes that rot while the node is down"
	want := registerReady(t, c, n, good)
	path := filepath.Join(cfg.Registry.Dir(), "m", "1", "model.onnx")
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	rotInPlace(t, n.cfg.Blobs.Path(want), []byte(strings.ToUpper(good)))
	if b, _ := os.ReadFile(path); string(b) == good {
		t.Fatal("the repository file did not rot with its blob (not a hard link?)")
	}

	repo, again := restartAsServe(t, cfg, n, nil)
	testenv.CheckFor(t, 10*time.Second, func() error {
		if s := again.LocalStatus().Models["m"]["1"]; s.State != VersionFailed {
			return fmt.Errorf("status %+v; want failed (the blob rotted, no peer has it)", s)
		}
		for _, ver := range []int64{0, 1} {
			if v, err := repo.Acquire("m", ver); err == nil {
				v.Release()
				return fmt.Errorf("Acquire(m, %d): served by version %d loaded from bytes with sha256:%s; the cluster registered sha256:%s", ver, v.Number, v.SHA256, want)
			}
		}
		return nil
	})
}

// A stored blob rots during a run (same size, same modification time, as
// bit rot leaves them). Later a new version is promoted with a config
// that applies to every version, so the node loads version 1 again from
// its file. The reconciler's hash cache (by size and modification time)
// cannot see the rot, but the digest of what was loaded does: version 1
// is unloaded and reported failed, saying why, and version 2 serves.
func TestRotDuringRunSeenOnReload(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	good := "version one, good bytes"
	want := registerReady(t, c, n, good)
	rotInPlace(t, n.cfg.Blobs.Path(want), []byte(strings.ToUpper(good)))

	two := []byte("version two, good bytes")
	sum2 := sha256.Sum256(two)
	if _, _, err := n.cfg.Blobs.Put(bytes.NewReader(two), 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{
		Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum2[:]), Size: int64(len(two)),
		Created: time.Unix(2, 0).UTC(), Origin: n.ID(), Promote: true, Config: []byte(`{"instances": 2}`),
	}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		lm := n.cfg.Registry.Model("m")
		if lm == nil || lm.Version(2) == nil || lm.Version(2).Config.Instances != 2 {
			return fmt.Errorf("version 2 not loaded with instances 2 yet; status %+v", n.LocalStatus().Models["m"])
		}
		if v1 := lm.Version(1); v1 != nil {
			return fmt.Errorf("version 1 serves, loaded from bytes with sha256:%s (registered sha256:%s)", v1.SHA256, want)
		}
		// The reconciler routes right after the load that dropped
		// version 1: until then unversioned requests still name it.
		if d := n.cfg.Registry.DefaultVersion("m"); d != 2 {
			return fmt.Errorf("unversioned requests go to version %d", d)
		}
		// Failed for the digest, and once the reconciler has tried
		// again, for want of a good copy: this lone node has no peer.
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionFailed ||
			!strings.Contains(s.Reason, "not the registered sha256:"+want) && !strings.Contains(s.Reason, "no other member to fetch it from") {
			return fmt.Errorf("version 1 status %+v; want failed, naming the registered digest or the fetch", s)
		}
		return nil
	})
	// Unversioned requests go to production, version 2.
	v, err := n.cfg.Registry.Acquire("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	if v.Number != 2 {
		t.Fatalf("unversioned: version %d; want 2", v.Number)
	}
}
