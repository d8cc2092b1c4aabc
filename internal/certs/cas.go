package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CAs holds the certificate authorities of a PEM file (a bundle) and
// parses the file again when its contents change, so that an operator
// rolls a CA (adds the new one to the bundle, rolls the certificates,
// drops the old one) without a restart: each new handshake that asks
// Pool verifies against what the file held at most a second before.
// Connections already open keep what their handshake verified.
// A file that does not parse, or holds no certificate, leaves the CAs
// in use unchanged; the error is logged once per change of the file and
// kept for Err.
type CAs struct {
	file string
	logf func(format string, args ...any)
	now  func() time.Time

	cur atomic.Pointer[caSet]

	// mu protects the fields below and serializes reloads.
	mu      sync.Mutex
	checked time.Time // when the file was last looked at
	pem     []byte    // the file's contents that cur was parsed from
	err     error     // the last look's error, nil after a good one
}

// caSet is what one version of a CA file holds. It is never modified
// once made: Union tells a reload by its address.
type caSet struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// NewCAs reads file, PEM certificates of authorities, and returns CAs
// serving them. logf reports reloads and their failures; nil means no
// logging.
func NewCAs(file string, logf func(format string, args ...any)) (*CAs, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &CAs{file: file, logf: logf, now: time.Now}
	b, err := readFile("CA", file)
	if err != nil {
		return nil, err
	}
	set, err := parseCAs(file, b)
	if err != nil {
		return nil, err
	}
	c.cur.Store(set)
	c.pem, c.checked = b, c.now()
	return c, nil
}

// parseCAs makes a set of the PEM certificates in b, read from file. A
// PEM block that does not decode (a bundle cut short while it is being
// written) or a certificate that does not parse refuses the whole file:
// x509.CertPool.AppendCertsFromPEM would skip it, and a half-written
// bundle would then drop the CAs after the cut. Blocks of other types
// are skipped, as AppendCertsFromPEM does.
func parseCAs(file string, b []byte) (*caSet, error) {
	set := &caSet{pool: x509.NewCertPool()}
	blocks := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the CA file %s: its certificate %d does not parse: %w", file, len(set.certs)+1, err)
		}
		set.pool.AddCert(cert)
		set.certs = append(set.certs, cert)
	}
	// pem.Decode skips a block it cannot decode and goes on with the
	// next one: count the beginnings to see one.
	if begun := bytes.Count(b, []byte("-----BEGIN ")); begun != blocks {
		return nil, fmt.Errorf("the CA file %s has PEM blocks that do not decode (%d of %d): is it cut short, or being written?", file, begun-blocks, begun)
	}
	if len(set.certs) == 0 {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate", file)
	}
	return set, nil
}

// Pool returns the pool of the CAs in use, reloading the file first
// when it changed since it was last looked at (at most once a second).
// The pool is the same one until the file's CAs change, and must not be
// modified.
func (c *CAs) Pool() *x509.CertPool { return c.set().pool }

// set is Pool's set.
func (c *CAs) set() *caSet {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.checked) < checkEvery && !now.Before(c.checked) {
		return c.cur.Load()
	}
	c.checked = now
	b, err := readFile("CA", c.file)
	if err != nil {
		c.failed(err)
		return c.cur.Load()
	}
	if bytes.Equal(b, c.pem) {
		if c.err != nil {
			c.logf("tls: the CA file %s holds the CAs in use again", c.file)
			c.err = nil
		}
		return c.cur.Load()
	}
	set, err := parseCAs(c.file, b)
	if err != nil {
		c.failed(err)
		return c.cur.Load()
	}
	c.cur.Store(set)
	c.pem, c.err = b, nil
	c.logf("tls: reloaded the CA file %s: now trusting %s", c.file, subjects(set.certs))
	return set
}

// failed keeps err and logs it when it differs from the last one. c.mu
// is held.
func (c *CAs) failed(err error) {
	if c.err == nil || c.err.Error() != err.Error() {
		c.logf("tls: keeping the CAs loaded before from %s: %s", c.file, err)
	}
	c.err = err
}

// Err returns why the file could not be loaded at the last look, or nil
// when the CAs in use are what it holds. It does not look at the file:
// call Pool first for a fresh answer.
func (c *CAs) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// subjects names certs for the log, the first few by their subjects.
func subjects(certs []*x509.Certificate) string {
	const most = 8
	names := make([]string, 0, most)
	for _, c := range certs[:min(len(certs), most)] {
		names = append(names, fmt.Sprintf("%q", c.Subject.String()))
	}
	s := strings.Join(names, ", ")
	if len(certs) > most {
		s += fmt.Sprintf(" and %d more", len(certs)-most)
	}
	return s
}

// Union returns a function returning the pool of the CAs of every one
// of sets, for a server that takes the clients of several (clients'
// CAs and the cluster's). The pool is made again only when one of them
// reloads, so it is the same one between reloads.
func Union(sets ...*CAs) func() *x509.CertPool {
	var (
		mu   sync.Mutex // protects from and pool
		from = make([]*caSet, len(sets))
		pool *x509.CertPool
	)
	return func() *x509.CertPool {
		mu.Lock()
		defer mu.Unlock()
		changed := pool == nil
		for i, s := range sets {
			if cur := s.set(); cur != from[i] {
				from[i], changed = cur, true
			}
		}
		if changed {
			pool = x509.NewCertPool()
			for _, set := range from {
				for _, cert := range set.certs {
					pool.AddCert(cert)
				}
			}
		}
		return pool
	}
}
