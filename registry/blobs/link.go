package blobs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/infergate/infergate/internal/durable"
)

// linkFile is os.Link; tests replace it to exercise the copy fallback.
var linkFile = os.Link

// makeDirs is durable.MakeDirs; tests replace it to see what Link creates.
var makeDirs = durable.MakeDirs

// Link makes blob hex appear at path, such as a model repository's
// DIR/<model>/<version>/model.onnx, creating its parent directories and
// atomically replacing whatever was at path. It makes a hard link where the
// filesystem allows, else a durable copy. Either way the file outlives
// Remove of the blob; a hard link shares the blob's bytes, so nobody may
// write to path in place. It first removes the temp files that a Link to
// the same path cut short by a crash left beside it (each may hold a
// model's bytes), so calls for one path must not overlap.
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
	if err := makeDirs(dir); err != nil {
		return fmt.Errorf("cannot link blob %s: %w", hex, err)
	}
	// Temp files sit beside path, so that the rename stays on one filesystem.
	removeTemps(path)
	tmp := filepath.Join(dir, tempPrefix(path)+rand.Text())
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
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("cannot link blob %s to %q: %w", hex, path, err)
	}
	return nil
}

// tempPrefix is how the names of Link's temp files for path begin.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// removeTemps removes the temp files of Links to path that never finished.
// It does its best: a temp file it cannot remove costs disk space only.
func removeTemps(path string) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	prefix := tempPrefix(path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}

// copyFile copies src to a temp file beside dst and commits it as dst.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), tempPrefix(dst)+"*")
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
