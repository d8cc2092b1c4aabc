package blobs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// linkFile is os.Link; tests replace it to exercise the copy fallback.
var linkFile = os.Link

// Link makes blob hex appear at path, such as a model repository's
// DIR/<model>/<version>/model.onnx, creating its parent directories and
// atomically replacing whatever was at path. It makes a hard link where the
// filesystem allows, else a durable copy. Either way the file outlives
// Remove of the blob; a hard link shares the blob's bytes, so nobody may
// write to path in place.
func (s *Store) Link(hex, path string) error {
	if err := checkHex(hex); err != nil {
		return err
	}
	src := filepath.Join(s.sha, hex)
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot link blob %s: %w", hex, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("cannot link blob %s: %w", hex, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot link blob %s: %w", hex, err)
	}
	// Temp files sit beside path, so that the rename stays on one filesystem.
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+rand.Text())
	if linkFile(src, tmp) != nil {
		if err := copyFile(src, path); err != nil {
			return fmt.Errorf("cannot copy blob %s to %q: %w", hex, path, err)
		}
		return nil
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot link blob %s to %q: %w", hex, path, err)
	}
	// Renaming a link onto a name of the same file does nothing and succeeds
	// (path was already this blob): the temp name would stay, and keep the
	// blob's bytes on disk after the blob goes.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot link blob %s to %q: %w", hex, path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("cannot link blob %s to %q: %w", hex, path, err)
	}
	return nil
}

// copyFile copies src to a temp file beside dst and commits it as dst.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, in); err != nil {
		return err
	}
	return commit(f, dst)
}
