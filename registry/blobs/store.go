package blobs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/infergate/infergate/internal/durable"
)

// Store is a content-addressed blob store in one directory. It holds no
// locks: every write goes to its own temp file and is published by an
// atomic rename, so its methods are safe for concurrent use. Verify and
// Remove racing with a write of the same blob may leave it absent, which a
// caller handles by fetching it again.
type Store struct {
	dir string
	sha string // dir/sha256: committed blobs
	tmp string // dir/tmp: temp files of writes in progress
}

// Open opens the store in dir, creating dir/sha256 and dir/tmp if needed,
// and removes the temp files that a crash left behind.
func Open(dir string) (*Store, error) {
	s := &Store{
		dir: dir,
		sha: filepath.Join(dir, "sha256"),
		tmp: filepath.Join(dir, "tmp"),
	}
	for _, d := range []string{s.sha, s.tmp} {
		if err := durable.MakeDirs(d); err != nil {
			return nil, fmt.Errorf("cannot open blob store: %w", err)
		}
	}
	if err := durable.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("cannot open blob store: %w", err)
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("cannot open blob store: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return nil, fmt.Errorf("cannot remove stale temp file: %w", err)
		}
	}
	return s, nil
}

// Dir returns the directory that the store was opened in.
func (s *Store) Dir() string {
	return s.dir
}

// Put stores what r yields, at most maxSize bytes, and returns its sha256
// hex and size. More bytes give ErrTooLarge and store nothing. Storing a
// blob already present returns its hex and leaves the existing file, with
// its modification time made now: the time a blob was last stored, which
// the cluster's sweep of unused blobs counts its grace from (the bytes of
// a retired version uploaded again are as new as any upload). A blob that
// a file made by Link shares keeps its time, which is that file's too.
func (s *Store) Put(r io.Reader, maxSize int64) (string, int64, error) {
	h, n, err := s.put(r, plusOne(maxSize), func(_ string, n int64) error {
		if n > maxSize {
			return fmt.Errorf("got more than %d bytes: %w", maxSize, ErrTooLarge)
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("cannot store blob: %w", err)
	}
	return h, n, nil
}

// PutExpect stores r only if it yields exactly size bytes whose sha256 is
// hex; it reads at most size+1 bytes. Otherwise it returns ErrSizeMismatch
// or ErrDigestMismatch, wrapped with the values, and stores nothing.
func (s *Store) PutExpect(r io.Reader, hex string, size int64) error {
	if err := checkHex(hex); err != nil {
		return err
	}
	_, _, err := s.put(r, plusOne(size), func(got string, n int64) error {
		switch {
		case n > size:
			return fmt.Errorf("got more than %d bytes; want %d: %w", size, size, ErrSizeMismatch)
		case n < size:
			return fmt.Errorf("got %d bytes; want %d: %w", n, size, ErrSizeMismatch)
		case got != hex:
			return fmt.Errorf("got sha256:%s; want sha256:%s: %w", got, hex, ErrDigestMismatch)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot store blob %s: %w", hex, err)
	}
	return nil
}

// put copies at most limit bytes of r into a temp file and commits it under
// its sha256 hex unless check, given that hex and the byte count, refuses.
// The temp file is removed whenever it is not committed.
func (s *Store) put(r io.Reader, limit int64, check func(hex string, n int64) error) (string, int64, error) {
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	defer func() {
		f.Close() // a second Close after commit only returns os.ErrClosed
		if tmp != "" {
			os.Remove(tmp)
		}
	}()

	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit))
	if err != nil {
		return "", 0, fmt.Errorf("failed after %d bytes: %w", n, err)
	}
	sum := sumHex(h)
	if err := check(sum, n); err != nil {
		return "", 0, err
	}
	dst := filepath.Join(s.sha, sum)
	if _, err := os.Stat(dst); err == nil {
		// Already stored, unless the stored copy rotted: then the new
		// bytes, verified, take its place.
		if s.Verify(sum, n) == nil {
			// Stored again now, unless a repository file links the blob:
			// a hard link shares its time, and the registry would take
			// the file for a new one and load its version again. A
			// linked blob is a version's on this node. A failure leaves
			// the old time, which only shortens the grace Put's doc
			// speaks of.
			if fi, err := os.Stat(dst); err == nil && links(fi) <= 1 {
				now := time.Now()
				os.Chtimes(dst, now, now)
			}
			return sum, n, nil // the temp file goes
		}
	}
	if err := commit(f, dst); err != nil {
		return "", 0, err
	}
	tmp = ""
	return sum, n, nil
}

// Has reports whether blob hex is stored. It does not check the bytes; see
// Verify.
func (s *Store) Has(hex string) bool {
	if !validHex(hex) {
		return false
	}
	_, err := os.Stat(filepath.Join(s.sha, hex))
	return err == nil
}

// Path returns the file where blob hex lives, whether or not it exists, or
// "" if hex is not 64 lowercase hex digits.
func (s *Store) Path(hex string) string {
	if !validHex(hex) {
		return ""
	}
	return filepath.Join(s.sha, hex)
}

// Open opens blob hex for reading and returns its size, or ErrNotFound.
// The caller closes the file and must not write to it.
func (s *Store) Open(hex string) (*os.File, int64, error) {
	if err := checkHex(hex); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(s.sha, hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("cannot open blob %s: %w", hex, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot open blob %s: %w", hex, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("cannot open blob %s: %w", hex, err)
	}
	return f, fi.Size(), nil
}

// Verify hashes blob hex again. A blob whose bytes are not size bytes with
// that sha256 (bit rot, truncation) is removed and ErrDigestMismatch
// returned, so that the caller fetches it again. An absent blob gives
// ErrNotFound.
func (s *Store) Verify(hex string, size int64) error {
	if err := checkHex(hex); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("cannot verify blob %s: negative size %d", hex, size)
	}
	got, n, err := hashFile(filepath.Join(s.sha, hex))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot verify blob %s: %w", hex, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cannot verify blob %s: %w", hex, err)
	}
	if got == hex && n == size {
		return nil
	}
	if err := s.Remove(hex); err != nil {
		return fmt.Errorf("cannot remove corrupt blob %s: %w", hex, err)
	}
	return fmt.Errorf("removed corrupt blob %s: got %d bytes with sha256:%s; want %d bytes: %w",
		hex, n, got, size, ErrDigestMismatch)
}

// hashFile returns the sha256 hex and the size of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return sumHex(h), n, nil
}

// Remove removes blob hex; an absent blob is not an error. Files that Link
// made stay where they are.
func (s *Store) Remove(hex string) error {
	if err := checkHex(hex); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(s.sha, hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot remove blob %s: %w", hex, err)
	}
	if err := durable.SyncDir(s.sha); err != nil {
		return fmt.Errorf("cannot remove blob %s: %w", hex, err)
	}
	return nil
}

// List returns the hexes of the stored blobs, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.sha) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("cannot list blobs: %w", err)
	}
	var hexes []string
	for _, e := range entries {
		if e.Type().IsRegular() && validHex(e.Name()) {
			hexes = append(hexes, e.Name())
		}
	}
	return hexes, nil
}

// commit makes the temp file f durable and read-only, closes it, renames it
// to dst, replacing whatever was there, and fsyncs dst's directory.
func commit(f *os.File, dst string) error {
	if err := f.Chmod(0o444); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(dst))
}
