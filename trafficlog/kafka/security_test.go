package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

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
	good := Security{TLS: fixedTLS(&tls.Config{RootCAs: ca.Pool()}), SASL: &SASL{Mechanism: "SCRAM-SHA-256", User: "gateway", Password: "s3cret"}}

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
	untrusting.TLS = fixedTLS(&tls.Config{})
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

// fixedTLS returns a Security.TLS that returns cfg, the same for every
// connection.
func fixedTLS(cfg *tls.Config) func(string) *tls.Config {
	return func(string) *tls.Config { return cfg }
}

// Security.TLS is asked for the configuration of each connection, with
// the broker's host: a client refused by a broker whose CA it does not
// trust gets through, the same client, once the configuration trusts
// that CA.
func TestTLSConfigurationOfEachConnection(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.NewCA(t, dir, "a")
	b := testcerts.NewCA(t, dir, "b")
	c, k := b.Issue(t, "broker", time.Time{}, "127.0.0.1")
	cl, _ := kafkatest.Cluster(t, "traffic", 1, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{testcerts.KeyPair(t, c, k)}}))
	var (
		roots atomic.Pointer[x509.CertPool]
		mu    sync.Mutex
		names []string // the server names TLS was called with
	)
	roots.Store(a.Pool())
	sec := Security{TLS: func(serverName string) *tls.Config {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, serverName)
		return &tls.Config{RootCAs: roots.Load()} // ServerName left to the dial
	}}
	opts, err := sec.opts()
	if err != nil {
		t.Fatal(err)
	}
	client, err := kgo.NewClient(append(opts, kgo.SeedBrokers(cl.ListenAddrs()...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx); !errors.As(err, new(*tls.CertificateVerificationError)) || !refused(err) {
		t.Fatalf("a broker of CA B, trusting CA A: %v; want a certificate refused", err)
	}
	roots.Store(b.Pool())
	if err := client.Ping(ctx); err != nil {
		t.Fatalf("the same client, trusting CA B: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) < 2 || slices.ContainsFunc(names, func(n string) bool { return n != "127.0.0.1" }) {
		t.Fatalf("TLS called with %q; want 127.0.0.1 at each connection, two or more", names)
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
