package bench

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Bounds of --reload-every.
const (
	minReloadEvery = 50 * time.Millisecond
	maxReloadEvery = time.Hour
)

// reloader reloads the model under test through the repository API
// (POST /v2/repository/models/{m}/load) at a fixed interval through a
// step's measured window, to measure what a reload costs the requests in
// flight. It alternates between the configuration the model was served
// with and the same with max_queue one higher: a load of an unchanged
// configuration keeps the serving version, while a changed one builds
// and warms new sessions beside it and swaps them in, as a new version
// or a new configuration would.
type reloader struct {
	model    string
	configs  [2]string // served, altered
	interval time.Duration
	// load loads the model with a configuration (controlClient.loadModel;
	// tests replace it).
	load func(config string) error

	// Written by run only; read after it returns.
	loads, failures int64
	hist            *hdrhistogram.Histogram
	lastErr         string
	// clean says that the served configuration is the one loaded last,
	// and that its load succeeded: no restore is needed.
	clean bool
}

// newReloader prepares the reloads of model on the gateway of ctl.
func newReloader(ctl *controlClient, model string, interval time.Duration) (*reloader, error) {
	sc := ctl.modelConfig(model)
	if sc == nil {
		return nil, fmt.Errorf("%w: --reload-every: GET /v2/models/%s/config failed; the reloads need the model's configuration", ErrTarget, model)
	}
	served, ok := loadableConfig(sc.raw)
	if !ok {
		return nil, fmt.Errorf("%w: --reload-every: cannot read the configuration of model %q: %s", ErrTarget, model, clip([]byte(sc.raw), 200))
	}
	altered, err := alterMaxQueue(served)
	if err != nil {
		return nil, fmt.Errorf("%w: --reload-every: %w", ErrTarget, err)
	}
	return &reloader{
		model: model, configs: [2]string{served, altered}, interval: interval,
		load:  func(config string) error { return ctl.loadModel(model, config) },
		clean: true,
	}, nil
}

// alterMaxQueue returns config with its max_queue one higher.
func alterMaxQueue(config string) (string, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		return "", fmt.Errorf("configuration %s: %w", clip([]byte(config), 200), err)
	}
	var q int
	if raw, ok := c["max_queue"]; ok {
		if err := json.Unmarshal(raw, &q); err != nil {
			return "", fmt.Errorf("max_queue in %s: %w", clip([]byte(config), 200), err)
		}
	}
	if q < 1 {
		return "", fmt.Errorf("the configuration %s has no max_queue to change", clip([]byte(config), 200))
	}
	c["max_queue"], _ = json.Marshal(q + 1)
	b, err := json.Marshal(c)
	return string(b), err
}

// run reloads at ws + interval/2, ws + 3·interval/2, ... while before
// we, until stop is closed, with the altered and the served configuration
// in turn. Each load is waited for: one slower than the interval delays
// the next, and none starts at or after we.
func (p *reloader) run(stop <-chan struct{}, ws, we time.Time) {
	p.hist = newHistogram()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for k := 0; ; k++ {
		at := ws.Add(p.interval/2 + time.Duration(k)*p.interval)
		if !at.Before(we) || !sleepUntil(t, stop, at) {
			return
		}
		start := time.Now()
		if !start.Before(we) {
			return // the loads before ran past the window
		}
		i := int(p.loads+1) % 2 // 1, 0, 1, ...: altered first
		err := p.load(p.configs[i])
		p.hist.RecordValue(durationUS(time.Since(start)))
		p.loads++
		p.clean = i == 0 && err == nil
		if err != nil {
			p.failures++
			p.lastErr = err.Error()
		}
	}
}

// restore loads the served configuration again unless it was the last
// load and that load succeeded: after a failed load, or one the client
// gave up on, the gateway may serve either.
func (p *reloader) restore() error {
	if p.clean {
		return nil
	}
	if err := p.load(p.configs[0]); err != nil {
		return fmt.Errorf("cannot restore model %q to its configuration %s: %w", p.model, p.configs[0], err)
	}
	p.clean = true
	return nil
}

// stats returns what run did.
func (p *reloader) stats() *ReloadStats {
	st := &ReloadStats{EveryMS: float64(p.interval.Milliseconds()), Loads: p.loads, Failures: p.failures, LastError: p.lastErr}
	if p.hist != nil && p.hist.TotalCount() > 0 {
		st.P50US = float64(p.hist.ValueAtQuantile(50))
		st.MaxUS = float64(p.hist.Max())
	}
	return st
}
