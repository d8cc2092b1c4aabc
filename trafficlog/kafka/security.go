package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security is how a Writer or Reader reaches the brokers. The zero value
// is plain TCP without authentication.
type Security struct {
	// TLS, when set, connects over TLS with the configuration it returns
	// for the broker's host (serverName), called at every connection so
	// that one that follows its files (certs.Client.Config) applies to
	// the next connections; those open keep what they verified. RootCAs
	// nil trusts the system's CAs; a ServerName left empty is the host's.
	TLS func(serverName string) *tls.Config
	// SASL, when set, authenticates every connection.
	SASL *SASL
}

// SASL is a SASL mechanism and its credentials.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism      string
	User, Password string
}

// Mechanisms are the SASL mechanisms a Security may name.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// Validate reports a mechanism that is not one of Mechanisms, or missing
// credentials.
func (s Security) Validate() error {
	if s.SASL == nil {
		return nil
	}
	if _, err := s.SASL.mechanism(); err != nil {
		return err
	}
	if s.SASL.User == "" || s.SASL.Password == "" {
		return fmt.Errorf("SASL %s needs a user and a password", s.SASL.Mechanism)
	}
	return nil
}

func (a *SASL) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(a.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: a.User, Pass: a.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: a.User, Pass: a.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: a.User, Pass: a.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("SASL mechanism %q: use one of %s", a.Mechanism, strings.Join(Mechanisms, ", "))
}

// opts returns the client options of s.
func (s Security) opts() ([]kgo.Opt, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if s.TLS != nil {
		// Not kgo.DialTLSConfig: it would clone one configuration, and
		// the CAs it was given, for every connection.
		opts = append(opts, kgo.Dialer(s.dialTLS))
	}
	if s.SASL != nil {
		m, _ := s.SASL.mechanism()
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// dialTimeout bounds a connection to a broker, its TLS handshake
// included: kgo's default.
const dialTimeout = 10 * time.Second

// dialTLS opens a TLS connection to the broker at addr (host:port) under
// the configuration s.TLS returns now; it is kgo's dial of
// kgo.DialTLSConfig otherwise.
func (s Security) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot dial the broker %q: %w", addr, err)
	}
	cfg := s.TLS(host)
	if cfg.ServerName == "" {
		cfg = cfg.Clone() // it may be shared
		cfg.ServerName = host
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: cfg}
	return d.DialContext(ctx, network, addr)
}

// refused reports whether err is the brokers and this client failing to
// accept each other (credentials, certificates, TLS against plain TCP):
// a setting to mend, which waiting does not.
func refused(err error) bool {
	var verify *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var op *net.OpError
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.As(err, &verify) || errors.As(err, &rhe) || (errors.As(err, &op) && op.Op == "remote error")
}
