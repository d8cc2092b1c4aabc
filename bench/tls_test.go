package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/testcerts"
)

// quietLogger drops fasthttp's logs of the handshakes the tests refuse.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// Every client of a run (the control calls, the health probe, the OIP
// client; the load's share newHostClient) asks Options.TLS for the
// configuration of each new connection: refused by a gateway whose CA it
// does not trust, the same client gets through once the configuration
// trusts that CA, as a run's clients do when a CA file follows a
// rotation (certs.Client.Config).
func TestClientsTakeTheTLSOfTheMoment(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := b.Issue(t, "gateway", time.Time{}, "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, sc, sk)}})
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{ln: ln}
	g.srv = &fasthttp.Server{Handler: g.handle, Name: "fake", Logger: quietLogger{}}
	go g.srv.Serve(ln)
	t.Cleanup(func() { g.srv.Shutdown() })
	base := "https://" + ln.Addr().String()

	var roots atomic.Pointer[x509.CertPool]
	roots.Store(a.Pool())
	o := &Options{TLS: func(serverName string) *tls.Config {
		if serverName != "127.0.0.1" {
			t.Errorf("TLS asked for %q; want 127.0.0.1", serverName)
		}
		return &tls.Config{RootCAs: roots.Load()}
	}}
	c, err := newControlClient(context.Background(), base, o)
	if err != nil {
		t.Fatal(err)
	}
	probe := newHealthProber(base, c.host, c.prefix, o.TLS)
	defer probe.release()
	calls := []struct {
		name string
		call func() error
	}{
		{"a control call", func() error {
			code, body, err := c.get("/v2")
			if err == nil && code != 200 {
				err = errors.New(string(body))
			}
			return err
		}},
		{"the health probe", func() error {
			code, err := probe.probe()
			if err == nil && code != 200 {
				err = errors.New(fasthttp.StatusMessage(code))
			}
			return err
		}},
		{"the OIP client", func() error {
			_, err := c.oip.ServerMetadata()
			return err
		}},
	}
	for _, cl := range calls {
		if err := cl.call(); !errors.As(err, new(x509.UnknownAuthorityError)) {
			t.Fatalf("%s to a gateway of CA B, trusting CA A: %v; want a x509.UnknownAuthorityError", cl.name, err)
		}
	}
	roots.Store(b.Pool())
	for _, cl := range calls {
		if err := cl.call(); err != nil {
			t.Fatalf("%s, the same client, trusting CA B: %v", cl.name, err)
		}
	}
}

// A load request or a health probe to an https gateway that accepts the
// connection and never answers the handshake ends at its timeout, as a
// timeout, whether Options.TLS is set or not (the system's CAs).
func TestStalledTLSHandshakeTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	})
	base := "https://" + ln.Addr().String()
	for _, tc := range []func(string) *tls.Config{nil, func(string) *tls.Config { return &tls.Config{} }} {
		hc := newHostClient(base, "test", tc)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("/v2/health/ready")
		req.Header.SetHost(ln.Addr().String())
		httpsScheme(req, hc)
		done := make(chan error, 1)
		go func() { done <- hc.DoTimeout(req, resp, 200*time.Millisecond) }()
		select {
		case err := <-done:
			if kind := transportErrKind(err); kind != ErrKindTimeout {
				t.Fatalf("TLS set %v: %v, of kind %q; want %q", tc != nil, err, kind, ErrKindTimeout)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("TLS set %v: still waiting for the handshake 5s after a timeout of 200ms", tc != nil)
		}
	}
}
