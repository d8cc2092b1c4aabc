package trafficlog

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
)

// idFile names the file in a log's directory that holds the log's
// identity.
const idFile = "log-id"

// loadID returns the identity of the log in dir, making a new one when
// dir has none or fresh says the log is new (no segments: the directory
// was wiped, or the node replaced). Positions start over in a new log,
// and one a reader kept may land inside a record, or on one it never
// read, of it: the identity tells the reader so.
func loadID(dir string, fresh bool, logf func(string, ...any)) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	switch {
	case fresh:
		// A new log, whatever a file left says.
	case err == nil:
		id := strings.TrimSpace(string(b))
		if validID(id) {
			return id, nil
		}
		// Damaged: a new identity costs readers one read of the log from
		// its oldest record, which is what a log they cannot identify
		// deserves.
		logf(logging.Warning+"traffic log: its identity in %s is damaged (%q); it gets a new one, and readers read it again from its oldest record", path, b)
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("cannot read the traffic log's identity: %w", err)
	}
	var raw [8]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := durable.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cannot write the traffic log's identity to %s: %w", path, err)
	}
	return id, nil
}

// validID reports whether id is one loadID makes: 16 lowercase hex digits.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ID returns the log's identity: random, made with the log's directory,
// and kept in it (the file log-id). Two logs with one identity are one
// log, its positions comparable.
func (l *Log) ID() string { return l.id }
