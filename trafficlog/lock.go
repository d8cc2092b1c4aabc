package trafficlog

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/infergate/infergate/internal/durable"
)

// lockFile names the file in a log's directory that an open Log holds an
// exclusive lock on. Not serve's LOCK: --traffic-dir may be --data
// itself, which serve has locked already through its own LOCK file.
const lockFile = "traffic.lock"

// lockDir takes the exclusive lock on dir's lock file, so that two logs
// (two servers given one --traffic-dir) never write one directory; the
// lock goes with release, or with the process.
func lockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, lockFile)
	release, err = durable.Lock(path)
	switch {
	case errors.Is(err, durable.ErrLocked):
		return nil, fmt.Errorf("%w: %s (lock %s held); give each server its own --traffic-dir", ErrLocked, dir, path)
	case err != nil:
		return nil, fmt.Errorf("cannot lock the traffic log's lock file: %w", err)
	}
	return release, nil
}
