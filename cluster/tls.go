package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/internal/certs"
)

// TLS makes a node's cluster traffic mutual TLS: raft's connections both
// ways, and its HTTPS calls to peers (joins, forwarded writes, blob
// pulls). Every member presents Cert and accepts only peers whose
// certificate a CA in the pool of CAs signed; a peer's certificate must
// name the IP of its raft address and the host of its HTTP address.
type TLS struct {
	Cert *certs.Reloader
	// CAs returns the pool of the cluster's CAs. It is called at every
	// handshake, both ways, so that a pool it returns anew
	// (certs.CAs.Pool, after the file changed) applies to the next
	// connections; open ones keep what they verified. It must not
	// return nil, which a client takes for the system's roots.
	CAs func() *x509.CertPool
}

// handshakeTimeout bounds a raft connection's TLS handshake, so that a
// peer that connects and stalls holds no raft goroutine for long.
const handshakeTimeout = 10 * time.Second

// clientConfig returns the configuration of one connection of this node
// to a peer, trusting the CAs of the moment; the caller may modify it.
func (t *TLS) clientConfig() *tls.Config {
	pool := t.CAs()
	if pool == nil {
		// Never the system's roots, which a nil pool would mean.
		pool = x509.NewCertPool()
	}
	return certs.ClientConfig(pool, t.Cert)
}

// peerHandshakeTimeout bounds the TLS handshake of a call to a peer.
const peerHandshakeTimeout = 5 * time.Second

// errPeerHandshakeTimeout is the error of a call to a peer whose TLS
// handshake ran past peerHandshakeTimeout, and errPeerHandshake one
// whose handshake failed otherwise (the connection reset, a certificate
// refused): either way the peer never saw the request.
var (
	errPeerHandshakeTimeout = errors.New("TLS handshake timeout")
	errPeerHandshake        = errors.New("TLS handshake failed")
)

// dialPeer opens a TLS connection to addr, a peer's HTTPS port, for the
// peer client's http.Transport (DialTLSContext). It does what the
// Transport does with TLSClientConfig and TLSHandshakeTimeout (the
// server name is addr's host, so the peer's certificate must name it),
// but with the CAs of the moment: the Transport would clone one
// configuration, and the CAs of the start, for every connection.
// A failed handshake wraps errPeerHandshake (or errPeerHandshakeTimeout),
// but for a tls.RecordHeaderError of a plain HTTP server, returned as it
// is: http.Client recognizes one by it.
func (t *TLS) dialPeer(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := t.clientConfig()
	cfg.ServerName = host
	c := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, peerHandshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		var plain tls.RecordHeaderError
		switch {
		case ctx.Err() == nil && hctx.Err() != nil:
			return nil, fmt.Errorf("%w with %s after %s", errPeerHandshakeTimeout, addr, peerHandshakeTimeout)
		case errors.As(err, &plain) && string(plain.RecordHeader[:]) == "HTTP/":
			return nil, err // net/http makes it http.ErrSchemeMismatch
		}
		return nil, fmt.Errorf("%w with %s: %w", errPeerHandshake, addr, err)
	}
	return c, nil
}

// tlsStreamLayer is raft's stream layer over mutual TLS.
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	// client returns the configuration of one dial, which Dial modifies.
	client func() *tls.Config
}

// newTLSStreamLayer listens on bind for raft peers and dials them, both
// with mutual TLS under t.
func newTLSStreamLayer(bind string, advertise net.Addr, t *TLS) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	server := certs.ServerConfig(t.Cert, t.CAs)
	return &tlsStreamLayer{Listener: tls.NewListener(ln, server), advertise: advertise, client: t.clientConfig}, nil
}

// Accept returns the next connection; its handshake runs at its first
// read or write (on the goroutine raft serves it from), bounded by
// handshakeTimeout.
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakingConn{Conn: c.(*tls.Conn)}, nil
}

// Addr is the address raft advertises.
func (l *tlsStreamLayer) Addr() net.Addr { return l.advertise }

// Dial opens a TLS connection to the peer at addr, verifying that its
// certificate names addr's IP.
func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		return nil, err
	}
	cfg := l.client()
	cfg.ServerName = host
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft over TLS to %s: %w", addr, err)
	}
	return c, nil
}

// handshakingConn is an accepted raft connection whose TLS handshake is
// bounded in time.
type handshakingConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *handshakingConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		c.err = c.Conn.HandshakeContext(ctx)
	})
	return c.err
}

func (c *handshakingConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *handshakingConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
