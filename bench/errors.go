package bench

import (
	"errors"
	"strconv"
)

// Errors that Run and RunSuite return, wrapped with the details.
var (
	// ErrBadConfig is a Config or SuiteConfig that Validate refuses.
	ErrBadConfig = errors.New("invalid bench configuration")
	// ErrTarget is a gateway that cannot be reached or does not serve the
	// model as expected (metadata, first request).
	ErrTarget = errors.New("cannot benchmark the target")
	// ErrGatewayStart is a gateway the suite could not start.
	ErrGatewayStart = errors.New("cannot start the gateway")
	// ErrNoHTML is returned by SaveHTML when this build has no HTML
	// report writer.
	ErrNoHTML = errors.New("this build of bench has no HTML report writer")
)

// Error kinds: the keys of Run.ErrorKinds.
const (
	// ErrKindConnect is a request whose connection could not be opened.
	ErrKindConnect = "connect"
	// ErrKindTimeout is a request without an answer within --timeout.
	ErrKindTimeout = "timeout"
	// ErrKindTransport is any other failure to send or read (reset, closed).
	ErrKindTransport = "transport"
	// ErrKindBadBody is a 200 answer that is not the expected response: it
	// does not decode, or its outputs have the wrong names, types or shapes.
	ErrKindBadBody = "bad_body"
	// ErrKindNotSent is an open-loop request that was due within the step
	// but could not be sent before it ended, because --max-inflight
	// requests were outstanding.
	ErrKindNotSent = "not_sent"
	// ErrKindRun is an ort-floor inference that failed.
	ErrKindRun = "run_failed"
	// ErrKindShedWithoutRetryAfter is, in an overload run, a 429 or 503
	// answer without a usable Retry-After header (absent, or neither a
	// number of seconds nor an HTTP date): a client cannot tell when to
	// come back, so the shedding is not clean.
	ErrKindShedWithoutRetryAfter = "shed_without_retry_after"
)

// outcomeShed is what a sender in shedding mode returns as its error kind
// for a request the server shed properly (429 or 503 with Retry-After).
// It is not an error kind: recorders count it apart (recorder.shed).
const outcomeShed = "shed"

// ErrKindStatus returns the error kind of an HTTP answer with status code,
// such as "http_503".
func ErrKindStatus(code int) string {
	switch code {
	case 400:
		return "http_400"
	case 404:
		return "http_404"
	case 413:
		return "http_413"
	case 429:
		return "http_429"
	case 500:
		return "http_500"
	case 503:
		return "http_503"
	}
	return "http_" + strconv.Itoa(code)
}
