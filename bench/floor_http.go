package bench

import (
	"context"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// httpFloor is the http-floor: a bare fasthttp server on loopback, in this
// process, that answers every request with one real answer of the gateway
// (same body, same headers), so that the client does exactly the work it
// does against the gateway. What the gateway adds over it is the cost of
// the model, the protocol and the gateway's own work.
//
// Because it runs in the load generator's process, its CPU time counts in
// the run's client CPU, and it shares the Go scheduler with the client
// rather than a socket's other end with another process: it is a floor in
// the strict sense, lower than any separate server could reach.
type httpFloor struct {
	ln   net.Listener
	srv  *fasthttp.Server
	done chan error
}

// startHTTPFloor starts a floor that replays c.
func startHTTPFloor(c *capturedResponse) (*httpFloor, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := c.body
	f := &httpFloor{ln: ln, done: make(chan error, 1)}
	f.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Response.Header
			if c.contentType != "" {
				h.SetContentType(c.contentType)
			}
			if c.headerLen != "" {
				h.Set(oip.HeaderInferenceHeaderContentLength, c.headerLen)
			}
			if c.modelVersion != "" {
				h.Set(oip.HeaderModelVersion, c.modelVersion)
			}
			ctx.Response.SetBodyRaw(body)
		},
		Name:                         c.server,
		MaxRequestBodySize:           64 << 20,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		NoDefaultServerHeader:        c.server == "",
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
	}
	go func() { f.done <- f.srv.Serve(ln) }()
	return f, nil
}

// url returns the floor's base URL.
func (f *httpFloor) url() string { return "http://" + f.ln.Addr().String() }

// close stops the floor, waiting a few seconds at most for its
// connections.
func (f *httpFloor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.srv.ShutdownWithContext(ctx)
	<-f.done
}
