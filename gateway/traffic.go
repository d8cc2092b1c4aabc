package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trafficlog"
)

// MaxRequestIDLen bounds a request's id, and a feedback's: it is logged
// with every prediction and outcome.
const MaxRequestIDLen = 256

// ensureID gives sc's request an id when the traffic log is on and it
// has none, so that its response names the prediction feedback may refer
// to: 16 hex digits, random, held in sc (the request's ID views them
// until sc goes back to its pool, which resets the request first). It
// reports whether it made one up.
func (s *Server) ensureID(sc *scratch) (bool, error) {
	req := &sc.req
	if s.traffic == nil {
		return false, nil
	}
	if len(req.ID) > MaxRequestIDLen {
		return false, badRequest("the request's id has %d bytes; at most %d", len(req.ID), MaxRequestIDLen)
	}
	if req.ID != "" {
		return false, nil
	}
	var raw [8]byte
	binary.LittleEndian.PutUint64(raw[:], rand.Uint64())
	hex.Encode(sc.id[:], raw[:])
	req.ID = unsafe.String(&sc.id[0], len(sc.id))
	return true, nil
}

// sampleTraffic decides whether the traffic log logs a request: once per
// request, before the response cache's body replay, which a logged request
// skips to be decoded.
func (s *Server) sampleTraffic() bool {
	return s.traffic != nil && s.cfg.TrafficPercent > 0 && rand.Float64()*100 < s.cfg.TrafficPercent
}

// recentArms remembers which experiment arm answered the predictions an
// arm answered on this node, by id, so that feedback naming only the id
// counts for its arm: a table of recentArmsSize slots in sets of
// recentArmsWays by a hash of the id, where a newer prediction takes the
// slot of the oldest in its set. It holds about 80% of the last
// recentArmsSize of them, and nearly all of the last quarter of that (a
// direct-mapped table held 63%, and lost one in nine of the last
// quarter); feedback for older ones (or sent to another node) counts for
// an arm only when it names the arm. It allocates nothing per prediction.
type recentArms struct {
	seed maphash.Seed
	// current returns the experiment model runs now, or nil; set before
	// use, only where predictions are read back from the log (refill).
	current func(model string) *registry.Experiment
	// mu protects slots and next.
	mu    sync.Mutex
	slots []recentSlot
	// next is, per set, the way the next prediction takes: its oldest.
	next []uint8
}

// recentSlot is one remembered prediction: h, its id's hash (0: empty),
// and arm Arm of experiment x; or, for one read back from the traffic log
// at start (x nil), lg, what the log says answered it, and at, when
// (UnixNano).
type recentSlot struct {
	h   uint64
	x   *registry.Experiment
	arm int
	lg  *loggedArm
	at  int64
}

// loggedArm is what a logged prediction says answered it: arm of model's
// experiment, served by version. The log does not name the experiment
// or its phase: recentArms.arm matches them by time.
type loggedArm struct {
	model, arm string
	version    int64
}

const (
	recentArmsSize = 1 << 16
	recentArmsWays = 4
	recentArmsSets = recentArmsSize / recentArmsWays
)

func newRecentArms() *recentArms {
	return &recentArms{seed: maphash.MakeSeed(), slots: make([]recentSlot, recentArmsSize), next: make([]uint8, recentArmsSets)}
}

// hash returns the tag stored for id (never 0) and its set.
func (r *recentArms) hash(id string) (tag uint64, set int) {
	h := maphash.String(r.seed, id)
	return h | 1, int(h >> 48 & (recentArmsSets - 1))
}

// add records that arm number arm of experiment x answered prediction id.
func (r *recentArms) add(id string, x *registry.Experiment, arm int) {
	r.put(id, recentSlot{x: x, arm: arm})
}

// addLogged records that the traffic log says lg answered prediction id
// at at (UnixNano): a prediction made before this node started.
func (r *recentArms) addLogged(id string, lg *loggedArm, at int64) {
	r.put(id, recentSlot{lg: lg, at: at})
}

// put records sl, less its hash, for prediction id.
func (r *recentArms) put(id string, sl recentSlot) {
	h, s := r.hash(id)
	sl.h = h
	r.mu.Lock()
	set := r.slots[s*recentArmsWays : (s+1)*recentArmsWays : (s+1)*recentArmsWays]
	// The set is a ring, oldest at next, newest just before it.
	next := int(r.next[s])
	w := next
	for i := range set {
		if set[i].h == h {
			// The id answered again (a client's own id, sent twice):
			// its latest arm is the one its feedback is for, and it is
			// the set's newest now. The ones after it move up.
			for w = i; (w+1)%recentArmsWays != next; w = (w + 1) % recentArmsWays {
				set[w] = set[(w+1)%recentArmsWays]
			}
			break
		}
	}
	if w == next {
		r.next[s] = uint8((next + 1) % recentArmsWays)
	}
	set[w] = sl
	r.mu.Unlock()
}

// arm returns the arm of model's experiment that answered prediction id,
// and that experiment, if it is remembered.
func (r *recentArms) arm(id, model string) (string, *registry.Experiment) {
	h, s := r.hash(id)
	var sl recentSlot
	r.mu.Lock()
	for _, c := range r.slots[s*recentArmsWays : (s+1)*recentArmsWays] {
		if c.h == h {
			sl = c
			break
		}
	}
	r.mu.Unlock()
	if sl.h == h && sl.x == nil && sl.lg != nil && sl.lg.model == model && r.current != nil {
		return sl.lg.resolve(r.current(model), sl.at)
	}
	if sl.h != h || sl.x == nil || sl.x.Model != model {
		return "", nil
	}
	return sl.x.Arms[sl.arm].Name, sl.x
}

// resolve returns lg's arm and x if a prediction lg logged at at
// (UnixNano) was made in x's current phase by the arm x has now: x has
// an arm of that name served by the same version, and its phase began at
// or before at. The log names neither the experiment nor the phase; the
// time tells them apart, since a new experiment and each change of the
// split begin a phase (route.Experiment.Started). Phases of a release
// before phases began (Started zero) cannot be told apart: none match.
// The time is the clock of the node that took the change, and a
// prediction's is this node's when it was logged, after its arm was
// chosen: one made within that skew, or during that inference, before the
// change may count for the new phase, as a prediction logged at the
// moment of a change does while the node runs.
func (lg *loggedArm) resolve(x *registry.Experiment, at int64) (string, *registry.Experiment) {
	if x == nil || x.Model != lg.model || x.Started.IsZero() || at < x.Started.UnixNano() {
		return "", nil
	}
	i := x.ArmIndex(lg.arm)
	if i < 0 || x.Arms[i].Version != lg.version {
		return "", nil
	}
	return x.Arms[i].Name, x
}

// refillBytes bounds what refillRecent reads of the traffic log: about
// recentArmsSize predictions of a model of 256 float inputs, or twice
// that many of 64 (ctr's).
const refillBytes = 64 << 20

// refillRecent fills s.recent with the arms of the predictions in the
// last refillBytes of the traffic log l, oldest first, so that feedback
// for predictions made before this node (re)started counts for their arm
// while their experiment's phase goes on (loggedArm.resolve). Only
// logged predictions come back: with --traffic-percent below 100, the
// others' feedback counts only when it names its arm. A damaged record
// skips the refill to the next segment (what the rest of its segment
// held is lost); other read errors end it; the server starts either
// way. Called by New, before the server serves.
func (s *Server) refillRecent(l *trafficlog.Log) {
	t := time.Now()
	from, err := l.TailPosition(refillBytes)
	if err != nil {
		s.logf(logging.Warning+"traffic log: cannot find its tail to remember the arms of the predictions before this start: %v", err)
		return
	}
	arms := make(map[loggedArm]*loggedArm)
	var e trafficlog.Event
	n, read := 0, 0
	add := func(_ int64, rec []byte) bool {
		read += len(rec)
		if _, err := trafficlog.Decode(rec, &e); err != nil || e.Kind != trafficlog.Prediction || e.Arm == "" {
			return true // Read checked its frame: one this release cannot parse is skipped
		}
		k := loggedArm{model: e.Model, arm: e.Arm, version: e.Version}
		lg := arms[k]
		if lg == nil {
			lg = &k
			arms[k] = lg
		}
		s.recent.addLogged(e.ID, lg, e.Time.UnixNano())
		n++
		return true
	}
	// Damage ends a segment's part: the refill goes on at the next
	// segment, where the newest predictions are, within its budget.
	for pos := from; read < refillBytes; {
		next, rerr := l.Read(pos, refillBytes-read, add)
		if rerr == nil {
			break
		}
		skip, ok := l.SegmentAfter(next)
		if !errors.Is(rerr, trafficlog.ErrCorrupt) || !ok || skip <= next {
			err = rerr
			break
		}
		s.logf(logging.Warning+"traffic log: remembering the arms of the predictions before this start skips from %d to the next segment, at %d: %v", next, skip, rerr)
		pos = skip
	}
	if err != nil {
		s.logf(logging.Warning+"traffic log: remembering the arms of the predictions before this start stopped after %d of them: %v", n, err)
	}
	if n > 0 || err != nil {
		s.logf("traffic log: remembered the arms of %d predictions from its last %d bytes in %s, for their feedback", n, read, time.Since(t).Round(time.Millisecond))
	}
}

// logPrediction logs what v answered to sc's request, when the log
// sampled it: outs, by arm (empty outside experiments). It never blocks;
// a prediction the log cannot take is dropped and counted there. It
// remembers every prediction an arm answered, for feedback. unit is the
// request's unit id, which an arm's predictions are logged with.
func (s *Server) logPrediction(unit []byte, sc *scratch, v *registry.Version, arm string, outs []oip.Tensor) {
	l := s.traffic
	if l == nil {
		return
	}
	req := &sc.req
	if arm != "" {
		if m := s.repo.Model(v.Model); m != nil {
			if x := m.Experiment(); x != nil {
				if i := x.ArmIndex(arm); i >= 0 {
					s.recent.add(req.ID, x, i)
				}
			}
		}
	}
	if !sc.sampled {
		return
	}
	e := trafficlog.Event{
		Kind: trafficlog.Prediction, Time: time.Now(), ID: req.ID, Model: v.Model, Version: v.Number,
		Arm: arm, Inputs: req.Inputs, Outputs: outs,
	}
	if arm != "" {
		e.Unit = string(unit)
	}
	l.Append(&e) // encoded before it returns
}

// feedbackEntry is one outcome in a POST /v2/models/{m}/feedback body.
type feedbackEntry struct {
	// ID is the prediction's: the "id" of its request or response.
	ID string `json:"id"`
	// Label and Reward are the outcome: what the right answer was, and
	// what the answer was worth. At least one.
	Label  *float64 `json:"label"`
	Reward *float64 `json:"reward"`
	// Version is the version that answered (X-Model-Version), when the
	// client knows it; the log's prediction has it anyway.
	Version int64 `json:"version"`
	// Arm is the experiment arm that answered (X-Experiment-Arm), when the
	// client knows it; else the node that answered remembers it for a
	// while.
	Arm string `json:"arm"`
}

// MaxOutcome bounds a feedback label's and reward's magnitude: squared
// and summed over billions of events, they stay far from overflowing.
const MaxOutcome = 1e12

func (f *feedbackEntry) validate() error {
	switch {
	case f.ID == "":
		return errors.New(`"id" is missing: give the id of the request, or of the response, the outcome is for`)
	case len(f.ID) > MaxRequestIDLen:
		return errors.New(`"id" has ` + strconv.Itoa(len(f.ID)) + " bytes; at most " + strconv.Itoa(MaxRequestIDLen))
	case f.Label == nil && f.Reward == nil:
		return errors.New(`neither "label" nor "reward" is given: give the outcome as one or both`)
	case f.Label != nil && (math.IsNaN(*f.Label) || math.IsInf(*f.Label, 0)):
		return errors.New(`"label" is not a finite number`)
	case f.Reward != nil && (math.IsNaN(*f.Reward) || math.IsInf(*f.Reward, 0)):
		return errors.New(`"reward" is not a finite number`)
	case f.Label != nil && math.Abs(*f.Label) > MaxOutcome:
		return fmt.Errorf(`"label" is %g; give one within ±%g (an experiment's sums of squares would overflow)`, *f.Label, float64(MaxOutcome))
	case f.Reward != nil && math.Abs(*f.Reward) > MaxOutcome:
		return fmt.Errorf(`"reward" is %g; give one within ±%g (an experiment's sums of squares would overflow)`, *f.Reward, float64(MaxOutcome))
	case f.Version < 0:
		return errors.New(`"version" is negative`)
	case len(f.Arm) > 63:
		return errors.New(`"arm" has ` + strconv.Itoa(len(f.Arm)) + " bytes; arm names have at most 63")
	}
	return nil
}

// feedback serves POST /v2/models/{m}[/versions/{v}]/feedback: one
// outcome as a JSON object, or several as an array, logged for the
// trainer to join with the predictions. It answers once they are on disk.
func (s *Server) feedback(ctx *fasthttp.RequestCtx, name, version []byte) error {
	l := s.traffic
	if l == nil {
		return notFound("this server keeps no traffic log, so it takes no feedback; start it with --traffic-percent above 0")
	}
	m := s.repo.Model(b2s(name))
	if m == nil {
		return s.routeError(name, version, registry.ErrModelNotFound)
	}
	vnum, err := parseVersion(version)
	if err != nil {
		return err
	}
	body, err := s.requestBody(ctx)
	if err != nil {
		return err
	}
	if max := l.MaxRecordBytes(); len(body) > 2*max {
		// More than the log takes at once, whatever it holds: refused
		// before it is decoded (which takes many times its size).
		return &httpError{code: fasthttp.StatusRequestEntityTooLarge, msg: fmt.Sprintf("a feedback body of %d bytes is more than the traffic log takes in one request (about %d); send fewer outcomes at once", len(body), 2*max)}
	}
	var entries []feedbackEntry
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '[' {
		err = decodeStrict(body, &entries)
	} else {
		var one feedbackEntry
		err = decodeStrict(body, &one)
		entries = []feedbackEntry{one}
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return badRequest("the feedback array is empty; send at least one {\"id\": ..., \"label\": ...}")
	}
	now := time.Now()
	events := make([]*trafficlog.Event, len(entries))
	// remembered holds the experiment this node remembers answering an
	// entry's prediction, when the entry names no arm.
	remembered := make([]*registry.Experiment, len(entries))
	for i := range entries {
		f := &entries[i]
		if err := f.validate(); err != nil {
			if len(entries) > 1 {
				return badRequest("feedback %d: %s", i, err)
			}
			return badRequest("%s", err)
		}
		e := &trafficlog.Event{Kind: trafficlog.Feedback, Time: now, ID: f.ID, Model: string(name), Version: f.Version}
		if vnum != 0 {
			if f.Version != 0 && f.Version != vnum {
				return badRequest("feedback %d names version %d, the path version %d", i, f.Version, vnum)
			}
			e.Version = vnum
		}
		if f.Label != nil {
			e.Label, e.HasLabel = *f.Label, true
		}
		if f.Reward != nil {
			e.Reward, e.HasReward = *f.Reward, true
		}
		e.Arm = f.Arm
		if e.Arm == "" {
			e.Arm, remembered[i] = s.recent.arm(f.ID, e.Model)
		}
		events[i] = e
	}
	switch err := l.AppendSync(events...); {
	case errors.Is(err, trafficlog.ErrTooLarge):
		return &httpError{code: fasthttp.StatusRequestEntityTooLarge, msg: "these " + strconv.Itoa(len(events)) + " outcomes are more than the traffic log takes in one record; send fewer at once"}
	case errors.Is(err, trafficlog.ErrFull):
		return unavailable(1, "the traffic log's writer is behind; retry the feedback in a moment")
	case errors.Is(err, diskfree.ErrLow):
		// The log says why, once a minute; the client is told what to do.
		return &httpError{code: fasthttp.StatusInsufficientStorage, msg: "this node's disk is nearly full, so its traffic log takes no outcomes now; send them to another node, or retry once its operator has freed space"}
	case errors.Is(err, trafficlog.ErrClosed):
		return unavailable(1, "the server is shutting down; send the feedback to another node")
	case errors.Is(err, trafficlog.ErrSyncTimeout):
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 5, err: err,
			msg: "the traffic log's " + s.trafficStore() + " did not confirm these outcomes in time; they may still be logged, and sending them again is safe (the trainer keeps an id's latest label and reward)"}
	case err != nil:
		return &httpError{code: fasthttp.StatusServiceUnavailable, retryAfter: 5, msg: "the traffic log cannot write to its " + s.trafficStore() + "; retry later (the server log says why)", err: err}
	}
	// Counted for their arms once logged: a retry after a failure above
	// is not counted twice.
	attributed := 0
	if x := m.Experiment(); x != nil {
		for i, e := range events {
			if remembered[i] != nil && remembered[i] != x {
				continue // answered under another experiment, since replaced
			}
			if e.Arm != "" && x.Outcome(e.Arm, entries[i].Label, entries[i].Reward) {
				attributed++
			}
		}
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"accepted":` + strconv.Itoa(len(events)) + `,"attributed":` + strconv.Itoa(attributed) + `}`)
	return nil
}

// Traffic read bounds.
const (
	defaultTrafficRead = 4 << 20
	// MaxTrafficRead is the most bytes of records one GET /v1/traffic
	// may ask for (max_bytes).
	MaxTrafficRead = 64 << 20
)

// readTraffic serves GET /v1/traffic?from=P&max_bytes=N&format=jsonl|binary:
// the records of this node's traffic log from position P (the oldest by
// default), as JSON lines (one event each, with its position) or as the
// log's own framed records (trafficlog.Decode reads them). The
// X-Traffic-Next header is where the next read goes on; X-Traffic-First
// and X-Traffic-End say what the log holds now.
func (s *Server) readTraffic(ctx *fasthttp.RequestCtx) error {
	l := s.cfg.TrafficLog
	if l == nil {
		return s.noTrafficLog()
	}
	ctx.Response.Header.Set("X-Traffic-Log", l.ID())
	args := ctx.QueryArgs()
	st := l.Stats()
	from := st.First
	if b := args.Peek("from"); b != nil {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || n < 0 {
			return badRequest("from=%q is not a position (0 or more, as X-Traffic-Next gives)", b)
		}
		from = n
	}
	maxBytes := defaultTrafficRead
	if b := args.Peek("max_bytes"); b != nil {
		n, err := strconv.Atoi(string(b))
		if err != nil || n < 1 || n > MaxTrafficRead {
			return badRequest("max_bytes=%q: give 1 to %d", b, MaxTrafficRead)
		}
		maxBytes = n
	}
	format := string(args.Peek("format"))
	if format != "" && format != "jsonl" && format != "binary" {
		return badRequest("format=%q: use jsonl (the default) or binary", format)
	}
	var out []byte
	var e trafficlog.Event
	var decodeErr error
	next, err := l.Read(from, maxBytes, func(pos int64, rec []byte) bool {
		if format == "binary" {
			out = append(out, rec...)
			return true
		}
		if _, decodeErr = trafficlog.Decode(rec, &e); decodeErr != nil {
			return false
		}
		out = trafficlog.AppendJSON(out, pos, &e)
		return true
	})
	var pe *trafficlog.PositionError
	switch {
	case errors.As(err, &pe):
		ctx.Response.Header.Set("X-Traffic-First", strconv.FormatInt(pe.First, 10))
		ctx.Response.Header.Set("X-Traffic-End", strconv.FormatInt(pe.Next, 10))
		if pe.Position < pe.First {
			return &httpError{code: fasthttp.StatusGone, msg: pe.Error()}
		}
		return badRequest("%s", pe.Error())
	case errors.Is(err, trafficlog.ErrNotRecord):
		return badRequest("%s", err)
	case errors.Is(err, trafficlog.ErrCorrupt) && next > from:
		// Damage after whole records: they go out, X-Traffic-Next at the
		// damaged one, and a read from there says what is wrong.
		s.logf(logging.Error+"traffic log: %v", err)
	case errors.Is(err, trafficlog.ErrCorrupt):
		// A reader that reads from the positions reads give knows it is
		// damage, and may skip to the next segment.
		h := &ctx.Response.Header
		h.Set("X-Traffic-Damaged", strconv.FormatInt(next, 10))
		if skip, ok := l.SegmentAfter(next); ok {
			h.Set("X-Traffic-Skip", strconv.FormatInt(skip, 10))
		}
		return badRequest("%s", err)
	case err != nil:
		return internal(err)
	case decodeErr != nil:
		return internal(decodeErr)
	}
	st = l.Stats()
	h := &ctx.Response.Header
	h.Set("X-Traffic-Next", strconv.FormatInt(next, 10))
	h.Set("X-Traffic-First", strconv.FormatInt(st.First, 10))
	h.Set("X-Traffic-End", strconv.FormatInt(st.Next, 10))
	if format == "binary" {
		ctx.SetContentType("application/octet-stream")
	} else {
		ctx.SetContentType("application/x-ndjson")
	}
	ctx.SetBody(out)
	return nil
}

// trafficStore names where the traffic log writes, for error messages.
func (s *Server) trafficStore() string {
	if s.cfg.TrafficLog == nil {
		return "Kafka brokers"
	}
	return "disk"
}

// noTrafficLog is the answer of the read endpoints without an embedded
// log.
func (s *Server) noTrafficLog() error {
	if s.traffic != nil {
		return notFound("this server logs its traffic to Kafka, not to its disk; read the topic (infergate traffic read --kafka-brokers ... --kafka-topic ...)")
	}
	return notFound("this server keeps no traffic log; start it with --traffic-percent above 0")
}

// trafficStats serves GET /v1/traffic/stats.
func (s *Server) trafficStats(ctx *fasthttp.RequestCtx) error {
	l := s.cfg.TrafficLog
	if l == nil {
		return s.noTrafficLog()
	}
	st := l.Stats()
	return writeJSON(ctx, map[string]any{
		"log": l.ID(), "first": st.First, "end": st.Next, "segments": st.Segments, "bytes": st.Bytes,
		"percent": s.cfg.TrafficPercent,
	})
}
