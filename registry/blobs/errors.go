package blobs

import "errors"

var (
	// ErrBadDigest means a digest or hex that is not sha256 written as
	// exactly 64 lowercase hex digits.
	ErrBadDigest = errors.New("invalid blob digest")
	// ErrNotFound means the store holds no blob with the requested hex.
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge means a reader yielded more bytes than Put allows;
	// nothing was stored.
	ErrTooLarge = errors.New("blob too large")
	// ErrDigestMismatch means bytes whose sha256 is not the expected one:
	// from PutExpect, nothing was stored; from Verify, the corrupt blob was
	// removed and should be fetched again.
	ErrDigestMismatch = errors.New("blob digest mismatch")
	// ErrSizeMismatch means a reader yielded fewer or more bytes than
	// PutExpect expected; nothing was stored.
	ErrSizeMismatch = errors.New("blob size mismatch")
)
