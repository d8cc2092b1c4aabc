package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testcerts"
)

// testClock is a clock that tests move by hand. It is read by handshakes
// on the server's goroutines, hence atomic.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func readPEM(t *testing.T, files ...string) []byte {
	t.Helper()
	var b []byte
	for _, f := range files {
		fb, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, fb...)
	}
	return b
}

// writeRenamed puts b at file the way a careful tool does: written
// beside it, renamed into place.
func writeRenamed(t *testing.T, file string, b []byte) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rename(t, tmp, file)
}

func writeInPlace(t *testing.T, file string, b []byte) {
	t.Helper()
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// leafOf parses the certificate that Issue wrote to file.
func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	c := testcerts.KeyPair(t, file, strings.TrimSuffix(file, ".pem")+"-key.pem")
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// verifies reports whether pool takes leaf as a client's certificate.
func verifies(pool *x509.CertPool, leaf *x509.Certificate) bool {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// A CA file read again: a CA added is taken a second later, one dropped
// is refused; a file that does not load keeps the CAs in use, says why
// once, and is forgotten when the file holds them again.
func TestCAsFollowTheFile(t *testing.T) {
	dir := t.TempDir()
	old := testcerts.NewCA(t, dir, "old")
	next := testcerts.NewCA(t, dir, "next")
	oldCert, _ := old.Issue(t, "old-client", time.Time{}, "client")
	nextCert, nextKey := next.Issue(t, "next-client", time.Time{}, "client")
	oldLeaf, nextLeaf := leafOf(t, oldCert), leafOf(t, nextCert)
	file := filepath.Join(dir, "bundle.pem")
	writeInPlace(t, file, readPEM(t, old.File))

	var logged []string
	c, err := NewCAs(file, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	c.now = clock.now
	first := c.Pool()
	if !verifies(first, oldLeaf) || verifies(first, nextLeaf) {
		t.Fatalf("the pool of the old CA alone does not take the old CA's client, or takes the next one's")
	}

	// The next CA joins the bundle: taken once a second has passed. The
	// file was just modified when the server looks (it may be being
	// written still): taken at the next look that reads the same.
	writeRenamed(t, file, readPEM(t, old.File, next.File))
	if c.Pool() != first {
		t.Fatalf("the file was read again within a second")
	}
	clock.advance(checkEvery)
	touch(t, file, clock.now())
	if c.Pool() != first {
		t.Fatalf("new contents of a file modified this instant were taken at their first look: a file being written could be taken half way")
	}
	clock.advance(checkEvery)
	both := c.Pool()
	if !verifies(both, oldLeaf) || !verifies(both, nextLeaf) {
		t.Fatalf("after the next CA joined the file, the pool does not take both CAs' clients")
	}
	if c.Err() != nil || len(logged) != 1 || !strings.Contains(logged[0], `reloaded the CA file `+file+`: now trusting "CN=old", "CN=next"`) {
		t.Fatalf("err %v, logged %q; want nil and the reload with both CAs", c.Err(), logged)
	}
	clock.advance(checkEvery)
	if c.Pool() != both {
		t.Fatalf("a look at an unchanged file made a new pool")
	}

	// Files that do not load: the pool stays, each cause is logged once.
	bad := []struct{ what, content, want string }{
		{"a bundle cut short", string(readPEM(t, old.File, next.File)[:len(readPEM(t, old.File))+100]), "PEM blocks that do not decode (1 of 2)"},
		{"a key", string(readPEM(t, nextKey)), "holds no PEM certificate"},
		{"a certificate that does not parse", "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n", "holds no PEM certificate that parses: its certificate 1 does not parse"},
	}
	for i, b := range bad {
		writeInPlace(t, file, []byte(b.content))
		for range 3 {
			clock.advance(checkEvery)
			if c.Pool() != both {
				t.Fatalf("%s replaced the pool", b.what)
			}
		}
		if err := c.Err(); err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), file) {
			t.Fatalf("%s: Err() = %v; want one naming %s and saying %q", b.what, err, file, b.want)
		}
		if len(logged) != 2+i || !strings.Contains(logged[1+i], "keeping the CAs loaded before from "+file) {
			t.Fatalf("%s: logged %q; want one more line saying the CAs in use stay", b.what, logged)
		}
	}
	os.Remove(file)
	clock.advance(checkEvery)
	if c.Pool() != both || c.Err() == nil || !strings.Contains(c.Err().Error(), "no such file") {
		t.Fatalf("with the file gone: err %v", c.Err())
	}

	// The file holds the CAs in use again: the error is gone, and said so.
	writeRenamed(t, file, readPEM(t, old.File, next.File))
	clock.advance(checkEvery)
	if c.Pool() != both || c.Err() != nil || !strings.Contains(logged[len(logged)-1], "holds the CAs in use again") {
		t.Fatalf("after the file was put back: err %v, logged %q", c.Err(), logged)
	}

	// The old CA leaves: its clients are refused, from the second look.
	// The old CA leaves the file, modified a minute before the next look
	// (a quiet node): that first look takes it, so the first connection
	// after the change is held to it (found by a reviewing helper: it was
	// checked against the CAs of before, however late it came).
	writeInPlace(t, file, readPEM(t, next.File))
	touch(t, file, clock.now().Add(-time.Minute))
	clock.advance(checkEvery)
	if p := c.Pool(); verifies(p, oldLeaf) || !verifies(p, nextLeaf) {
		t.Fatalf("at the first look after the old CA left the file, the pool takes its client, or no longer the next CA's")
	}
}

// touch sets the modification time of file to at.
func touch(t *testing.T, file string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(file, at, at); err != nil {
		t.Fatal(err)
	}
}

// What a CA file must hold to load: at start as at a reload.
func TestNewCAsRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	_, key := ca.Issue(t, "node", time.Time{}, "127.0.0.1")
	good := readPEM(t, ca.File)
	f := func(content, want string) {
		t.Helper()
		file := filepath.Join(dir, "f.pem")
		writeInPlace(t, file, []byte(content))
		_, err := NewCAs(file, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("NewCAs of %q = %v; want an error saying %q", content, err, want)
		}
	}
	f("", "holds no PEM certificate")
	f("not PEM at all", "holds no PEM certificate")
	f(string(readPEM(t, key)), "holds no PEM certificate")
	f(string(good[:len(good)/2]), "PEM blocks that do not decode (1 of 1)")
	// A block cut short between two good ones: pem.Decode would skip it.
	f(string(good)+string(good[:len(good)/2])+"\n"+string(good), "PEM blocks that do not decode (1 of 3)")
	f("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n", "holds no PEM certificate that parses: its certificate 1 does not parse")
	if _, err := NewCAs(filepath.Join(dir, "none.pem"), nil); err == nil || !strings.Contains(err.Error(), "cannot read the CA file") {
		t.Fatalf("NewCAs of a missing file: %v", err)
	}
	// Text around the blocks (a bundle's comments) is no error.
	file := filepath.Join(dir, "commented.pem")
	writeInPlace(t, file, append(append([]byte("# the cluster's CA\n"), good...), "# end\n"...))
	if _, err := NewCAs(file, nil); err != nil {
		t.Fatalf("NewCAs of a commented bundle: %v", err)
	}
}

// Union's pool holds every set's CAs, follows a reload of any of them,
// and stays the same pool between reloads.
func TestUnionFollowsItsSets(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	n := testcerts.NewCA(t, dir, "n")
	ac, _ := a.Issue(t, "ac", time.Time{}, "client")
	bc, _ := b.Issue(t, "bc", time.Time{}, "client")
	nc, _ := n.Issue(t, "nc", time.Time{}, "client")
	aFile, bFile := filepath.Join(dir, "a-bundle.pem"), filepath.Join(dir, "b-bundle.pem")
	writeInPlace(t, aFile, readPEM(t, a.File))
	writeInPlace(t, bFile, readPEM(t, b.File))
	clock := newTestClock()
	sets := make([]*CAs, 2)
	for i, file := range []string{aFile, bFile} {
		var err error
		if sets[i], err = NewCAs(file, nil); err != nil {
			t.Fatal(err)
		}
		sets[i].now = clock.now
	}
	pool := Union(sets...)
	first := pool()
	if !verifies(first, leafOf(t, ac)) || !verifies(first, leafOf(t, bc)) || verifies(first, leafOf(t, nc)) {
		t.Fatalf("the union does not take the clients of both sets, or takes another CA's")
	}
	clock.advance(checkEvery)
	if pool() != first {
		t.Fatalf("the union made a new pool with no set changed")
	}
	writeInPlace(t, bFile, readPEM(t, b.File, n.File))
	clock.advance(checkEvery)
	pool()
	clock.advance(checkEvery)
	if p := pool(); !verifies(p, leafOf(t, nc)) || !verifies(p, leafOf(t, ac)) {
		t.Fatalf("after the second set gained a CA, the union does not take its client, or lost the first set's")
	}
}

// serveTLS serves cfg on a loopback port, writing "ok" on every
// connection, and returns the port's address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
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
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("ok"))
			}()
		}
	}()
	return ln.Addr().String()
}

// dialTLS connects to addr with cfg and reads the server's "ok" (TLS
// 1.3: the server's verdict on the client's certificate comes there).
// It says whether the session was resumed.
func dialTLS(addr string, cfg *tls.Config) (resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

// A server of ServerConfig verifies each new client against the pool of
// the moment: a client of a CA that joins the file is refused, then
// taken; once the CA leaves the file it is refused again, by a full
// handshake and by the resumption of a session it had.
func TestServerConfigFollowsClientCAs(t *testing.T) {
	// crypto/tls checks a resumed session's chains in TLS 1.2 and 1.3 by
	// separate code.
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) { serverFollowsClientCAs(t, v) })
	}
}

func serverFollowsClientCAs(t *testing.T, version uint16) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	next := testcerts.NewCA(t, dir, "next")
	sc, sk := ca.Issue(t, "server", time.Time{}, "127.0.0.1")
	nc, nk := next.Issue(t, "client", time.Time{}, "client")
	srv, err := NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "clients.pem")
	writeInPlace(t, file, readPEM(t, ca.File))
	cas, err := NewCAs(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	cas.now = clock.now
	addr := serveTLS(t, ServerConfig(srv, cas.Pool))
	client, err := NewReloader(nc, nk, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ClientConfig(ca.Pool(), client)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	cfg.MaxVersion = version

	if _, err := dialTLS(addr, cfg); err == nil {
		t.Fatalf("a client of a CA not in the file got through")
	}
	writeRenamed(t, file, readPEM(t, ca.File, next.File))
	for range 2 { // taken at the second look
		clock.advance(checkEvery)
		cas.Pool()
	}
	if resumed, err := dialTLS(addr, cfg); err != nil || resumed {
		t.Fatalf("after its CA joined the file, a client: %v (resumed %v); want a full handshake that gets through", err, resumed)
	}
	// The client resumes its session while its CA is in the file, so the
	// refusal below is the server's check of a resumption, not the
	// client's failure to resume.
	if resumed, err := dialTLS(addr, cfg); err != nil || !resumed {
		t.Fatalf("the client again: %v, resumed %v; want a resumed session", err, resumed)
	}

	writeInPlace(t, file, readPEM(t, ca.File))
	for range 2 {
		clock.advance(checkEvery)
		cas.Pool()
	}
	if _, err := dialTLS(addr, cfg); err == nil {
		t.Fatalf("after its CA left the file, a client with a session of before got through")
	}
	fresh := ClientConfig(ca.Pool(), client)
	fresh.MaxVersion = version
	if _, err := dialTLS(addr, fresh); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("after its CA left the file, a client: %v; want refused as of an unknown authority", err)
	}
}

// refusedRoot returns the PEM of a self-signed CA certificate that Go's
// parser refuses (a negative serial number, as some legacy roots have),
// though its PEM block is whole.
func refusedRoot(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x5a), Subject: pkix.Name{CommonName: "legacy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	// The serial's DER (INTEGER, one byte, 0x5a) made 0xda: negative.
	i := bytes.Index(der, []byte{0x02, 0x01, 0x5a})
	if i < 0 {
		t.Fatal("no serial in the certificate")
	}
	der[i+2] = 0xda
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("Go parses a negative serial number")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A bundle with a certificate Go refuses beside good ones loads, the
// refused one skipped and logged, as x509.CertPool.AppendCertsFromPEM
// skips it (found by a reviewing helper: the whole file was refused, so
// serve stopped starting with a bundle it took before, and a reload that
// dropped a CA was not taken).
func TestNewCAsSkipsCertificatesGoRefuses(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	leaf, _ := ca.Issue(t, "client", time.Time{}, "client")
	file := filepath.Join(dir, "bundle.pem")
	writeInPlace(t, file, append(refusedRoot(t), readPEM(t, ca.File)...))
	var logged []string
	c, err := NewCAs(file, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatalf("NewCAs of a bundle with one certificate Go refuses: %v", err)
	}
	if !verifies(c.Pool(), leafOf(t, leaf)) {
		t.Fatal("the pool does not take the good CA's client")
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "its certificate 1 does not parse") || !strings.Contains(logged[0], "skipped") {
		t.Fatalf("logged %q; want the refused certificate named, skipped", logged)
	}
}
