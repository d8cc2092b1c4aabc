package trafficlog

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile names the file in a log's directory that an open Log holds an
// exclusive lock on. Not serve's LOCK: --traffic-dir may be --data
// itself, which serve has locked already through its own LOCK file.
const lockFile = "traffic.lock"

// lockDir takes the exclusive lock on dir's lock file, so that two logs
// (two servers given one --traffic-dir) never write one directory; the
// lock goes with the returned file, or with the process.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the traffic log's lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (lock %s held); give each server its own --traffic-dir", ErrLocked, dir, path)
	}
	return f, nil
}
