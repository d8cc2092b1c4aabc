package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
)

// Client is what a TLS client of infergate (a command, the trainer, a
// Kafka traffic log's client, a benchmark) trusts and presents: the CAs
// of a file (CAs; without one, the system's) and a certificate of its
// own (Reloader; or none), each read again when its files change, as a
// server's are.
//
// crypto/tls verifies a server against the RootCAs of the configuration
// the connection was made with, and net/http, fasthttp and franz-go keep
// the configuration they are given (copied per connection, or per
// address), its pool included: a pool set once would stay the start's.
// So Config makes each connection's configuration anew, and the
// connection is verified as Go verifies any (a chain to a CA of the
// moment, the server's name or IP, the server-auth usage): no
// InsecureSkipVerify and no verification of our own, which could not
// check an IP address (a client's tls.ConnectionState has no ServerName
// for one). Connections already open keep what their handshake verified.
//
// A Client is safe for concurrent use.
type Client struct {
	cas  *CAs      // nil: the system's CAs
	cert *Reloader // nil: no certificate
}

// ClientFiles returns the Client that trusts the CAs in caFile ("": the
// system's) and presents the pair certFile and keyFile ("": none).
// Errors name the file's setting, caName or certName. logf reports
// reloads and their failures; nil means no logging.
func ClientFiles(caFile, certFile, keyFile, caName, certName string, logf func(format string, args ...any)) (*Client, error) {
	c := &Client{}
	if certFile != "" {
		var err error
		if c.cert, err = NewReloader(certFile, keyFile, logf); err != nil {
			return nil, fmt.Errorf("%s: %w", certName, err)
		}
	}
	if caFile != "" {
		var err error
		if c.cas, err = NewCAs(caFile, logf); err != nil {
			return nil, fmt.Errorf("%s: %w", caName, err)
		}
	}
	return c, nil
}

// roots returns the pool of the CAs of the moment (CAs.Pool: the same
// pool until the file's CAs change), or nil for the system's.
func (c *Client) roots() *x509.CertPool {
	if c.cas == nil {
		return nil
	}
	return c.cas.Pool()
}

// Config returns the configuration of one connection to the server named
// serverName (a host name or an IP address, which its certificate must
// name): it trusts the CAs of the moment and presents the certificate of
// the moment when the server asks for one. The caller may modify it.
func (c *Client) Config(serverName string) *tls.Config {
	cfg := ClientConfig(c.roots(), c.cert)
	cfg.ServerName = serverName
	return cfg
}

// Transport returns a RoundTripper with base's settings (base itself is
// not used, nor its TLSClientConfig) whose new connections trust the CAs
// of the moment and present the certificate of the moment. An
// http.Transport clones its TLSClientConfig for each connection, setting
// the server's name (through a proxy's tunnel too), but keeps the one it
// was given: when the CAs change, the RoundTripper moves to a new
// Transport and closes the old one's idle connections (those carrying a
// request then are closed when it ends).
func (c *Client) Transport(base *http.Transport) http.RoundTripper {
	return &transport{c: c, base: base.Clone()}
}

// transport is Transport's RoundTripper.
type transport struct {
	c    *Client
	base *http.Transport // cloned for each pool, never used itself

	// mu protects roots and cur.
	mu    sync.Mutex
	roots *x509.CertPool // the pool cur trusts
	cur   *http.Transport
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.current().RoundTrip(req)
}

// current returns the Transport of the CAs of the moment. The pool is
// read under t.mu: read before it, a pool older than the one another
// call has just installed would be installed again.
func (t *transport) current() *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	roots := t.c.roots()
	if t.cur != nil && roots == t.roots {
		return t.cur
	}
	old := t.cur
	t.cur = t.base.Clone()
	t.cur.TLSClientConfig = ClientConfig(roots, t.c.cert)
	t.roots = roots
	if old != nil {
		// A request that took old just before this goes on with it, and
		// may leave its connection idle there: base's IdleConnTimeout
		// closes it.
		old.CloseIdleConnections()
	}
	return t.cur
}

// CloseIdleConnections is for http.Client.CloseIdleConnections.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	cur := t.cur
	t.mu.Unlock()
	if cur != nil {
		cur.CloseIdleConnections()
	}
}
