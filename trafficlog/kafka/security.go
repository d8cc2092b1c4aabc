package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security is how a Writer or Reader reaches the brokers. The zero value
// is plain TCP without authentication.
type Security struct {
	// TLS, when set, connects over TLS with it (RootCAs nil: the
	// system's CAs; a client certificate when the brokers ask for one).
	TLS *tls.Config
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
		opts = append(opts, kgo.DialTLSConfig(s.TLS))
	}
	if s.SASL != nil {
		m, _ := s.SASL.mechanism()
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
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
