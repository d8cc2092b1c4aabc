package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
)

// TestMaxConnectionsRefusesWithRetryAfter fills --max-connections and
// expects the next connection to get a JSON 503 with Retry-After, and a
// slot to come back when a connection closes.
func TestMaxConnectionsRefusesWithRetryAfter(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 2
	s := startDemo(t, cfg, false)
	addr := s.listenTCP(t)
	get := func(c net.Conn) *http.Response {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := []net.Conn{dial(), dial()}
	for _, c := range held {
		if resp := get(c); resp.StatusCode != 200 {
			t.Fatalf("a connection within the limit: got %d", resp.StatusCode)
		}
	}
	c := dial()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("a connection over the limit: got %d, Retry-After %q, Content-Type %q; want a JSON 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	held[0].Close()
	testenv.CheckFor(t, 5*time.Second, func() error {
		c := dial()
		if resp := get(c); resp.StatusCode != 200 {
			return fmt.Errorf("after a connection closed: got %d; want 200", resp.StatusCode)
		}
		return nil
	})
}

// A connection over the limit gets its 503 whatever the client does: the
// server reads the request before answering (Go's client discards an
// answer that comes first as unsolicited), and reads the rest of a body
// after it (closing on unread bytes resets the connection, and can take
// the answer with it).
func TestRefusedConnectionsGetTheir503(t *testing.T) {
	addr := fullServer(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	body := bytes.Repeat([]byte("x"), 256<<10)
	lost := 0
	for i := range 150 {
		var resp *http.Response
		var err error
		if i%3 == 2 {
			resp, err = client.Post("http://"+addr+"/v2/models/ctr/infer", "application/json", bytes.NewReader(body))
		} else {
			resp, err = client.Get("http://" + addr + "/v2/health/ready")
		}
		if err != nil {
			lost++
			t.Logf("request %d: %v", i, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d over the limit: got %d, Retry-After %q; want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if lost > 0 {
		t.Fatalf("%d of 150 requests over the limit got no answer; want every one its 503", lost)
	}
}

// TestLiveOverMaxConnections: a liveness probe that comes while
// --max-connections are open gets 200, not the 503 of the refused: a
// kubelet that gets 503s restarts the process, which sheds nothing and
// drops every request it was serving. Readiness and the rest still get
// the 503. Before, GET /v2/health/live over the limit got the 503 too.
func TestLiveOverMaxConnections(t *testing.T) {
	addr := fullServer(t)
	f := func(method, path string, want int, wantBody string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\n\r\n", method, path)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%s %s over the limit: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (wantBody != "" && string(b) != wantBody) {
			t.Fatalf("%s %s over the limit: got %d %s; want %d %s", method, path, resp.StatusCode, b, want, wantBody)
		}
	}
	f("GET", "/v2/health/live", 200, `{"live":true}`)
	f("GET", "/v2/health/live?probe=1", 200, `{"live":true}`)
	f("HEAD", "/v2/health/live", 200, "")
	f("GET", "/v2/health/ready", 503, "")
	f("GET", "/v2/health/lively", 503, "")
	f("POST", "/v2/health/live", 503, "")
}

// TestMalformedRequestsLogNoTokenAndDoNotFlood: a client that sends a
// malformed request in a loop, its bearer token in the headers, gets its
// 400 each time; the log says so once a period, without the request's
// headers. Before, fasthttp's line for each quoted the request head
// (up to 400 bytes), Authorization header and token included, once per
// connection.
func TestMalformedRequestsLogNoTokenAndDoNotFlood(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	addr := s.listenTCP(t)
	const n = 30
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /v2/models/ctr/ready HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-%d\r\nContent-Length: zz\r\n\r\n", i)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("a malformed request: got %d; want 400", resp.StatusCode)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(s.log.String(), "content-length") {
			return fmt.Errorf("the log does not say what was malformed:\n%s", s.log)
		}
		return nil
	})
	l := s.log.String()
	if strings.Contains(l, "SECRET") {
		t.Fatalf("the log holds the requests' tokens:\n%s", l)
	}
	if got := strings.Count(l, "content-length"); got > 2 {
		t.Fatalf("log lines of %d malformed requests: got %d; want 1 (2 if a period passed):\n%s", n, got, l)
	}
}

// fullServer starts a server of --max-connections 1 on loopback TCP,
// holds its one connection open (answered once, so it is the server's),
// and returns its address: every new connection is over the limit.
func fullServer(t *testing.T) string {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.MaxConnections = 1
	s := startDemo(t, cfg, false)
	addr := s.listenTCP(t)
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	held.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(held, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the connection within the limit: %v, %v", resp, err)
	}
	return addr
}
