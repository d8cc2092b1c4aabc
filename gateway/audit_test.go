package gateway_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
)

// Every change an admin call makes is logged once, on the node the client
// called, with the client's address and what changed; refused calls and
// reads are not.
func TestAdminChangesAreAudited(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	calls := []struct {
		method, uri, body string
		code              int
	}{
		{"POST", "/v1/models/ctr/versions", string(ctrONNX()), 201},
		{"PUT", "/v1/models/ctr/aliases/canary", `{"version":2}`, 200},
		{"PUT", "/v1/models/ctr/aliases/production", `{"version":2}`, 200},
		{"PUT", "/v1/models/ctr/experiment", `{"name":"e1","arms":[{"name":"a","version":1,"weight":90},{"name":"b","version":2,"weight":10}]}`, 200},
		{"DELETE", "/v1/models/ctr/experiment", "", 200},
		{"PUT", "/v1/models/ctr/shadow", `{"version":1,"percent":5}`, 200},
		{"DELETE", "/v1/models/ctr/shadow", "", 200},
		{"POST", "/v1/models/ctr/rollback", "", 200},
		{"PUT", "/v1/models/ctr/aliases/production", `{"version":9}`, 404},
		{"GET", "/v1/models/ctr", "", 200},
	}
	for _, c := range calls {
		if r := s.admin(t, c.method, c.uri, []byte(c.body)); r.code != c.code {
			t.Fatalf("%s %s: %s; want %d", c.method, c.uri, r, c.code)
		}
	}
	var got []string
	for _, l := range strings.Split(s.log.String(), "\n") {
		// The client's address comes first (the test's in-memory
		// listener has none to give: 0.0.0.0).
		if _, rest, ok := strings.Cut(l, "admin: 0.0.0.0 "); ok {
			got = append(got, rest)
		}
	}
	want := []string{
		`uploaded model "ctr" version 2 (sha256:` + sha256Hex(ctrONNX())[:12] + `, ` + strconv.Itoa(len(ctrONNX())) + ` bytes), staged`,
		`pointed alias "canary" of model "ctr" at version 2`,
		`promoted model "ctr" version 2 to production`,
		`set model "ctr"'s experiment "e1": a=1:90, b=2:10`,
		`ended model "ctr"'s experiment`,
		`set model "ctr"'s shadow: version 1, 5% of its requests`,
		`ended model "ctr"'s shadow`,
		`rolled model "ctr" back: production is version 1`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A call with a token that is not the server's is refused saying so, and
// logged once a minute where the operator looks (a member started with
// another token is the usual cause); a call without one is not logged.
func TestWrongAdminTokenIsLogged(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	for range 3 {
		r := s.do(t, "GET", "/v1/models", nil, "Authorization", "Bearer not-it")
		if r.code != 401 || !strings.Contains(string(r.body), "is not this server's") {
			t.Fatalf("a wrong token: %s; want 401 saying the token is not the server's", r)
		}
	}
	if r := s.do(t, "GET", "/v1/models", nil); r.code != 401 || !strings.Contains(string(r.body), "needs the admin token") {
		t.Fatalf("no token: %s", r)
	}
	if n := strings.Count(s.log.String(), "its token is not this server's --admin-token"); n != 1 {
		t.Fatalf("%d log lines for 3 wrong tokens; want 1:\n%s", n, s.log.String())
	}
}
