// Package durable writes files and creates directories so that a crash
// leaves either what was there before or the whole of what was written,
// and loses no directory entry leading to it: data is fsynced before it is
// renamed into place, and every directory that gains an entry is fsynced
// after.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// syncDir is SyncDir; tests replace it to see which directories are synced.
var syncDir = SyncDir

// SyncDir fsyncs directory dir, making the renames, removals and new
// entries in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MakeDirs creates dir and its missing parents, as os.MkdirAll does, and
// fsyncs the parent of each directory it created: without that, a crash
// may lose a new directory, and with it every file renamed into it since,
// however durable each rename was in its own directory.
func MakeDirs(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Deepest first: a crash part way leaves the new directories either
	// reachable with their entries or not reachable at all.
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile replaces the file at path with data, with permissions perm: a
// temp file beside it is written and fsynced, renamed over path, and the
// directory fsynced. A reader sees the old file or the whole new one, and
// so does whoever looks after a crash. The directory must exist.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}
