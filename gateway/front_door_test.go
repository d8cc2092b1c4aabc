package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// emfileListener fails its first Accept as a TCP listener does when the
// process has run out of file descriptors.
type emfileListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// An accept that fails for want of file descriptors is waited out: the
// server goes on serving (passed up, it would end Serve, and the process).
func TestAcceptOutOfDescriptorsKeepsServing(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(&emfileListener{Listener: tcp}) }()
	c, err := net.DialTimeout("tcp", tcp.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		select {
		case err := <-done:
			t.Fatalf("Serve returned after one EMFILE from Accept: %v; want it to wait and serve", err)
		default:
		}
		t.Fatalf("after EMFILE: %v, %v; want 200", resp, err)
	}
}

// A body over --max-body, sent over TCP by a client that writes it all
// before it reads, gets its 413: the server reads what is left of the
// body before it closes, rather than resetting the connection with the
// answer in it.
func TestBodyTooLargeOverTCP(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	addr := s.listenTCP(t)
	body := bytes.Repeat([]byte("a"), 4<<20)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for i := range 10 {
		resp, err := client.Post("http://"+addr+"/v2/models/fake/infer", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("request %d with a %d-byte body over the %d-byte limit: %v; want 413", i, len(body), cfg.MaxBodyBytes, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != fasthttp.StatusRequestEntityTooLarge || !bytes.Contains(msg, []byte("request body exceeds the 65536-byte limit")) {
			t.Fatalf("request %d: %d %s; want 413 saying why", i, resp.StatusCode, msg)
		}
	}
}

// A path under /v2/repository/models that is no endpoint is a 404 for
// every method, not a 405 that sends the caller to POST it.
func TestRepositoryUnknownActionIs404(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	for _, method := range []string{"GET", "POST"} {
		checkError(t, s.do(t, method, "/v2/repository/models/fake/bogus", nil), fasthttp.StatusNotFound, "no such endpoint")
		checkError(t, s.do(t, method, "/v2/repository/models/fake", nil), fasthttp.StatusNotFound, "no such endpoint")
	}
	r := s.do(t, "GET", "/v2/repository/models/fake/load", nil)
	checkError(t, r, fasthttp.StatusMethodNotAllowed, "use POST")
}

// HEAD is answered wherever GET is, as HTTP asks (RFC 9110, 9.1): health
// checks that probe with HEAD see a healthy node; a 405 names HEAD with GET.
func TestHeadWhereGet(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/fake", "/v2/models/fake/ready", "/metrics", "/"} {
		r := s.do(t, "HEAD", p, nil)
		if r.code != fasthttp.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: got %d with %d bytes (Allow %q); want 200 without a body, as GET", p, r.code, len(r.body), r.header["Allow"])
		}
	}
	r := s.do(t, "DELETE", "/v2/health/live", nil)
	if r.code != fasthttp.StatusMethodNotAllowed || r.header["Allow"] != "GET, HEAD" {
		t.Fatalf("DELETE /v2/health/live: %d, Allow %q; want 405, Allow \"GET, HEAD\"", r.code, r.header["Allow"])
	}
}

// The repository index and load bodies may be compressed, as inference
// bodies may.
func TestCompressedControlBodies(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	if r := s.post(t, "/v2/repository/index", gz(`{"ready":true}`), "Content-Encoding", "gzip"); r.code != 200 || !bytes.Contains(r.body, []byte(`"fake"`)) {
		t.Errorf("gzip index: got %s; want 200 listing fake", r)
	}
	if r := s.post(t, "/v2/repository/models/fake/load", gz(`{"parameters":{"config":"{\"max_batch_size\":4}"}}`), "Content-Encoding", "gzip"); r.code != 200 {
		t.Errorf("gzip load: got %s; want 200", r)
	}
}

// The load API takes the configuration as Triton does, a JSON string
// holding config.json's text, and as a JSON object too; anything else is
// a 400 that says which.
func TestLoadConfigStringOrObject(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	for _, body := range []string{
		`{"parameters":{"config":"{\"max_batch_size\":4}"}}`,
		`{"parameters":{"config":{"max_batch_size":4}}}`,
		`{"parameters":{"config":null}}`,
	} {
		if r := s.post(t, "/v2/repository/models/fake/load", []byte(body)); r.code != 200 {
			t.Errorf("load %s: %s; want 200", body, r)
		}
	}
	checkError(t, s.post(t, "/v2/repository/models/fake/load", []byte(`{"parameters":{"config":4}}`)), fasthttp.StatusBadRequest,
		"parameters.config is 4; give the configuration as a JSON string")
	checkError(t, s.post(t, "/v2/repository/models/fake/load", []byte(`{"parameters":{"config":{"max_batch_size":"x"}}}`)), fasthttp.StatusBadRequest,
		"parameters.config:")
}

// A connection that never sent a byte (a pool's spare, a pre-connect)
// does not hold a shutdown up: Shutdown closes it and returns at once
// (fasthttp counted it busy for its first seconds, and a shutdown waited
// for it, then failed its timeout).
func TestShutdownClosesUnusedConnection(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	addr := s.listenTCP(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// And one that served a request, kept alive.
	used, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer used.Close()
	fmt.Fprintf(used, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := bufio.NewReader(used).ReadString('}'); err != nil {
		t.Fatal(err)
	}
	// Past the age at which a connection that sent nothing counts as
	// unused (a younger one may hold a request not read yet).
	time.Sleep(1100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an unused connection open: %v after %s; want nil at once", err, time.Since(start))
	}
	// Unloaded, it takes tens of milliseconds; the bound leaves room for a
	// busy machine and stays below the context's 3 s, which is what a
	// shutdown that waits for the connection would take.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %s with an unused connection open; want well under the 3 s timeout", d)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the unused connection is still open after Shutdown")
	}
}
