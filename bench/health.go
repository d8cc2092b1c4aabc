package bench

import (
	"crypto/tls"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Readiness probing during overload runs.
const (
	// healthInterval is how often the prober asks.
	healthInterval = 10 * time.Millisecond
	// healthTimeout bounds one probe, as a load balancer's health check
	// would; a probe without an answer by then is a failure.
	healthTimeout = time.Second
	// healthPath is the endpoint probed.
	healthPath = "/v2/health/ready"
)

// healthProber sends GET /v2/health/ready every interval, one probe at a
// time, on a connection of its own, and records the probes due in the
// measured window: their latency (send to answer, corrected for the
// probes a slow one held up) and the failures (an answer other than 200,
// or none). loadStep.run starts run on a goroutine of its own and waits
// for it; stats is read after that.
type healthProber struct {
	interval time.Duration
	// probe sends one probe and returns the status of the answer, or an
	// error when none came.
	probe func() (code int, err error)
	// release frees what probe holds; nil for nothing.
	release func()

	// Written by run only.
	hist     *hdrhistogram.Histogram
	probes   int64
	failures int64
}

// newHealthProber returns a prober of the gateway at host with path
// prefix prefix at baseURL (see splitBaseURL), on a client of one
// connection.
func newHealthProber(baseURL, host, prefix string, tc func(serverName string) *tls.Config) *healthProber {
	hc := newHostClient(baseURL, "infergate-bench-health", tc)
	hc.MaxConns = 1
	hc.MaxIdleConnDuration = time.Minute
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(prefix + healthPath)
	req.Header.SetHost(host)
	httpsScheme(req, hc)
	return &healthProber{
		interval: healthInterval,
		probe: func() (int, error) {
			if err := hc.DoTimeout(req, resp, healthTimeout); err != nil {
				return 0, err
			}
			return resp.StatusCode(), nil
		},
		release: func() {
			hc.CloseIdleConnections()
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		},
	}
}

// run probes at start, start+interval, ... until we or until stop is
// closed, and records the probes due at ws or later. Probing through the
// warm-up keeps the prober's connection open before the load takes the
// server's. A probe that overruns its interval skips the ticks it
// overran; the histogram's correction stands for them.
func (p *healthProber) run(stop <-chan struct{}, start, ws, we time.Time) {
	if p.release != nil {
		defer p.release()
	}
	p.hist = newHistogram()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for k := int64(0); ; k++ {
		at := start.Add(time.Duration(k) * p.interval)
		if !at.Before(we) || !sleepUntil(t, stop, at) {
			return
		}
		sent := time.Now()
		code, err := p.probe()
		now := time.Now()
		if !at.Before(ws) {
			p.probes++
			if err != nil || code != fasthttp.StatusOK {
				p.failures++
			}
			p.hist.RecordCorrectedValue(durationUS(now.Sub(sent)), p.interval.Microseconds())
		}
		// The next tick is the first at or after now.
		next := (now.Sub(start) + p.interval - 1) / p.interval
		k = max(k, int64(next)-1)
	}
}

// sleepUntil resets t to fire at at and waits for it; false when stop
// was closed first. (Since Go 1.23 a Reset timer never delivers an
// earlier, stale time.)
func sleepUntil(t *time.Timer, stop <-chan struct{}, at time.Time) bool {
	t.Reset(time.Until(at))
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// stats returns what run recorded.
func (p *healthProber) stats() *HealthStats {
	st := &HealthStats{Probes: p.probes, Failures: p.failures}
	if p.hist != nil && p.hist.TotalCount() > 0 {
		st.P50US = float64(p.hist.ValueAtQuantile(50))
		st.P99US = float64(p.hist.ValueAtQuantile(99))
		st.MaxUS = float64(p.hist.Max())
	}
	return st
}
