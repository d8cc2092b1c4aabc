package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
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
