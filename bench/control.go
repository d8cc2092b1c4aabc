package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// controlTimeout bounds the repository loads, which load and warm a
// model, and the wait for the model to be ready after one.
const controlTimeout = 2 * time.Minute

// minQueryTimeout is the least that the quick calls around the steps
// (metadata, /metrics, configuration, statistics, readiness) wait for an
// answer; they wait --timeout when that is longer. A target that accepts
// connections and does not answer then ends the run in seconds, not in
// minutes. A variable so that tests can shorten it.
var minQueryTimeout = 10 * time.Second

// controlClient makes the untimed calls of a run to a gateway.
//
// The quick calls (metadata, /metrics, configuration, statistics) end
// when ctx does: their result is dropped, and the call finishes on a
// goroutine of its own within queryTimeout. Repository loads and the
// readiness polls after them do not, so that a run interrupted still
// puts back the configuration it found.
type controlClient struct {
	ctx          context.Context
	queryTimeout time.Duration
	base         string
	host         string
	prefix       string
	hc           *fasthttp.HostClient
	oip          *oip.Client
	// token and adminToken are the Authorization values of the
	// /v2/models and the /v2/repository calls, or "".
	token, adminToken string
}

func newControlClient(ctx context.Context, baseURL string, o *Options) (*controlClient, error) {
	host, prefix, err := splitBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	c := &controlClient{
		ctx:          ctx,
		queryTimeout: max(o.Timeout, minQueryTimeout),
		base:         baseURL,
		host:         host,
		prefix:       prefix,
		hc:           newHostClient(baseURL, "infergate-bench", o.TLS),
		oip:          oip.NewClient(baseURL),
	}
	c.hc.MaxConns = 4
	c.hc.MaxResponseBodySize = 64 << 20
	c.oip.SetTLS(o.TLS)
	c.oip.SetTimeout(c.queryTimeout)
	c.oip.SetToken(o.Token)
	if o.Token != "" {
		c.token = "Bearer " + o.Token
	}
	if o.AdminToken != "" {
		c.adminToken = "Bearer " + o.AdminToken
	}
	return c, nil
}

// splitBaseURL returns the host and path prefix of a gateway URL such as
// "http://127.0.0.1:8080".
func splitBaseURL(baseURL string) (host, prefix string, err error) {
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("%w: target %q: %s", ErrBadConfig, baseURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("%w: target %q must start with http:// or https://", ErrBadConfig, baseURL)
	case u.Host == "":
		return "", "", fmt.Errorf("%w: target %q has no host", ErrBadConfig, baseURL)
	}
	return u.Host, strings.TrimRight(u.EscapedPath(), "/"), nil
}

// httpsScheme marks req, whose URI and host are set, as https when hc
// speaks TLS: fasthttp refuses an http request on a TLS client.
func httpsScheme(req *fasthttp.Request, hc *fasthttp.HostClient) {
	if hc.IsTLS {
		req.URI().SetScheme("https")
	}
}

// newHostClient returns a client of the server at baseURL (which
// splitBaseURL accepted) named name: for https, over TLS under what tc
// returns at each connection (nil: the system's CAs).
func newHostClient(baseURL, name string, tc func(serverName string) *tls.Config) *fasthttp.HostClient {
	u, _ := url.Parse(baseURL)
	https := u.Scheme == "https"
	hc := &fasthttp.HostClient{
		Addr:                   fasthttp.AddMissingPort(u.Host, https),
		Name:                   name,
		IsTLS:                  https,
		DisablePathNormalizing: true,
		DialDualStack:          true, // fasthttp's default dials IPv4 addresses only
	}
	if https {
		hc.DialTimeout = oip.DialTLS(tc)
	}
	return hc
}

// pathSegment escapes s as one URL path segment.
func pathSegment(s string) string { return url.PathEscape(s) }

// query runs f, one of c's quick calls, and returns what it returns, or
// ctx's error as soon as ctx ends: f then goes on to its end (within
// queryTimeout) on a goroutine of its own, and its result is dropped. A
// call that timed out says how long it waited.
func query[T any](c *controlClient, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		if errors.Is(err, fasthttp.ErrTimeout) {
			err = fmt.Errorf("no answer within %s: %w", c.queryTimeout, err)
		}
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-c.ctx.Done():
		var zero T
		return zero, c.ctx.Err()
	}
}

// serverVersion returns the name and version the target gives itself
// (GET /v2), "" when it gives none; its error says that the target
// does not answer at all (the call timed out, or ctx ended).
func (c *controlClient) serverVersion() (string, error) {
	sm, err := query(c, c.oip.ServerMetadata)
	switch {
	case err == nil:
		return sm.Name + " " + sm.Version, nil
	case errors.Is(err, fasthttp.ErrTimeout):
		return "", fmt.Errorf("%w: %w", ErrTarget, err)
	case c.ctx.Err() != nil:
		return "", c.ctx.Err()
	}
	return "", nil
}

// modelMetadata returns GET /v2/models/{m}, ending with ctx.
func (c *controlClient) modelMetadata(model string) (*oip.ModelMetadata, error) {
	return query(c, func() (*oip.ModelMetadata, error) { return c.oip.ModelMetadata(model, "") })
}

// modelStatistics returns GET /v2/models/{m}/stats, ending with ctx.
func (c *controlClient) modelStatistics(model string) (*oip.ModelStatistics, error) {
	return query(c, func() (*oip.ModelStatistics, error) { return c.oip.ModelStatistics(model, "") })
}

// get makes one quick call (see query) and returns the status and a copy
// of the body.
func (c *controlClient) get(path string) (int, []byte, error) {
	type answer struct {
		code int
		body []byte
	}
	a, err := query(c, func() (answer, error) {
		code, body, err := c.do(fasthttp.MethodGet, path, nil, c.queryTimeout)
		return answer{code, body}, err
	})
	return a.code, a.body, err
}

// do makes one call, waiting at most timeout, and returns the status and
// a copy of the body.
func (c *controlClient) do(method, path string, body []byte, timeout time.Duration) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(c.prefix + path)
	req.Header.SetHost(c.host)
	httpsScheme(req, c.hc)
	switch {
	case strings.HasPrefix(path, "/v2/repository") && c.adminToken != "":
		req.Header.Set(fasthttp.HeaderAuthorization, c.adminToken)
	case strings.HasPrefix(path, "/v2/models") && c.token != "":
		req.Header.Set(fasthttp.HeaderAuthorization, c.token)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if err := c.hc.DoTimeout(req, resp, timeout); err != nil {
		return 0, nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// scrape returns the samples of GET /metrics, or nil when the target has
// none to give (the figures are then left out, not failed).
func (c *controlClient) scrape() []Sample {
	code, body, err := c.get("/metrics")
	if err != nil || code != fasthttp.StatusOK {
		return nil
	}
	samples, err := ParseMetrics(body)
	if err != nil {
		return nil
	}
	return samples
}

// servedConfig is what GET /v2/models/{m}/config says about the version
// that serves.
type servedConfig struct {
	// Instances is the instance count: infergate's instances, else the
	// sum of Triton's instance_group counts, the form infergate's view
	// and Triton's give it in.
	Instances      int    `json:"instances"`
	IntraOpThreads int    `json:"intra_op_threads"`
	SHA256         string `json:"sha256"`
	InstanceGroup  []struct {
		Count int   `json:"count"`
		GPUs  []int `json:"gpus"`
	} `json:"instance_group"`
	// raw is the whole answer, compacted.
	raw string
}

// modelConfig calls GET /v2/models/{m}/config; nil when the target has no
// such endpoint.
func (c *controlClient) modelConfig(model string) *servedConfig {
	code, body, err := c.get("/v2/models/" + pathSegment(model) + "/config")
	if err != nil || code != fasthttp.StatusOK {
		return nil
	}
	return parseServedConfig(body)
}

// parseServedConfig reads a GET /v2/models/{m}/config answer; nil when it
// is no JSON object.
func parseServedConfig(body []byte) *servedConfig {
	var sc servedConfig
	if json.Unmarshal(body, &sc) != nil {
		return nil
	}
	if sc.Instances == 0 {
		// As Triton counts them: no count is 1, and a group runs its
		// count on each GPU it lists.
		for _, g := range sc.InstanceGroup {
			sc.Instances += max(g.Count, 1) * max(len(g.GPUs), 1)
		}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		sc.raw = compact.String()
	}
	return &sc
}

// configText returns the model's configuration as the target reports it
// (GET /v2/models/{m}/config, compacted), or asked when it does not say.
func (c *controlClient) configText(model, asked string) string {
	if sc := c.modelConfig(model); sc != nil && sc.raw != "" {
		return sc.raw
	}
	return asked
}

// loadModel calls POST /v2/repository/models/{m}/load with config as the
// model's configuration; the error carries the server's message.
func (c *controlClient) loadModel(model, config string) error {
	var req struct {
		Parameters struct {
			Config string `json:"config"`
		} `json:"parameters"`
	}
	req.Parameters.Config = config
	body, _ := json.Marshal(req)
	code, out, err := c.do(fasthttp.MethodPost, "/v2/repository/models/"+pathSegment(model)+"/load", body, controlTimeout)
	if err != nil {
		return err
	}
	if code != fasthttp.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return fmt.Errorf("the gateway answered %d: %s", code, e.Error)
		}
		return fmt.Errorf("the gateway answered %d: %s", code, clip(out, 300))
	}
	return nil
}

// waitReady polls GET /v2/models/{m}/ready until it says 200 or timeout
// passes.
func (c *controlClient) waitReady(model string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := c.oip.ModelReady(model, "")
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not ready after %s", timeout)
			}
			return fmt.Errorf("model %q: %w", model, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
