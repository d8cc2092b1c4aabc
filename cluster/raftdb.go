package cluster

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// checkRaftDB reads every key of the raft log at path, read-only, and
// returns errDamaged when a page on the way does not hold together: bbolt would panic
// on such a page later, in raft's first read of the log, with nothing
// to tell the operator what to do. A missing file is fine (a fresh
// node). It costs one pass over the file, which raft keeps small.
func checkRaftDB(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return fmt.Errorf("%w: %w", errDamaged, err)
		}
		return nil // raft-boltdb's own open says what is wrong
	}
	defer db.Close()
	// A page id past the file's end makes bbolt read outside its
	// mapping: a fault, which this turns into a panic on this goroutine.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errDamaged, r)
		}
	}()
	// Every key of every bucket, on this goroutine: bbolt asserts (panics)
	// on a page that does not hold together, which recover turns into
	// errDamaged. (tx.Check would run its walk on a goroutine of its own.)
	return db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(_, _ []byte) error { return nil })
		})
	})
}

// errDamaged marks a raft log whose file does not hold together.
var errDamaged = errors.New("damaged")

// damagedError says how to rebuild a node whose raft log at path (in the
// raft directory dir) is damaged: err says how.
func (n *Node) damagedError(path, dir string, err error) error {
	return fmt.Errorf("cluster: the raft log %s is damaged (%v). If this node has a group, the others hold the state: remove it there (\"infergate cluster remove %s\" on another member), move %s aside, and start it again with --join, which fetches everything back. A lone node's cluster state (its uploaded versions, aliases and experiments) is lost with the file: move %s aside and start again, then upload the models again",
		path, strings.TrimPrefix(err.Error(), errDamaged.Error()+": "), n.cfg.NodeID, dir, dir)
}
