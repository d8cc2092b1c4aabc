package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/internal/logging"
)

// CAs holds the certificate authorities of a PEM file (a bundle) and
// parses the file again when its contents change, so that an operator
// rolls a CA (adds the new one to the bundle, rolls the certificates,
// drops the old one) without a restart. The file is looked at at most
// once a second, when a handshake (or a scrape) asks for Pool. New
// contents are taken at once when the file was last modified a second or
// more before, else once the next look reads them again, so that a file
// being written is not taken half way.
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
	pending []byte    // contents read once, taken if the next look reads them again
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
	set, skipped, err := parseCAs(file, b)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		logf(logging.Warning+"tls: the CA file %s: %s; skipped", file, s)
	}
	c.cur.Store(set)
	c.pem, c.checked = b, c.now()
	return c, nil
}

// parseCAs makes a set of the PEM certificates in b, read from file, and
// says which certificates it skipped, and why. A PEM block that does not
// decode (a bundle cut short inside a block) refuses the whole file: the
// CAs after the cut would be dropped. A certificate that does not parse
// (one Go refuses, such as a legacy root with a negative serial number)
// is skipped, as x509.CertPool.AppendCertsFromPEM skips it, and so are
// blocks of other types; a file left without a certificate is refused.
func parseCAs(file string, b []byte) (set *caSet, skipped []string, err error) {
	set = &caSet{pool: x509.NewCertPool()}
	blocks, certs := 0, 0
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
		certs++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("its certificate %d does not parse: %v", certs, err))
			continue
		}
		set.pool.AddCert(cert)
		set.certs = append(set.certs, cert)
	}
	// pem.Decode skips a block it cannot decode and goes on with the
	// next one: count the beginnings to see one.
	if begun := bytes.Count(b, []byte("-----BEGIN ")); begun != blocks {
		return nil, nil, fmt.Errorf("the CA file %s has PEM blocks that do not decode (%d of %d): is it cut short, or being written?", file, begun-blocks, begun)
	}
	if len(set.certs) == 0 {
		if len(skipped) > 0 {
			return nil, nil, fmt.Errorf("the CA file %s holds no PEM certificate that parses: %s", file, strings.Join(skipped, "; "))
		}
		return nil, nil, fmt.Errorf("the CA file %s holds no PEM certificate", file)
	}
	return set, skipped, nil
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
	before, err := os.Stat(c.file)
	if err != nil {
		c.failed(fmt.Errorf("cannot read the CA file: %w", err))
		return c.cur.Load()
	}
	b, err := readFile("CA", c.file)
	if err != nil {
		c.failed(err)
		return c.cur.Load()
	}
	if bytes.Equal(b, c.pem) {
		c.pending = nil
		if c.err != nil {
			c.logf("tls: the CA file %s holds the CAs in use again", c.file)
			c.err = nil
		}
		return c.cur.Load()
	}
	// New contents of a file changed within the last second are taken
	// at the next look, if they stay the same: a file being written can
	// read as a whole bundle, cut between two of its blocks, and would
	// drop the CAs after the cut. Those of a file left alone for longer
	// are taken now: a CA dropped on a quiet node keeps out the first
	// connection after it too.
	after, err := os.Stat(c.file)
	settled := err == nil && after.ModTime().Equal(before.ModTime()) && after.Size() == int64(len(b)) &&
		now.Sub(before.ModTime()) >= checkEvery
	if !settled && !bytes.Equal(b, c.pending) {
		c.pending = b
		return c.cur.Load()
	}
	c.pending = nil
	set, skipped, err := parseCAs(c.file, b)
	if err != nil {
		c.failed(err)
		return c.cur.Load()
	}
	c.cur.Store(set)
	c.pem, c.err = b, nil
	more := ""
	if len(skipped) > 0 {
		more = "; skipped: " + strings.Join(skipped, "; ")
	}
	c.logf("tls: reloaded the CA file %s: now trusting %s%s", c.file, subjects(set.certs), more)
	return set
}

// failed keeps err and logs it when it differs from the last one. c.mu
// is held.
func (c *CAs) failed(err error) {
	if c.err == nil || c.err.Error() != err.Error() {
		c.logf(logging.Warning+"tls: keeping the CAs loaded before from %s: %s", c.file, err)
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
