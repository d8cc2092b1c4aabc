package fsm

import "errors"

var (
	// ErrInvalid means a command that is malformed whatever the state: a
	// bad name, checksum, size or URL, an unknown op, or undecodable bytes.
	ErrInvalid = errors.New("invalid command")
	// ErrNotFound means a command names a model or version that does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a well-formed command that the current state does
	// not allow, such as retiring a version an alias points to.
	ErrConflict = errors.New("conflict")
)
