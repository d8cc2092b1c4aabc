package cluster

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A node joining on fresh raft state says so in a header, not in the
// member's JSON: earlier releases decode join requests and commands
// strictly, and a "fresh" field in the set_member entry would make an
// earlier-release follower refuse it (its state then lacks the member).
func TestFreshJoinReadableByEarlierRelease(t *testing.T) {
	cfg0 := tcpConfig(t, "n0", "")
	n0 := startTCP(t, cfg0)
	waitLeads(t, n0)
	n1 := startTCP(t, tcpConfig(t, "n1", "http://127.0.0.1:1"))
	self := n1.self()
	if !self.Fresh {
		t.Fatal("a fresh node does not call itself fresh")
	}
	if err := joinOn(t, n0, self); err != nil {
		t.Fatal(err)
	}
	// The set_member command as e822296 decodes it.
	type oldMember struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr"`
		Voter    bool   `json:"voter"`
		RaftTLS  bool   `json:"raft_tls,omitempty"`
	}
	type oldCommand struct {
		Op     string     `json:"op"`
		Member *oldMember `json:"member,omitempty"`
	}
	last := n0.raft.LastIndex()
	found := false
	for i := uint64(1); i <= last; i++ {
		var l raft.Log
		if n0.logs.GetLog(i, &l) != nil || l.Type != raft.LogCommand || !strings.Contains(string(l.Data), `"set_member"`) || !strings.Contains(string(l.Data), `"n1"`) {
			continue
		}
		found = true
		dec := json.NewDecoder(bytes.NewReader(l.Data))
		dec.DisallowUnknownFields()
		var c oldCommand
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("log entry %d, n1's set_member %s: an earlier-release follower refuses it: %v", i, l.Data, err)
		}
	}
	if !found {
		t.Fatal("no set_member entry for n1 in the leader's log")
	}
	if b, _ := json.Marshal(self); strings.Contains(string(b), "fresh") {
		t.Fatalf("a join request's body names its freshness: %s", b)
	}
}
