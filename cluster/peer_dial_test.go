package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testcerts"
)

// The peer client's own TLS dial (dialPeer) checks a peer's certificate
// as strictly as http.Transport did, and every handshake that fails is
// a call the peer never saw (errUnreached, so a forwarded write is tried
// again rather than reported of unknown outcome): a certificate for
// another address, a plain HTTP server, and a peer that drops the
// connection in the middle of the handshake (found by a reviewing
// helper: that one was reported as of unknown outcome, as was a port
// that speaks another protocol).
func TestPeerDialFailuresAreUnreached(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	me := tlsOf(t, ca, "me", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	peers := newPeerClient("token", me)
	https := func(certFile, keyFile string) string {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"index":7}`)) }))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, certFile, keyFile)}}
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good := https(ca.Issue(t, "good", time.Time{}, "127.0.0.1"))
	if i, err := peers.readIndex(ctx, good); err != nil || i != 7 {
		t.Fatalf("a peer with a good certificate: %d, %v", i, err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 16)) // part of the client's hello
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a reset
		}
	}()
	ssh, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ssh.Close()
	go func() {
		for {
			c, err := ssh.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") // a port that speaks something else
			c.Close()
		}
	}()
	for what, url := range map[string]string{
		"a server that speaks another protocol": "https://" + ssh.Addr().String(),
		"a certificate for another address":     https(ca.Issue(t, "elsewhere", time.Time{}, "127.0.0.2")),
		"a plain HTTP server":                   strings.Replace(plain.URL, "http://", "https://", 1),
		"a reset in the handshake":              "https://" + ln.Addr().String(),
	} {
		_, err := peers.readIndex(ctx, url)
		if !errors.Is(err, errUnreached) {
			t.Errorf("%s: %v; want the call unreached", what, err)
		}
	}
}
