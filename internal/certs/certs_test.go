package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testcerts"
)

func TestReloaderPicksUpRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	certFile, keyFile := ca.Issue(t, "node", time.Now().Add(time.Hour), "127.0.0.1")
	var logged []string
	r, err := NewReloader(certFile, keyFile, func(f string, a ...any) { logged = append(logged, f) })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	first := r.NotAfter()

	// A new pair under the same names: picked up once a second has passed.
	later := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	c2, k2 := ca.Issue(t, "next", later, "127.0.0.1")
	rename(t, c2, certFile)
	rename(t, k2, keyFile)
	if got := r.NotAfter(); !got.Equal(first) {
		t.Fatalf("reloaded within a second: NotAfter %s; want %s", got, first)
	}
	now = now.Add(checkEvery)
	if got := r.NotAfter(); !got.Equal(later) {
		t.Fatalf("NotAfter after rotation %s; want %s", got, later)
	}
	if r.Err() != nil || len(logged) != 1 {
		t.Fatalf("err %v, logged %q; want nil and one reload line", r.Err(), logged)
	}

	// A half-written certificate keeps the loaded one and says why, once.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		now = now.Add(checkEvery)
		if got := r.NotAfter(); !got.Equal(later) {
			t.Fatalf("a broken file replaced the certificate: NotAfter %s", got)
		}
	}
	if r.Err() == nil || len(logged) != 2 || !strings.Contains(logged[1], "keeping the certificate") {
		t.Fatalf("err %v, logged %q; want an error logged once", r.Err(), logged)
	}

	// Files that are gone: the same.
	os.Remove(keyFile)
	now = now.Add(checkEvery)
	if got := r.NotAfter(); !got.Equal(later) || r.Err() == nil {
		t.Fatalf("NotAfter %s, err %v with the key gone", got, r.Err())
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestNewReloaderRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	c1, k1 := ca.Issue(t, "a", time.Time{}, "127.0.0.1")
	_, k2 := ca.Issue(t, "b", time.Time{}, "127.0.0.1")
	f := func(cert, key, want string) {
		t.Helper()
		_, err := NewReloader(cert, key, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("NewReloader(%s, %s) = %v; want an error saying %q", cert, key, err, want)
		}
	}
	f(c1, k2, "private key does not match")
	f(c1, filepath.Join(dir, "none.pem"), "no such file")
	f(k1, k1, "cannot load")
}

// TestMutualTLS checks the configurations together: a client with a
// certificate of the CA gets through, one without or with another CA's
// does not.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	other := testcerts.NewCA(t, dir, "other")
	sc, sk := ca.Issue(t, "server", time.Time{}, "127.0.0.1")
	cc, ck := ca.Issue(t, "client", time.Time{}, "127.0.0.1")
	oc, ok := other.Issue(t, "stranger", time.Time{}, "127.0.0.1")
	srv, err := NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, ServerConfig(srv, ca.Pool))
	dial := func(certFile, keyFile string) error {
		var r *Reloader
		if certFile != "" {
			if r, err = NewReloader(certFile, keyFile, nil); err != nil {
				t.Fatal(err)
			}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, ClientConfig(ca.Pool(), r))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 2)
		_, err = c.Read(b) // TLS 1.3: the server's verdict on the client's certificate comes here
		return err
	}
	if err := dial(cc, ck); err != nil {
		t.Fatalf("a client of the CA: %s", err)
	}
	if err := dial("", ""); err == nil {
		t.Fatalf("a client without a certificate got through")
	}
	if err := dial(oc, ok); err == nil {
		t.Fatalf("a client of another CA got through")
	}
}

// A pair that is expired, not valid yet, or that the check refuses is
// not served: refused at start, kept out at a reload (the one in use
// stays, Err says why); when the files hold the one in use again, the
// log says so.
func TestReloaderRefusesUnfitCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	expired, expiredKey := ca.Issue(t, "expired", time.Now().Add(-time.Minute), "127.0.0.1")
	if _, err := NewReloader(expired, expiredKey, nil); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("NewReloader of an expired certificate: %v", err)
	}
	certFile, keyFile := ca.Issue(t, "node", time.Time{}, "127.0.0.1", "node.example")
	var logged []string
	r, err := NewReloader(certFile, keyFile, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	good := r.Certificate()
	named := func(c *tls.Certificate) error { return c.Leaf.VerifyHostname("node.example") }
	if err := r.SetCheck(named); err != nil {
		t.Fatal(err)
	}
	keep := func(what string) {
		t.Helper()
		now = now.Add(checkEvery)
		if r.Certificate() != good || r.Err() == nil {
			t.Fatalf("%s replaced the certificate in use (err %v)", what, r.Err())
		}
	}
	save, _ := os.ReadFile(certFile)
	saveKey, _ := os.ReadFile(keyFile)
	copyFile(t, expired, certFile)
	copyFile(t, expiredKey, keyFile)
	keep("an expired pair")
	other, otherKey := ca.Issue(t, "other", time.Time{}, "127.0.0.1") // does not name node.example
	copyFile(t, other, certFile)
	copyFile(t, otherKey, keyFile)
	keep("a pair the check refuses")
	os.WriteFile(certFile, save, 0o600)
	os.WriteFile(keyFile, saveKey, 0o600)
	now = now.Add(checkEvery)
	if r.Certificate() != good || r.Err() != nil || !strings.Contains(logged[len(logged)-1], "hold the certificate in use again") {
		t.Fatalf("after the files were put back: err %v, log %q", r.Err(), logged)
	}
	if err := r.SetCheck(func(*tls.Certificate) error { return errors.New("no") }); err == nil {
		t.Fatalf("SetCheck of a check that refuses the certificate in use succeeded")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
