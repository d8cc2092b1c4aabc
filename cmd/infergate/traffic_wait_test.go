package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
)

// A follow waits out what may clear by itself. A name that does not
// resolve ends it at the start (a mistyped address), and is waited out
// once the node or the brokers were reached: a Kubernetes pod's name goes
// while it restarts.
func TestFollowWaitsOut(t *testing.T) {
	dial := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://node-1.gw:8080/v1/traffic", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	noName := dial(&net.DNSError{Err: "no such host", Name: "node-1.gw", IsNotFound: true})
	slowName := dial(&net.DNSError{Err: "i/o timeout", Name: "node-1.gw", IsTimeout: true})
	refused := dial(syscall.ECONNREFUSED)
	untrusted := dial(&tls.CertificateVerificationError{Err: fmt.Errorf("x509: certificate signed by unknown authority")})
	f := func(err error, reached, node, kafka bool) {
		t.Helper()
		if got := waitsOut(err, reached); got != node {
			t.Fatalf("a node's log, reached %v, %v: waits it out %v; want %v", reached, err, got, node)
		}
		if got := kafkaWaitsOut(err, reached); got != kafka {
			t.Fatalf("a Kafka topic, reading %v, %v: waits it out %v; want %v", reached, err, got, kafka)
		}
	}
	f(noName, false, false, false)
	f(noName, true, true, true)
	f(slowName, false, true, true)
	f(refused, false, true, true)
	f(refused, true, true, true)
	f(untrusted, false, false, false)
	f(untrusted, true, false, false)
}
