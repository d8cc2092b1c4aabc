package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
)

// TestConnectionTimeouts checks the read and idle timeouts over TCP, with
// the connection's lazily set deadlines (gateway/listener.go): a client
// that stalls inside a request is cut off after --read-timeout, an idle
// keep-alive connection after --idle-timeout and not before, and a
// connection that keeps sending requests for several times both timeouts
// never sees one of them.
func TestConnectionTimeouts(t *testing.T) {
	const readTimeout, idleTimeout = 150 * time.Millisecond, 400 * time.Millisecond
	cfg := gateway.DefaultConfig()
	cfg.ReadTimeout = readTimeout
	cfg.IdleTimeout = idleTimeout
	s := startDemo(t, cfg, false)
	addr := s.listenTCP(t)
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader) {
		t.Helper()
		if _, err := fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("got %d; want 200", resp.StatusCode)
		}
	}
	// closedAfter waits for the server to close c and returns how long
	// after since that took.
	closedAfter := func(br *bufio.Reader, since time.Time) time.Duration {
		t.Helper()
		io.Copy(io.Discard, br) // whatever the server says before it closes
		return time.Since(since)
	}

	t.Run("busy", func(t *testing.T) {
		c, br := dial()
		end := time.Now().Add(3 * idleTimeout)
		n := 0
		for time.Now().Before(end) {
			get(c, br)
			n++
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%d requests on one connection over %s", n, 3*idleTimeout)
	})
	t.Run("stalled request", func(t *testing.T) {
		c, br := dial()
		get(c, br) // a keep-alive connection that served a request
		start := time.Now()
		if _, err := io.WriteString(c, "POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		if d := closedAfter(br, start); d < readTimeout || d > readTimeout+5*time.Second {
			t.Fatalf("a request stalled after its first bytes was cut off after %s; want %s", d, readTimeout)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c, br := dial()
		get(c, br)
		start := time.Now()
		if d := closedAfter(br, start); d < idleTimeout || d > idleTimeout+5*time.Second {
			t.Fatalf("an idle connection was closed after %s; want %s", d, idleTimeout)
		}
	})
}
