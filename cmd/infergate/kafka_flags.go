package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/trafficlog/kafka"
)

// kafkaSecurityFlags say how a command reaches Kafka brokers: over TLS,
// with SASL. serve spells them --traffic-kafka-*, the readers --kafka-*.
type kafkaSecurityFlags struct {
	prefix                    string
	tls                       bool
	caFile, certFile, keyFile string
	mechanism, user           string
}

// addKafkaSecurityFlags defines the flags on fs, each named prefix+name.
func addKafkaSecurityFlags(fs *flag.FlagSet, prefix string) *kafkaSecurityFlags {
	f := &kafkaSecurityFlags{prefix: prefix}
	fs.BoolVar(&f.tls, prefix+"tls", false, "connect to the Kafka brokers over TLS, trusting the system's CAs unless --"+prefix+"ca")
	fs.StringVar(&f.caFile, prefix+"ca", "", "connect over TLS, trusting the CAs in this PEM file for the brokers' certificates; read again when it changes, for the next connections")
	fs.StringVar(&f.certFile, prefix+"cert", "", "connect over TLS, presenting this PEM certificate to brokers that ask for one (with --"+prefix+"key; both read again when they change)")
	fs.StringVar(&f.keyFile, prefix+"key", "", "the PEM private key of --"+prefix+"cert")
	fs.StringVar(&f.mechanism, prefix+"sasl", "", "authenticate to the brokers with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN sends the password as is: use it over TLS); the password comes from $INFERGATE_KAFKA_PASSWORD")
	fs.StringVar(&f.user, prefix+"sasl-user", "", "the SASL user (default $INFERGATE_KAFKA_USER)")
	return f
}

// given reports whether any of the flags was given.
func (f *kafkaSecurityFlags) given() bool {
	return f.tls || f.caFile != "" || f.certFile != "" || f.keyFile != "" || f.mechanism != "" || f.user != ""
}

// check refuses the flags when no brokers are named: they would be
// ignored, silently.
func (f *kafkaSecurityFlags) check(brokers string) error {
	if brokers == "" && f.given() {
		return fmt.Errorf("--%stls, --%sca, --%scert, --%skey and --%ssasl apply to Kafka brokers: name them with --%sbrokers, or drop these", f.prefix, f.prefix, f.prefix, f.prefix, f.prefix, f.prefix)
	}
	return nil
}

// security returns what the flags and the environment describe. The TLS
// files are read again when they change, for the connections made after;
// logf reports those reloads.
func (f *kafkaSecurityFlags) security(logf func(format string, args ...any)) (kafka.Security, error) {
	var sec kafka.Security
	if f.tls || f.caFile != "" || f.certFile != "" || f.keyFile != "" {
		if (f.certFile == "") != (f.keyFile == "") {
			return sec, fmt.Errorf("--%scert and --%skey go together: give both", f.prefix, f.prefix)
		}
		tc, err := certs.ClientFiles(f.caFile, f.certFile, f.keyFile, "--"+f.prefix+"ca", "--"+f.prefix+"cert", logf)
		if err != nil {
			return sec, err
		}
		sec.TLS = tc.Config
	}
	if f.mechanism == "" {
		if f.user != "" {
			return sec, fmt.Errorf("--%ssasl-user without --%ssasl: name the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", f.prefix, f.prefix)
		}
		return sec, nil
	}
	if strings.EqualFold(f.mechanism, "PLAIN") && sec.TLS == nil {
		return sec, fmt.Errorf("--%ssasl PLAIN sends the password as it is: add --%stls (or --%sca), or use SCRAM-SHA-256 or SCRAM-SHA-512", f.prefix, f.prefix, f.prefix)
	}
	sec.SASL = &kafka.SASL{Mechanism: f.mechanism, User: orEnv(f.user, "INFERGATE_KAFKA_USER"), Password: os.Getenv("INFERGATE_KAFKA_PASSWORD")}
	switch {
	case sec.SASL.User == "":
		return sec, fmt.Errorf("--%ssasl %s needs a user: --%ssasl-user or $INFERGATE_KAFKA_USER", f.prefix, f.mechanism, f.prefix)
	case sec.SASL.Password == "":
		return sec, errors.New("--" + f.prefix + "sasl needs the password in $INFERGATE_KAFKA_PASSWORD (never a flag: flags show in ps)")
	}
	if err := sec.Validate(); err != nil {
		return sec, fmt.Errorf("--%ssasl: %w", f.prefix, err)
	}
	return sec, nil
}
