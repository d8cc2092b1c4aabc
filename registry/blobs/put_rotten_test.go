package blobs

import (
	"bytes"
	"os"
	"testing"
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
