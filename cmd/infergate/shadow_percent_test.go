package main

import (
	"strings"
	"testing"
)

// TestShadowPercentZeroIsNotMissing: `--percent 0` is given, not missing:
// models shadow says 0 is out of range (found by a reviewing helper: the
// check could not tell the two apart).
func TestShadowPercentZeroIsNotMissing(t *testing.T) {
	code, stdout, stderr := runAdmin(t, modelsGroup, fakeCall{}, "shadow", "ctr", "2", "--percent", "0")
	if code != 2 {
		t.Fatalf("exit %d; want 2", code)
	}
	out := stdout + stderr
	if strings.Contains(out, "--percent is missing") {
		t.Fatalf("`--percent 0` answered as if the flag were missing:\n%s", strings.SplitN(out, "\n", 2)[0])
	}
}
