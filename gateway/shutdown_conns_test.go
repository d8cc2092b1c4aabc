package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// A request the client sent in full before Shutdown was called is
// answered, even one still unread in its socket when Shutdown closes the
// connections that sent nothing: those are only the ones older than a
// second with nothing read.
func TestShutdownAnswersRequestsNotReadYet(t *testing.T) {
	const conns = 64
	lost := 0
	for round := 0; round < 5 && lost == 0; round++ {
		s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
		addr := s.listenTCP(t)
		cs := make([]net.Conn, conns)
		for i := range cs {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cs[i] = c
		}
		// Let the server accept every connection (none left in the
		// backlog, which closing the listener resets).
		time.Sleep(300 * time.Millisecond)
		// Every request written in full before Shutdown is called.
		for _, c := range cs {
			if _, err := fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		shut := make(chan error, 1)
		go func() { shut <- s.srv.Shutdown(ctx) }()
		var mu sync.Mutex
		var wg sync.WaitGroup
		var first string
		for i, c := range cs {
			wg.Go(func() {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if !strings.HasPrefix(line, "HTTP/1.1 200") {
					mu.Lock()
					lost++
					if first == "" {
						first = fmt.Sprintf("connection %d: read %q, %v", i, line, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		<-shut
		cancel()
		if lost > 0 {
			t.Fatalf("round %d: %d of %d requests, each sent in full before Shutdown was called, got no answer (closed as unused connections); first: %s", round, lost, conns, first)
		}
	}
}

// The status page's head counts the versions not serving for a failure,
// not those unloaded on purpose (an older version after a hot swap).
func TestStatusHeadSkipsUnloadedVersion(t *testing.T) {
	s := startFakeWithLoader(t, newFakeBackend(), false)
	breakVersion2(t, s)
	if err := os.WriteFile(filepath.Join(s.repo.Dir(), "fake", "2", "model.onnx"), []byte("fixed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.post(t, "/v2/repository/models/fake/load", nil); r.code != 200 {
		t.Fatalf("load of the fixed version 2: %s", r)
	}
	// Wait for version 1 to drain and close.
	for i := 0; i < 100; i++ {
		idx, _ := s.repo.Index()
		if fmt.Sprint(idx) != "" && strings.Contains(fmt.Sprint(idx), "unloaded") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := metricValue(s.metricsText(t), "infergate_model_load_failing")
	if err != nil || v != 0 {
		t.Fatalf("infergate_model_load_failing %v, %v; want 0", v, err)
	}
	page := string(s.do(t, fasthttp.MethodGet, "/", nil).body)
	if strings.Contains(page, "not serving (below, with the reason)") {
		idx, _ := s.repo.Index()
		t.Fatalf("nothing fails (infergate_model_load_failing 0, version 2 serves as the policy selects), yet the status head raises a red alarm; index %v; head:\n%.400s", idx, page[strings.Index(page, "<p>"):])
	}
}
