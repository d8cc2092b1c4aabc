package blobs

import (
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
)

// ParseDigest returns the hex of a digest written "sha256:<hex>" or as the
// bare hex, or ErrBadDigest unless the hex is exactly 64 lowercase hex digits.
func ParseDigest(s string) (string, error) {
	h, _ := strings.CutPrefix(s, "sha256:")
	if !validHex(h) {
		return "", fmt.Errorf("cannot parse digest %q: %w", s, ErrBadDigest)
	}
	return h, nil
}

// validHex reports whether s is 64 lowercase hex digits, which also makes it
// safe as a file name: no separators, no dots, no case folding.
func validHex(s string) bool {
	if len(s) != 2*32 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkHex returns ErrBadDigest, wrapped with s, unless validHex(s).
func checkHex(s string) error {
	if !validHex(s) {
		return fmt.Errorf("invalid blob hex %q: %w", s, ErrBadDigest)
	}
	return nil
}

// sumHex returns the hex of what h has hashed.
func sumHex(h hash.Hash) string {
	return hex.EncodeToString(h.Sum(nil))
}

// plusOne returns n+1, saturating at math.MaxInt64: the read limit that lets
// a reader show that it has more than n bytes.
func plusOne(n int64) int64 {
	if n == math.MaxInt64 {
		return n
	}
	return n + 1
}
