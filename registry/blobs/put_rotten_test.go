package blobs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A blob that rotted in the store (same size, other bytes) is replaced
// when the same bytes are stored again, as a model uploaded anew is
// (cluster.Node.Upload puts the bytes, then registers the digest Put
// returns): before, Put kept the rotten file and reported success.
func TestPutReplacesRottenBlob(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("model bytes, stored twice")
	hex, n, err := s.Put(bytes.NewReader(good), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Path(hex)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, bytes.ToUpper(good), 0o644); err != nil { // rot
		t.Fatal(err)
	}
	if _, _, err := s.Put(bytes.NewReader(good), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(hex, n); err != nil {
		t.Errorf("Put of good bytes returned success, yet the store holds no good copy: %v", err)
	}
}

// Bytes stored again make the blob's modification time now: the cluster's
// sweep counts a blob's grace from it, and before, the bytes of a version
// retired over an hour ago, uploaded again, counted as old and unheld
// could be removed while their new version was being registered.
func TestPutAgainRefreshesTime(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("a retired version's bytes, uploaded again")
	hex, _, err := s.Put(bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.Path(hex), old, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(bytes.NewReader(b), 1<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path(hex))
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(fi.ModTime()); age > time.Minute {
		t.Fatalf("stored again, the blob is %s old; want a moment", age.Round(time.Second))
	}
}

// Bytes stored again leave the time of a blob that a repository file
// links (Link's hard link shares the blob's inode, so its time is the
// file's): the registry takes a file whose time changed for a new one and
// loads the serving version again. Before, uploading bytes a live version
// already had (the same model under another name, or again with another
// config) reloaded that version.
func TestPutAgainLeavesALinkedFileAlone(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("a live version's bytes, uploaded again")
	hex, _, err := s.Put(bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m", "1", "model.onnx")
	if err := s.Link(hex, path); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(bytes.NewReader(b), 1<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Fatalf("the linked repository file's time is %s after the bytes were stored again; want %s, left alone", fi.ModTime(), old)
	}
}
