package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/infergate/infergate/internal/kafkatest"
	"github.com/infergate/infergate/internal/testcerts"
)

// A writer and a reader reach brokers that take TLS and SCRAM only; a
// broker certificate the client does not trust fails Open at once,
// saying why, rather than serving with a log that never writes.
func TestSecureBrokers(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	c, k := ca.Issue(t, "broker", time.Time{}, "127.0.0.1")
	brokerCert := testcerts.KeyPair(t, c, k)
	cl, _ := kafkatest.Cluster(t, "traffic", 1,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{brokerCert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "gateway", "s3cret"))
	brokers := cl.ListenAddrs()
	good := Security{TLS: &tls.Config{RootCAs: ca.Pool()}, SASL: &SASL{Mechanism: "SCRAM-SHA-256", User: "gateway", Password: "s3cret"}}

	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.Security = brokers, "traffic", good
	w, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendSync(prediction(1)); err != nil {
		t.Fatal(err)
	}
	w.Close(t.Context())
	r, err := NewReader(t.Context(), brokers, "traffic", good)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 {
		t.Fatalf("read %d events over TLS and SASL; want 1", len(got))
	}
	r.Close()

	f := func(name string, sec Security, want string) {
		t.Helper()
		cfg.Security = sec
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		start := time.Now()
		w, err := Open(ctx, cfg)
		if err == nil {
			w.Close(ctx)
			t.Fatalf("%s: Open succeeded", name)
		}
		if !strings.Contains(err.Error(), want) || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: Open failed after %s with %v; want %q at once", name, time.Since(start), err, want)
		}
		if _, err := NewReader(ctx, brokers, "traffic", sec); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: NewReader: %v; want %q", name, err, want)
		}
	}
	untrusting := good
	untrusting.TLS = &tls.Config{}
	f("untrusted broker", untrusting, "certificate")

	// The in-process broker closes the connection of a client whose
	// password is wrong (a real one answers SASL_AUTHENTICATION_FAILED,
	// which refused takes, below): the reader fails, the writer writes
	// nothing.
	wrong := good
	wrong.SASL = &SASL{Mechanism: "SCRAM-SHA-256", User: "gateway", Password: "guess"}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := NewReader(ctx, brokers, "traffic", wrong); err == nil {
		t.Fatalf("NewReader with the wrong password succeeded")
	}
	cfg.Security = wrong
	cfg.SyncTimeout = time.Second
	if w, err := Open(ctx, cfg); err == nil {
		if err := w.AppendSync(prediction(2)); err == nil {
			t.Fatalf("AppendSync with the wrong password succeeded")
		}
		w.Close(ctx)
	}

	if err := (Security{SASL: &SASL{Mechanism: "GSSAPI", User: "u", Password: "p"}}).Validate(); err == nil || !strings.Contains(err.Error(), "use one of PLAIN") {
		t.Fatalf("an unknown mechanism: %v", err)
	}
}

func TestRefused(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := refused(err); got != want {
			t.Fatalf("refused(%v) = %v; want %v", err, got, want)
		}
	}
	f(fmt.Errorf("list topics: %w", kerr.SaslAuthenticationFailed), true)
	f(kerr.TopicAuthorizationFailed, true)
	f(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, true)
	f(&tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, true)
	f(io.EOF, false)
	f(&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false)
	f(context.DeadlineExceeded, false)
}
