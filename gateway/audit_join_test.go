package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// POST /v1/cluster/join changes the replicated state (a new voter, or a
// member's record: the http_addr peers forward writes to and pull blobs
// from), so it is audited like the other admin writes.
func TestJoinIsAudited(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	r := s.admin(t, "GET", "/v1/cluster", nil)
	var v struct {
		Members []struct {
			ID       string `json:"id"`
			RaftAddr string `json:"raft_addr"`
			HTTPAddr string `json:"http_addr"`
		} `json:"members"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || len(v.Members) != 1 {
		t.Fatalf("GET /v1/cluster: %s", r)
	}
	me := v.Members[0]
	const elsewhere = "http://127.0.0.1:1"
	body := fmt.Sprintf(`{"id":%q,"raft_addr":%q,"http_addr":%q}`, me.ID, me.RaftAddr, elsewhere)
	if r := s.admin(t, "POST", "/v1/cluster/join", []byte(body)); r.code != 200 {
		t.Fatalf("join: %s", r)
	}
	if r := s.admin(t, "GET", "/v1/cluster", nil); !strings.Contains(string(r.body), elsewhere) {
		t.Fatalf("the member record did not change: %s", r)
	}
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, "admin: ") && strings.Contains(l, "took node "+me.ID+" into the cluster") && strings.Contains(l, elsewhere) {
			return
		}
	}
	t.Fatalf("member %s's http address was changed through POST /v1/cluster/join (from %s to %s) with no audit line", me.ID, me.HTTPAddr, elsewhere)
}
