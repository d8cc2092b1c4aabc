// Package certs reads TLS certificates and certificate authorities from
// PEM files for infergate's servers and clients, and reloads them when
// their files change, so that a rotated certificate (cert-manager, a
// cron job running certbot) or a CA bundle that gains or loses a CA
// takes effect at the next handshake without a restart.
//
// A Reloader and CAs are safe for concurrent use; their zero values are
// not usable.
package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/internal/logging"
)

// checkEvery is how often, at most, a Reloader or CAs looks at its
// files: a handshake costs about a millisecond of CPU, reading two small
// files a second is nothing beside it.
const checkEvery = time.Second

// Reloader holds a certificate and its key read from two PEM files and
// parses them again when either file's contents change (compared byte
// for byte: a rotation can keep the size, and file systems stamp
// modification times coarsely).
// A pair that fails to load (a half-written file, a key that does not
// match) leaves the previous certificate in use; the error is logged
// once per change of the files and kept for Err.
type Reloader struct {
	certFile, keyFile string
	logf              func(format string, args ...any)
	now               func() time.Time

	cur atomic.Pointer[tls.Certificate]

	// mu protects the fields below and serializes reloads.
	mu sync.Mutex
	// check, when set, must accept a pair before it is served (SetCheck).
	check   func(*tls.Certificate) error
	checked time.Time // when the files were last looked at
	certPEM []byte    // the files' contents that cur was parsed from
	keyPEM  []byte
	err     error // the last look's error, nil after a good one
}

// NewReloader reads certFile and keyFile (PEM; the certificate file may
// hold the chain after the leaf) and returns a Reloader serving them.
// logf reports reloads and their failures; nil means no logging.
func NewReloader(certFile, keyFile string, logf func(format string, args ...any)) (*Reloader, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logf: logf, now: time.Now}
	cb, kb, err := r.read()
	if err != nil {
		return nil, err
	}
	cert, err := r.parse(cb, kb)
	if err != nil {
		return nil, err
	}
	r.cur.Store(cert)
	r.certPEM, r.keyPEM, r.checked = cb, kb, r.now()
	return r, nil
}

// maxFile bounds what is read of a certificate or key file.
const maxFile = 1 << 20

func (r *Reloader) read() (cert, key []byte, err error) {
	if cert, err = readFile("TLS", r.certFile); err != nil {
		return nil, nil, err
	}
	if key, err = readFile("TLS", r.keyFile); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// readFile reads file, a TLS or CA file (kind), for messages.
func readFile(kind, file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the %s file: %w", kind, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the %s file %s: %w", kind, file, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("the %s file %s is larger than %d bytes", kind, file, maxFile)
	}
	return b, nil
}

// parse makes a certificate of the files' bytes, and refuses one that is
// expired, not valid yet, or that the check set refuses. r.mu is held,
// or r is not shared yet.
func (r *Reloader) parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cannot load the TLS certificate %s with the key %s: %w", r.certFile, r.keyFile, err)
	}
	// The leaf, parsed once here rather than at every handshake (Go fills
	// it unless GODEBUG x509keypairleaf=0).
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cannot parse the TLS certificate %s: %w", r.certFile, err)
		}
	}
	if err := r.valid(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// valid refuses c when it is expired or not valid yet (every peer would
// refuse it), or when the check refuses it.
func (r *Reloader) valid(c *tls.Certificate) error {
	now := r.now()
	switch {
	case now.After(c.Leaf.NotAfter):
		return fmt.Errorf("the TLS certificate %s expired at %s", r.certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Leaf.NotBefore):
		return fmt.Errorf("the TLS certificate %s is not valid before %s (check this machine's clock)", r.certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if r.check != nil {
		if err := r.check(c); err != nil {
			return fmt.Errorf("the TLS certificate %s: %w", r.certFile, err)
		}
	}
	return nil
}

// SetCheck makes check accept every pair from now on, the one in use
// first: an error leaves r as it is.
func (r *Reloader) SetCheck(check func(*tls.Certificate) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := check(r.cur.Load()); err != nil {
		return err
	}
	r.check = check
	return nil
}

// Certificate returns the certificate in use, reloading it first when
// its files changed since they were last looked at (at most once a
// second).
func (r *Reloader) Certificate() *tls.Certificate {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.checked) < checkEvery && !now.Before(r.checked) {
		return r.cur.Load()
	}
	r.checked = now
	cb, kb, err := r.read()
	if err != nil {
		r.failed(err)
		return r.cur.Load()
	}
	if bytes.Equal(cb, r.certPEM) && bytes.Equal(kb, r.keyPEM) {
		if r.err != nil {
			r.logf("tls: the files of %s hold the certificate in use again", r.certFile)
			r.err = nil
		}
		return r.cur.Load()
	}
	cert, err := r.parse(cb, kb)
	if err != nil {
		r.failed(err)
		return r.cur.Load()
	}
	r.cur.Store(cert)
	r.certPEM, r.keyPEM, r.err = cb, kb, nil
	r.logf("tls: reloaded the certificate %s (subject %q, valid until %s)", r.certFile, cert.Leaf.Subject.String(), cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return cert
}

// failed keeps err and logs it when it differs from the last one. r.mu
// is held.
func (r *Reloader) failed(err error) {
	if r.err == nil || r.err.Error() != err.Error() {
		r.logf(logging.Warning+"tls: keeping the certificate loaded before: %s", err)
	}
	r.err = err
}

// Err returns why the files could not be loaded at the last look, or nil
// when the certificate in use is what they hold.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// NotAfter returns when the certificate in use expires.
func (r *Reloader) NotAfter() time.Time { return r.Certificate().Leaf.NotAfter }

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// CheckLeaf reports why peers trusting roots would refuse cert as a
// server or as a client of theirs (usages).
func CheckLeaf(cert *tls.Certificate, roots *x509.CertPool, usages ...x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	for _, u := range usages {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return err
		}
	}
	return nil
}

// ServerConfig returns the configuration of a TLS server presenting r's
// certificate. With clientCAs, clients must present a certificate one of
// the CAs in its pool signed; it is called at every handshake (CAs.Pool,
// or Union), so a pool that changes applies to the next handshakes. It
// must not return nil.
//
// The pool goes into a configuration of the handshake's own
// (GetConfigForClient), so that crypto/tls verifies the client's
// certificate as it would with a fixed ClientCAs, alerts included.
// crypto/tls checks the chains of a session resumed from a ticket
// against that pool too, so a client whose CA was dropped cannot resume
// its way back in (TestServerConfigFollowsClientCAs holds the Go of
// go.mod to it).
func ServerConfig(r *Reloader, clientCAs func() *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
	if clientCAs == nil {
		return c
	}
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = clientCAs() // what a reader of c sees; handshakes use GetConfigForClient's
	base := c.Clone()
	// last is the configuration made for the pool of the last
	// handshakes: a pool stays the same between reloads, and a Clone
	// per handshake would cost for nothing.
	var last atomic.Pointer[tls.Config]
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := clientCAs()
		if pool == nil {
			// A nil ClientCAs would verify clients against the system's
			// roots.
			return nil, errors.New("BUG: no pool of client CAs")
		}
		if l := last.Load(); l != nil && l.ClientCAs == pool {
			return l, nil
		}
		n := base.Clone()
		n.ClientCAs = pool
		last.Store(n)
		return n, nil
	}
	return c
}

// ClientConfig returns the configuration of a TLS client that trusts
// roots (nil: the system's) and presents r's certificate when a server
// asks for one (r may be nil).
func ClientConfig(roots *x509.CertPool, r *Reloader) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if r != nil {
		c.GetClientCertificate = r.GetClientCertificate
	}
	return c
}

// Hint returns what to do about err when it is a TLS failure that a
// setting of infergate's commands mends, as a clause to append ("; give
// --ca-cert ..."); "" otherwise.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var inv x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &ua):
		return "; give --ca-cert the file of the CA that signed the server's certificate (serve --tls-cert)"
	case errors.As(err, &hn):
		return "; use the address the server's certificate names, or have it reissued for this one"
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "; the server's certificate has expired, or is not valid yet (check both clocks): the server needs a new one (its files are read again when they change)"
	case strings.Contains(msg, "certificate required"):
		return "; the server asks for a client certificate (serve --tls-client-ca): give --client-cert and --client-key"
	case strings.Contains(msg, "tls: expired certificate"):
		return "; the server refused this client's certificate as expired: renew --client-cert"
	case strings.Contains(msg, "tls: unknown certificate authority"), strings.Contains(msg, "tls: bad certificate"):
		return "; the server does not take this client's certificate: --client-cert must be signed by a CA of the server's --tls-client-ca"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "; the server speaks plain HTTP: use http://, without --ca-cert and --client-cert"
	}
	return ""
}
