package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// httpError is an error with the status code and the message a client
// sees; err, when set, is what the server log gets instead.
type httpError struct {
	code       int
	msg        string
	retryAfter int // seconds; 0 means no Retry-After header
	reason     registry.FailureReason
	// kind, when set, goes out as the cluster error-kind header, so that a
	// node that forwarded the call knows whether to retry elsewhere.
	kind string
	err  error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &httpError{code: fasthttp.StatusBadRequest, msg: fmt.Sprintf(format, args...), reason: registry.ReasonBadRequest}
}

func notFound(format string, args ...any) error {
	return &httpError{code: fasthttp.StatusNotFound, msg: fmt.Sprintf(format, args...), reason: registry.ReasonBadRequest}
}

func unavailable(retryAfter int, format string, args ...any) error {
	return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: retryAfter, msg: fmt.Sprintf(format, args...), reason: registry.ReasonOverloaded}
}

func timedOut(msg string) error {
	return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, msg: msg, reason: registry.ReasonTimeout}
}

// internal hides err from the client, who gets errInternalMsg; the log
// gets err.
func internal(err error) error {
	return &httpError{code: fasthttp.StatusInternalServerError, msg: errInternalMsg, reason: registry.ReasonInternal, err: err}
}

// errInternalMsg is what a client sees of a bug; the log has the rest.
const errInternalMsg = "internal error; the server log has the details"

// errorLogEvery is how often the same method and path may log a server
// error (see Server.handle); the lines held back in between are counted
// in the next.
const errorLogEvery = 10 * time.Second

// toHTTPError classifies err for a response: status, client message, and
// the failure reason counted in the model's metrics. An error that is not
// classified is a bug: 500, logged.
func toHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var oe *registry.OverloadError
	if errors.As(err, &oe) {
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 1, msg: oe.Error(), reason: registry.ReasonOverloaded}
	}
	var de *oip.Error
	if errors.As(err, &de) {
		return &httpError{code: fasthttp.StatusBadRequest, msg: de.Error(), reason: registry.ReasonBadRequest}
	}
	switch {
	case errors.Is(err, diskfree.ErrLow):
		// Refused before the write: the message says where and what to do.
		return &httpError{code: fasthttp.StatusInsufficientStorage, msg: err.Error()}
	case diskfree.IsFull(err):
		return &httpError{code: fasthttp.StatusInsufficientStorage, err: err,
			msg: "this node's disk is full, and nothing was stored: free space in its --data (the server log names the file), or keep more free with --min-free-disk"}
	}
	return internal(err).(*httpError)
}

// writeError answers ctx with he's status and JSON body.
func writeError(ctx *fasthttp.RequestCtx, he *httpError) {
	ctx.Response.ResetBody()
	ctx.Response.Header.Del(headerInferenceLen)
	ctx.SetStatusCode(he.code)
	ctx.SetContentType("application/json")
	if he.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	if he.kind != "" {
		ctx.Response.Header.Set(cluster.HeaderErrorKind, he.kind)
	}
	ctx.SetBody(oip.AppendError(nil, he.msg))
}
