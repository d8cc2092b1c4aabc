package trainer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
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
	// Control is production's version when the candidate was trained
	// (the version it beat on the holdout), which its shadow and canary
	// are judged against: a new production during either ends them;
	// CanaryFailuresBefore what the candidate's version had failed on
	// every node by then (in the shadow stage), which its canary's
	// failures do not count; CanaryFailuresByNode the same by node (its
	// base URL), with the node's process start: a node that restarted
	// since counts from 0, and none of its failures are the shadow's.
	Control              int64                   `json:"control,omitempty"`
	CanaryFailuresBefore float64                 `json:"canary_failures_before,omitempty"`
	CanaryFailuresByNode map[string]NodeFailures `json:"canary_failures_by_node,omitempty"`
	// ReferenceSince is where the drift reference starts: production's
	// predictions from then on (its promotion).
	ReferenceSince time.Time `json:"reference_since,omitzero"`
	// Reference is the drift reference once made: of Version's
	// predictions logged from First to Last.
	Reference *SavedReference `json:"reference,omitempty"`
	// LastTrain is when the loop last trained; NextTrain when it may
	// train again (a cool-down after a candidate that did not make it).
	LastTrain time.Time `json:"last_train,omitzero"`
	NextTrain time.Time `json:"next_train,omitzero"`
	// TrainedUpTo is the time of the newest labeled example the last
	// training had: the next one waits for newer.
	TrainedUpTo time.Time `json:"trained_up_to,omitzero"`
	// Pending, when set, is a step under way ("upload", "canary",
	// "promote" or "roll back", for PendingReason): recorded before its
	// calls to the cluster, which are made again at each step, before
	// anything else, until all succeed; so a trainer stopped or killed
	// between them finishes the step when it starts again. An upload is
	// not made again: the version uploaded with digest UploadSHA256 is
	// looked for, and taken on when the cluster has it.
	Pending       string `json:"pending,omitempty"`
	PendingReason string `json:"pending_reason,omitempty"`
	UploadSHA256  string `json:"upload_sha256,omitempty"`
	// Promoted is the versions the loop promoted, oldest first (the one
	// a promotion replaced moves to just before it), less those it
	// retired since (see LoopConfig.KeepVersions).
	Promoted []int64 `json:"promoted,omitempty"`
	// History is the latest decisions, oldest first.
	History []Decision `json:"history"`
}

// NodeFailures is what a version had failed on one node (Failed) in the
// process that started at Started (its process_start_time_seconds).
type NodeFailures struct {
	Failed  float64 `json:"failed"`
	Started float64 `json:"started,omitempty"`
}

// SavedReference is a drift reference and what it was made of.
type SavedReference struct {
	Version int64      `json:"version"`
	First   time.Time  `json:"first"`
	Last    time.Time  `json:"last"`
	Bins    *Reference `json:"bins"`
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
	// KeepVersions bounds the versions the loop promoted that stay in the
	// cluster, production among them: older ones are retired, so that
	// every node does not keep each past production loaded. 0 keeps
	// them all. Versions a person uploaded are never retired.
	KeepVersions int
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
		DriftRows: 2000, DriftThreshold: 0.2, Cooldown: time.Hour, ReadyTimeout: 5 * time.Minute, KeepVersions: 2,
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
	case c.KeepVersions < 0 || c.KeepVersions == 1:
		return fmt.Errorf("keep versions %d: use 0 (keep all) or 2 and more (production and the version \"infergate models rollback\" goes back to)", c.KeepVersions)
	case c.RetrainEvery < 0 || c.Cooldown < 0 || c.ReadyTimeout <= 0:
		return errors.New("retrain-every and cooldown must not be negative, ready-timeout must be positive")
	case !(c.ShadowPercent > 0 && c.ShadowPercent <= 100):
		return fmt.Errorf("shadow percent %v: use more than 0, at most 100", c.ShadowPercent)
	case c.CanaryPercent < 1 || c.CanaryPercent > 99:
		return fmt.Errorf("canary percent %d: use 1 to 99", c.CanaryPercent)
	case float64(c.Policy.MinShadowPairs) > float64(c.Window)*c.ShadowPercent/100:
		return fmt.Errorf("minimum shadow examples %d: a window of %d predictions holds at most %.0f shadowed at %g%%; widen the window or lower the minimum",
			c.Policy.MinShadowPairs, c.Window, float64(c.Window)*c.ShadowPercent/100, c.ShadowPercent)
	case c.Policy.MinCanaryExamples > c.Window*min(c.CanaryPercent, 100-c.CanaryPercent)/100:
		return fmt.Errorf("minimum canary units %d in each arm: a window of %d predictions holds at most %d of the smaller arm's at %d%% against %d%%; widen the window or lower the minimum",
			c.Policy.MinCanaryExamples, c.Window, c.Window*min(c.CanaryPercent, 100-c.CanaryPercent)/100, c.CanaryPercent, 100-c.CanaryPercent)
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

	// missing names the nodes this step could not read (their logs or
	// metrics): a stage does not pass on part of the evidence.
	missing []string
	// heartbeat is when the watching stage last said how it stands;
	// noted when each recurring note (by its kind) was last logged, and
	// what it said.
	heartbeat time.Time
	// membersAt is when the cluster's members were last checked against
	// the nodes read (checkMembers).
	membersAt time.Time
	noted     map[string]note
}

// note is a recurring log line's last time and key.
type note struct {
	at   time.Time
	text string
}

// notePeriod is how often a recurring note that says the same is logged.
const notePeriod = 10 * time.Minute

// note logs a recurring line of kind: when its key (what it says, less
// the figures that change at every step) differs from the last one's, or
// every period while it holds.
func (l *Loop) note(kind, key string, period time.Duration, format string, args ...any) {
	now := l.cfg.Now()
	if n, ok := l.noted[kind]; ok && n.text == key && now.Sub(n.at) < period {
		return
	}
	if l.noted == nil {
		l.noted = map[string]note{}
	}
	l.noted[kind] = note{now, key}
	l.cfg.Logf(format, args...)
}

// heartbeatEvery is how often the watching stage logs that it watches.
const heartbeatEvery = 10 * time.Minute

// NewLoop returns a Loop; its state comes from cfg.StateFile when that
// exists. It asks the nodes for the model's signature, which must be one
// FP32 [-1, N] input and one output.
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
	l := &Loop{cfg: cfg, state: State{Stage: Watching, History: []Decision{}}}
	switch b, err := os.ReadFile(cfg.StateFile); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &l.state); err != nil {
			return nil, fmt.Errorf("state file %s: %w (move it away to start afresh)", cfg.StateFile, err)
		}
		switch {
		case l.state.Stage != Watching && l.state.Stage != Shadowing && l.state.Stage != Canary:
			return nil, fmt.Errorf("state file %s: unknown stage %q", cfg.StateFile, l.state.Stage)
		case l.state.Pending != "" && l.state.Pending != "upload" && l.state.Pending != "canary" && l.state.Pending != "promote" && l.state.Pending != "roll back":
			return nil, fmt.Errorf("state file %s: unknown pending step %q", cfg.StateFile, l.state.Pending)
		}
	}
	var err error
	l.input, l.width, l.output, err = cfg.Gateway.Signature(ctx, cfg.Model)
	if err != nil {
		return nil, err
	}
	if r := l.state.Reference; r != nil && r.Bins != nil && r.Bins.Width() != l.width {
		l.state.Reference = nil // the model's input changed: a new one
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
			// The same error at every step is logged every notePeriod.
			l.note("error", err.Error(), time.Minute, logging.Warning+"trainer: %v; trying again every %s", err, l.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step finishes a step under way, or reads what the logs gained and
// takes the stage's next step.
func (l *Loop) Step(ctx context.Context) error {
	// A step under way needs no traffic: a node whose log cannot be read
	// must not hold back a roll back.
	switch l.state.Pending {
	case "upload":
		return l.findUpload(ctx)
	case "canary":
		return l.startCanary(ctx)
	case "promote":
		return l.promote(ctx)
	case "roll back":
		return l.rollBack(ctx, l.state.PendingReason)
	}
	l.checkMembers(ctx)
	if err := l.source.Read(ctx, l.joiner.Add); err != nil {
		return err
	}
	l.missing = nil
	if mm, ok := l.source.(interface{ Missing() []string }); ok {
		l.missing = slices.Clone(mm.Missing())
	}
	m, err := l.cfg.Gateway.Model(ctx, l.cfg.Model)
	if err != nil {
		return err
	}
	if m.Removed {
		return l.removed()
	}
	switch l.state.Stage {
	case Shadowing:
		return l.shadow(ctx, m)
	case Canary:
		return l.canary(ctx, m)
	}
	return l.watch(ctx, m)
}

// removed is a step on a model a person removed from the cluster: the
// loop drops its candidate, if any, without a write, and trains nothing:
// its upload would serve the removed model again, as production. The
// error, logged once a minute (Run), says so.
func (l *Loop) removed() error {
	err := fmt.Errorf("model %s was removed from the cluster (infergate models remove): the trainer uploads nothing for it until a version is uploaded again; stop it if the model is gone for good", l.cfg.Model)
	if l.state.Stage != Watching {
		if aerr := l.abandon("someone removed the model from the cluster"); aerr != nil {
			return aerr
		}
	}
	return err
}

// membersEvery is how often the loop checks that it reads every member.
const membersEvery = time.Minute

// checkMembers logs the cluster's members that the nodes read leave
// out, at the first step and when that changes (a gateway that joined
// later), checking every membersEvery: their traffic logs go unread. A
// Kafka topic holds every node's traffic: nothing to check.
func (l *Loop) checkMembers(ctx context.Context) {
	now := l.cfg.Now()
	if l.cfg.Source != nil || (!l.membersAt.IsZero() && now.Sub(l.membersAt) < membersEvery) {
		return
	}
	l.membersAt = now
	missing, err := l.cfg.Gateway.MissingMembers(ctx)
	switch {
	case err != nil:
		l.note("members", "error", notePeriod, logging.Warning+"trainer: cannot list the cluster's members to check --addr: %v", err)
	case len(missing) > 0:
		l.note("members", strings.Join(missing, ","), notePeriod, logging.Warning+"trainer: --addr leaves out members %s: their traffic logs (predictions, feedback) go unread, and a stage could pass on part of the evidence; name every member",
			strings.Join(missing, ", "))
	default:
		delete(l.noted, "members")
	}
}

// decide records a decision, saves the state and logs it.
func (l *Loop) decide(action string, v int64, format string, args ...any) error {
	d := Decision{Time: l.cfg.Now().UTC(), Action: action, Version: v, Reason: fmt.Sprintf(format, args...)}
	l.state.History = append(l.state.History, d)
	if n := len(l.state.History) - historyLen; n > 0 {
		l.state.History = append(l.state.History[:0], l.state.History[n:]...)
	}
	err := l.save()
	ver := ""
	if v != 0 {
		ver = " version " + strconv.FormatInt(v, 10)
	}
	l.cfg.Logf("trainer: %s %s%s: %s", action, l.cfg.Model, ver, d.Reason)
	return err
}

// pend records a step about to be taken (see State.Pending).
func (l *Loop) pend(step, reason string) error {
	l.state.Pending, l.state.PendingReason = step, reason
	return l.save()
}

func (l *Loop) save() error {
	b, err := json.MarshalIndent(&l.state, "", "  ")
	if err != nil && l.state.Reference != nil {
		// A reference of infinite values cannot be saved; the rest can.
		l.cfg.Logf(logging.Warning+"trainer: the drift reference is not saved: %v", err)
		st := l.state
		st.Reference = nil
		b, err = json.MarshalIndent(&st, "", "  ")
	}
	if err != nil {
		return err
	}
	if err := durable.WriteFile(l.cfg.StateFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot save the trainer's state: %w", err)
	}
	return nil
}

// foreignRouting says what routing the model has that the loop did not
// start ("" when none).
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

// driftThreshold is the PSI that counts as drift: the configured
// threshold, or four times the noise floor of windows this size when
// that is higher (the PSI of two samples of one distribution is about
// (bins-1)(1/N + 1/M), and the largest of many features' more).
func (l *Loop) driftThreshold(rep DriftReport) float64 {
	floor := float64(DefaultBins-1) * (1/float64(rep.N) + 1/float64(rep.RefN))
	return math.Max(l.cfg.DriftThreshold, 4*floor)
}

// watch is the watching stage: measure drift, and train when the inputs
// or scores drifted (or on schedule).
func (l *Loop) watch(ctx context.Context, m *ModelState) error {
	if err := l.retireOld(ctx, m); err != nil {
		return err
	}
	now := l.cfg.Now()
	all := l.joiner.All()
	why := ""
	rep, ok, err := l.drift(all, m.Production)
	if err != nil {
		return err
	}
	if ok {
		th := l.driftThreshold(rep)
		ref := l.state.Reference
		if rep.Drifted(th) {
			why = fmt.Sprintf("drift: score PSI %.3f, feature %d PSI %.3f (threshold %.3g; %d reference predictions of version %d logged %s to %s, %d recent)",
				rep.Score, rep.Worst, worstPSI(rep), th, rep.RefN, ref.Version,
				ref.First.UTC().Format(time.RFC3339), ref.Last.UTC().Format(time.RFC3339), rep.N)
		} else if now.Sub(l.heartbeat) >= heartbeatEvery {
			l.heartbeat = now
			l.cfg.Logf("trainer: watching %s version %d: no drift (score PSI %.3f, worst feature %d PSI %.3f; threshold %.3g)",
				l.cfg.Model, m.Production, rep.Score, rep.Worst, worstPSI(rep), th)
		}
	} else if now.Sub(l.heartbeat) >= heartbeatEvery {
		l.heartbeat = now
		l.cfg.Logf("trainer: watching %s version %d: gathering its predictions (%d of version %d kept; drift is measured on %d reference and %d recent ones)",
			l.cfg.Model, m.Production, countVersion(all, m.Production), m.Production, l.cfg.DriftRows, l.cfg.DriftRows)
	}
	if why == "" && l.cfg.RetrainEvery > 0 && now.Sub(l.state.LastTrain) >= l.cfg.RetrainEvery {
		why = fmt.Sprintf("%s since the last training", l.cfg.RetrainEvery)
		if l.state.LastTrain.IsZero() {
			why = fmt.Sprintf("a first training (--retrain-every %s)", l.cfg.RetrainEvery)
		}
	}
	if why == "" {
		return nil
	}
	// Each reason not to train yet is logged when it changes, and every
	// notePeriod while it holds.
	if now.Before(l.state.NextTrain) {
		l.note("wait", "cool-down", notePeriod, "trainer: would train (%s), but the cool-down after the last attempt lasts until %s",
			why, l.state.NextTrain.UTC().Format(time.RFC3339))
		return nil
	}
	if len(l.missing) > 0 {
		l.note("wait", "missing "+strings.Join(l.missing, ","), notePeriod, "trainer: would train (%s), but cannot read %s: a candidate must be ready on every node; waiting for them",
			why, strings.Join(l.missing, ", "))
		return nil
	}
	if f := l.foreignRouting(m); f != "" {
		l.note("wait", f, notePeriod, "trainer: would train (%s), but %s: waiting for it to end", why, f)
		return nil
	}
	var exs []Example
	newest := time.Time{}
	for _, ex := range all {
		if ex.HasLabel {
			exs = append(exs, ex)
			if ex.Time.After(newest) {
				newest = ex.Time
			}
		}
	}
	if len(exs) < l.cfg.MinExamples {
		l.note("wait", "few", notePeriod, "trainer: would train (%s), but %d labeled examples are fewer than the %d needed", why, len(exs), l.cfg.MinExamples)
		return nil
	}
	if !newest.After(l.state.TrainedUpTo) {
		l.note("wait", "no new", notePeriod, "trainer: would train (%s), but no labeled example came since the last training", why)
		return nil
	}
	l.state.TrainedUpTo = newest
	return l.train(ctx, exs, m.Production, why)
}

func countVersion(all []Example, v int64) int {
	n := 0
	for i := range all {
		if all[i].Version == v {
			n++
		}
	}
	return n
}

func worstPSI(r DriftReport) float64 {
	if r.Worst < 0 {
		return 0
	}
	return r.Features[r.Worst]
}

// drift compares production's recent predictions with its reference,
// made once (and saved) from the first DriftRows of its predictions
// logged since ReferenceSince, by their time (the nodes' logs are read
// one after the other); ok is false until there are enough of both.
func (l *Loop) drift(all []Example, production int64) (DriftReport, bool, error) {
	n := l.cfg.DriftRows
	var prod []*Example
	for i := range all {
		if all[i].Version == production && !all[i].Time.Before(l.state.ReferenceSince) {
			prod = append(prod, &all[i])
		}
	}
	slices.SortStableFunc(prod, func(a, b *Example) int { return a.Time.Compare(b.Time) })
	ref := l.state.Reference
	if ref == nil || ref.Bins == nil || ref.Version != production || ref.First.Before(l.state.ReferenceSince) {
		if len(prod) < n {
			return DriftReport{}, false, nil
		}
		x, s := rows(prod[:n])
		bins, err := NewReference(x, s, DefaultBins)
		if err != nil {
			return DriftReport{}, false, err
		}
		ref = &SavedReference{Version: production, First: prod[0].Time, Last: prod[n-1].Time, Bins: bins}
		l.state.Reference = ref
		if err := l.save(); err != nil {
			return DriftReport{}, false, err
		}
	}
	if len(prod) < n || !prod[len(prod)-n].Time.After(ref.Last) {
		return DriftReport{}, false, nil
	}
	x, s := rows(prod[len(prod)-n:])
	rep, err := ref.Bins.Compare(x, s)
	return rep, err == nil, err
}

// rows returns exs' features and live scores.
func rows(exs []*Example) ([][]float32, []float32) {
	x := make([][]float32, len(exs))
	s := make([]float32, len(exs))
	for i, ex := range exs {
		x[i], s[i] = ex.Features, ex.Live
	}
	return x, s
}

// train trains a candidate on exs and, when it beats the live versions
// and the labels' base rate on the holdout, uploads it and starts its
// shadow stage.
func (l *Loop) train(ctx context.Context, exs []Example, production int64, why string) error {
	now := l.cfg.Now()
	l.state.LastTrain = now
	l.state.NextTrain = now.Add(l.cfg.Cooldown)
	train, all := Split(exs, l.cfg.HoldoutEvery)
	// The candidate is compared with production on what production
	// answered (not with a rolled back candidate's canary, say).
	var holdout []Example
	for _, ex := range all {
		if ex.Version == production {
			holdout = append(holdout, ex)
		}
	}
	if len(train) == 0 || len(holdout) < 10 {
		return l.decide("skip", 0, "%s; the split left %d examples to train on and %d of production's to hold out", why, len(train), len(holdout))
	}
	m, _, err := Train(l.cfg.Train, train)
	if err != nil {
		return err
	}
	cmp := Compare(m, holdout)
	base := BaseRate(train, holdout)
	switch {
	case !cmp.Better():
		return l.decide("keep", 0, "%s; a candidate trained on %d examples is not better on the holdout of %d: live %s; candidate %s",
			why, len(train), len(holdout), cmp.Live, cmp.Candidate)
	case !(cmp.Candidate.LogLoss < base):
		return l.decide("keep", 0, "%s; a candidate trained on %d examples predicts no better than the labels' base rate on the holdout of %d (log loss %.4f against %.4f): the labels look like noise to it",
			why, len(train), len(holdout), cmp.Candidate.LogLoss, base)
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
	reason := fmt.Sprintf("%s; trained on %d examples; holdout of %d: live %s; candidate %s; the labels' base rate: log loss %.4f",
		why, len(train), len(holdout), cmp.Live, cmp.Candidate, base)
	sum := sha256.Sum256(data)
	l.state.UploadSHA256 = hex.EncodeToString(sum[:])
	l.state.Control = production
	if err := l.pend("upload", reason); err != nil {
		return err
	}
	v, err := l.cfg.Gateway.Upload(ctx, l.cfg.Model, data)
	if err != nil {
		// The upload may have taken effect though its answer was lost:
		// the next step looks for it.
		return fmt.Errorf("cannot upload the candidate: %w", err)
	}
	return l.uploaded(v)
}

// uploaded starts the shadow stage of version v, just uploaded.
func (l *Loop) uploaded(v int64) error {
	reason := l.state.PendingReason
	l.state = State{Stage: Shadowing, Candidate: v, Uploaded: l.cfg.Now(), Control: l.state.Control, ReferenceSince: l.state.ReferenceSince, Reference: l.state.Reference, Promoted: l.state.Promoted,
		LastTrain: l.state.LastTrain, TrainedUpTo: l.state.TrainedUpTo, NextTrain: l.state.NextTrain, History: l.state.History}
	return l.decide("upload", v, "%s", reason)
}

// findUpload is the pending step "upload", whose answer was lost: the
// version with the candidate's digest, if the cluster has it, is the
// candidate; else the upload did not happen, and the loop trains again
// soon (a leader election, say), not after the whole cool-down.
func (l *Loop) findUpload(ctx context.Context) error {
	m, err := l.cfg.Gateway.Model(ctx, l.cfg.Model)
	if err != nil {
		return err
	}
	for _, v := range m.Versions {
		if v.SHA256 == l.state.UploadSHA256 && v.Stage != "retired" {
			return l.uploaded(v.Version)
		}
	}
	now := l.cfg.Now()
	l.state.Pending, l.state.PendingReason, l.state.UploadSHA256 = "", "", ""
	l.state.NextTrain = now.Add(min(l.cfg.Cooldown, 10*l.cfg.Interval))
	l.cfg.Logf(logging.Warning+"trainer: the candidate's upload did not reach the cluster; training again after %s", l.state.NextTrain.Sub(now))
	return l.save()
}

// shadow is the shadow stage: start the shadow once the candidate is
// ready everywhere, then judge it.
func (l *Loop) shadow(ctx context.Context, m *ModelState) error {
	now := l.cfg.Now()
	v := l.state.Candidate
	if l.state.Control == 0 {
		// A state file of a release that did not record it.
		l.state.Control = m.Production
	}
	if l.state.Since.IsZero() {
		if m.Production != l.state.Control {
			return l.abandon(fmt.Sprintf("someone made version %d production while it waited to be ready (it was trained against version %d)", m.Production, l.state.Control))
		}
		if f := l.foreignRouting(m); f != "" {
			if now.Sub(l.state.Uploaded) >= l.cfg.ReadyTimeout {
				return l.rollBack(ctx, "while "+f)
			}
			l.note("ready", f, time.Minute, "trainer: version %d waits: %s", v, f)
			return nil
		}
		if not, unreachable := m.NotReady(v); not != "" {
			switch {
			case unreachable:
				// A node down is not the candidate's fault: it waits.
				l.note("ready", not, time.Minute, "trainer: version %d waits to be ready on every node: %s", v, not)
			case now.Sub(l.state.Uploaded) >= l.cfg.ReadyTimeout:
				return l.rollBack(ctx, fmt.Sprintf("not ready on every node after %s: %s", l.cfg.ReadyTimeout, not))
			default:
				l.note("ready", not, time.Minute, "trainer: version %d waits to be ready on every node: %s", v, not)
			}
			return nil
		}
		if err := l.cfg.Gateway.SetShadow(ctx, l.cfg.Model, v, l.cfg.ShadowPercent); err != nil {
			return err
		}
		l.state.Since = now
		return l.decide("shadow", v, "ready on every node; copying %g%% of the requests to it", l.cfg.ShadowPercent)
	}
	switch {
	case m.Production == v:
		// A shadow of production copies requests to the version that
		// answered them: end it.
		if err := l.cfg.Gateway.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
			return err
		}
		return l.abandon(fmt.Sprintf("someone made version %d production during its shadow stage (its shadow ended)", v))
	case m.Production != l.state.Control:
		// Its evidence is against a version that is no longer
		// production, and a pass would start a canary against one it
		// was never held out against: it gives way, as in the canary.
		if err := l.cfg.Gateway.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
			return err
		}
		return l.abandon(fmt.Sprintf("someone made version %d production during its shadow stage against version %d (its shadow ended)", m.Production, l.state.Control))
	case m.Shadow == nil || m.Shadow.Version != v:
		return l.abandon("its shadow was ended or replaced by someone else")
	case m.Experiment != nil:
		// Someone's A/B test, which the canary would replace: the
		// candidate gives way.
		if err := l.cfg.Gateway.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
			return err
		}
		return l.abandon(fmt.Sprintf("someone started experiment %q during its shadow stage (its shadow ended)", m.Experiment.Name))
	}
	runs, missing, err := l.runs(ctx, shadowRuns(l.cfg.Model, v))
	if err != nil {
		return err
	}
	j := l.cfg.Policy.JudgeShadow(l.joiner.All(), m.Production, v, l.state.Since, now, runs)
	j, held := l.partial(j, missing)
	switch j.Verdict {
	case Fail:
		return l.rollBack(ctx, "in the shadow stage, "+j.Reason)
	case Pass:
		// What the version failed in the shadow stage is not the
		// canary's.
		// A node missed here would have no baseline: its shadow-stage
		// failures would count as the canary's. The stage waits for
		// every node, as its pass did.
		texts, missing, err := l.cfg.Gateway.ScrapeNodes(ctx)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			l.note("stage", "baseline", time.Minute, "trainer: version %d passed the shadow stage (%s), but cannot read %s for the canary's baseline: waiting for every node",
				v, j.Reason, strings.Join(missing, ", "))
			return nil
		}
		before, total := map[string]NodeFailures{}, 0.0
		for node, text := range texts {
			f := versionFailures(l.cfg.Model, v)(text).Failed
			before[node] = NodeFailures{Failed: f, Started: processStart(text)}
			total += f
		}
		l.state.Control, l.state.CanaryFailuresBefore, l.state.CanaryFailuresByNode = m.Production, total, before
		if err := l.pend("canary", j.Reason); err != nil {
			return err
		}
		return l.startCanary(ctx)
	}
	l.note("stage", "shadow"+held, time.Minute, "trainer: version %d in the shadow stage: %s", v, j.Reason)
	return nil
}

// partial turns a pass into a wait while some nodes could not be read:
// a stage does not pass on part of the evidence (it may fail on it).
// A judgement on part of it says from how many nodes, and which were
// not read, so that a roll back's reason does not read as every node's.
// held is "" unless a pass was held back, and then names the nodes it
// waits for: the stage's note keys on it, so that the wait is logged
// when it begins, not up to a minute later.
func (l *Loop) partial(j Judgement, missing []string) (_ Judgement, held string) {
	missing = append(missing, l.missing...)
	slices.Sort(missing)
	missing = slices.Compact(missing)
	if len(missing) == 0 {
		return j, ""
	}
	nodes := strings.Join(missing, ", ")
	if j.Verdict == Pass {
		j.Verdict = Wait
		j.Reason = fmt.Sprintf("would pass (%s), but cannot read %s: waiting for every node", j.Reason, nodes)
		return j, " held for " + nodes
	}
	n := len(l.cfg.Gateway.Nodes)
	j.Reason = fmt.Sprintf("%s; from %d of %d nodes (not read: %s)", j.Reason, max(n-len(missing), 0), n, nodes)
	return j, ""
}

// startCanary is the pending step "canary": the experiment starts, the
// shadow ends.
func (l *Loop) startCanary(ctx context.Context) error {
	v := l.state.Candidate
	m, err := l.cfg.Gateway.Model(ctx, l.cfg.Model)
	if err != nil {
		return err
	}
	if m.Experiment != nil && m.Experiment.Name != l.experimentName() {
		l.state.Pending, l.state.PendingReason = "", ""
		if err := l.cfg.Gateway.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
			return err
		}
		return l.abandon(fmt.Sprintf("someone started experiment %q as its canary was to start (its shadow ended)", m.Experiment.Name))
	}
	x := Experiment{Name: l.experimentName(), Arms: []Arm{
		{Name: "control", Version: l.state.Control, Weight: 100 - l.cfg.CanaryPercent},
		{Name: "candidate", Version: v, Weight: l.cfg.CanaryPercent},
	}}
	if err := l.cfg.Gateway.SetExperiment(ctx, l.cfg.Model, x); err != nil {
		return err
	}
	if err := l.cfg.Gateway.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
		return err
	}
	reason := l.state.PendingReason
	l.state.Stage, l.state.Since = Canary, l.cfg.Now()
	l.state.Pending, l.state.PendingReason = "", ""
	return l.decide("canary", v, "the shadow stage passed (%s); %d%% of the requests go to it, against version %d", reason, l.cfg.CanaryPercent, l.state.Control)
}

// canary is the canary stage: judge the arms; promote or roll back.
func (l *Loop) canary(ctx context.Context, m *ModelState) error {
	now := l.cfg.Now()
	v := l.state.Candidate
	switch {
	case m.Production != l.state.Control:
		// The experiment would go on splitting the traffic with a
		// version that is no longer production: end it.
		if err := l.cfg.Gateway.EndExperimentIf(ctx, l.cfg.Model, l.experimentName()); err != nil {
			return err
		}
		return l.abandon(fmt.Sprintf("someone made version %d production during its canary against version %d (its experiment ended)", m.Production, l.state.Control))
	case m.Experiment == nil || m.Experiment.Name != l.experimentName():
		return l.abandon("its experiment was ended or replaced by someone else")
	}
	runs, missing, err := l.countCanary(ctx)
	if err != nil {
		return err
	}
	j := l.cfg.Policy.JudgeCanary(l.joiner.All(), "control", l.state.Control, "candidate", v, l.state.Since, now, runs)
	j, held := l.partial(j, missing)
	switch j.Verdict {
	case Fail:
		return l.rollBack(ctx, "in the canary stage, "+j.Reason)
	case Pass:
		if err := l.pend("promote", j.Reason); err != nil {
			return err
		}
		return l.promote(ctx)
	}
	l.note("stage", "canary"+held, time.Minute, "trainer: version %d in the canary stage: %s", v, j.Reason)
	return nil
}

// promote is the pending step "promote": production first, so that
// unversioned requests never go back to the old version in between; then
// the experiment ends.
func (l *Loop) promote(ctx context.Context) error {
	v := l.state.Candidate
	if err := l.cfg.Gateway.Promote(ctx, l.cfg.Model, v); err != nil {
		return err
	}
	if err := l.cfg.Gateway.EndExperimentIf(ctx, l.cfg.Model, l.experimentName()); err != nil {
		return err
	}
	reason, replaced := l.state.PendingReason, l.state.Control
	// The version it replaced is what "infergate models rollback" goes
	// back to: the newest of the others, whenever it was promoted (a
	// person may have rolled back to it), so that retireOld keeps it.
	promoted := slices.DeleteFunc(slices.Clone(l.state.Promoted), func(p int64) bool { return p == v || p == replaced })
	if slices.Contains(l.state.Promoted, replaced) {
		promoted = append(promoted, replaced)
	}
	l.state = State{Stage: Watching, ReferenceSince: l.cfg.Now(), LastTrain: l.state.LastTrain, TrainedUpTo: l.state.TrainedUpTo, History: l.state.History,
		Promoted: append(promoted, v)}
	return l.decide("promote", v, "the canary stage passed: %s; the version it replaced (%d) stays, staged, for \"infergate models rollback\"", reason, replaced)
}

// rollBack ends the candidate's shadow or experiment and retires it. The
// reason is saved and logged first: a call that fails is made again at
// the next step, before anything else.
func (l *Loop) rollBack(ctx context.Context, why string) error {
	v := l.state.Candidate
	g := l.cfg.Gateway
	if l.state.Pending != "roll back" {
		if err := l.pend("roll back", why); err != nil {
			return err
		}
		l.cfg.Logf("trainer: rolling back %s version %d: %s", l.cfg.Model, v, why)
	}
	if err := g.EndExperimentIf(ctx, l.cfg.Model, l.experimentName()); err != nil {
		return err
	}
	if err := g.EndShadowIf(ctx, l.cfg.Model, v); err != nil {
		return err
	}
	retired := fmt.Sprintf("version %d retired", v)
	if err := g.Retire(ctx, l.cfg.Model, v); isStatus(err, http.StatusConflict) {
		// Production now, say (someone promoted it): not the trainer's
		// to undo.
		retired = fmt.Sprintf("version %d not retired: %v", v, err)
	} else if err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	l.state = State{Stage: Watching, ReferenceSince: l.state.ReferenceSince, Reference: l.state.Reference, LastTrain: l.state.LastTrain, TrainedUpTo: l.state.TrainedUpTo,
		NextTrain: l.cfg.Now().Add(l.cfg.Cooldown), History: l.state.History, Promoted: l.state.Promoted}
	return l.decide("roll back", v, "%s; %s; training again after the cool-down (%s)", why, retired, l.cfg.Cooldown)
}

// abandon leaves a candidate whose stage someone else ended alone.
func (l *Loop) abandon(why string) error {
	v := l.state.Candidate
	l.state = State{Stage: Watching, ReferenceSince: l.state.ReferenceSince, Reference: l.state.Reference, LastTrain: l.state.LastTrain, TrainedUpTo: l.state.TrainedUpTo,
		NextTrain: l.cfg.Now().Add(l.cfg.Cooldown), History: l.state.History, Promoted: l.state.Promoted}
	return l.decide("abandon", v, "%s; the trainer leaves version %d as it is, and trains again after the cool-down (%s)", why, v, l.cfg.Cooldown)
}

// countCanary counts the candidate arm's runs over the nodes, less on each
// node what its version had failed there in the shadow stage, unless the
// node restarted since.
func (l *Loop) countCanary(ctx context.Context) (Runs, []string, error) {
	texts, missing, err := l.cfg.Gateway.ScrapeNodes(ctx)
	if err != nil {
		return Runs{}, nil, err
	}
	count := canaryRuns(l.cfg.Model, l.state.Candidate, l.experimentName())
	var runs Runs
	for _, node := range l.cfg.Gateway.Nodes {
		text, ok := texts[node]
		if !ok {
			continue
		}
		r := count(text)
		if b, ok := l.state.CanaryFailuresByNode[node]; ok && b.Started == processStart(text) {
			r.Failed = max(0, r.Failed-b.Failed)
		}
		runs.Ran += r.Ran
		runs.Failed += r.Failed
	}
	if l.state.CanaryFailuresByNode == nil {
		// A state file of a release that kept only the sum.
		runs.Failed = max(0, runs.Failed-l.state.CanaryFailuresBefore)
	}
	return runs, missing, nil
}

// processStart returns a node's process_start_time_seconds (0 when its
// metrics have none).
func processStart(text string) float64 {
	return SumSeries(text, "process_start_time_seconds", nil)
}

// runCounter sums a stage's runs from the nodes' metrics text.
type runCounter func(text string) Runs

// runs scrapes the nodes and counts; missing names those not read.
func (l *Loop) runs(ctx context.Context, count runCounter) (Runs, []string, error) {
	text, missing, err := l.cfg.Gateway.Scrape(ctx)
	if err != nil {
		return Runs{}, nil, err
	}
	return count(text), missing, nil
}

// shadowRuns counts the shadow's copies: a copy that failed, or found
// the version not loaded, failed.
func shadowRuns(model string, v int64) runCounter {
	return func(text string) Runs {
		var r Runs
		for _, res := range []string{"compared", "failed", "not_ready"} {
			n := SumSeries(text, "infergate_shadow_requests_total",
				map[string]string{"model": model, "version": strconv.FormatInt(v, 10), "result": res})
			r.Ran += n
			if res != "compared" {
				r.Failed += n
			}
		}
		return r
	}
}

// versionFailures counts version v's failures for its own reasons
// (errors, timeouts), its shadow copies' included.
func versionFailures(model string, v int64) runCounter {
	return func(text string) Runs {
		var r Runs
		for _, reason := range []string{"internal", "timeout"} {
			r.Failed += SumSeries(text, "infergate_inference_request_failure_total",
				map[string]string{"model": model, "version": strconv.FormatInt(v, 10), "reason": reason})
		}
		return r
	}
}

// canaryRuns counts the candidate arm's requests (the experiment's own
// series, which start with it) and its version's failures (from which
// the caller takes those of the shadow stage), with the requests of the
// arm that fell back to production because the version was not ready.
func canaryRuns(model string, v int64, experiment string) runCounter {
	return func(text string) Runs {
		arm := map[string]string{"model": model, "experiment": experiment, "arm": "candidate"}
		r := Runs{Ran: SumSeries(text, "infergate_experiment_requests_total", arm)}
		r.Failed = versionFailures(model, v)(text).Failed + SumSeries(text, "infergate_experiment_fallback_total", arm)
		return r
	}
}

// retireOld retires the versions the loop promoted beyond KeepVersions:
// production stays (whoever promoted it), and so does the version
// "infergate models rollback" goes to (ModelState.RollbackTo), and the
// KeepVersions-1 newest others, the one production replaced among them.
// A version the cluster refuses to retire because an alias, an
// arm or a shadow of a person's points to it is left to them, and so is
// one that is gone; one that a node where production failed still
// answers unversioned requests with is tried again at every step until
// production is ready there.
func (l *Loop) retireOld(ctx context.Context, m *ModelState) error {
	keep := l.cfg.KeepVersions
	if keep == 0 || len(l.state.Promoted) < keep {
		return nil
	}
	// Production, the version a rollback goes to (whoever promoted it
	// once; a person's rollback moves it), and the newest others: keep-1
	// in all besides production, the rollback target among them (a
	// promotion makes the version it replaced the target: counted apart,
	// it made one more stay than keep).
	var old []int64
	kept := 0
	if m.RollbackTo != m.Production && slices.Contains(l.state.Promoted, m.RollbackTo) {
		kept = 1
	}
	for _, v := range slices.Backward(l.state.Promoted) {
		switch {
		case v == m.Production, v == m.RollbackTo:
		case kept < keep-1:
			kept++
		default:
			old = append(old, v)
		}
	}
	slices.Reverse(old) // oldest first
	for _, v := range old {
		action, why := "retire", fmt.Sprintf("the trainer keeps %d of the versions it promoted (--keep-versions): production, the one \"infergate models rollback\" goes to, then the newest", keep)
		err := l.cfg.Gateway.Retire(ctx, l.cfg.Model, v)
		var he *HTTPError
		switch {
		case errors.As(err, &he) && he.Code == http.StatusConflict && he.Kind == "stands-in":
			// A node where production failed answers with it: that ends
			// once production is ready there, so it stays on the list.
			l.note("retire-wait/"+strconv.FormatInt(v, 10), "", notePeriod,
				"trainer: %s version %d is not retired yet, tried again at every step: %v", l.cfg.Model, v, err)
			continue
		case isStatus(err, http.StatusConflict):
			action, why = "leave", fmt.Sprintf("not retired, the cluster keeps it: %v", err)
		case isStatus(err, http.StatusNotFound):
			action, why = "leave", "already gone"
		case err != nil:
			return err
		}
		l.state.Promoted = slices.DeleteFunc(l.state.Promoted, func(p int64) bool { return p == v })
		if err := l.decide(action, v, "%s", why); err != nil {
			return err
		}
	}
	return nil
}
