package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// The monitoring address serves /metrics and the health endpoints alone,
// over plain HTTP; /metrics then leaves the main port. A shutdown's
// drain shows there (not ready) until the main port has drained, and
// then it closes too.
func TestMonitoringAddress(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.MonitorOnly = true
	cfg.AdminToken = "adm"
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.srv.ServeMonitoring(ln) }()
	base := "http://" + ln.Addr().String()
	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	checkFakeAnswer(t, s.post(t, fakeInfer, fakeRequest))
	if code, body := get("GET", "/metrics"); code != 200 || !strings.Contains(body, `infergate_inference_request_success_total{model="fake",version="1"} 1`) {
		t.Fatalf("GET /metrics on the monitoring address: %d\n%.300s", code, body)
	}
	checkError(t, s.do(t, "GET", "/metrics", nil), fasthttp.StatusNotFound, "serve --monitor-http")
	// The admin reads it on the main port too, as the trainer does.
	if r := s.do(t, "GET", "/metrics", nil, "Authorization", "Bearer adm"); r.code != 200 || !strings.Contains(string(r.body), "infergate_inference_request_success_total") {
		t.Fatalf("GET /metrics on the main port with the admin token: %s", r)
	}
	for path, want := range map[string]string{"/v2/health/live": `{"live":true}`, "/v2/health/ready": `{"ready":true}`} {
		if code, body := get("GET", path); code != 200 || body != want {
			t.Fatalf("GET %s on the monitoring address: %d %s", path, code, body)
		}
		if r := s.do(t, "GET", path, nil); r.code != 200 { // and on the main port
			t.Fatalf("GET %s on the main port: %s", path, r)
		}
	}
	if code, body := get("GET", "/v2/models/fake"); code != 404 || !strings.Contains(body, "serves /metrics, /v2/health/live and /v2/health/ready") {
		t.Fatalf("GET /v2/models/fake on the monitoring address: %d %s", code, body)
	}
	if code, _ := get("POST", "/metrics"); code != fasthttp.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %d; want 405", code)
	}
	if r := s.do(t, "GET", "/", nil); r.code != 200 || !strings.Contains(string(r.body), "on the monitoring address") {
		t.Fatalf("status page: %s; want it to say where /metrics is", r)
	}
	// Past its 64 connections, a scrape gets 503 naming the address's
	// own limit, not --max-connections.
	http.DefaultClient.CloseIdleConnections() // its kept-alive one counts too
	var idle []net.Conn
	for range 64 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	testenv.CheckFor(t, 5*time.Second, func() error { // once the 64 are accepted
		if code, body := get("GET", "/metrics"); code != 503 || !strings.Contains(body, "the monitoring address (--monitor-http) has its 64 connections open") {
			return fmt.Errorf("a 65th connection: %d %.200s", code, body)
		}
		return nil
	})
	for _, c := range idle {
		c.Close()
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if code, _ := get("GET", "/metrics"); code != 200 {
			return fmt.Errorf("/metrics after the idle connections closed: %d", code)
		}
		return nil
	})

	// TestMonitoringAddressThroughDrain holds a request in the model.
	s.srv.BeginShutdown()
	if code, body := get("GET", "/v2/health/ready"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("ready while shutting down: %d %s; want 503", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeMonitoring: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeMonitoring still serving after Shutdown")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("the monitoring address still takes connections after Shutdown")
	}
}

// A request fasthttp cannot read gets a 400 and a log line that say
// what is wrong, without its head: its Authorization header and cookies
// reach neither, whichever part of it fasthttp quotes (the whole head,
// a header's line or its value).
func TestProtocolErrorKeepsHeadersOut(t *testing.T) {
	f := func(request, want string) {
		t.Helper()
		s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
		conn, err := net.Dial("tcp", s.listenTCP(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte(request))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(answer), "HTTP/1.1 400 ") || !strings.Contains(string(answer), want) {
			t.Fatalf("request %q: answer %q; want 400 saying %q", request, answer, want)
		}
		for what, text := range map[string]string{"answer": string(answer), "log": s.log.String()} {
			if strings.Contains(text, "SECRET") || strings.Contains(text, "sess=abc") {
				t.Fatalf("request %q: the %s carries the request's headers:\n%s", request, what, text)
			}
		}
		if !strings.Contains(s.log.String(), want) {
			t.Fatalf("request %q: log:\n%s; want the line about the request", request, s.log)
		}
	}
	const head = "Authorization: Bearer SECRET-TOKEN-123\r\nCookie: sess=abc\r\n"
	f("GET /v2/models/fake?a=\x01 HTTP/1.1\r\nHost: x\r\n"+head+"\r\n", "invalid request uri")
	f("GET /v2/models/fake\r\nHost: x\r\n"+head+"\r\n", "cannot find whitespace in the first line of request")
	f("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN-123\x01\r\nCookie: sess=abc\r\n\r\n", "invalid header value")
	f("GET / HTTP/1.1\r\nHost: x\r\nAuthorization Bearer SECRET-TOKEN-123\r\nCookie: sess=abc\r\n\r\n", "missing colon")
	f("GET / HTTP/1.1\r\nHost: x\r\nCookie\x01: sess=abc\r\n"+head+"\r\n", "malformed mime header line")
}

// The monitoring address answers while the main port drains a request
// held in the model (ready 503, /metrics 200), and closes once it has.
func TestMonitoringAddressThroughDrain(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	cfg.MonitorOnly = true
	s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1, MaxQueue: 4})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.srv.ServeMonitoring(ln) }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(path string) (int, error) {
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	b.mode.Store(fakeBlock)
	answered := make(chan error, 1)
	go func() {
		r, err := s.send(fasthttp.MethodPost, fakeInfer, fakeRequest)
		if err == nil && r.code != fasthttp.StatusOK {
			err = fmt.Errorf("the request in flight during Shutdown: got %s; want 200", r)
		}
		answered <- err
	}()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if n := b.running.Load(); n != 1 {
			return fmt.Errorf("requests in Run: got %d; want 1", n)
		}
		return nil
	})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.srv.Shutdown(ctx)
	}()
	testenv.CheckFor(t, 5*time.Second, func() error {
		if code, err := get("/v2/health/ready"); code != 503 {
			return fmt.Errorf("ready on the monitoring address while draining: %d %v; want 503", code, err)
		}
		return nil
	})
	// Past closeUnused's second, and the drain goes on.
	time.Sleep(1200 * time.Millisecond)
	for _, path := range []string{"/metrics", "/v2/health/live"} {
		if code, err := get(path); code != 200 {
			t.Fatalf("GET %s on the monitoring address while draining: %d %v; want 200", path, code, err)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}
	b.unblock()
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ServeMonitoring: %v", err)
	}
	if code, err := get("/v2/health/live"); err == nil {
		t.Fatalf("GET /v2/health/live after Shutdown: %d; want no connection", code)
	}
}
