package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/loglimit"
)

// tlsListener serves TLS over a listener. A connection's handshake runs
// at its first read, on the goroutine that serves it and under the read
// deadline fasthttp sets, so that a client that stalls in it holds
// neither Accept nor anything past that deadline.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
	hs  *handshakeLog
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(c, l.cfg), hs: l.hs}, nil
}

// tlsConn is a server's TLS connection. Its failed handshake is counted
// and logged at most once a minute (scanners and clients that do not
// trust the certificate fail them all day); a client speaking plain HTTP
// to it gets a 400 saying so, where it would otherwise see the
// connection close without a word.
type tlsConn struct {
	*tls.Conn
	hs *handshakeLog
	// shaken is set after the handshake, err to its error; both are
	// used by the goroutine that reads (fasthttp's serving one) alone.
	shaken bool
	err    error
}

// plainHTTPAnswer is the answer to plain HTTP on a TLS port.
var plainHTTPAnswer = func() []byte {
	const body = `{"error":"this server speaks HTTPS: use https:// in the URL, not http://"}`
	return fmt.Appendf(nil, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

func (c *tlsConn) Read(p []byte) (int, error) {
	if !c.shaken {
		c.shaken = true
		if err := c.Conn.Handshake(); err != nil {
			reason := handshakeReason(err)
			var rhe tls.RecordHeaderError
			if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
				rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				rhe.Conn.Write(plainHTTPAnswer)
				// What the client still sends (a body) is read, for a
				// while, so that closing does not reset the connection
				// under the answer.
				drain(rhe.Conn, lingerTime, math.MaxInt64)
				err = errors.New("a plain HTTP request on the HTTPS port, answered 400")
				reason = hsPlainHTTP
			}
			c.err = &handshakeError{err: err}
			if !errors.Is(err, io.EOF) {
				// A connection closed before it said anything is a
				// load balancer's port check, not a failure.
				c.hs.failed(c.RemoteAddr(), reason, err)
			}
		}
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// looksLikeHTTP reports whether the first bytes a client sent start an
// HTTP/1 request line: a method in capitals, then a space.
func looksLikeHTTP(b []byte) bool {
	for i, ch := range b {
		switch {
		case ch == ' ':
			return i > 0
		case ch < 'A' || ch > 'Z':
			return false
		}
	}
	return true
}

// handshakeError is a failed TLS handshake, already counted and logged
// by handshakeLog: fasthttp's logger drops it (see fasthttpLogger).
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return handshakeErrorPrefix + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

const handshakeErrorPrefix = "tls handshake: "

// The reasons a handshake fails, the reason label of
// infergate_tls_handshake_errors_total: what an operator does about one
// differs with it.
const (
	// hsPlainHTTP is plain HTTP on the HTTPS port, answered 400: a client
	// configured with http://.
	hsPlainHTTP = iota
	// hsClientRefused is a client that ended the handshake with an alert:
	// most often it does not trust this server's certificate (another
	// CA, a name the certificate lacks, expired).
	hsClientRefused
	// hsClientCert is a client whose certificate is missing or not
	// signed by a CA of --tls-client-ca.
	hsClientCert
	// hsOther is anything else: bytes that are not TLS, a client that
	// stalls, no TLS version or cipher in common.
	hsOther
	numHandshakeReasons
)

var handshakeReasons = [numHandshakeReasons]string{
	hsPlainHTTP:     "plain_http",
	hsClientRefused: "client_refused",
	hsClientCert:    "client_certificate",
	hsOther:         "other",
}

// handshakeReason classifies a failed handshake's error (not plain HTTP,
// which Read tells from the bytes).
func handshakeReason(err error) int {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return hsClientRefused // crypto/tls's error for an alert received
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) || strings.Contains(err.Error(), "didn't provide a certificate") {
		return hsClientCert
	}
	return hsOther
}

// handshakeLog counts failed handshakes by reason and logs one a minute
// at most.
type handshakeLog struct {
	count [numHandshakeReasons]*metrics.Counter
	logf  func(format string, args ...any)
	limit *loglimit.Limiter[struct{}]
}

func newHandshakeLog(set *metrics.Set, logf func(format string, args ...any)) *handshakeLog {
	h := &handshakeLog{logf: logf, limit: loglimit.New[struct{}](time.Minute, 1)}
	for r, name := range handshakeReasons {
		h.count[r] = set.NewCounter(`infergate_tls_handshake_errors_total{reason="` + name + `"}`)
	}
	return h
}

func (h *handshakeLog) failed(remote net.Addr, reason int, err error) {
	h.count[reason].Inc()
	if more, ok := h.limit.Allow(struct{}{}); ok {
		h.logf(logging.Warning+"tls: handshake with %s failed (%s): %v%s", remote, handshakeReasons[reason], err, more)
	}
}

// quietLine reports whether fasthttp's log line with args is about a failed
// handshake, which handshakeLog has dealt with.
func quietLine(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok {
			var he *handshakeError
			if errors.As(err, &he) || strings.Contains(err.Error(), handshakeErrorPrefix) {
				return true
			}
		}
	}
	return false
}
