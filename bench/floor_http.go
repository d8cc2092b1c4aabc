package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/oip"
)

// httpFloor is the http-floor: a bare fasthttp server on loopback that
// answers every request with one real answer of the gateway (same body,
// same headers), so that the client does exactly the work it does against
// the gateway. What the gateway adds over it is the cost of the model, the
// protocol and the gateway's own work.
//
// By default it is a separate process (`infergate bench floor-server`),
// like the gateway: the two then pay the same for crossing processes, and
// the client's CPU is the client's alone. Without an executable to run, it
// runs in this process, sharing the Go scheduler with the client: lower
// than any separate server could reach, so ratios against it are harsher.
type httpFloor struct {
	url   string
	close func()
	// pid is the floor's process, 0 when it runs in this one.
	pid int
}

// FloorSpec is what a floor server answers: one captured gateway answer.
type FloorSpec struct {
	Body         []byte `json:"body"`
	ContentType  string `json:"content_type,omitempty"`
	HeaderLen    string `json:"header_len,omitempty"` // Inference-Header-Content-Length
	ModelVersion string `json:"model_version,omitempty"`
	Server       string `json:"server,omitempty"`
}

func specOf(c *capturedResponse) FloorSpec {
	return FloorSpec{Body: c.body, ContentType: c.contentType, HeaderLen: c.headerLen, ModelVersion: c.modelVersion, Server: c.server}
}

// floorServer returns the bare server that replays spec.
func floorServer(spec FloorSpec) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Response.Header
			if spec.ContentType != "" {
				h.SetContentType(spec.ContentType)
			}
			if spec.HeaderLen != "" {
				h.Set(oip.HeaderInferenceHeaderContentLength, spec.HeaderLen)
			}
			if spec.ModelVersion != "" {
				h.Set(oip.HeaderModelVersion, spec.ModelVersion)
			}
			ctx.Response.SetBodyRaw(spec.Body)
		},
		Name:                         spec.Server,
		MaxRequestBodySize:           64 << 20,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		NoDefaultServerHeader:        spec.Server == "",
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
	}
}

// startHTTPFloor starts a floor that replays c: as `exe bench
// floor-server` when exe is set (on the servers' CPUs of cpus, when not
// nil), else in this process.
func startHTTPFloor(ctx context.Context, exe string, c *capturedResponse, cpus *cpuSplit) (*httpFloor, error) {
	spec := specOf(c)
	if exe == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := floorServer(spec)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		return &httpFloor{url: "http://" + ln.Addr().String(), close: func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.ShutdownWithContext(sctx)
			<-done
		}}, nil
	}
	f, err := os.CreateTemp("", "infergate-floor-*.json")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	err = json.NewEncoder(f).Encode(spec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	p, err := startGateway(ctx, exe, []string{"bench", "floor-server", "--spec", path}, nil, cpus, nil)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &httpFloor{url: p.url, pid: p.cmd.Process.Pid, close: func() {
		p.stop()
		os.Remove(path)
	}}, nil
}

// ServeFloor serves the floor that specPath (a FloorSpec in JSON) describes
// on addr until SIGINT or SIGTERM; it logs "serving on http://ADDR" first.
// `infergate bench floor-server` runs it.
func ServeFloor(specPath, addr string) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec FloorSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("floor spec %s: %w", specPath, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := floorServer(spec)
	fmt.Fprintf(os.Stderr, "floor serving on http://%s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(sctx)
	}()
	return srv.Serve(ln)
}

// floorKind names where the http-floor runs, for the report.
func floorKind(exe string) string {
	if exe == "" {
		return "in-process"
	}
	return "process"
}
