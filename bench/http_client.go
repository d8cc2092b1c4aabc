package bench

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// httpTarget is an infer endpoint that HTTP steps load: a gateway or the
// http-floor. Both are driven by the same httpSender.
type httpTarget struct {
	base    string // the base URL
	host    string // Host header
	path    string // request URI, /v2/models/{m}/infer
	pool    *requestPool
	timeout time.Duration
	token   string // bearer token, or ""
	tls     func(serverName string) *tls.Config
}

// newHTTPTarget returns the target of model's infer endpoint at baseURL
// ("http://host:port"), for https over TLS under what tc returns at
// each connection.
func newHTTPTarget(baseURL, model string, pool *requestPool, timeout time.Duration, token string, tc func(serverName string) *tls.Config) (*httpTarget, error) {
	host, prefix, err := splitBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	return &httpTarget{
		base:    baseURL,
		tls:     tc,
		host:    host,
		path:    prefix + "/v2/models/" + pathSegment(model) + "/infer",
		pool:    pool,
		timeout: timeout,
		token:   token,
	}, nil
}

// newClient returns a client of t that opens at most maxConns connections.
func (t *httpTarget) newClient(maxConns int) *fasthttp.HostClient {
	hc := newHostClient(t.base, "infergate-bench", t.tls)
	hc.MaxConns = maxConns
	hc.MaxIdleConnDuration = time.Minute
	hc.MaxResponseBodySize = oip.MaxClientResponseBody
	return hc
}

// httpSender sends the target's requests over one client, reusing its
// request, response and decoded response.
type httpSender struct {
	t    *httpTarget
	hc   *fasthttp.HostClient
	req  *fasthttp.Request
	resp *fasthttp.Response
	dec  oip.InferResponse
	// shedding makes 429 and 503 answers outcomeShed rather than errors
	// (overload runs); see classifyStatus.
	shedding bool
}

func newHTTPSender(t *httpTarget, hc *fasthttp.HostClient) *httpSender {
	s := &httpSender{t: t, hc: hc, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
	s.req.Header.SetMethod(fasthttp.MethodPost)
	s.req.SetRequestURI(t.path)
	s.req.Header.SetHost(t.host)
	httpsScheme(s.req, hc)
	if t.pool.binary {
		s.req.Header.SetContentType("application/octet-stream")
	} else {
		s.req.Header.SetContentType("application/json")
	}
	if t.token != "" {
		s.req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+t.token)
	}
	return s
}

func (s *httpSender) send(seq uint64) (time.Time, int, string) {
	b := &s.t.pool.bodies[seq%uint64(len(s.t.pool.bodies))]
	if b.headerLen >= 0 {
		s.req.Header.SetBytesV(oip.HeaderInferenceHeaderContentLength, b.headerLenText)
	}
	s.req.SetBodyRaw(b.data)
	err := s.hc.DoTimeout(s.req, s.resp, s.t.timeout)
	done := time.Now()
	if err != nil {
		return done, 0, transportErrKind(err)
	}
	if code := s.resp.StatusCode(); code != fasthttp.StatusOK {
		return done, 0, classifyStatus(code, s.resp.Header.Peek(fasthttp.HeaderRetryAfter), s.shedding)
	}
	if err := s.check(b); err != nil {
		return done, 0, ErrKindBadBody
	}
	return done, b.rows, ""
}

// classifyStatus returns the outcome of an answer other than 200 with
// status code and Retry-After header retryAfter (nil when absent): with
// shedding, a 429 or 503 is outcomeShed when retryAfter is usable and
// ErrKindShedWithoutRetryAfter when not; anything else is the error kind
// of the status.
func classifyStatus(code int, retryAfter []byte, shedding bool) string {
	if !shedding || (code != fasthttp.StatusTooManyRequests && code != fasthttp.StatusServiceUnavailable) {
		return ErrKindStatus(code)
	}
	if !validRetryAfter(retryAfter) {
		return ErrKindShedWithoutRetryAfter
	}
	return outcomeShed
}

// validRetryAfter reports whether v is a Retry-After value a client can
// act on (RFC 9110 10.2.3): a number of seconds or an HTTP date.
func validRetryAfter(v []byte) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	if _, err := strconv.ParseUint(string(v), 10, 63); err == nil {
		return true
	}
	_, err := http.ParseTime(string(v))
	return err == nil
}

// check decodes the answer in s.resp and checks it against b's outputs.
func (s *httpSender) check(b *body) error {
	headerLen := -1
	if v := s.resp.Header.Peek(oip.HeaderInferenceHeaderContentLength); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("%s header %q is not a number", oip.HeaderInferenceHeaderContentLength, v)
		}
		headerLen = n
	}
	if err := oip.DecodeResponse(&s.dec, s.resp.Body(), headerLen); err != nil {
		return err
	}
	outs := s.dec.Outputs
	return checkOutputs(len(outs), func(i int) *oip.Tensor { return &outs[i].Tensor }, b.rows, b.outputs)
}

func (s *httpSender) close() {
	s.req.SetBodyRaw(nil)
	fasthttp.ReleaseRequest(s.req)
	fasthttp.ReleaseResponse(s.resp)
}

// transportErrKind classifies an error of fasthttp's Do.
func transportErrKind(err error) string {
	var op *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return ErrKindConnect
	case errors.As(err, &op) && op.Op == "dial":
		return ErrKindConnect
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrKindTimeout
	}
	return ErrKindTransport
}

// capturedResponse is one real answer of the target, which the http-floor
// replays.
type capturedResponse struct {
	body         []byte
	contentType  string
	headerLen    string // Inference-Header-Content-Length, "" when absent
	modelVersion string
	server       string
}

// capture sends the pool's first body and returns the answer, which must
// be a 200 that passes the checks.
func (t *httpTarget) capture() (*capturedResponse, error) {
	hc := t.newClient(1)
	defer hc.CloseIdleConnections()
	s := newHTTPSender(t, hc)
	defer s.close()
	b := &t.pool.bodies[0]
	if b.headerLen >= 0 {
		s.req.Header.SetBytesV(oip.HeaderInferenceHeaderContentLength, b.headerLenText)
	}
	s.req.SetBodyRaw(b.data)
	if err := hc.DoTimeout(s.req, s.resp, t.timeout); err != nil {
		return nil, fmt.Errorf("%w: POST %s: %s", ErrTarget, t.path, err)
	}
	if code := s.resp.StatusCode(); code != fasthttp.StatusOK {
		return nil, fmt.Errorf("%w: POST %s answered %d: %s", ErrTarget, t.path, code, clip(s.resp.Body(), 300))
	}
	if err := s.check(b); err != nil {
		return nil, fmt.Errorf("%w: POST %s: unexpected answer: %s", ErrTarget, t.path, err)
	}
	return &capturedResponse{
		body:         append([]byte(nil), s.resp.Body()...),
		contentType:  string(s.resp.Header.ContentType()),
		headerLen:    string(s.resp.Header.Peek(oip.HeaderInferenceHeaderContentLength)),
		modelVersion: string(s.resp.Header.Peek(oip.HeaderModelVersion)),
		server:       string(s.resp.Header.Server()),
	}, nil
}

// clip returns b as text, cut to n bytes.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
