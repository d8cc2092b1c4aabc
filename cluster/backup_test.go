package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry/blobs"
)

// readArchive reads a backup written to buf and returns its manifest,
// its state and its blobs' bytes by digest.
func readArchive(t *testing.T, data []byte) (*BackupManifest, *fsm.State, map[string][]byte) {
	t.Helper()
	got := map[string][]byte{}
	m, state, err := ReadBackup(bytes.NewReader(data), func(bl BackupBlob, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[bl.SHA256] = b
		return err
	})
	if err != nil {
		t.Fatalf("ReadBackup: %v", err)
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		t.Fatal(err)
	}
	st, _ := f.State()
	return m, st, got
}

func takeBackup(t *testing.T, n *Node) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := n.Backup(ctx, "test")
	if err != nil {
		t.Fatalf("Backup on %s: %v", n.ID(), err)
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	return buf.Bytes()
}

// TestBackupUnderWritesIsTheStateAtItsIndex takes backups from the leader
// (a follower's first asks the leader for its commit index over HTTP,
// which this in-process group lacks) while versions are registered one after another, and
// checks that each archive holds exactly the writes up to its raft index,
// with every live version's blob, verified.
func TestBackupUnderWritesIsTheStateAtItsIndex(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	if _, err := c.register(leader, "m", "model one"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.register(leader, "m", "model two"); err != nil {
		t.Fatal(err)
	}
	if r := mustApply(t, leader, fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 2}); r.Version != 2 {
		t.Fatalf("retired %d; want 2", r.Version)
	}
	c.waitConverged(c.nodes...)

	var (
		mu      sync.Mutex
		indexOf = map[int64]uint64{} // version of w -> raft index of its write
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var to *Node
			for _, n := range c.nodes {
				if n.IsLeader() {
					to = n
				}
			}
			if to == nil {
				time.Sleep(20 * time.Millisecond) // an election: not an assertion
				continue
			}
			res, err := c.register(to, "w", fmt.Sprintf("w content %d", i))
			if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnknownOutcome) {
				continue // a loaded machine cost the group its leader
			}
			if err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			mu.Lock()
			indexOf[res.Version] = res.Index
			mu.Unlock()
		}
	}()
	checked := 0
	for i := range 6 {
		n := c.waitLeader(c.nodes...)
		// Some writes between two backups, and more going on during each.
		testenv.CheckFor(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(indexOf) < 3*(i+1) {
				return fmt.Errorf("%d writes so far", len(indexOf))
			}
			return nil
		})
		data := takeBackup(t, n)
		m, st, got := readArchive(t, data)
		mu.Lock()
		want := map[int64]bool{}
		for v, idx := range indexOf {
			if idx <= m.Index {
				want[v] = true
			}
		}
		mu.Unlock()
		have := map[int64]bool{}
		if w := st.Model("w"); w != nil {
			for _, v := range w.Versions {
				have[v.Number] = true
			}
		}
		for v := range want {
			if !have[v] {
				t.Errorf("backup %d from %s at index %d lacks w version %d, written at index %d", i, n.ID(), m.Index, v, indexOf[v])
			}
		}
		for v := range have {
			mu.Lock()
			idx, ok := indexOf[v]
			mu.Unlock()
			if ok && idx > m.Index {
				t.Errorf("backup %d from %s at index %d holds w version %d, written later at index %d", i, n.ID(), m.Index, v, idx)
			}
		}
		// No experiment runs: format 1, which the release before reads.
		if m.Term == 0 || m.NodeID != n.ID() || m.Format != backupFormatNoCounts || len(m.Members) != 3 {
			t.Errorf("manifest: term %d, node %q, format %d, %d members; want a term, %s, %d, 3", m.Term, m.NodeID, m.Format, len(m.Members), n.ID(), backupFormatNoCounts)
		}
		// Every live version's blob, no retired one's.
		if len(got) != len(m.Blobs) || m.Versions != len(m.Blobs) {
			t.Errorf("archive holds %d blobs, manifest lists %d for %d versions; want one per version", len(got), len(m.Blobs), m.Versions)
		}
		for _, v := range st.Model("m").Versions {
			_, ok := got[v.SHA256]
			if ok != (v.Stage != fsm.StageRetired) {
				t.Errorf("m version %d (%s): in the archive %v", v.Number, v.Stage, ok)
			}
		}
		for h, b := range got {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != h {
				t.Errorf("blob %s holds other bytes", h)
			}
		}
		if len(have) > 0 {
			checked++
		}
	}
	close(stop)
	<-done
	if checked < 3 {
		t.Fatalf("only %d backups came while writes went on; want 3 at least", checked)
	}
}

func mustApply(t *testing.T, n *Node, c fsm.Command) *fsm.Result {
	t.Helper()
	res, err := n.ApplyLocal(c)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBackupNamesAMissingBlob removes a version's blob from the node
// asked (no peer can give it here: no HTTP) and expects the backup
// refused, naming the blob and its version.
func TestBackupNamesAMissingBlob(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", "model one"); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("model one"))
	h := hex.EncodeToString(sum[:])
	testenv.CheckFor(t, 5*time.Second, func() error {
		if s := n.LocalStatus().Models["m"]["1"]; s.State != VersionReady {
			return fmt.Errorf("m 1: %+v", s)
		}
		return nil
	})
	if err := n.cfg.Blobs.Remove(h); err != nil {
		t.Fatal(err)
	}
	_, err := n.Backup(context.Background(), "test")
	if !errors.Is(err, ErrBackupBlobMissing) || !strings.Contains(err.Error(), h) || !strings.Contains(err.Error(), "m:1") {
		t.Fatalf("got %v; want ErrBackupBlobMissing naming sha256:%s and m:1", err, h)
	}
	// The refusal released the node: a second try is not "busy".
	if _, err := n.Backup(context.Background(), "test"); errors.Is(err, ErrBackupBusy) {
		t.Fatalf("second backup: %v", err)
	}
}

// TestReadBackupRefusesDamage feeds ReadBackup truncated, flipped and
// foreign-format archives.
func TestReadBackupRefusesDamage(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", strings.Repeat("model bytes ", 200)); err != nil {
		t.Fatal(err)
	}
	data := takeBackup(t, n)
	m, _, _ := readArchive(t, data)
	f := func(name string, bad []byte, want string) {
		t.Helper()
		_, _, err := ReadBackup(bytes.NewReader(bad), nil)
		if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want ErrBadBackup saying %q", name, err, want)
		}
	}
	blobAt := bytes.Index(data, []byte("model bytes model bytes"))
	f("cut in a blob", data[:blobAt+100], "truncated")
	f("cut before the blob", data[:blobAt-512], "truncated")
	flipped := bytes.Clone(data)
	flipped[blobAt+50] ^= 1
	f("flipped byte in a blob", flipped, "damaged")
	stateAt := bytes.Index(data, []byte(`{"index"`))
	flipped = bytes.Clone(data)
	flipped[stateAt+2] ^= 1
	f("flipped byte in the state", flipped, "damaged")
	format := bytes.Replace(data, []byte(`"format": 1,`), []byte(`"format": 9,`), 1)
	f("format 9", format, "format 9")
	count := bytes.Replace(data, []byte(`"versions": 1,`), []byte(`"versions": 2,`), 1)
	f("manifest that miscounts", count, "manifest")
	f("not an archive", []byte("hello"), "backup")
	f("a state too large", retarManifest(t, data, func(m []byte) []byte {
		return regexp.MustCompile(`"state_size": [0-9]+`).ReplaceAll(m, []byte(`"state_size": 99999999999`))
	}), "at most")
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	if err := tw.WriteHeader(&tar.Header{Name: backupManifestName, Mode: 0o644, Size: 1 << 40, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	// The header only, written through: the claim alone must be refused.
	f("a manifest too large", huge.Bytes(), "manifest.json of 1099511627776 bytes; a backup's is at most")
	if m.Index == 0 {
		t.Fatal("manifest index 0")
	}
}

// TestRestoreBackupSeedsALoneVoter restores an archive of a 3-node group
// into a fresh raft directory and reads it back as Recover does: one
// voter, at the new address, with the backup's index and term, and the
// old members marked dropped.
func TestRestoreBackupSeedsALoneVoter(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(c.nodes...)
	if _, err := c.register(leader, "m", "model one"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(c.nodes...)
	path := filepath.Join(t.TempDir(), "b.tar")
	if err := os.WriteFile(path, takeBackup(t, leader), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	store, err := blobs.Open(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := RestoreBackup(path, filepath.Join(data, "raft"), store, "fresh", "127.0.0.1:20399")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Dropped, ","); got != "n0,n1,n2" {
		t.Errorf("dropped %s; want n0,n1,n2", got)
	}
	sum := sha256.Sum256([]byte("model one"))
	if err := store.Verify(hex.EncodeToString(sum[:]), 9); err != nil {
		t.Errorf("restored blob: %v", err)
	}
	r, err := Recover(filepath.Join(data, "raft"), "fresh", "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []raft.Server{{ID: "fresh", Address: "127.0.0.1:20399", Suffrage: raft.Voter}}
	if fmt.Sprint(r.Before.Servers) != fmt.Sprint(want) || r.LastIndex != res.Manifest.Index || r.LastTerm != res.Manifest.Term {
		t.Errorf("restored raft state: %v at %d/%d; want %v at %d/%d", r.Before.Servers, r.LastIndex, r.LastTerm, want, res.Manifest.Index, res.Manifest.Term)
	}
}

// retarManifest returns the archive data with its manifest changed by
// edit, its entries' headers made to fit.
func retarManifest(t *testing.T, data []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	return retar(t, data, func(name string, body []byte) ([]byte, bool) {
		if name == backupManifestName {
			body = edit(body)
		}
		return body, true
	})
}

// retar returns the archive data with each entry's body as edit makes
// it, the entries it does not keep left out, and the headers made to fit.
func retar(t *testing.T, data []byte, edit func(name string, body []byte) ([]byte, bool)) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		body, keep := edit(h.Name, body)
		if !keep {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
