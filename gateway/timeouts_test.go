package gateway_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
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
		// The server arms the idle deadline right after it writes the
		// response, which may be a little before start: the lower bound
		// only tells the idle timeout from the read timeout.
		if d := closedAfter(br, start); d < idleTimeout-100*time.Millisecond || d > idleTimeout+5*time.Second {
			t.Fatalf("an idle connection was closed after %s; want %s", d, idleTimeout)
		}
	})
}

// TestWriteTimeout checks --write-timeout over TCP with the lazily set
// write deadlines: a connection kept busy for several times the timeout
// sees no error, and one whose client stops reading while the server has
// responses to write is closed after the timeout.
func TestWriteTimeout(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	cfg := gateway.DefaultConfig()
	cfg.WriteTimeout = writeTimeout
	s := startDemo(t, cfg, false)
	addr := s.listenTCP(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	const get = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
	for end := time.Now().Add(3 * writeTimeout); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if _, err := io.WriteString(c, get); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("a busy connection past the write timeout: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A client that asks for far more than the sockets' buffers hold
	// (pipelined GET /metrics, tens of KB each) and reads nothing: the
	// server's write blocks, and must give up after the write timeout.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.(*net.TCPConn).SetReadBuffer(4096)
	go func() {
		batch := []byte(strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 100))
		for range 20 {
			if _, err := slow.Write(batch); err != nil {
				return // the server closed the connection
			}
		}
	}()
	time.Sleep(writeTimeout + 1500*time.Millisecond)
	// Now drain: a closed connection ends at once; one the server
	// still holds would go on, then hang until this deadline.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, slow)
	// Closing with requests still unread makes the kernel reset the
	// connection rather than end it: both mean closed.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a client that stopped reading: %v after %d bytes; want the server to have closed the connection after %s", err, n, writeTimeout)
	}
	t.Logf("%d bytes of responses before the close", n)
}
