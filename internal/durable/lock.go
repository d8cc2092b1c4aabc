package durable

import (
	"errors"
	"os"
	"syscall"
)

// ErrLocked means another process, or another open of the file in this
// one, holds the lock Lock asked for.
var ErrLocked = errors.New("the lock is held")

// Lock takes an exclusive lock on the file at path, creating it, without
// waiting: a directory or a state file that two writers must never share
// (their data directory, traffic log or trainer state). The lock goes
// with release, or with the process, however it ends; the file stays.
// The error is ErrLocked when another holds it, else why the file could
// not be opened or locked.
func Lock(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
