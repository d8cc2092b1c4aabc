package gateway_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
)

// TestLargeBodyNotKeptByConnection: a keep-alive connection that once
// sent a large body does not hold a buffer of its size for the rest of its
// life (found in a soak: each keep-alive connection that had carried a
// 5 MB model upload kept an 8 MB body buffer while it went on sending
// small predictions, 48 MB in all; bounded only by --max-connections
// times --max-body). The test sends 4 MiB on each of 8 connections, then
// a small request on each, and holds them open: the live heap may not
// grow by a quarter of the 32 MiB.
func TestLargeBodyNotKeptByConnection(t *testing.T) {
	noLoad := func([]byte, registry.ModelConfig) (registry.Backend, error) {
		return nil, errors.New("no models in this test")
	}
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), load: noLoad})
	addr := s.listenTCP(t)
	const conns, size = 8, 4 << 20
	big := strings.Repeat("1", size)

	send := func(c net.Conn, br *bufio.Reader, body string) {
		t.Helper()
		fmt.Fprintf(c, "POST /v2/models/none/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to a %d-byte body: %s", len(body), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("a %d-byte body for an unknown model: got %d; want 404", len(body), resp.StatusCode)
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 3 { // sync.Pool's victims go in the second
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	// One small request first on a connection of its own, so that the
	// server's first-use allocations are in before.
	warm, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	send(warm, bufio.NewReader(warm), "{}")
	before := heap()
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		send(c, br, big)
		send(c, br, "{}")
	}
	after := heap()
	grew := int64(after) - int64(before)
	t.Logf("live heap grew by %d KiB after %d open connections each sent %d MiB, then a small body", grew>>10, conns, size>>20)
	if grew > conns*size/4 {
		t.Fatalf("live heap grew by %d MiB with %d idle keep-alive connections that each once sent %d MiB; their body buffers are kept", grew>>20, conns, size>>20)
	}
}
