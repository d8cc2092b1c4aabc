package gateway_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/gateway"
)

// A member whose id has a '/' in it (serve's --node-id allows one) is
// reached by DELETE /v1/cluster/members/{id} with the id escaped, as
// infergate cluster remove sends it: the path was split on the decoded
// '/', and the call answered 404 "no such admin endpoint", so such a
// member could never be removed.
func TestRemoveMemberWithSlashInID(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startServer(t, serverOptions{cfg: cfg})
	attachNode(t, s, adminToken, func(cc *cluster.Config) { cc.NodeID = "rack1/n1" })
	// The only voter: the refusal shows the call reached the member.
	r := s.admin(t, "DELETE", "/v1/cluster/members/rack1%2Fn1", nil)
	if r.code != fasthttp.StatusConflict || !strings.Contains(string(r.body), "last voter") {
		t.Fatalf("DELETE /v1/cluster/members/rack1%%2Fn1: got %s; want 409 saying it is the last voter", r)
	}
}
