package bench

import (
	"bytes"
	"strings"
	"testing"
)

// The idle target's value and bound never read the same while they
// differ. p50s are medians of the repetitions (--repeat 2 gives x.5), so
// a bound such as 1,000.5 µs (400.5 + 550 + 50) against a value of
// 1,001 µs, not met, must not read "1,001µs, bound 1,001µs"; nor, with
// rounds, the Detail's per-round figures.
func TestIdleTargetWithHalvesNeverReadsAsBound(t *testing.T) {
	ts := []Target{{Model: "ranker", Name: "idle p50 ≤ http-floor p50 + ort-floor b1 p50 + 50µs", Unit: "µs", Value: 1001, Bound: 1000.5, Met: false}}
	var b bytes.Buffer
	writeTargets(&b, ts, "")
	if v, bd := formatUSPair(1001, 1000.5); v == bd {
		t.Errorf("value 1001 µs and bound 1000.5 µs both read %q: %s", v, strings.TrimSpace(b.String()))
	}
	if d := describeRounds([]figure{{1234, 1231}, {1234, 1231}}, true, "µs"); strings.Contains(d, "1.23ms against 1.23ms") {
		t.Errorf("per-round detail reads %q for 1,234 µs against 1,231 µs, not met", d)
	}
}
