package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/trainer/onnx"
)

// Stage is where a Loop is with a model.
type Stage string

// The stages.
const (
	// Watching: production serves; the loop watches for drift.
	Watching Stage = "watching"
	// Shadowing: a candidate was uploaded; it gets copies of a sample of
	// the requests (once ready on every node) and is judged on them.
	Shadowing Stage = "shadow"
	// Canary: the candidate answers an experiment arm's share of the
	// requests, against production in the other.
	Canary Stage = "canary"
)

// State is what a Loop remembers across restarts, in its state file.
type State struct {
	Stage Stage `json:"stage"`
	// Candidate is the version in the shadow or canary stage; Since when
	// it started taking copies or requests (zero while the loop waits
	// for it to be ready), Uploaded when it was uploaded.
	Candidate int64     `json:"candidate,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Uploaded  time.Time `json:"uploaded,omitzero"`
	// Control is production's version when the canary started.
	Control int64 `json:"control,omitempty"`
	// ReferenceSince is where the drift reference starts: production's
	// predictions from then on (its promotion).
	ReferenceSince time.Time `json:"reference_since,omitzero"`
	// LastTrain is when the loop last trained; NextTrain when it may
	// train again (a cool-down after a candidate that did not make it).
	LastTrain time.Time `json:"last_train,omitzero"`
	NextTrain time.Time `json:"next_train,omitzero"`
	// RollBack, when set, is why the candidate is being rolled back: the
	// calls that do it are made again at each step until all succeed.
	RollBack string `json:"roll_back,omitempty"`
	// History is the latest decisions, oldest first.
	History []Decision `json:"history"`
}

// Decision is one thing a Loop decided, and why.
type Decision struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Version int64     `json:"version,omitempty"`
	Reason  string    `json:"reason"`
}

// historyLen bounds State.History.
const historyLen = 50

// LoopConfig says what a Loop looks after and how.
type LoopConfig struct {
	// Model is the model the loop looks after; Gateway its nodes.
	Model   string
	Gateway *Gateway
	// Source is where the traffic is read: nil reads every node's own
	// log over HTTP (Gateway.Logs); a Kafka topic's reader otherwise.
	Source Source
	// StateFile keeps State across restarts (written atomically).
	StateFile string
	// Interval is how often the loop reads the traffic logs and acts.
	Interval time.Duration
	// Train is how candidates are trained: on the labeled examples among
	// the latest Window predictions, at least MinExamples, with one in
	// HoldoutEvery held out to compare the candidate with production.
	Train        Config
	Window       int
	MinExamples  int
	HoldoutEvery int
	// DriftRows is how many of production's predictions make the drift
	// reference and how many recent ones are compared with it; a PSI of
	// DriftThreshold or more, on the score or a feature, is drift.
	DriftRows      int
	DriftThreshold float64
	// RetrainEvery trains also without drift this long after the last
	// training (0: only on drift). Cooldown is how long the loop waits
	// before training again after a candidate did not make it.
	RetrainEvery, Cooldown time.Duration
	// ReadyTimeout bounds the wait for an uploaded candidate to be ready
	// on every node.
	ReadyTimeout time.Duration
	// ShadowPercent is the share of requests copied to the candidate in
	// the shadow stage; CanaryPercent its arm's weight in the canary.
	ShadowPercent float64
	CanaryPercent int
	Policy        Policy
	// Check, when set, must accept a candidate's ONNX bytes before they
	// are uploaded (ONNX Runtime agreeing with the trainer's forward
	// pass on the holdout).
	Check func(data []byte, m *onnx.MLP, holdout []Example) error
	// Logf logs decisions and progress.
	Logf func(format string, args ...any)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultLoopConfig returns the settings `infergate trainer` starts from.
func DefaultLoopConfig() LoopConfig {
	return LoopConfig{Interval: 30 * time.Second, Train: DefaultConfig(), Window: 100_000, MinExamples: 500, HoldoutEvery: 5,
		DriftRows: 2000, DriftThreshold: 0.2, Cooldown: time.Hour, ReadyTimeout: 5 * time.Minute,
		ShadowPercent: 20, CanaryPercent: 10, Policy: DefaultPolicy()}
}

// Validate reports settings that cannot run.
func (c *LoopConfig) Validate() error {
	switch {
	case c.Model == "":
		return errors.New("name the model to look after")
	case c.Gateway == nil || len(c.Gateway.Nodes) == 0:
		return errors.New("name the gateway nodes")
	case c.StateFile == "":
		return errors.New("name the state file")
	case c.Interval <= 0:
		return fmt.Errorf("interval %s: must be positive", c.Interval)
	case c.MinExamples < 10:
		return fmt.Errorf("minimum examples %d: use 10 or more", c.MinExamples)
	case c.Window < c.MinExamples:
		return fmt.Errorf("window %d: must hold the minimum examples %d", c.Window, c.MinExamples)
	case c.HoldoutEvery < 2:
		return fmt.Errorf("holdout every %d: use 2 or more", c.HoldoutEvery)
	case c.DriftRows < 100:
		return fmt.Errorf("drift rows %d: use 100 or more", c.DriftRows)
	case 2*c.DriftRows > c.Window:
		return fmt.Errorf("drift rows %d: the window %d must hold twice as many", c.DriftRows, c.Window)
	case !(c.DriftThreshold > 0):
		return fmt.Errorf("drift threshold %v: must be positive (0.2, say)", c.DriftThreshold)
	case c.RetrainEvery < 0 || c.Cooldown < 0 || c.ReadyTimeout <= 0:
		return errors.New("retrain-every and cooldown must not be negative, ready-timeout must be positive")
	case !(c.ShadowPercent > 0 && c.ShadowPercent <= 100):
		return fmt.Errorf("shadow percent %v: use more than 0, at most 100", c.ShadowPercent)
	case c.CanaryPercent < 1 || c.CanaryPercent > 99:
		return fmt.Errorf("canary percent %d: use 1 to 99", c.CanaryPercent)
	}
	if err := c.Train.Validate(); err != nil {
		return err
	}
	return c.Policy.Validate()
}

// Loop is the sidecar trainer of one model: it reads the gateways'
// traffic logs, watches production's inputs and scores for drift,
// retrains on the labeled traffic when they drift (or on a schedule),
// and takes a better candidate through the shadow and canary stages,
// promoting it or rolling it back on the evidence (Policy). One
// goroutine runs it (Run, or Step from a test).
type Loop struct {
	cfg   LoopConfig
	state State

	input, output string
	width         int
	joiner        *Joiner
	source        Source

	// ref is the drift reference and what it was made of.
	ref        *Reference
	refVersion int64
	refSince   time.Time
	refLast    time.Time // the reference's newest prediction
}

// NewLoop returns a Loop; its state comes from cfg.StateFile when that
// exists. It asks the first node for the model's signature, which must
// be one FP32 [-1, N] input and one output.
func NewLoop(ctx context.Context, cfg LoopConfig) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Loop{cfg: cfg, state: State{Stage: Watching}}
	switch b, err := os.ReadFile(cfg.StateFile); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &l.state); err != nil {
			return nil, fmt.Errorf("state file %s: %w (move it away to start afresh)", cfg.StateFile, err)
		}
		if l.state.Stage != Watching && l.state.Stage != Shadowing && l.state.Stage != Canary {
			return nil, fmt.Errorf("state file %s: unknown stage %q", cfg.StateFile, l.state.Stage)
		}
	}
	var err error
	l.input, l.width, l.output, err = cfg.Gateway.Signature(ctx, cfg.Model)
	if err != nil {
		return nil, err
	}
	l.cfg.Train.InputName, l.cfg.Train.OutputName = l.input, l.output
	l.joiner = NewJoiner(cfg.Model, l.input, l.width, cfg.Window)
	l.source = cfg.Source
	if l.source == nil {
		l.source = cfg.Gateway.Logs(cfg.Logf)
	}
	return l, nil
}

// State returns the loop's state.
func (l *Loop) State() State { return l.state }

// Run steps every Interval until ctx ends. A failed step is logged and
// tried again at the next.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		if err := l.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.cfg.Logf("trainer: %v; trying again in %s", err, l.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step reads what the logs gained and takes the stage's next step.
func (l *Loop) Step(ctx context.Context) error {
	if err := l.source.Read(ctx, l.joiner.Add); err != nil {
		return err
	}
	m, err := l.cfg.Gateway.Model(ctx, l.cfg.Model)
	if err != nil {
		return err
	}
	switch {
	case l.state.RollBack != "":
		return l.rollBack(ctx, l.state.RollBack)
	case l.state.Stage == Shadowing:
		return l.shadow(ctx, m)
	case l.state.Stage == Canary:
		return l.canary(ctx, m)
	}
	return l.watch(ctx, m)
}

// decide records a decision, logs it and saves the state.
func (l *Loop) decide(action string, v int64, format string, args ...any) error {
	d := Decision{Time: l.cfg.Now().UTC(), Action: action, Version: v, Reason: fmt.Sprintf(format, args...)}
	l.state.History = append(l.state.History, d)
	if n := len(l.state.History) - historyLen; n > 0 {
		l.state.History = append(l.state.History[:0], l.state.History[n:]...)
	}
	ver := ""
	if v != 0 {
		ver = " version " + strconv.FormatInt(v, 10)
	}
	l.cfg.Logf("trainer: %s %s%s: %s", action, l.cfg.Model, ver, d.Reason)
	return l.save()
}

func (l *Loop) save() error {
	b, err := json.MarshalIndent(&l.state, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(l.cfg.StateFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot save the trainer's state: %w", err)
	}
	return nil
}

// ownsRouting reports whether the model's shadow and experiment are
// none, or the loop's own.
func (l *Loop) foreignRouting(m *ModelState) string {
	switch {
	case m.Shadow != nil && (l.state.Stage != Shadowing || m.Shadow.Version != l.state.Candidate):
		return fmt.Sprintf("the model has a shadow (version %d) the trainer did not start", m.Shadow.Version)
	case m.Experiment != nil && (l.state.Stage != Canary || m.Experiment.Name != l.experimentName()):
		return fmt.Sprintf("the model runs experiment %q, which the trainer did not start", m.Experiment.Name)
	}
	return ""
}

func (l *Loop) experimentName() string {
	return "trainer-v" + strconv.FormatInt(l.state.Candidate, 10)
}

// watch is the watching stage: measure drift, and train when the inputs
// or scores drifted (or on schedule).
func (l *Loop) watch(ctx context.Context, m *ModelState) error {
	now := l.cfg.Now()
	all := l.joiner.All()
	why := ""
	if rep, ok, err := l.drift(all, m.Production); err != nil {
		return err
	} else if ok && rep.Drifted(l.cfg.DriftThreshold) {
		from := "the oldest kept"
		if !l.refSince.IsZero() {
			from = l.refSince.UTC().Format(time.RFC3339)
		}
		why = fmt.Sprintf("drift: score PSI %.3f, feature %d PSI %.3f (threshold %g; %d reference predictions of version %d from %s, %d recent)",
			rep.Score, rep.Worst, worstPSI(rep), l.cfg.DriftThreshold, rep.RefN, l.refVersion, from, rep.N)
	}
	if why == "" && l.cfg.RetrainEvery > 0 && now.Sub(l.state.LastTrain) >= l.cfg.RetrainEvery {
		why = fmt.Sprintf("%s since the last training", l.cfg.RetrainEvery)
	}
	if why == "" || now.Before(l.state.NextTrain) {
		return nil
	}
	if f := l.foreignRouting(m); f != "" {
		l.cfg.Logf("trainer: would train (%s), but %s: waiting for it to end", why, f)
		return nil
	}
	var exs []Example
	for _, ex := range all {
		if ex.HasLabel {
			exs = append(exs, ex)
		}
	}
	if len(exs) < l.cfg.MinExamples {
		l.cfg.Logf("trainer: would train (%s), but %d labeled examples are fewer than the %d needed", why, len(exs), l.cfg.MinExamples)
		return nil
	}
	return l.train(ctx, exs, why)
}

func worstPSI(r DriftReport) float64 {
	if r.Worst < 0 {
		return 0
	}
	return r.Features[r.Worst]
}

// drift compares production's recent predictions with its reference
// (built once from the first DriftRows of its predictions since the
// reference's start); ok is false until there are enough of both.
func (l *Loop) drift(all []Example, production int64) (DriftReport, bool, error) {
	n := l.cfg.DriftRows
	if l.ref == nil || l.refVersion != production || !l.refSince.Equal(l.state.ReferenceSince) {
		l.ref = nil
		var x [][]float32
		var s []float32
		for _, ex := range all {
			if ex.Version == production && !ex.Time.Before(l.state.ReferenceSince) {
				x, s = append(x, ex.Features), append(s, ex.Live)
				l.refLast = ex.Time
				if len(x) == n {
					break
				}
			}
		}
		if len(x) < n {
			return DriftReport{}, false, nil
		}
		ref, err := NewReference(x, s, DefaultBins)
		if err != nil {
			return DriftReport{}, false, err
		}
		l.ref, l.refVersion, l.refSince = ref, production, l.state.ReferenceSince
	}
	var x [][]float32
	var s []float32
	for i := len(all) - 1; i >= 0 && len(x) < n; i-- {
		ex := &all[i]
		if !ex.Time.After(l.refLast) {
			continue // the reference's era (nodes' logs interleave)
		}
		if ex.Version == production {
			x, s = append(x, ex.Features), append(s, ex.Live)
		}
	}
	if len(x) < n {
		return DriftReport{}, false, nil
	}
	rep, err := l.ref.Compare(x, s)
	return rep, err == nil, err
}

// train trains a candidate on exs and, when it beats the live versions
// on the holdout, uploads it and starts its shadow stage.
func (l *Loop) train(ctx context.Context, exs []Example, why string) error {
	now := l.cfg.Now()
	l.state.LastTrain = now
	l.state.NextTrain = now.Add(l.cfg.Cooldown)
	train, holdout := Split(exs, l.cfg.HoldoutEvery)
	if len(train) == 0 || len(holdout) == 0 {
		return l.decide("skip", 0, "%s; the split left %d examples to train on and %d to hold out", why, len(train), len(holdout))
	}
	m, _, err := Train(l.cfg.Train, train)
	if err != nil {
		return err
	}
	cmp := Compare(m, holdout)
	if !cmp.Better() {
		return l.decide("keep", 0, "%s; a candidate trained on %d examples is not better on the holdout of %d: live %s; candidate %s",
			why, len(train), len(holdout), cmp.Live, cmp.Candidate)
	}
	m.Metadata[onnx.MetaModel] = l.cfg.Model
	m.Metadata["infergate.trained_on"] = strconv.Itoa(len(train))
	m.DocString = fmt.Sprintf("trained by the infergate trainer on %d examples of %s's traffic (%s)", len(train), l.cfg.Model, why)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("BUG: the trained model does not validate: %w", err)
	}
	data := m.Model().Marshal()
	if l.cfg.Check != nil {
		if err := l.cfg.Check(data, m, holdout); err != nil {
			return l.decide("keep", 0, "%s; the candidate failed its check: %v", why, err)
		}
	}
	v, err := l.cfg.Gateway.Upload(ctx, l.cfg.Model, data)
	if err != nil {
		// Try again soon (a leader election, say), not after the whole
		// cool-down.
		l.state.NextTrain = now.Add(min(l.cfg.Cooldown, 10*l.cfg.Interval))
		return fmt.Errorf("cannot upload the candidate (training again after %s): %w", l.state.NextTrain.Sub(now), err)
	}
	l.state = State{Stage: Shadowing, Candidate: v, Uploaded: now, ReferenceSince: l.state.ReferenceSince,
		LastTrain: l.state.LastTrain, NextTrain: l.state.NextTrain, History: l.state.History}
	return l.decide("upload", v, "%s; trained on %d examples; holdout of %d: live %s; candidate %s",
		why, len(train), len(holdout), cmp.Live, cmp.Candidate)
}

// shadow is the shadow stage: start the shadow once the candidate is
// ready everywhere, then judge it.
func (l *Loop) shadow(ctx context.Context, m *ModelState) error {
	now := l.cfg.Now()
	v := l.state.Candidate
	if l.state.Since.IsZero() {
		if f := l.foreignRouting(m); f != "" {
			if now.Sub(l.state.Uploaded) >= l.cfg.ReadyTimeout {
				return l.rollBack(ctx, "while "+f)
			}
			l.cfg.Logf("trainer: version %d waits: %s", v, f)
			return nil
		}
		if not := m.NotReady(v); not != "" {
			if now.Sub(l.state.Uploaded) >= l.cfg.ReadyTimeout {
				return l.rollBack(ctx, fmt.Sprintf("not ready on every node after %s: %s", l.cfg.ReadyTimeout, not))
			}
			return nil
		}
		if err := l.cfg.Gateway.SetShadow(ctx, l.cfg.Model, v, l.cfg.ShadowPercent); err != nil {
			return err
		}
		l.state.Since = now
		return l.decide("shadow", v, "ready on every node; copying %g%% of the requests to it", l.cfg.ShadowPercent)
	}
	if m.Shadow == nil || m.Shadow.Version != v {
		return l.abandon("its shadow was ended or replaced by someone else")
	}
	runs, err := l.shadowRuns(ctx, v)
	if err != nil {
		return err
	}
	j := l.cfg.Policy.JudgeShadow(l.joiner.All(), v, l.state.Since, now, runs)
	switch j.Verdict {
	case Fail:
		return l.rollBack(ctx, "in the shadow stage, "+j.Reason)
	case Pass:
		prod := m.Production
		x := Experiment{Name: "trainer-v" + strconv.FormatInt(v, 10), Arms: []Arm{
			{Name: "control", Version: prod, Weight: 100 - l.cfg.CanaryPercent},
			{Name: "candidate", Version: v, Weight: l.cfg.CanaryPercent},
		}}
		if err := l.cfg.Gateway.SetExperiment(ctx, l.cfg.Model, x); err != nil {
			return err
		}
		if err := l.cfg.Gateway.EndShadow(ctx, l.cfg.Model); err != nil {
			return err
		}
		l.state.Stage, l.state.Since, l.state.Control = Canary, now, prod
		return l.decide("canary", v, "the shadow stage passed (%s); %d%% of the requests go to it, against version %d", j.Reason, l.cfg.CanaryPercent, prod)
	}
	l.cfg.Logf("trainer: version %d in the shadow stage: %s", v, j.Reason)
	return nil
}

// canary is the canary stage: judge the arms; promote or roll back.
func (l *Loop) canary(ctx context.Context, m *ModelState) error {
	now := l.cfg.Now()
	v := l.state.Candidate
	if m.Experiment == nil || m.Experiment.Name != l.experimentName() {
		return l.abandon("its experiment was ended or replaced by someone else")
	}
	runs, err := l.canaryRuns(ctx, v)
	if err != nil {
		return err
	}
	j := l.cfg.Policy.JudgeCanary(l.joiner.All(), "control", l.state.Control, "candidate", v, l.state.Since, now, runs)
	switch j.Verdict {
	case Fail:
		return l.rollBack(ctx, "in the canary stage, "+j.Reason)
	case Pass:
		// Production first: unversioned requests never go back to the
		// old version in between.
		if err := l.cfg.Gateway.Promote(ctx, l.cfg.Model, v); err != nil {
			return err
		}
		if err := l.cfg.Gateway.EndExperiment(ctx, l.cfg.Model); err != nil {
			return err
		}
		l.state = State{Stage: Watching, ReferenceSince: now, LastTrain: l.state.LastTrain, History: l.state.History}
		return l.decide("promote", v, "the canary stage passed: %s", j.Reason)
	}
	l.cfg.Logf("trainer: version %d in the canary stage: %s", v, j.Reason)
	return nil
}

// rollBack ends the candidate's shadow or experiment and retires it. The
// reason is saved first: a call that fails is made again at the next
// step, before anything else.
func (l *Loop) rollBack(ctx context.Context, why string) error {
	v := l.state.Candidate
	g := l.cfg.Gateway
	if l.state.RollBack == "" {
		l.state.RollBack = why
		if err := l.save(); err != nil {
			return err
		}
	}
	if err := g.EndExperimentIf(ctx, l.cfg.Model, l.experimentName()); err != nil {
		return err
	}
	if err := g.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
		return err
	}
	if err := g.Retire(ctx, l.cfg.Model, v); err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	l.state = State{Stage: Watching, ReferenceSince: l.state.ReferenceSince, LastTrain: l.state.LastTrain,
		NextTrain: l.cfg.Now().Add(l.cfg.Cooldown), History: l.state.History}
	return l.decide("roll back", v, "%s; version %d retired", why, v)
}

// abandon leaves a candidate whose stage someone else ended alone.
func (l *Loop) abandon(why string) error {
	v := l.state.Candidate
	l.state = State{Stage: Watching, ReferenceSince: l.state.ReferenceSince, LastTrain: l.state.LastTrain,
		NextTrain: l.cfg.Now().Add(l.cfg.Cooldown), History: l.state.History}
	return l.decide("abandon", v, "%s; the trainer leaves version %d as it is", why, v)
}

// shadowRuns counts the shadow's copies over the nodes: a copy that
// failed, or found the version not loaded, failed.
func (l *Loop) shadowRuns(ctx context.Context, v int64) (Runs, error) {
	text, err := l.cfg.Gateway.Scrape(ctx)
	if err != nil {
		return Runs{}, err
	}
	var r Runs
	for _, res := range []string{"compared", "failed", "not_ready"} {
		n := SumSeries(text, "infergate_shadow_requests_total",
			map[string]string{"model": l.cfg.Model, "version": strconv.FormatInt(v, 10), "result": res})
		r.Ran += n
		if res != "compared" {
			r.Failed += n
		}
	}
	return r, nil
}

// canaryRuns counts the candidate's requests over the nodes: failed for
// the version's own reasons (errors, timeouts), or fallen back to
// production because the version was not ready.
func (l *Loop) canaryRuns(ctx context.Context, v int64) (Runs, error) {
	text, err := l.cfg.Gateway.Scrape(ctx)
	if err != nil {
		return Runs{}, err
	}
	ver := strconv.FormatInt(v, 10)
	r := Runs{Ran: SumSeries(text, "infergate_inference_request_success_total", map[string]string{"model": l.cfg.Model, "version": ver})}
	for _, reason := range []string{"internal", "timeout"} {
		n := SumSeries(text, "infergate_inference_request_failure_total", map[string]string{"model": l.cfg.Model, "version": ver, "reason": reason})
		r.Ran += n
		r.Failed += n
	}
	fb := SumSeries(text, "infergate_experiment_fallback_total", map[string]string{"model": l.cfg.Model, "experiment": l.experimentName(), "arm": "candidate"})
	r.Ran += fb
	r.Failed += fb
	return r, nil
}
