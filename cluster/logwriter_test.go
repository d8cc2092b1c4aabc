package cluster

import (
	"github.com/infergate/infergate/internal/loglimit"
	"slices"
	"strconv"
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
	// hclog's level is the line's, but for the first election of a node
	// that has heard from no leader since it started (every start of a
	// lone node), which is INFO.
	w.Write([]byte("[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:7081 last-leader-id=node-1\n"))
	w.Write([]byte("[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=\n"))
	w.Write([]byte("[WARN]  raft: heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election\n"))
	// raft's ERROR lines about reaching a peer are WARNING lines here
	// (a member restarting is routine); its others stay ERROR.
	w.Write([]byte("[ERROR] raft: failed to take snapshot: error=\"no space left on device\"\n"))
	want := []string{
		"WARNING: raft: failed to make requestVote RPC: target=n2 error=\"connection refused\" term=3",
		"raft: entering candidate state: term=3",
		"WARNING: raft: failed to make requestVote RPC: target=n2 error=\"connection refused\" term=3 (and 99 more since the last line)",
		"WARNING: raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:7081 last-leader-id=node-1",
		"raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=",
		"WARNING: raft: heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election",
		"ERROR: raft: failed to take snapshot: error=\"no space left on device\"",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("logged\n%q; want\n%q", lines, want)
	}
}

// A stopped peer's vote requests time out, each on a connection from
// another local port: lines that differ only in numbers count as one
// (a README walk saw 36 in 30 s).
func TestRaftLogLinesDifferingInNumbersCountAsOne(t *testing.T) {
	var lines []string
	w := newLogWriter(func(format string, args ...any) {
		lines = append(lines, args[0].(string)+args[1].(string))
	})
	for port := range 36 {
		w.Write([]byte("[ERROR] raft: failed to make requestVote RPC: error=\"read tcp 127.0.0.1:" + strconv.Itoa(44000+port) + "->127.0.0.1:7082: i/o timeout\" term=" + strconv.Itoa(3+port/10) + "\n"))
	}
	if len(lines) != 1 {
		t.Fatalf("36 lines differing in numbers logged %d: %q; want 1", len(lines), lines)
	}
	f := func(in, want string) {
		t.Helper()
		if got := loglimit.Shape(in); got != want {
			t.Errorf("loglimit.Shape(%q) = %q; want %q", in, got, want)
		}
	}
	f("", "")
	f("term=3", "term=#")
	f("127.0.0.1:44820", "#.#.#.#:#")
	f("12ab345", "#ab#")
	f("no digits", "no digits")
	f("[server-transport 0xc0001f6b40] closing", "[server-transport #] closing")
	f("0XABCdef 0x 0xg 10xa", "# #x #xg #xa")
}

// peerTrouble knows raft v1.7.3's ERROR lines about reaching a peer
// (replication.go, raft.go's elections), as hclog writes them, from its
// errors of this node's own.
func TestRaftPeerTroubleLines(t *testing.T) {
	f := func(line string, want bool) {
		t.Helper()
		if got := peerTrouble(line); got != want {
			t.Fatalf("peerTrouble(%q): got %v; want %v", line, got, want)
		}
	}
	f(`raft: failed to appendEntries to: peer="{Voter n2 127.0.0.1:7001}" error="dial tcp 127.0.0.1:7001: connect: connection refused"`, true)
	f(`raft: failed to heartbeat to: peer=127.0.0.1:7001 backoff time=10ms error="dial tcp 127.0.0.1:7001: connect: connection refused"`, true)
	f(`raft: failed to make requestVote RPC: target="{Voter n2 127.0.0.1:7001}" error="dial tcp 127.0.0.1:7001: connect: connection refused" term=3`, true)
	f(`raft: failed to pipeline appendEntries: peer="{Voter n2 127.0.0.1:7001}" error="connection reset by peer"`, true)
	f(`raft: failed to start pipeline replication to: peer="{Voter n2 127.0.0.1:7001}" error="dial tcp 127.0.0.1:7001: connect: connection refused"`, true)
	f(`raft: peer has newer term, stopping replication: peer="{Voter n2 127.0.0.1:7001}"`, true)
	// A snapshot sent to a peer that went: replication.go writes both.
	f(`raft: failed to install snapshot: peer=n2 id=2-10-1700000000000 error="read tcp 127.0.0.1:52114->127.0.0.1:7001: read: connection reset by peer"`, true)
	f(`raft: failed to send snapshot to: peer="{Voter n2 127.0.0.1:7001}" error="read tcp 127.0.0.1:52114->127.0.0.1:7001: read: connection reset by peer"`, true)
	// This node's own.
	f(`raft: failed to install snapshot: error="snapshot is corrupt"`, false)
	f(`raft: failed to take snapshot: error="no space left on device"`, false)
	f(`raft: failed to append to logs: error="disk I/O error"`, false)
	f(`raft: failed to persist vote: error="disk I/O error"`, false)
}
