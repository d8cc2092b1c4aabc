package blobs

import (
	"bytes"
	"os"
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
