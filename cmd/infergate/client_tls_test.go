package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/trafficlog/kafka"
)

// writeSettled writes b to file, renamed into place, and dates it two
// seconds back: a CA file read again takes it at its next look (at most
// a second after the last), not a look later as one being written.
func writeSettled(t *testing.T, file string, b []byte) {
	t.Helper()
	if err := os.WriteFile(file+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * time.Second)
	if err := os.Chtimes(file, at, at); err != nil {
		t.Fatal(err)
	}
}

// The HTTP client of the commands that run for long (trainer, traffic
// read --follow) verifies each new connection against the CA file
// ($INFERGATE_CA_CERT, or --ca-cert) as it is then, and presents the
// certificate --client-cert and --client-key hold then: the same client
// refuses a server of CA B while the file holds CA A, and takes it once
// the file holds B; then the server, which takes clients of CA A only,
// refuses its certificate of B until the files hold one of A.
func TestClientTLSFilesRotate(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	sc, sk := b.Issue(t, "gateway", time.Time{}, "127.0.0.1")
	srvCert, err := certs.NewReloader(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := a.Pool()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.ServerConfig(srvCert, func() *x509.CertPool { return clientCAs }))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: log.New(io.Discard, "", 0), // the refused handshakes
	}
	go srv.Serve(ln)
	defer srv.Close()

	caFile := filepath.Join(dir, "trusted.pem")
	writeSettled(t, caFile, mustRead(t, a.File))
	bc, bk := b.Issue(t, "client-of-b", time.Time{}, "client")
	ac, ak := a.Issue(t, "client-of-a", time.Time{}, "client")
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writeSettled(t, certFile, mustRead(t, bc))
	writeSettled(t, keyFile, mustRead(t, bk))
	t.Setenv("INFERGATE_CA_CERT", caFile)
	f := &tlsClientFlags{certFile: certFile, keyFile: keyFile}
	hc, err := f.httpClient(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	get := func() error {
		resp, err := hc.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
			return fmt.Errorf("answered %d %q", resp.StatusCode, body)
		}
		return nil
	}

	if err := get(); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Fatalf("a server of CA B, the file holding CA A: %v; want a x509.UnknownAuthorityError", err)
	}
	writeSettled(t, caFile, mustRead(t, b.File))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if err := get(); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
			return fmt.Errorf("once the file holds CA B: %v; want the server's certificate taken, and the client's of B refused", err)
		}
		return nil
	})
	writeSettled(t, certFile, mustRead(t, ac))
	writeSettled(t, keyFile, mustRead(t, ak))
	testenv.CheckFor(t, 5*time.Second, func() error {
		if err := get(); err != nil {
			return fmt.Errorf("once the files hold a certificate of CA A: %v; want an answer", err)
		}
		return nil
	})
}

// The Kafka clients' TLS (--kafka-ca, serve's --traffic-kafka-ca) is
// that of the CA file as it is at each connection: a reader refused by
// brokers of CA B while the file holds CA A is taken, with the same
// settings, once the file holds B.
func TestKafkaCAFileRotates(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	bc, bk := b.Issue(t, "broker", time.Time{}, "127.0.0.1")
	cl, _ := kafkatest.Cluster(t, "traffic", 1, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, bc, bk)}}))
	caFile := filepath.Join(dir, "brokers-ca.pem")
	writeSettled(t, caFile, mustRead(t, a.File))
	f := &kafkaSecurityFlags{prefix: "kafka-", caFile: caFile}
	sec, err := f.security(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := kafka.NewReader(ctx, cl.ListenAddrs(), "traffic", sec); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("brokers of CA B, the file holding CA A: %v; want refused", err)
	}
	writeSettled(t, caFile, mustRead(t, b.File))
	testenv.CheckFor(t, 5*time.Second, func() error {
		r, err := kafka.NewReader(ctx, cl.ListenAddrs(), "traffic", sec)
		if err != nil {
			return fmt.Errorf("once the file holds CA B: %w", err)
		}
		r.Close()
		return nil
	})
}

// A TLS file of a command that does not load stops it, naming where the
// file was given: the flag, or the environment's variable.
func TestClientTLSFileErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	cut := filepath.Join(dir, "cut.pem")
	pem := mustRead(t, a.File)
	writeSettled(t, cut, pem[:len(pem)/2])
	f := func(flags *tlsClientFlags, caEnv, certEnv, want string) {
		t.Helper()
		t.Setenv("INFERGATE_CA_CERT", caEnv)
		t.Setenv("INFERGATE_CLIENT_CERT", certEnv)
		t.Setenv("INFERGATE_CLIENT_KEY", certEnv)
		if _, err := flags.config(); err == nil || !strings.HasPrefix(err.Error(), want+": ") {
			t.Fatalf("got %v; want an error starting with %q", err, want)
		}
	}
	f(&tlsClientFlags{caFile: cut}, "", "", "--ca-cert")
	f(&tlsClientFlags{}, cut, "", "$INFERGATE_CA_CERT")
	f(&tlsClientFlags{certFile: cut, keyFile: cut}, "", "", "--client-cert")
	f(&tlsClientFlags{}, "", cut, "$INFERGATE_CLIENT_CERT")
}
