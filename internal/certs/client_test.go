package certs

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testcerts"
)

// serveHTTPS serves cfg on a loopback port, answering "ok" to every
// HTTP request, and returns the port's address.
func serveHTTPS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		// Refused handshakes, which the tests make, stay out of their
		// output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// get makes a GET of https://addr/ with hc and checks the answer.
func get(hc *http.Client, addr string) error {
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("answered %d %q", resp.StatusCode, b)
	}
	return nil
}

// syncLog is a logf for the goroutines of handshakes, keeping the lines.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// count returns how many lines hold s.
func (l *syncLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// A Client verifies each new connection against its CA file as it is
// then: a server whose certificate CA B signed is refused while the file
// holds CA A, and taken, by the same Client, once the file holds B; over
// a connection of its own and over net/http (Transport). A file that
// does not load keeps the CAs in use, logged. The server's name is held
// to the certificate as Go holds it.
func TestClientFollowsItsCAFile(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := b.IssueFor(t, "server", time.Time{}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.1")
	srv, err := NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := serveTLS(t, ServerConfig(srv, nil))
	web := serveHTTPS(t, ServerConfig(srv, nil))

	file := filepath.Join(dir, "ca.pem")
	writeInPlace(t, file, readPEM(t, a.File))
	var logged syncLog
	cl, err := ClientFiles(file, "", "", "--ca-cert", "--client-cert", logged.logf)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	cl.cas.now = clock.now
	hc := &http.Client{Timeout: 5 * time.Second, Transport: cl.Transport(http.DefaultTransport.(*http.Transport))}
	defer hc.CloseIdleConnections()

	// f checks that both clients get through (want nil) or are refused
	// with an error that errors.As finds want in.
	f := func(when string, want any) {
		t.Helper()
		for _, c := range bothWays(cl, hc, raw, web) {
			switch {
			case want == nil && c.err != nil:
				t.Fatalf("%s: %s: %v; want it to get through", when, c.name, c.err)
			case want != nil && (c.err == nil || !errors.As(c.err, want)):
				t.Fatalf("%s: %s: %v; want a %T", when, c.name, c.err, want)
			}
		}
	}
	f("with CA A in the file", new(x509.UnknownAuthorityError))

	// The file holds CA B, last modified two seconds before: taken at
	// the next look, a second after the last.
	writeRenamed(t, file, readPEM(t, b.File))
	touch(t, file, clock.now().Add(-2*time.Second))
	clock.advance(checkEvery)
	f("once the file holds CA B", nil)
	if logged.count("tls: reloaded the CA file "+file+`: now trusting "CN=b"`) != 1 {
		t.Fatalf("logged %q; want the reload", logged.lines)
	}
	// As strict about the name as Go is.
	if _, err := dialTLS(raw, cl.Config("127.0.0.2")); !errors.As(err, new(x509.HostnameError)) {
		t.Fatalf("a server name its certificate does not hold: %v; want a x509.HostnameError", err)
	}
	// tls.Dial would fill in the name from the address.
	conn, err := net.Dial("tcp", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := tls.Client(conn, cl.Config("")).Handshake(); err == nil || !strings.Contains(err.Error(), "ServerName") {
		t.Fatalf("a connection without a server name: %v; want refused for want of one", err)
	}

	// A file cut short keeps CA B, and says so once.
	half := readPEM(t, a.File)
	writeInPlace(t, file, half[:len(half)/2])
	touch(t, file, clock.now().Add(-2*time.Second))
	for range 2 {
		clock.advance(checkEvery)
		f("with the file cut short", nil)
	}
	if logged.count("tls: keeping the CAs loaded before from "+file) != 1 {
		t.Fatalf("logged %q; want the file cut short logged once", logged.lines)
	}
}

// triedWay is how a test reached a server, and what came of it.
type triedWay struct {
	name string
	err  error
}

// bothWays reaches 127.0.0.1 with cl both ways a client does: a
// connection of its own to raw, made with cl.Config, and a GET of web
// through hc, whose Transport is cl's.
func bothWays(cl *Client, hc *http.Client, raw, web string) []triedWay {
	_, err := dialTLS(raw, cl.Config("127.0.0.1"))
	return []triedWay{{"a connection", err}, {"net/http", get(hc, web)}}
}

// A Client presents the certificate its files hold then: a server that
// takes clients of CA A refuses the Client's certificate of CA B, and
// takes, from the same Client, the one of A its files hold next; a cert
// file that no longer matches the key (a rotation half done) keeps the
// certificate in use, logged.
func TestClientFollowsItsCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := a.Issue(t, "server", time.Time{}, "127.0.0.1")
	srv, err := NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := a.Pool()
	cfg := ServerConfig(srv, func() *x509.CertPool { return pool })
	raw := serveTLS(t, cfg)
	web := serveHTTPS(t, cfg)

	bc, bk := b.Issue(t, "client-of-b", time.Time{}, "client")
	ac, ak := a.Issue(t, "client-of-a", time.Time{}, "client")
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writeInPlace(t, certFile, readPEM(t, bc))
	writeInPlace(t, keyFile, readPEM(t, bk))
	var logged syncLog
	cl, err := ClientFiles(a.File, certFile, keyFile, "--ca-cert", "--client-cert", logged.logf)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	cl.cert.now = clock.now
	hc := &http.Client{Timeout: 5 * time.Second, Transport: cl.Transport(http.DefaultTransport.(*http.Transport))}
	defer hc.CloseIdleConnections()

	// f checks that both clients get through or, refuse, are refused.
	f := func(when string, refuse bool) {
		t.Helper()
		for _, c := range bothWays(cl, hc, raw, web) {
			if refuse && (c.err == nil || !strings.Contains(c.err.Error(), "unknown certificate authority")) {
				t.Fatalf("%s: %s: %v; want refused, of an unknown authority", when, c.name, c.err)
			}
			if !refuse && c.err != nil {
				t.Fatalf("%s: %s: %v; want it to get through", when, c.name, c.err)
			}
		}
		hc.CloseIdleConnections() // the next call makes a new connection
	}
	f("with a certificate of CA B", true)

	// The cert file of A first, the key after: between the two, the pair
	// does not match, and B's stays.
	writeRenamed(t, certFile, readPEM(t, ac))
	clock.advance(checkEvery)
	f("with the certificate of A and the key of B's", true)
	if logged.count("tls: keeping the certificate loaded before") != 1 {
		t.Fatalf("logged %q; want the pair that does not match logged", logged.lines)
	}
	writeRenamed(t, keyFile, readPEM(t, ak))
	clock.advance(checkEvery)
	f("with the pair of A", false)
	if logged.count(`tls: reloaded the certificate `+certFile+` (subject "CN=client-of-a"`) != 1 {
		t.Fatalf("logged %q; want the reload", logged.lines)
	}
}

// A Client's Transport keeps its connections while the CAs stay, and
// moves to new ones when they change.
func TestClientTransportKeepsConnectionsWhileTheCAsStay(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := a.Issue(t, "server", time.Time{}, "127.0.0.1")
	srv, err := NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := 0 // connections accepted
	cfg := ServerConfig(srv, nil)
	cfg.VerifyConnection = func(tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		conns++
		return nil
	}
	web := serveHTTPS(t, cfg)
	file := filepath.Join(dir, "ca.pem")
	writeInPlace(t, file, readPEM(t, a.File))
	cl, err := ClientFiles(file, "", "", "--ca-cert", "--client-cert", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	cl.cas.now = clock.now
	hc := &http.Client{Timeout: 5 * time.Second, Transport: cl.Transport(http.DefaultTransport.(*http.Transport))}
	defer hc.CloseIdleConnections()
	f := func(when string, want int) {
		t.Helper()
		if err := get(hc, web); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if conns != want {
			t.Fatalf("%s: %d connections; want %d", when, conns, want)
		}
	}
	f("the first call", 1)
	clock.advance(checkEvery)
	f("a call a second later, the file the same", 1)
	writeRenamed(t, file, readPEM(t, a.File, b.File))
	touch(t, file, clock.now().Add(-2*time.Second))
	clock.advance(checkEvery)
	f("a call once the file holds one more CA", 2)
}

// connectProxy serves CONNECT on loopback, recording the targets in
// *targets (under mu), and returns its address.
func connectProxy(t *testing.T, targets *[]string, mu *sync.Mutex) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				mu.Lock()
				*targets = append(*targets, req.Host)
				mu.Unlock()
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// Through an HTTP proxy's CONNECT tunnel, the server verified is the
// target, by the target's name (not the proxy's address): a certificate
// for localhost is taken at https://localhost:port, one for 127.0.0.1
// only is refused there, though the proxy is at 127.0.0.1.
func TestClientTransportThroughAProxy(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	for _, tc := range []struct {
		certHost string
		ok       bool
	}{{"localhost", true}, {"127.0.0.1", false}} {
		sc, sk := a.Issue(t, "srv-"+tc.certHost, time.Time{}, tc.certHost)
		srv, err := NewReloader(sc, sk, nil)
		if err != nil {
			t.Fatal(err)
		}
		var sni atomic.Value
		cfg := ServerConfig(srv, nil)
		cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni.Store(h.ServerName); return nil, nil }
		web := serveHTTPS(t, cfg)
		_, port, _ := net.SplitHostPort(web)
		var mu sync.Mutex
		var targets []string
		proxy := connectProxy(t, &targets, &mu)
		cl, err := ClientFiles(a.File, "", "", "--ca-cert", "--client-cert", nil)
		if err != nil {
			t.Fatal(err)
		}
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
		hc := &http.Client{Timeout: 5 * time.Second, Transport: cl.Transport(base)}
		err = get(hc, "localhost:"+port)
		switch {
		case tc.ok && err != nil:
			t.Fatalf("a certificate for %s: %v; want it taken", tc.certHost, err)
		case !tc.ok && !errors.As(err, new(x509.HostnameError)):
			t.Fatalf("a certificate for %s: %v; want a x509.HostnameError", tc.certHost, err)
		case sni.Load() != "localhost" || len(targets) != 1 || targets[0] != "localhost:"+port:
			t.Fatalf("a certificate for %s: SNI %v, CONNECT %q; want localhost and localhost:%s", tc.certHost, sni.Load(), targets, port)
		}
		hc.CloseIdleConnections()
	}
}

// A call of a Client's Transport racing another across a reload of the
// CA file never puts back the Transport of the CAs from before it: the
// call that waited for the lock takes the CAs of the moment, not those
// it would have read before.
func TestClientTransportKeepsTheNewestCAs(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	file := filepath.Join(dir, "ca.pem")
	writeInPlace(t, file, readPEM(t, a.File))
	cl, err := ClientFiles(file, "", "", "--ca-cert", "--client-cert", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	cl.cas.now = clock.now
	tr := cl.Transport(http.DefaultTransport.(*http.Transport)).(*transport)
	tr.current()
	p1 := tr.roots

	tr.mu.Lock()
	done := make(chan *http.Transport)
	go func() { done <- tr.current() }()
	time.Sleep(100 * time.Millisecond) // it waits for mu (a sleep too short makes the test pass for nothing)
	writeRenamed(t, file, readPEM(t, b.File))
	touch(t, file, clock.now().Add(-2*time.Second))
	clock.advance(checkEvery)
	p2 := cl.roots()
	if p2 == p1 {
		t.Fatal("the CA file was not read again")
	}
	// What a second call does in current, holding mu, having read p2.
	tr.cur = tr.base.Clone()
	tr.cur.TLSClientConfig = ClientConfig(p2, nil)
	tr.roots = p2
	tr.mu.Unlock()
	<-done
	if tr.roots != p2 {
		t.Fatalf("the transport in use trusts the pool from before the reload (p1 %v)", tr.roots == p1)
	}
}
