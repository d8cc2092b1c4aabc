package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// tlsConfig returns the default configuration with TLS under a
// certificate for 127.0.0.1 from a new CA, which it returns too; with
// mutual, clients must present a certificate the CA signed.
func tlsConfig(t *testing.T, mutual bool) (gateway.Config, *testcerts.CA) {
	t.Helper()
	ca := testcerts.NewCA(t, t.TempDir(), "ca")
	cf, kf := ca.Issue(t, "gw", time.Time{}, "127.0.0.1")
	r, err := certs.NewReloader(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	if mutual {
		cfg.TLS = certs.ServerConfig(r, ca.Pool)
	} else {
		cfg.TLS = certs.ServerConfig(r, nil)
	}
	return cfg, ca
}

// startTLS serves a fake model over HTTPS and returns its address.
func startTLS(t *testing.T) (*testServer, string) {
	t.Helper()
	cfg, _ := tlsConfig(t, false)
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	return s, s.listenTCP(t)
}

// A plain-HTTP client of the HTTPS port gets the 400 that says to use
// https:// even while it is still sending a body: the server reads the
// rest before it closes, which would otherwise reset the connection
// under the answer ("connection reset by peer" in Go's client, which the
// admin CLI and the trainer use).
func TestPlainHTTPWithABodyGets400(t *testing.T) {
	s, addr := startTLS(t)
	hc := &http.Client{Timeout: 10 * time.Second}
	body := bytes.Repeat([]byte("x"), 4<<20)
	for i := range 3 {
		resp, err := hc.Post("http://"+addr+"/v2/models/fake/infer", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("attempt %d: a plain-HTTP POST with a body to the HTTPS port: %v; want the 400 that says to use https://", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "https://") {
			t.Fatalf("attempt %d: %d %s; want 400 saying to use https://", i, resp.StatusCode, b)
		}
	}
	// Counted as what it is, not as a client that refused the certificate.
	testenv.CheckFor(t, 5*time.Second, func() error {
		var text strings.Builder
		s.set.WritePrometheus(&text)
		got, err := metricValue(text.String(), `infergate_tls_handshake_errors_total{reason="plain_http"}`)
		if err != nil || got != 3 {
			return fmt.Errorf("plain_http handshake errors %v (%v); want 3", got, err)
		}
		return nil
	})
}

// A connection closed before it sent anything (a load balancer's port
// check) is no failed handshake.
func TestPortChecksAreNoHandshakeErrors(t *testing.T) {
	s, addr := startTLS(t)
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	c, err := net.Dial("tcp", addr) // one that speaks nonsense is one
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\x16\x03\x01\x00\x05hello"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var text strings.Builder
		s.set.WritePrometheus(&text) // the in-memory client speaks no TLS
		// Every reason: a port check counted under any is wrong.
		var got float64
		for _, reason := range []string{"plain_http", "client_refused", "client_certificate", "other"} {
			n, err := metricValue(text.String(), `infergate_tls_handshake_errors_total{reason="`+reason+`"}`)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		other, _ := metricValue(text.String(), `infergate_tls_handshake_errors_total{reason="other"}`)
		if got == 1 && other == 1 {
			break
		}
		if got > 1 || time.Now().After(deadline) {
			t.Fatalf("infergate_tls_handshake_errors_total %v in all, %v of them other; want 1, other (three port checks and one bad handshake)", got, other)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
