package cluster

import (
	"strings"
	"testing"
	"time"
)

// raft's lines repeat several times a second while a group has no
// quorum; each distinct line reaches the log once a minute, with a count.
func TestRaftLogLinesRepeatOncePerMinute(t *testing.T) {
	var lines []string
	w := newLogWriter(func(format string, args ...any) {
		lines = append(lines, strings.TrimSpace(strings.Replace(format, "%s%s", args[0].(string)+args[1].(string), 1)))
	})
	vote := "[ERROR] raft: failed to make requestVote RPC: target=n2 error=\"connection refused\" term=3\n"
	for range 100 {
		w.Write([]byte(vote))
		w.Write([]byte("[INFO]  raft: entering candidate state: term=3\n"))
	}
	if len(lines) != 2 {
		t.Fatalf("200 lines of 2 kinds logged %d: %q; want 2", len(lines), lines)
	}
	w.limit.Backdate(time.Minute)
	w.Write([]byte(vote))
	if len(lines) != 3 || !strings.HasSuffix(lines[2], "term=3 (and 99 more since the last line)") {
		t.Fatalf("a minute later: %q; want the line with the 99 held back", lines[len(lines)-1])
	}
}
