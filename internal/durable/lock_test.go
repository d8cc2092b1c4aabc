package durable

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	release, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second Lock while the first holds it: %v; want ErrLocked", err)
	}
	release()
	again, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after the release: %v", err)
	}
	again()
	if _, err := Lock(filepath.Join(t.TempDir(), "missing", "LOCK")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("Lock in a missing directory: %v; want the open's error", err)
	}
}
