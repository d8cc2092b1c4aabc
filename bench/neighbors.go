package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/internal/affinity"
)

// What a neighbor runs in MeasureNeighbors.
const (
	// NeighborORT runs the same model and batch as the measured CPU:
	// the same vector units, caches and memory traffic.
	NeighborORT = "ort"
	// NeighborSpin runs an integer loop that touches no memory: it
	// contends for a core's execution units only, as a thread sharing
	// the core would.
	NeighborSpin = "spin"
	// NeighborHTTP runs request/response round trips over a loopback TCP
	// connection, both ends on the neighbor CPU: the system calls, the
	// kernel's network path and the cache traffic of a gateway's HTTP.
	NeighborHTTP = "http"
)

// maxNeighbors bounds the neighbors, which with NeighborORT each hold a
// session of the engine (at most 256 with the measured CPU's).
const maxNeighbors = 255

// minRunsPerStep is the fewest runs a step should count for its ratio to
// be read to a few percent; below it WriteNeighbors says so.
const minRunsPerStep = 50

// slowedBelow is the ratio to running alone under which a neighbor is
// said to slow the measured CPU: well outside the few percent that one
// step differs from the next on a quiet machine.
const slowedBelow = 0.85

// NeighborConfig configures MeasureNeighbors.
type NeighborConfig struct {
	// Model is the model to run: a demo model's name (ctr, ranker), or
	// any name with ModelFile.
	Model string
	// ModelFile is the ONNX file to run; "" means the demo model Model.
	ModelFile string
	// ORTLib is the ONNX Runtime library ("" as engine.ResolveLibPath).
	ORTLib string
	// Batch is the rows of each run.
	Batch int
	// CPU is the CPU measured; -1 means the first this process may use.
	CPU int
	// Neighbors are the CPUs made busy one at a time, and then all at
	// once; nil means every other CPU this process may use.
	Neighbors []int
	// Load is what the neighbors run: NeighborORT, NeighborSpin or
	// NeighborHTTP.
	Load string
	// Duration is each step's measured window; Warmup runs before it.
	Duration, Warmup time.Duration
}

// DefaultNeighborConfig returns the defaults: ranker in batches of 32
// rows on the first usable CPU, its neighbors running the same, 1s a
// step.
func DefaultNeighborConfig() NeighborConfig {
	return NeighborConfig{Model: "ranker", Batch: 32, CPU: -1, Load: NeighborORT,
		Duration: time.Second, Warmup: 200 * time.Millisecond}
}

// Validate checks c without looking at the machine; MeasureNeighbors
// checks the CPUs against this process's affinity.
func (c *NeighborConfig) Validate() error {
	switch {
	case c.ModelFile == "" && !isDemoModel(c.Model):
		return fmt.Errorf("%w: model %q is not a demo model (ctr, ranker); give its ONNX file with --model-file", ErrBadConfig, c.Model)
	case c.Batch < 1:
		return fmt.Errorf("%w: batch %d: give 1 or more rows", ErrBadConfig, c.Batch)
	case c.Load != NeighborORT && c.Load != NeighborSpin && c.Load != NeighborHTTP:
		return fmt.Errorf("%w: neighbor load %q: use %s, %s or %s", ErrBadConfig, c.Load, NeighborORT, NeighborSpin, NeighborHTTP)
	case c.Duration < 10*time.Millisecond:
		return fmt.Errorf("%w: duration %s is too short to count runs; give 10ms or more (1s measures a batch of milliseconds to 0.1%%)", ErrBadConfig, c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("%w: warmup %s is negative", ErrBadConfig, c.Warmup)
	case c.CPU < -1:
		return fmt.Errorf("%w: CPU %d: give a CPU number, or -1 for the first usable", ErrBadConfig, c.CPU)
	}
	return nil
}

// NeighborReport is what MeasureNeighbors found: the measured CPU's
// rows/s with each set of busy neighbors, and alone before and after each.
type NeighborReport struct {
	Model        string         `json:"model"`
	Batch        int            `json:"batch"`
	CPU          int            `json:"cpu"`
	Load         string         `json:"load"`
	DurationSecs float64        `json:"duration_secs"`
	ORTVersion   string         `json:"ort_version"`
	Steps        []NeighborStep `json:"steps"`
	// Alone has the rows/s of the steps without neighbors: one before
	// Steps[0], and one after each step.
	Alone []float64 `json:"alone_rows_per_sec"`
}

// NeighborStep is the measured CPU's rows/s while Busy ran the load.
type NeighborStep struct {
	Busy       []int   `json:"busy"`
	RowsPerSec float64 `json:"rows_per_sec"`
}

// ratio is step i's rows/s over the mean of the steps alone just before
// and after it, so that a machine whose speed drifts during the run (a
// warming CPU, another tenant) is compared with itself at that moment.
func (r *NeighborReport) ratio(i int) float64 {
	return r.Steps[i].RowsPerSec / ((r.Alone[i] + r.Alone[i+1]) / 2)
}

// MeasureNeighbors runs the model in closed loop on one CPU (an ONNX
// Runtime session with one intra-op thread on a thread bound to that CPU)
// and measures its rows/s with each neighbor CPU busy in turn, then with
// all of them busy at once, and alone before and after each of those. A
// neighbor that slows it shares something with it: on a VM, two vCPUs
// that are the hardware threads of one physical core (which the guest's
// topology may not show); on any machine, a cache, memory bandwidth, or
// the power budget that sets the clock when all are busy.
func MeasureNeighbors(ctx context.Context, c NeighborConfig) (*NeighborReport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	usable, err := usableCPUs()
	if err != nil {
		return nil, err
	}
	cpu, neighbors, err := neighborCPUs(usable, c.CPU, c.Neighbors)
	if err != nil {
		return nil, err
	}
	modelBytes := demoModel(c.Model)
	if c.ModelFile != "" {
		if modelBytes, err = os.ReadFile(c.ModelFile); err != nil {
			return nil, fmt.Errorf("%w: --model-file: %w", ErrBadConfig, err)
		}
	}
	if err := engine.Init(engine.ResolveLibPath(c.ORTLib)); err != nil {
		return nil, err
	}
	sessions := 1
	if c.Load == NeighborORT {
		sessions += len(neighbors)
	}
	m, err := engine.Load(modelBytes, engine.Options{Instances: sessions, IntraOpThreads: 1})
	if err != nil {
		return nil, fmt.Errorf("cannot load the model into ONNX Runtime: %w", err)
	}
	defer m.Close()

	// startNeighbor makes CPU n busy with the load; stop ends it.
	startNeighbor := func(n int) (stop func() error, err error) {
		switch c.Load {
		case NeighborSpin:
			return startLoop(n, spin).halt, nil
		case NeighborHTTP:
			return startPingPong(n)
		}
		// One ortSender per loop: each owns its inputs and outputs.
		s, err := newORTSender(ctx, m, c.Batch, 0)
		if err != nil {
			return nil, err
		}
		return startLoop(n, s.run).halt, nil
	}
	measuredWork, err := newORTSender(ctx, m, c.Batch, 0)
	if err != nil {
		return nil, err
	}
	// Every other thread of this process (the scheduler's, the network
	// poller's that wakes the http load) keeps off the measured CPU. Go
	// would then shrink GOMAXPROCS to the CPUs left; it must stay at a
	// processor per busy CPU and one more at least, or a spinning
	// neighbor holding the only one left makes the measured loop wait
	// for it after each run. (The http load's two loops take turns.)
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(max(procs, len(neighbors)+2))
	defer func() {
		// Go's own sizing again, unless the caller had set another value.
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS()
		}
		if runtime.GOMAXPROCS(0) != procs {
			runtime.GOMAXPROCS(procs)
		}
	}()
	others := slices.DeleteFunc(slices.Clone(usable), func(x int) bool { return x == cpu })
	defer affinity.PinProcess(usable) // also after a move that failed halfway
	if err := affinity.PinProcess(others); err != nil {
		return nil, err
	}
	r := &NeighborReport{Model: c.Model, Batch: c.Batch, CPU: cpu, Load: c.Load,
		DurationSecs: c.Duration.Seconds(), ORTVersion: engine.RuntimeVersion()}
	measured := startLoop(cpu, measuredWork.run)
	defer measured.halt()

	step := func(busy []int) (float64, error) {
		var stops []func() error
		stop := func() error {
			var errs []error
			for _, s := range stops {
				errs = append(errs, s())
			}
			return errors.Join(errs...)
		}
		for _, n := range busy {
			s, err := startNeighbor(n)
			if err != nil {
				return 0, errors.Join(err, stop())
			}
			stops = append(stops, s)
		}
		rate, err := measured.rate(ctx, c.Warmup, c.Duration)
		if serr := stop(); err == nil {
			err = serr
		}
		if err == nil && rate == 0 {
			with := "alone"
			if len(busy) > 0 {
				with = "with CPUs " + formatCPUs(slices.Sorted(slices.Values(busy))) + " busy"
			}
			err = fmt.Errorf("no run of %d rows finished on CPU %d within %s, %s: give a longer --duration, or free the CPU of other work",
				c.Batch, cpu, c.Duration, with)
		}
		return rate, err
	}
	sets := make([][]int, 0, len(neighbors)+1)
	for _, n := range neighbors {
		sets = append(sets, []int{n})
	}
	if len(neighbors) > 1 {
		sets = append(sets, neighbors)
	}
	alone, err := step(nil)
	if err != nil {
		return nil, err
	}
	r.Alone = append(r.Alone, alone)
	for _, busy := range sets {
		rate, err := step(busy)
		if err != nil {
			return nil, err
		}
		r.Steps = append(r.Steps, NeighborStep{Busy: busy, RowsPerSec: rate})
		if alone, err = step(nil); err != nil {
			return nil, err
		}
		r.Alone = append(r.Alone, alone)
	}
	return r, measured.halt()
}

// neighborCPUs checks the measured CPU and its neighbors against the
// CPUs this process may use, and fills in the defaults.
func neighborCPUs(usable []int, cpu int, neighbors []int) (int, []int, error) {
	sorted := slices.Sorted(slices.Values(usable))
	if cpu == -1 {
		cpu = sorted[0]
	}
	if !slices.Contains(sorted, cpu) {
		return 0, nil, fmt.Errorf("%w: CPU %d is not one this process may use (%s)", ErrBadConfig, cpu, formatCPUs(sorted))
	}
	if neighbors == nil {
		for _, n := range sorted {
			if n != cpu {
				neighbors = append(neighbors, n)
			}
		}
	}
	if len(neighbors) == 0 {
		return 0, nil, fmt.Errorf("%w: this process may use CPU %d only; it needs a second CPU to load", ErrBadConfig, cpu)
	}
	if len(neighbors) > maxNeighbors {
		return 0, nil, fmt.Errorf("%w: %d neighbors; at most %d run at once (one ONNX Runtime session each): name some with --neighbors", ErrBadConfig, len(neighbors), maxNeighbors)
	}
	seen := map[int]bool{}
	for _, n := range neighbors {
		switch {
		case n == cpu:
			return 0, nil, fmt.Errorf("%w: neighbor CPU %d is the CPU measured", ErrBadConfig, n)
		case !slices.Contains(sorted, n):
			return 0, nil, fmt.Errorf("%w: neighbor CPU %d is not one this process may use (%s)", ErrBadConfig, n, formatCPUs(sorted))
		case seen[n]:
			return 0, nil, fmt.Errorf("%w: neighbor CPU %d is listed twice", ErrBadConfig, n)
		}
		seen[n] = true
	}
	return cpu, neighbors, nil
}

// run is one closed-loop run of the batch for MeasureNeighbors.
func (s *ortSender) run() (int, error) {
	out, err := s.m.Run(s.ctx, s.inputs, nil, s.dst)
	if err != nil {
		return 0, err
	}
	s.dst = out
	return s.rows, nil
}

// spinSink keeps spin's result alive, so the compiler cannot drop the loop.
var spinSink atomic.Uint64

// spin is NeighborSpin's work: about 100 µs of dependent integer
// arithmetic in registers.
func spin() (int, error) {
	x := uint64(88172645463325252)
	for range 1 << 16 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	spinSink.Store(x)
	return 0, nil
}

// Sizes of NeighborHTTP's messages: about a ctr request in JSON and its
// answer.
const (
	pingBytes = 1024
	pongBytes = 160
)

// startPingPong runs NeighborHTTP's round trips on CPU n: a client loop
// and an echo loop, each on a thread bound to n, over a loopback TCP
// connection. stop ends both and closes the connection.
func startPingPong(n int) (stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("the http neighbor load: %w", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("the http neighbor load: %w", err)
	}
	server := <-accepted
	if server == nil {
		client.Close()
		return nil, fmt.Errorf("the http neighbor load: the loopback connection was not accepted")
	}
	ping, pong := make([]byte, pingBytes), make([]byte, pongBytes)
	in, out := make([]byte, pingBytes), make([]byte, pongBytes)
	echo := startLoop(n, func() (int, error) {
		if _, err := io.ReadFull(server, in); err != nil {
			return 0, err
		}
		_, err := server.Write(pong)
		return 0, err
	})
	caller := startLoop(n, func() (int, error) {
		if _, err := client.Write(ping); err != nil {
			return 0, err
		}
		_, err := io.ReadFull(client, out)
		return 0, err
	})
	return func() error {
		// Closing ends whatever read or write each loop is in with an
		// error, which is then its way to stop; only other errors (a
		// thread that could not be bound) are reported.
		caller.stop.Store(true)
		echo.stop.Store(true)
		client.Close()
		server.Close()
		return errors.Join(connError(caller.halt()), connError(echo.halt()))
	}, nil
}

// connError drops the errors that closing a connection gives its reader
// and writer.
func connError(err error) error {
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return nil
	}
	return err
}

// pinnedLoop calls work over and over on a thread of its own bound to one
// CPU, counting the rows it returns, until halted.
type pinnedLoop struct {
	rows atomic.Int64
	stop atomic.Bool
	// errc receives the loop's end: nil when halted, else why it stopped.
	errc chan error
	// err is what errc gave; halt may be called more than once.
	err  error
	done bool
}

func startLoop(cpu int, work func() (int, error)) *pinnedLoop {
	l := &pinnedLoop{errc: make(chan error, 1)}
	go func() {
		// Never unlocked: the thread ends with this goroutine, so its
		// affinity is not handed on to other goroutines.
		runtime.LockOSThread()
		if err := pinThread(cpu); err != nil {
			l.errc <- err
			return
		}
		for !l.stop.Load() {
			n, err := work()
			if err != nil {
				l.errc <- fmt.Errorf("the run on CPU %d failed: %w", cpu, err)
				return
			}
			l.rows.Add(int64(n))
		}
		l.errc <- nil
	}()
	return l
}

// rate waits warmup, then returns the rows/s of the next window. It
// returns early with the loop's error if the loop stops, or the context's.
func (l *pinnedLoop) rate(ctx context.Context, warmup, window time.Duration) (float64, error) {
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case err := <-l.errc:
			l.err, l.done = err, true
			if err == nil {
				err = fmt.Errorf("the measured loop stopped")
			}
			return err
		}
	}
	if err := wait(warmup); err != nil {
		return 0, err
	}
	r0, t0 := l.rows.Load(), time.Now()
	if err := wait(window); err != nil {
		return 0, err
	}
	r1, t1 := l.rows.Load(), time.Now()
	return float64(r1-r0) / t1.Sub(t0).Seconds(), nil
}

// halt stops the loop after its current call and returns why it ended.
func (l *pinnedLoop) halt() error {
	if !l.done {
		l.stop.Store(true)
		l.err, l.done = <-l.errc, true
	}
	return l.err
}

// WriteNeighbors prints r as a table: each step's rows/s on the measured
// CPU and its ratio to running alone, marking the neighbors that slow it.
func WriteNeighbors(w io.Writer, r *NeighborReport) error {
	load := "the same model and batch"
	switch r.Load {
	case NeighborSpin:
		load = "an integer loop (no memory traffic)"
	case NeighborHTTP:
		load = "round trips over a loopback TCP connection"
	}
	fmt.Fprintf(w, "ONNX Runtime %s, %s in batches of %d rows on CPU %d, one session with one intra-op thread; busy neighbors run %s; %gs a step\n\n",
		r.ORTVersion, r.Model, r.Batch, r.CPU, load, r.DurationSecs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "busy\trows/s on CPU %d\talone, before and after\t÷ alone\t\n", r.CPU)
	var slowed []int
	for i, s := range r.Steps {
		ratio := r.ratio(i)
		mark := ""
		if ratio < slowedBelow {
			mark = "  slowed"
			if len(s.Busy) == 1 {
				slowed = append(slowed, s.Busy[0])
			}
		}
		label := "CPU " + formatCPUs(s.Busy)
		if len(s.Busy) > 1 {
			label = "CPUs " + formatCPUs(slices.Sorted(slices.Values(s.Busy))) + " at once"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s, %s\t%.2f\t%s\n", label, groupThousands(s.RowsPerSec),
			groupThousands(r.Alone[i]), groupThousands(r.Alone[i+1]), ratio, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lo, hi := slices.Min(r.Alone), slices.Max(r.Alone)
	fmt.Fprintf(w, "\nalone: %s to %s rows/s over the run (%.0f%% apart); each ratio is to the steps alone just before and after it.\n",
		groupThousands(lo), groupThousands(hi), 100*(hi-lo)/hi)
	slowest := lo
	for _, s := range r.Steps {
		slowest = min(slowest, s.RowsPerSec)
	}
	if runs := slowest * r.DurationSecs / float64(max(r.Batch, 1)); runs < minRunsPerStep {
		fmt.Fprintf(w, "a step counted as few as %.0f runs: a run cut by the window's edge moves its ratio by up to %.0f%%; lengthen --duration.\n",
			runs, 100/max(runs, 1))
	}
	if len(slowed) > 0 {
		fmt.Fprintf(w, "slowed below %.2f by CPU %s: each shares something with CPU %d, a physical core (hardware threads a VM may present as separate cores), a cache, or memory bandwidth.\n"+
			"Keep the gateway's ONNX Runtime threads and other busy work (its HTTP, a load generator) off CPUs that slow each other.\n",
			slowedBelow, formatCPUs(slowed), r.CPU)
	} else {
		fmt.Fprintf(w, "no single busy CPU slowed CPU %d below %.2f.\n", r.CPU, slowedBelow)
	}
	return nil
}

// SaveNeighborsJSON writes r to path as indented JSON.
func SaveNeighborsJSON(path string, r *NeighborReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
