package gateway_test

import (
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// With no admin token the admin API trusts clients on this host; one that
// came through a proxy on this host (a header a proxy adds names another
// client) is not trusted: the proxy opened the admin API to whoever
// reaches it.
func TestAdminRefusesProxiedClientsWithoutAToken(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"} {
		r := s.do(t, "POST", "/v2/repository/models/ctr/unload", nil, h, "203.0.113.9")
		if r.code != 403 || !strings.Contains(string(r.body), "--admin-token") || !strings.Contains(string(r.body), h) {
			t.Fatalf("through a proxy (%s): %d %s; want 403 naming the header and --admin-token", h, r.code, r.body)
		}
	}
	if r := s.do(t, "POST", "/v2/repository/models/ctr/unload", nil); r.code != 200 {
		t.Fatalf("from this host: %d %s; want 200", r.code, r.body)
	}
}
