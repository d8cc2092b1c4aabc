package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
// certificate CA signed; a peer's certificate must name the IP of its
// raft address and the host of its HTTP address.
type TLS struct {
	Cert *certs.Reloader
	CA   *x509.CertPool
}

// handshakeTimeout bounds a raft connection's TLS handshake, so that a
// peer that connects and stalls holds no raft goroutine for long.
const handshakeTimeout = 10 * time.Second

// clientConfig is the configuration of this node's connections to peers.
func (t *TLS) clientConfig() *tls.Config { return certs.ClientConfig(t.CA, t.Cert) }

// tlsStreamLayer is raft's stream layer over mutual TLS.
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

// newTLSStreamLayer listens on bind for raft peers and dials them, both
// with mutual TLS under t.
func newTLSStreamLayer(bind string, advertise net.Addr, t *TLS) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	server := certs.ServerConfig(t.Cert, func() *x509.CertPool { return t.CA })
	return &tlsStreamLayer{Listener: tls.NewListener(ln, server), advertise: advertise, client: t.clientConfig()}, nil
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
	cfg := l.client.Clone()
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
