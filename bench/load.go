package bench

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// sender sends one request and checks its answer. Each worker goroutine
// owns one; a sender is not safe for concurrent use.
type sender interface {
	// send sends request number seq, waits for the answer and checks it.
	// It returns when the answer arrived (taken before the check, so that
	// checking stays out of the latency), the rows the request carried,
	// and "" or the kind of error.
	send(seq uint64) (done time.Time, rows int, errKind string)
	// close releases what the sender holds.
	close()
}

// Limits of one step's bookkeeping.
const (
	// maxRecorders bounds the histograms of a step: workers beyond it
	// share recorders round-robin (each has a mutex), so that an open-loop
	// step allowed 4,096 requests in flight does not hold 4,096 histograms.
	maxRecorders = 64
	// maxSamples bounds the per-request samples kept for the timeline
	// (8 bytes each); beyond it the timeline ends early (see timeline).
	maxSamples = 8 << 20
	// lateAfter is how far behind its intended time an open-loop request
	// may leave before it counts as late.
	lateAfter = time.Millisecond
	// sampleUnit is the resolution of a sample's completion time.
	sampleUnit = 100 * time.Microsecond
)

// loadStep is one load level run for a warm-up and a measured window.
//
// Closed loop: concurrency workers each send a request, wait for its
// answer and send the next; latency runs from send to answer. Open loop: a
// pacer hands each request to a free worker at its intended time from
// the schedule, starting new workers while all are busy up to maxInFlight;
// latency runs from the intended time, so a request that waited for a free
// worker (the client fell behind, or the server stalled) is charged for
// the wait. Requests still due when the window closes while maxInFlight are
// outstanding are counted as errors of kind ErrKindNotSent.
type loadStep struct {
	mode        string
	concurrency int     // closed loop
	rate        float64 // open loop, requests per second
	poisson     bool
	seed        uint64
	maxInFlight int // open loop
	warmup      time.Duration
	duration    time.Duration
	// maxRequests ends the step once this many measured requests were
	// sent; 0 means no bound.
	maxRequests int64
	newSender   func() sender
	// shedding says that the senders report shed requests (outcomeShed):
	// the result then has shed figures even when nothing was shed.
	shedding bool
	// health, when set, probes the server's readiness while the step
	// runs; run starts it and waits for it.
	health *healthProber
	// reload, when set, reloads the model through the measured window.
	reload *reloader
	// sleepUntil waits until t; nil means preciseSleepUntil. Tests under
	// testing/synctest pass a time.Sleep-based one.
	sleepUntil func(t time.Time)

	// recs are the recorders of the running step; progress reads them.
	recsMu sync.Mutex
	recs   []*recorder
}

// recorder collects the measured requests of one or more workers.
type recorder struct {
	// mu protects everything below but live and liveErrs.
	mu   sync.Mutex
	hist *hdrhistogram.Histogram
	// shedHist holds the latency of the shed requests; nil until the
	// first one.
	shedHist *hdrhistogram.Histogram
	ok       int64 // measured successes
	shed     int64 // measured requests the server shed (outcomeShed)
	errs     int64 // measured failures
	rows     int64 // rows of the successes
	late     int64
	kinds    map[string]int64
	samples  []sample
	budget   int // samples still allowed
	// lastServed is the last answer that was not an error (a success or
	// a shed request): the end of the server's backlog, which a request
	// that timed out does not stretch.
	lastServed time.Time
	// firstServed is the first of those answers.
	firstServed time.Time

	// live and liveErrs count every answer, warm-up included, for the
	// progress display.
	live     atomic.Int64
	liveErrs atomic.Int64
}

// sample is one measured request, for the timeline.
type sample struct {
	at  uint32 // completion, in sampleUnits since the window opened
	lat uint32 // latency in µs, or errSample
}

// errSample and shedSample mark a failed and a shed request in a
// sample; latencies stay below both (60 s at most).
const (
	errSample  = math.MaxUint32
	shedSample = math.MaxUint32 - 1
)

func newRecorder(budget int) *recorder {
	return &recorder{hist: newHistogram(), kinds: map[string]int64{}, budget: budget}
}

// record counts one answer: a success when kind is "", a shed request
// when it is outcomeShed, else an error of that kind. Requests outside
// the window (warm-up) only move the live counters.
func (r *recorder) record(measured bool, windowStart time.Time, lat time.Duration, done time.Time, rows int, kind string, late bool) {
	r.live.Add(1)
	if kind != "" && kind != outcomeShed {
		r.liveErrs.Add(1)
	}
	if !measured {
		return
	}
	s := sample{at: uint32(min(done.Sub(windowStart)/sampleUnit, math.MaxUint32-1)), lat: errSample}
	r.mu.Lock()
	switch kind {
	case "":
		us := durationUS(lat)
		r.hist.RecordValue(us)
		r.ok++
		r.rows += int64(rows)
		s.lat = uint32(us)
	case outcomeShed:
		if r.shedHist == nil {
			r.shedHist = newHistogram()
		}
		r.shedHist.RecordValue(durationUS(lat))
		r.shed++
		s.lat = shedSample
	default:
		r.errs++
		r.kinds[kind]++
	}
	if late {
		r.late++
	}
	if kind == "" || kind == outcomeShed {
		if done.After(r.lastServed) {
			r.lastServed = done
		}
		if r.firstServed.IsZero() || done.Before(r.firstServed) {
			r.firstServed = done
		}
	}
	if r.budget > 0 {
		r.budget--
		r.samples = append(r.samples, s)
	}
	r.mu.Unlock()
}

// stepResult is what a step measured.
type stepResult struct {
	recs        []*recorder
	windowStart time.Time
	// windowEnd is the later of the window's planned end and the last
	// measured answer, or the last answer when the step ended early.
	windowEnd time.Time
	// sendEnd is when the client stopped sending measured requests.
	sendEnd time.Time
	// notSent counts the open-loop requests due in the window that could
	// not be sent.
	notSent int64
	// sentInWindow counts the open-loop measured requests that left
	// before the window closed (a lagging pacer sends some after it).
	sentInWindow int64
	cpu          time.Duration // client CPU time (user + system) over the step
	wall         time.Duration // the whole step, warm-up and drain included
	// shedding copies loadStep.shedding; health is the step's prober,
	// done, or nil.
	shedding bool
	health   *healthProber
	reload   *reloader
}

// live returns the answers so far and how many were errors, warm-up
// included; safe to call while the step runs.
func (s *loadStep) live() (done, errs int64) {
	s.recsMu.Lock()
	defer s.recsMu.Unlock()
	for _, r := range s.recs {
		if r != nil {
			done += r.live.Load()
			errs += r.liveErrs.Load()
		}
	}
	return done, errs
}

// run runs the step until its window closes, ctx is done or maxRequests
// were sent, then waits for the requests in flight (each bounded by the
// sender's timeout).
func (s *loadStep) run(ctx context.Context) *stepResult {
	var stopped atomic.Bool
	stopCtx := context.AfterFunc(ctx, func() { stopped.Store(true) })
	defer stopCtx()

	cpu0 := cpuTime()
	start := time.Now()
	ws := start.Add(s.warmup)
	we := ws.Add(s.duration)
	res := &stepResult{windowStart: ws, shedding: s.shedding, health: s.health, reload: s.reload}
	var probing sync.WaitGroup
	stopProbe := make(chan struct{})
	if s.health != nil {
		probing.Go(func() { s.health.run(stopProbe, start, ws, we) })
	}
	if s.reload != nil {
		probing.Go(func() { s.reload.run(stopProbe, ws, we) })
	}
	var early bool
	if s.mode == ModeOpen {
		early = s.runOpen(ctx, &stopped, start, ws, we, res)
	} else {
		early = s.runClosed(&stopped, ws, we, res)
	}
	close(stopProbe)
	probing.Wait()
	res.wall = time.Since(start)
	res.cpu = cpuTime() - cpu0
	res.recs = slices.DeleteFunc(slices.Clone(s.recs), func(r *recorder) bool { return r == nil })

	var firstServed, lastServed time.Time
	for _, r := range res.recs {
		if r.lastServed.After(lastServed) {
			lastServed = r.lastServed
		}
		if !r.firstServed.IsZero() && (firstServed.IsZero() || r.firstServed.Before(firstServed)) {
			firstServed = r.firstServed
		}
	}
	// The window's rates count the requests sent in it. A request that
	// failed (timed out, say) stretches no window: it was not served.
	switch {
	case s.mode == ModeOpen:
		// The window closes at the schedule's end: when the measured
		// window does, or (cut short by --max-requests or ctx) when the
		// next request would have been due. A server slower than the
		// offered rate answers the window's requests after it: until its
		// backlog is served. The answers' span is what divides them, not
		// the time since the window opened: a server that keeps up, each
		// answer taking L, answers the window's requests from ws+L to
		// the schedule's end plus L.
		end := we
		if early {
			end = res.sendEnd
		}
		res.windowEnd = end
		if span := lastServed.Add(-max(firstServed.Sub(ws), 0)); span.After(end) {
			res.windowEnd = span
		}
	case early:
		// Closed loop cut short (--max-requests, ctx): the requests were
		// sent until the limit was reached, and that divides them as the
		// window's own length does below, however long the last took.
		res.windowEnd = res.sendEnd
	default:
		// Closed loop: each answer sends the next request, so the
		// requests sent in the window are those its answers started; the
		// window's own length divides them, however long the last of
		// them took.
		res.windowEnd = we
	}
	if !res.windowEnd.After(ws) {
		res.windowEnd = ws.Add(time.Microsecond)
	}
	return res
}

// setRecorders publishes the recorders for live().
func (s *loadStep) setRecorders(recs []*recorder) {
	s.recsMu.Lock()
	s.recs = recs
	s.recsMu.Unlock()
}

// runClosed runs the closed loop; it reports whether the step ended
// before its window closed.
func (s *loadStep) runClosed(stopped *atomic.Bool, ws, we time.Time, res *stepResult) (early bool) {
	n := max(s.concurrency, 1)
	recs := make([]*recorder, min(n, maxRecorders))
	for i := range recs {
		recs[i] = newRecorder(maxSamples / len(recs))
	}
	s.setRecorders(recs)
	var issued atomic.Int64 // measured requests sent
	var hitLimit atomic.Bool
	var limitAt atomic.Int64 // when hitLimit was set, in Unix ns
	var wg sync.WaitGroup
	for i := range n {
		rec := recs[i%len(recs)]
		snd := s.newSender()
		wg.Go(func() {
			defer snd.close()
			for k := uint64(0); !stopped.Load(); k++ {
				t0 := time.Now()
				if !t0.Before(we) {
					return
				}
				measured := !t0.Before(ws)
				if measured && s.maxRequests > 0 && issued.Add(1) > s.maxRequests {
					if hitLimit.CompareAndSwap(false, true) {
						limitAt.Store(t0.UnixNano())
					}
					return
				}
				done, rows, kind := snd.send(uint64(i) + k*uint64(n))
				rec.record(measured, ws, done.Sub(t0), done, rows, kind, false)
			}
		})
	}
	wg.Wait()
	early = stopped.Load() || hitLimit.Load()
	res.sendEnd = we
	switch {
	case hitLimit.Load():
		// The last request was sent when the first worker found the
		// limit reached; the others may have waited long after (a
		// timeout) to find it too.
		res.sendEnd = time.Unix(0, limitAt.Load())
	case early:
		res.sendEnd = time.Now()
	}
	return early
}

// ticket is one open-loop request handed to a worker.
type ticket struct {
	seq      uint64
	intended time.Time
	measured bool
}

// runOpen runs the open loop; it reports whether the step ended before
// its window closed.
func (s *loadStep) runOpen(ctx context.Context, stopped *atomic.Bool, start, ws, we time.Time, res *stepResult) (early bool) {
	sleep := s.sleepUntil
	if sleep == nil {
		sleep = preciseSleepUntil
	}
	maxInFlight := max(s.maxInFlight, 1)
	recs := make([]*recorder, min(maxInFlight, maxRecorders))
	s.setRecorders(recs)
	work := make(chan ticket)
	var wg sync.WaitGroup
	spawned := 0
	serve := func(snd sender, rec *recorder, tk ticket) {
		sentAt := time.Now()
		done, rows, kind := snd.send(tk.seq)
		rec.record(tk.measured, ws, done.Sub(tk.intended), done, rows, kind, sentAt.Sub(tk.intended) >= lateAfter)
	}
	spawn := func(first ticket) {
		k := spawned % len(recs)
		if recs[k] == nil {
			s.recsMu.Lock()
			recs[k] = newRecorder(maxSamples / len(recs))
			s.recsMu.Unlock()
		}
		rec := recs[k]
		snd := s.newSender()
		spawned++
		wg.Go(func() {
			defer snd.close()
			serve(snd, rec, first)
			for tk := range work {
				serve(snd, rec, tk)
			}
		})
	}

	end := time.NewTimer(time.Until(we))
	defer end.Stop()
	sched := newSchedule(s.rate, s.poisson, s.seed)
	var measuredDue int64
	// dropRest counts the request at hand (measured or not) and the rest
	// due in the window as not sent.
	dropRest := func(measured bool) {
		if measured {
			res.notSent++
		}
		for {
			at := start.Add(sched.next())
			if !at.Before(we) {
				return
			}
			if !at.Before(ws) {
				if s.maxRequests > 0 && measuredDue >= s.maxRequests {
					return
				}
				measuredDue++
				res.notSent++
			}
		}
	}
	// handed counts a measured request that left before the window
	// closed. A pacer short of CPU falls behind its schedule and sends
	// what was due in the window after it: those do not count toward
	// the rate at which the client sent (Run.SentRPS).
	handed := func(tk ticket) {
		if tk.measured && time.Now().Before(we) {
			res.sentInWindow++
		}
	}
	res.sendEnd = we
loop:
	for seq := uint64(0); ; seq++ {
		at := start.Add(sched.next())
		if !at.Before(we) {
			break
		}
		measured := !at.Before(ws)
		if measured {
			if s.maxRequests > 0 && measuredDue >= s.maxRequests {
				// The requests sent fill the schedule up to this one's
				// time, which is when the next would have gone.
				early = true
				res.sendEnd = at
				break
			}
			measuredDue++
		}
		if stopped.Load() {
			early = true
			res.sendEnd = time.Now()
			break
		}
		sleep(at)
		tk := ticket{seq: seq, intended: at, measured: measured}
		select {
		case work <- tk:
			handed(tk)
			continue
		default:
		}
		if spawned < maxInFlight {
			handed(tk)
			spawn(tk)
			continue
		}
		// Every worker is busy: wait for one, but not past the window.
		select {
		case work <- tk:
			handed(tk)
		case <-end.C:
			dropRest(measured)
			break loop
		case <-ctx.Done():
			early = true
			res.sendEnd = time.Now()
			break loop
		}
	}
	close(work)
	wg.Wait()
	return early
}

// fill sets the measured figures of run from res: counts, rates,
// latency percentiles and distribution, client CPU and the timeline with
// points every interval (0 picks one from the window's length).
func (res *stepResult) fill(run *Run, interval time.Duration) {
	window := res.windowEnd.Sub(res.windowStart)
	secs := window.Seconds()
	hists := make([]*hdrhistogram.Histogram, len(res.recs))
	shedHists := make([]*hdrhistogram.Histogram, len(res.recs))
	var ok, shed, errs, rows, late int64
	kinds := map[string]int64{}
	for i, r := range res.recs {
		hists[i] = r.hist
		shedHists[i] = r.shedHist
		ok += r.ok
		shed += r.shed
		errs += r.errs
		rows += r.rows
		late += r.late
		for k, v := range r.kinds {
			kinds[k] += v
		}
	}
	if res.notSent > 0 {
		kinds[ErrKindNotSent] += res.notSent
		errs += res.notSent
	}
	h := mergeHistograms(hists...)
	run.DurationS = round3(secs)
	run.Requests = ok + shed + errs
	run.Errors = errs
	if len(kinds) > 0 {
		run.ErrorKinds = kinds
	}
	run.ThroughputRPS = round1(float64(ok) / secs)
	run.RowsPerS = round1(float64(rows) / secs)
	run.Latency = latencyOf(h)
	run.Histogram = histogramBins(h)
	if res.wall > 0 {
		run.ClientCPU = math.Round(res.cpu.Seconds()/res.wall.Seconds()*100) / 100
	}
	if run.Mode == ModeOpen {
		if d := res.sendEnd.Sub(res.windowStart).Seconds(); d > 0 {
			run.SentRPS = round1(float64(res.sentInWindow) / d)
		}
		run.Late = late
	}
	if res.shedding {
		sh := mergeHistograms(shedHists...)
		run.Shed = &ShedStats{Count: shed}
		if run.Requests > 0 {
			run.Shed.Fraction = math.Round(float64(shed)/float64(run.Requests)*1e4) / 1e4
		}
		if sh.TotalCount() > 0 {
			run.Shed.P50US = float64(sh.ValueAtQuantile(50))
			run.Shed.P99US = float64(sh.ValueAtQuantile(99))
			run.Shed.MaxUS = float64(sh.Max())
		}
	}
	if res.health != nil {
		run.Health = res.health.stats()
	}
	if res.reload != nil {
		run.Reloads = res.reload.stats()
	}
	if interval <= 0 {
		interval = timelineInterval(window)
	}
	run.Timeline = res.timeline(interval)
}

// timelineInterval picks the timeline's resolution: 250 ms, or finer for
// windows under 2.5 s so that they still get about ten points.
func timelineInterval(window time.Duration) time.Duration {
	const normal = 250 * time.Millisecond
	if window >= 10*normal {
		return normal
	}
	return max(window/10, 10*time.Millisecond).Round(time.Millisecond)
}

// timeline bins the samples by completion time: per interval, the
// successful answers per second, their p50 and p99, the errors and the
// shed requests. The last point also holds the answers that arrived after
// the window's last full interval (the drain). Once a recorder's sample
// budget ran out it kept no more: the timeline then ends with the last
// whole interval that every recorder covered, rather than read a
// collapse that never happened.
func (res *stepResult) timeline(interval time.Duration) []TimelinePoint {
	window := res.windowEnd.Sub(res.windowStart)
	if window <= 0 {
		return nil
	}
	// The last point takes the remainder: from interval up to twice that.
	n := max(int(window/interval), 1)
	cut := false
	for _, r := range res.recs {
		if r.budget == 0 && len(r.samples) > 0 {
			covered := time.Duration(r.samples[len(r.samples)-1].at) * sampleUnit
			n, cut = min(n, int(covered/interval)), true
		}
	}
	if n == 0 {
		return nil
	}
	// The last point runs to the last answer: answers that came after the
	// window (the requests in flight when it closed, or an open loop's
	// answers taking their latency past it) are not packed into one
	// interval's length.
	end := window
	if !cut {
		for _, r := range res.recs {
			for _, s := range r.samples {
				end = max(end, time.Duration(s.at)*sampleUnit)
			}
		}
	}
	bin := func(s sample) int {
		return min(int(time.Duration(s.at)*sampleUnit/interval), n-1)
	}
	// Counting sort of the latencies by bin.
	counts := make([]int, n+1)
	errs := make([]int64, n)
	shed := make([]int64, n)
	for _, r := range res.recs {
		for _, s := range r.samples {
			if cut && time.Duration(s.at)*sampleUnit >= time.Duration(n)*interval {
				continue
			}
			switch s.lat {
			case errSample:
				errs[bin(s)]++
			case shedSample:
				shed[bin(s)]++
			default:
				counts[bin(s)+1]++
			}
		}
	}
	for i := 1; i <= n; i++ {
		counts[i] += counts[i-1]
	}
	lats := make([]uint32, counts[n])
	next := slices.Clone(counts[:n])
	for _, r := range res.recs {
		for _, s := range r.samples {
			if cut && time.Duration(s.at)*sampleUnit >= time.Duration(n)*interval {
				continue
			}
			if s.lat != errSample && s.lat != shedSample {
				b := bin(s)
				lats[next[b]] = s.lat
				next[b]++
			}
		}
	}
	points := make([]TimelinePoint, n)
	for i := range points {
		v := lats[counts[i]:counts[i+1]]
		slices.Sort(v)
		length := interval
		if i == n-1 && !cut {
			length = end - time.Duration(n-1)*interval
		}
		points[i] = TimelinePoint{
			TS:            round3((time.Duration(i)*interval + length).Seconds()),
			ThroughputRPS: round1(float64(len(v)) / length.Seconds()),
			P50US:         nearestRank(v, 0.50),
			P99US:         nearestRank(v, 0.99),
			Errors:        errs[i],
			Shed:          shed[i],
		}
	}
	return points
}

// nearestRank returns the q-quantile of sorted by the nearest-rank method;
// 0 for an empty slice.
func nearestRank(sorted []uint32, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[min(max(i, 0), len(sorted)-1)])
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
