package shm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestRegisterRefusesSymlink: a key that names a symbolic link in the
// directory is refused, as shm_open (O_NOFOLLOW) refuses it, so that a
// client on the host cannot have the server map, read and write any
// file its user can open (its data directory, its blobs) by linking it
// into /dev/shm.
func TestRegisterRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	object(t, other, "secret", 4096)
	if err := os.Symlink(filepath.Join(other, "secret"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tb := New(dir)
	defer tb.Close()
	err := tb.Register("r", "/link", 0, 4096)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Register of a symbolic link: %v; want ErrInvalid", err)
	}
}
