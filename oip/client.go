package oip

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Client defaults.
const (
	// DefaultClientTimeout bounds each call of a Client, from sending the
	// request to reading the whole response.
	DefaultClientTimeout = 30 * time.Second
	// MaxClientResponseBody bounds the body of a response the Client reads.
	MaxClientResponseBody = 1 << 30
)

// Client is a small Open Inference Protocol v2 client over fasthttp, for
// one server. It keeps connections alive and is safe for concurrent use;
// configure it with SetMaxConnsPerHost and SetTimeout before the first call,
// not after.
type Client struct {
	hc      *fasthttp.HostClient
	host    string
	prefix  string // path of the base URL, without a trailing slash
	timeout time.Duration
	// auth is the Authorization header's value, or nil (SetToken).
	auth []byte
	// err is the problem with the base URL, which every call returns.
	err error
}

// NewClient returns a client of the server at baseURL, such as
// "http://127.0.0.1:8080"; a path in it prefixes every endpoint. A base URL
// the client cannot use makes every call fail, saying why.
func NewClient(baseURL string) *Client {
	c := &Client{timeout: DefaultClientTimeout, hc: &fasthttp.HostClient{}}
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		c.err = fmt.Errorf("cannot parse the base URL %q: %w", baseURL, err)
		return c
	case u.Scheme != "http" && u.Scheme != "https":
		c.err = fmt.Errorf("base URL %q must start with http:// or https://", baseURL)
		return c
	case u.Host == "":
		c.err = fmt.Errorf("base URL %q has no host", baseURL)
		return c
	}
	c.host = u.Host
	c.prefix = strings.TrimRight(u.EscapedPath(), "/")
	c.hc.Addr = fasthttp.AddMissingPort(u.Host, u.Scheme == "https")
	c.hc.IsTLS = u.Scheme == "https"
	c.hc.DialDualStack = true // fasthttp's default dials IPv4 addresses only
	c.hc.Name = "infergate-oip-client"
	c.hc.DisablePathNormalizing = true
	c.hc.MaxResponseBodySize = MaxClientResponseBody
	c.SetTLS(nil)
	return c
}

// SetMaxConnsPerHost bounds the connections the client opens to the
// server; 0 means fasthttp's default (512). Calls beyond it fail with
// fasthttp.ErrNoFreeConns rather than wait.
func (c *Client) SetMaxConnsPerHost(n int) { c.hc.MaxConns = n }

// SetTimeout bounds each call, from sending the request to reading the
// whole response; 0 means no bound. The default is DefaultClientTimeout.
func (c *Client) SetTimeout(d time.Duration) { c.timeout = d }

// SetTLS makes the connections to an https base URL trust and present
// what config returns for the server's host (the CAs, a client
// certificate); nil trusts the system's CAs. config is called at every
// new connection, so that one that follows its files
// (certs.Client.Config) applies to the next connections.
func (c *Client) SetTLS(config func(serverName string) *tls.Config) {
	c.hc.DialTimeout = nil
	if c.hc.IsTLS {
		c.hc.DialTimeout = DialTLS(config)
	}
}

// DialTLS returns the dial of a fasthttp.HostClient of an https server
// (IsTLS) whose connections each take the TLS configuration that config
// returns then for the host dialed (nil: the system's CAs, no client
// certificate); a ServerName it leaves empty is the host. fasthttp would
// make one configuration per address of its TLSConfig, and keep it. The
// handshake runs in the dial, under the dial's timeout (the call's; none
// when it is 0): left to the connection's first write, it would run
// under the call's write deadline only (fasthttp sets the read deadline
// once the request is written), and a server that never answered it
// would hold the call past its timeout, for ever. It dials IPv6
// addresses as well as IPv4 ones.
func DialTLS(config func(serverName string) *tls.Config) fasthttp.DialFuncWithTimeout {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		var deadline time.Time
		if timeout > 0 {
			deadline = time.Now().Add(timeout)
		}
		addr = fasthttp.AddMissingPort(addr, true)
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var raw net.Conn
		if timeout > 0 {
			raw, err = fasthttp.DialDualStackTimeout(addr, timeout)
		} else {
			raw, err = fasthttp.DialDualStack(addr)
		}
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{}
		if config != nil {
			cfg = config(host)
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone() // it may be shared
			cfg.ServerName = host
		}
		conn := tls.Client(raw, cfg)
		if err := handshake(conn, deadline); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

// handshake runs conn's handshake before deadline (zero: none).
func handshake(conn *tls.Conn, deadline time.Time) error {
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// SetToken makes every call carry "Authorization: Bearer token", as a
// gateway started with --inference-token requires; "" sends none.
func (c *Client) SetToken(token string) {
	c.auth = nil
	if token != "" {
		c.auth = []byte("Bearer " + token)
	}
}

// CloseIdleConnections closes the connections that no call is using.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Infer calls POST /v2/models/{model}[/versions/{version}]/infer with req
// and decodes the answer into resp; version "" lets the server choose. With
// binary, the inputs go as binary tensors; which outputs come back binary
// is up to req (BinaryDataOutput and the outputs' Binary), and Infer
// decodes either kind. It returns the X-Model-Version header of the answer.
// An answer other than 2xx is a *StatusError.
func (c *Client) Infer(model, version string, req *InferRequest, resp *InferResponse, binary bool) (modelVersionHeader string, err error) {
	if c.err != nil {
		return "", c.err
	}
	freq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(freq)
	fresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(fresp)

	var pathBuf [128]byte
	path := c.appendModelPath(pathBuf[:0], model, version, "/infer")
	c.prepare(freq, fasthttp.MethodPost, path)
	body, headerLen := AppendRequest(freq.SwapBody(nil)[:0], req, binary)
	freq.SwapBody(body)
	if binary {
		var num [20]byte
		freq.Header.SetContentType("application/octet-stream")
		freq.Header.SetBytesV(HeaderInferenceHeaderContentLength, strconv.AppendInt(num[:0], int64(headerLen), 10))
	} else {
		freq.Header.SetContentType("application/json")
	}
	if err := c.do(freq, fresp); err != nil {
		return "", err
	}
	headerLen = -1
	if v := fresp.Header.Peek(HeaderInferenceHeaderContentLength); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return "", fmt.Errorf("%s %s: the %s header of the response is %q, not a number",
				fasthttp.MethodPost, string(path), HeaderInferenceHeaderContentLength, v)
		}
		headerLen = n
	}
	if err := DecodeResponse(resp, fresp.Body(), headerLen); err != nil {
		return "", fmt.Errorf("%s %s: cannot decode the response: %w", fasthttp.MethodPost, string(path), err)
	}
	return string(fresp.Header.Peek(HeaderModelVersion)), nil
}

// ModelMetadata calls GET /v2/models/{model}[/versions/{version}].
func (c *Client) ModelMetadata(model, version string) (*ModelMetadata, error) {
	if c.err != nil {
		return nil, c.err
	}
	path := c.appendModelPath(nil, model, version, "")
	md := &ModelMetadata{}
	err := c.get(path, func(body []byte) error { return DecodeModelMetadata(md, body) })
	if err != nil {
		return nil, err
	}
	return md, nil
}

// ServerMetadata calls GET /v2.
func (c *Client) ServerMetadata() (*ServerMetadata, error) {
	if c.err != nil {
		return nil, c.err
	}
	sm := &ServerMetadata{}
	err := c.get(append([]byte(c.prefix), "/v2"...), func(body []byte) error { return DecodeServerMetadata(sm, body) })
	if err != nil {
		return nil, err
	}
	return sm, nil
}

// ServerLive calls GET /v2/health/live. See ModelReady for what it returns.
func (c *Client) ServerLive() (bool, error) {
	return c.health(append([]byte(c.prefix), "/v2/health/live"...))
}

// ServerReady calls GET /v2/health/ready. See ModelReady for what it
// returns.
func (c *Client) ServerReady() (bool, error) {
	return c.health(append([]byte(c.prefix), "/v2/health/ready"...))
}

// ModelReady calls GET /v2/models/{model}[/versions/{version}]/ready. It
// returns true for a 2xx answer and false for 503 Service Unavailable,
// which says "not yet"; any other answer is a *StatusError (such as 404 for
// a model the server does not know), and a call that gets no answer is an
// error too.
func (c *Client) ModelReady(model, version string) (bool, error) {
	return c.health(c.appendModelPath(nil, model, version, "/ready"))
}

// health calls a readiness endpoint.
func (c *Client) health(path []byte) (bool, error) {
	if c.err != nil {
		return false, c.err
	}
	freq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(freq)
	fresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(fresp)
	c.prepare(freq, fasthttp.MethodGet, path)
	err := c.do(freq, fresp)
	if se, ok := err.(*StatusError); ok && se.Code == fasthttp.StatusServiceUnavailable {
		return false, nil
	}
	return err == nil, err
}

// get calls GET path and hands the body of a 2xx answer to decode.
func (c *Client) get(path []byte, decode func(body []byte) error) error {
	freq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(freq)
	fresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(fresp)
	c.prepare(freq, fasthttp.MethodGet, path)
	if err := c.do(freq, fresp); err != nil {
		return err
	}
	if err := decode(fresp.Body()); err != nil {
		return fmt.Errorf("GET %s: cannot decode the response: %w", string(path), err)
	}
	return nil
}

// prepare sets the method, path and host of freq.
func (c *Client) prepare(freq *fasthttp.Request, method string, path []byte) {
	freq.Header.SetMethod(method)
	freq.SetRequestURIBytes(path)
	freq.Header.SetHost(c.host)
	if c.hc.IsTLS {
		freq.URI().SetScheme("https") // else fasthttp takes it for a redirect to http
	}
	if c.auth != nil {
		freq.Header.SetBytesV(fasthttp.HeaderAuthorization, c.auth)
	}
}

// do sends freq and reads the answer into fresp; an answer other than 2xx
// becomes a *StatusError.
func (c *Client) do(freq *fasthttp.Request, fresp *fasthttp.Response) error {
	var err error
	if c.timeout > 0 {
		err = c.hc.DoTimeout(freq, fresp, c.timeout)
	} else {
		err = c.hc.Do(freq, fresp)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", string(freq.Header.Method()), string(freq.Header.RequestURI()), err)
	}
	if code := fresp.StatusCode(); code < 200 || code > 299 {
		return &StatusError{Code: code, Message: ErrorMessage(fresp.Body())}
	}
	return nil
}

// ErrorMessage returns the "error" member of an error body, or else the
// start of the body (200 bytes) as text: what a client of infergate's
// HTTP API shows of an error answer.
func ErrorMessage(body []byte) string {
	s := scanner{buf: body}
	top := where{field: "the error"}
	if s.openObject(&top) == nil {
		for n := 0; ; {
			key, ok, err := s.nextMember(&n)
			if err != nil || !ok {
				break
			}
			if string(key) == "error" && s.peek() == '"' {
				if msg, err := s.readString(); err == nil {
					return string(msg)
				}
				break
			}
			if s.skipValue() != nil {
				break
			}
		}
	}
	const maxLen = 200
	text := strings.TrimSpace(strings.ToValidUTF8(string(body[:min(len(body), maxLen)]), "\uFFFD"))
	if len(body) > maxLen {
		text += "..."
	}
	return text
}

// appendModelPath appends the path of a model endpoint:
// {prefix}/v2/models/{model}[/versions/{version}]{suffix}.
func (c *Client) appendModelPath(dst []byte, model, version, suffix string) []byte {
	dst = append(dst, c.prefix...)
	dst = append(dst, "/v2/models/"...)
	dst = appendPathSegment(dst, model)
	if version != "" {
		dst = append(dst, "/versions/"...)
		dst = appendPathSegment(dst, version)
	}
	return append(dst, suffix...)
}

// appendPathSegment appends s percent-encoded as one path segment: every
// byte but the unreserved ones of RFC 3986 is escaped.
func appendPathSegment(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return dst
}
