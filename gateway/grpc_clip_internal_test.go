package gateway

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestClipMessage: clipMessage bounds what grpc-message takes on the wire,
// percent-encoded, and leaves valid UTF-8 valid.
func TestClipMessage(t *testing.T) {
	f := func(msg string, clipped bool) {
		t.Helper()
		got := clipMessage(msg)
		wire := 0
		for i := 0; i < len(got); {
			r, size := utf8.DecodeRuneInString(got[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				wire += 9
			case size > 1 || got[i] < ' ' || got[i] > '~' || got[i] == '%':
				wire += 3 * size
			default:
				wire++
			}
			i += size
		}
		if wire > maxStatusMessage || (utf8.ValidString(msg) && !utf8.ValidString(got)) || (got != msg) != clipped {
			t.Fatalf("%d bytes in: %d on the wire, valid %v, clipped %v; want at most %d, valid, clipped %v",
				len(msg), wire, utf8.ValidString(got), got != msg, maxStatusMessage, clipped)
		}
	}
	f("short", false)
	f(strings.Repeat("a", maxStatusMessage), false)
	f(strings.Repeat("a", 1<<20), true)
	f(strings.Repeat("é", 1<<19), true)
	f(strings.Repeat("%", 1<<12), true)
	f(strings.Repeat("\x80", 1<<12), true)
	f("x"+strings.Repeat("日本", 5000), true)
}
