package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infergate/infergate/oip"
)

// Model is one loaded model version: Instances ONNX Runtime sessions of the
// same ONNX bytes (or one session, shared), each instance run by one Run
// call at a time.
//
// Run is safe for concurrent use; Inputs, Outputs and Instances may be
// called at any time, Close once the caller stops calling Run.
type Model struct {
	inputs  []oip.TensorMetadata
	outputs []oip.TensorMetadata

	// in and out describe the inputs and outputs in model order. They are
	// written by Load only; Run reads them.
	in  []tensorSpec
	out []tensorSpec
	// batchOnly is set when every input is [batch, fixed...]: the batch
	// size is then the only thing that varies between runs.
	batchOnly bool
	// maxOutputBytes is Options.MaxOutputBytes with its default applied.
	maxOutputBytes int64
	// guesses holds, per output in model order, how the shape Load
	// inferred for it holds up in Run; Run updates it.
	guesses []shapeGuess

	// instances holds every instance, for Close.
	instances []*instance
	// free holds the instances no Run is using; its capacity is
	// len(instances), so putting one back never blocks. It bounds Run's
	// concurrency.
	free chan *instance
	// done is closed by Close to wake the Runs that wait in acquire.
	done   chan struct{}
	closed atomic.Bool
	// closeMu serializes Close.
	closeMu sync.Mutex
	// warmOnes makes the warm-up feed ones: the model refused zeros.
	// warmTolerant marks a model that refused ones too, elsewhere: its
	// warm-up runs may fail on their values.
	warmOnes, warmTolerant bool
	// memArena is whether the sessions use ONNX Runtime's CPU memory
	// arena (Options.NoCPUMemArena unset).
	memArena bool
	// cleanup destroys the instances of a Model dropped without Close:
	// their pinned buffers would otherwise make the runtime panic when it
	// collects them. Close stops it.
	cleanup runtime.Cleanup
}

// outputRule says how Run hands ONNX Runtime the buffer of an output.
type outputRule uint8

const (
	// ruleDynamic: ONNX Runtime allocates the output, onnxruntime_go copies
	// it into Go memory, and Run copies it into the result.
	ruleDynamic outputRule = iota
	// ruleStatic: the output's shape is fixed, so Run points ONNX Runtime
	// at the result's Data and it writes there.
	ruleStatic
	// ruleBatch: the output's shape is [batch, fixed...], where batch is
	// dim 0 of the inputs; ONNX Runtime writes into the result's Data.
	ruleBatch
)

// An output that Load gave ruleStatic or ruleBatch can still have another
// shape for some input values (its shape depends on the data, and the
// warm-up happened not to show it). ONNX Runtime then refuses the buffer
// Run preallocated, and Run runs again with the output left to ONNX
// Runtime. A mismatch costs a second run while preallocating saves only a
// copy, so an output whose guess keeps failing is better left to ONNX
// Runtime for good; but one odd request must not decide that for every
// request to come, nor for the other outputs. So each output keeps a debt:
// a mismatch adds missCost, a run in which the guess held pays back 1, and
// at maxDebt Run stops guessing that output's shape. That takes 3
// mismatches in a row, or more than one mismatch in missCost+1 runs for a
// while; a lone mismatch is forgotten after missCost good runs.
const (
	missCost = 64
	maxDebt  = 3 * missCost
)

// shapeGuess is the record of one output's inferred shape in Run. The zero
// value is a guess that has not failed. Its fields are atomic: concurrent
// Runs on other instances update it.
type shapeGuess struct {
	debt atomic.Int32
	// off is set once debt reached maxDebt; it is never cleared.
	off atomic.Bool
}

// held records a run in which the guess was right.
func (g *shapeGuess) held() {
	if d := g.debt.Load(); d > 0 {
		// A lost race forgets one payment; no harm.
		g.debt.CompareAndSwap(d, d-1)
	}
}

// missed records a run in which ONNX Runtime computed another shape.
func (g *shapeGuess) missed() {
	if g.debt.Add(missCost) >= maxDebt {
		g.off.Store(true)
	}
}

// tensorSpec is one input or output of a model as Run needs it.
type tensorSpec struct {
	name  string
	dtype oip.DataType
	ort   ort.TensorElementDataType
	size  int     // bytes per element
	shape []int64 // as the model declares it; -1 for a dynamic dimension

	// Outputs only.
	rule outputRule
	// mustPrealloc is set for FP16: onnxruntime_go v1.27.0 sizes its copy
	// of an FP16 output that ONNX Runtime allocated in elements instead of
	// bytes and fails, so Run always gives ONNX Runtime the buffer.
	mustPrealloc bool
}

// Load creates opts.Instances sessions of the ONNX model onnxData with the
// thread settings and device of opts, reads its inputs and outputs, and
// runs one warm-up inference per instance (batch 1: dynamic dims set to 1,
// zero data) before it returns. Inputs and outputs must be tensors of BOOL,
// INT8-64, UINT8-64, FP16, FP32 or FP64 of rank 1 or more; others fail with
// ErrUnsupportedType, naming the tensor and its type. ONNX Runtime reports
// a tensor whose rank the model leaves unknown as a scalar, so such a
// tensor is refused too. A model whose operators refuse zeros (a division
// by an input) warms up on ones. The warm-up's inputs (at most 1 GiB) and
// its outputs of fixed shape (Options.MaxOutputBytes) are bounded before
// they are allocated.
//
// Every instance holds its own copy of the weights (after ONNX Runtime's
// graph optimizations), so memory grows with Instances, unless
// Options.ShareSession puts them all on one session. Init must have been
// called. Load does not keep onnxData.
func Load(onnxData []byte, opts Options) (m *Model, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if LibPath() == "" {
		return nil, errorf(ErrNotInitialized, "cannot load a model before engine.Init loads ONNX Runtime")
	}
	if len(onnxData) == 0 {
		return nil, errorf(ErrInvalidModel, "the model is empty (0 bytes)")
	}
	// Session options first: an unusable device fails before any work.
	so, err := newSessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()

	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnxData)
	if err != nil {
		return nil, causef(ErrInvalidModel, err, "ONNX Runtime cannot load the model: %s", ortMessage(err))
	}
	m = &Model{done: make(chan struct{}), maxOutputBytes: opts.MaxOutputBytes, memArena: !opts.NoCPUMemArena}
	if m.in, m.inputs, err = newSpecs("input", ins); err != nil {
		return nil, err
	}
	if m.out, m.outputs, err = newSpecs("output", outs); err != nil {
		return nil, err
	}
	if len(m.in) == 0 {
		return nil, errorf(ErrUnsupportedType, "the model has no inputs; the engine serves models that take at least one tensor")
	}
	if len(m.out) == 0 {
		return nil, errorf(ErrUnsupportedType, "the model has no outputs; the engine serves models that return at least one tensor")
	}
	// Whatever ends Load early, a panic included, destroys the instances
	// made so far: their pinned buffers would otherwise outlive them,
	// and the runtime ends the process over a leaked pin.
	loaded, built := false, m // a return sets m to nil before this runs
	defer func() {
		if loaded {
			return
		}
		built.destroyInstances()
		if p := recover(); p != nil {
			m, err = nil, errorf(ErrInvalidModel, "BUG: loading the model panicked: %v", p)
		}
	}()
	if err := m.planOutputs(); err != nil {
		return nil, err
	}
	m.guesses = make([]shapeGuess, len(m.out))

	inNames := make([]string, len(m.in))
	for i := range m.in {
		inNames[i] = m.in[i].name
	}
	outNames := make([]string, len(m.out))
	for k := range m.out {
		outNames[k] = m.out[k].name
	}
	var sess *session
	for range opts.Instances {
		if sess == nil || !opts.ShareSession {
			if sess, err = newSession(onnxData, inNames, outNames, so, opts.Device); err != nil {
				return nil, err
			}
		}
		m.instances = append(m.instances, m.newInstance(sess))
	}
	var samples []WarmupRun
	if opts.Warmup != nil {
		if samples, err = opts.Warmup(m.inputs, m.outputs); err != nil {
			return nil, err
		}
	}
	if err := m.warmUp(samples); err != nil {
		return nil, err
	}
	m.free = make(chan *instance, len(m.instances))
	for _, inst := range m.instances {
		m.free <- inst
	}
	m.cleanup = runtime.AddCleanup(m, func(insts []*instance) {
		for _, inst := range insts {
			inst.destroy()
		}
	}, m.instances)
	loaded = true
	return m, nil
}

// Inputs returns the model's inputs in model order: names, datatypes and
// shapes with -1 for dynamic dimensions. The caller must not modify it.
func (m *Model) Inputs() []oip.TensorMetadata { return m.inputs }

// Outputs returns the model's outputs in model order, like Inputs.
func (m *Model) Outputs() []oip.TensorMetadata { return m.outputs }

// Instances returns the number of instances, which is the number of Runs
// that execute at once.
func (m *Model) Instances() int { return len(m.instances) }

// CPUMemArena reports whether the model's sessions keep the memory of
// their runs in ONNX Runtime's CPU memory arena (Options.NoCPUMemArena).
func (m *Model) CPUMemArena() bool { return m.memArena }

// Sessions returns the number of ONNX Runtime sessions that hold the
// model: Instances, or 1 when they share one (Options.ShareSession).
func (m *Model) Sessions() int {
	n := 0
	for i, inst := range m.instances {
		if i == 0 || inst.sess != m.instances[i-1].sess {
			n++
		}
	}
	return n
}

// Run executes one inference on a free instance, waiting for one while all
// are busy until ctx is done (an inference that started is not
// interrupted).
//
// inputs are matched to the model's inputs by name, and all are required;
// their Data is read in place, not copied, and must not change until Run
// returns. outputNames selects the outputs returned, in that order; nil or
// empty means all, in model order. All outputs are computed either way.
//
// The returned tensors hold Go memory that Run does not keep. When dst is
// non-nil its tensors, up to its capacity, are reused: their Shape and Data
// are overwritten and grown as needed, so a caller that passes the previous
// result back runs without allocating for outputs (dst's tensors must not
// share memory with each other or with the inputs). On error dst's contents
// are unspecified. An instance keeps a reference to the input and output
// buffers of its last run until its next run or Close, to reuse the ONNX
// Runtime values that wrap them, but touches them only during a Run that is
// given them again.
//
// Errors match ErrInvalidInput or ErrUnknownOutput for a request that does
// not fit the model, ErrInputRejected when an operator fails on the input
// values, ErrOutputTooLarge when the outputs would exceed
// Options.MaxOutputBytes, ErrClosed, ctx.Err() (wrapped) when no instance
// came free in time, and ErrRunFailed when ONNX Runtime fails otherwise.
func (m *Model) Run(ctx context.Context, inputs []oip.Tensor, outputNames []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { m.free <- inst }()
	return m.run(inst, inputs, outputNames, dst, true)
}

// Close destroys the sessions. The caller guarantees that no Run is in
// flight and none will start; a Run that still races with Close returns
// ErrClosed or finishes before the sessions go. Close is idempotent.
func (m *Model) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed.Load() {
		return nil
	}
	m.closed.Store(true)
	m.cleanup.Stop()
	close(m.done)
	for range m.instances {
		inst := <-m.free
		inst.destroy()
	}
	return nil
}

// acquire takes a free instance, waiting until ctx is done or m is closed.
func (m *Model) acquire(ctx context.Context) (*instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("not running the model: %w", err)
	}
	var inst *instance
	select {
	case inst = <-m.free:
	default:
		select {
		case inst = <-m.free:
		case <-ctx.Done():
			return nil, fmt.Errorf("gave up waiting for one of the model's %d busy instances: %w; raise its instances or lower the load", len(m.instances), ctx.Err())
		case <-m.done:
			return nil, ErrClosed
		}
	}
	if m.closed.Load() {
		m.free <- inst
		return nil, ErrClosed
	}
	return inst, nil
}

// run executes one inference on inst, which the caller holds. allowPrealloc
// false makes ONNX Runtime allocate every output it can.
func (m *Model) run(inst *instance, inputs []oip.Tensor, outputNames []string, dst []oip.Tensor, allowPrealloc bool) ([]oip.Tensor, error) {
	batch, err := m.matchInputs(inst, inputs)
	if err != nil {
		return nil, err
	}
	n, err := m.selectOutputs(inst, outputNames)
	if err != nil {
		return nil, err
	}
	res := resize(dst, n)
	for k, r := range inst.sel {
		if r >= 0 {
			res[r].Name = m.out[k].name
			res[r].Datatype = m.out[k].dtype
		}
	}

	defer inst.dropLarge() // after releaseOutputs
	defer inst.releaseOutputs()
	if err := m.bindInputs(inst, inputs); err != nil {
		return nil, err
	}
	guessed, err := m.bindOutputs(inst, res, batch, allowPrealloc)
	if err != nil {
		return nil, err
	}
	err = inst.sess.s.Run(inst.inVals, inst.outVals)
	if err != nil && guessed && m.guessFailed(inst, err) {
		// The one failure that a second run cures: let ONNX Runtime
		// allocate the outputs whose shape Run guessed.
		inst.releaseOutputs()
		if _, err := m.bindOutputs(inst, res, batch, false); err != nil {
			return nil, err
		}
		err = inst.sess.s.Run(inst.inVals, inst.outVals)
	} else if err == nil && guessed {
		for k := range m.out {
			if inst.pre[k] && !m.out[k].mustPrealloc {
				m.guesses[k].held()
			}
		}
	}
	if err != nil {
		return nil, runError(err)
	}
	if err := m.collect(inst, res); err != nil {
		return nil, err
	}
	return res, nil
}

// guessFailed reports whether err, from a run in which Run preallocated
// outputs on the shapes Load inferred, says that ONNX Runtime computed
// another shape for one of them, and records the miss against that output
// (against all the guessed ones when the message names none of them). It
// is false for an FP16 output, which a second run would preallocate again.
func (m *Model) guessFailed(inst *instance, err error) bool {
	name, ok := mismatchedOutput(err.Error())
	if !ok {
		return false
	}
	if k := m.outputIndex(name); k >= 0 && inst.pre[k] {
		if m.out[k].mustPrealloc {
			return false
		}
		m.guesses[k].missed()
		return true
	}
	for k := range m.out {
		if inst.pre[k] && !m.out[k].mustPrealloc {
			m.guesses[k].missed()
		}
	}
	return true
}

// matchInputs fills inst.inIdx and checks every input against the model.
// It returns the batch size when every input is [batch, fixed...] and all
// agree on batch, else -1.
func (m *Model) matchInputs(inst *instance, inputs []oip.Tensor) (int64, error) {
	idx := inst.inIdx
	for i := range idx {
		idx[i] = -1
	}
	for j := range inputs {
		name := inputs[j].Name
		i := m.inputIndex(name)
		if i < 0 {
			return -1, errorf(ErrInvalidInput, "unknown input %q; the model's inputs are %s", name, specNames(m.in))
		}
		if idx[i] >= 0 {
			return -1, errorf(ErrInvalidInput, "input %q is given twice", name)
		}
		idx[i] = j
	}
	batch := int64(-1)
	for i := range m.in {
		s := &m.in[i]
		if idx[i] < 0 {
			return -1, errorf(ErrInvalidInput, "missing input %q (%s %s); the model needs all of %s", s.name, s.dtype, oip.FormatShape(s.shape), specNames(m.in))
		}
		t := &inputs[idx[i]]
		if err := s.check(t); err != nil {
			return -1, err
		}
		if m.batchOnly {
			if i == 0 {
				batch = t.Shape[0]
			} else if t.Shape[0] != batch {
				batch = -1
			}
		}
	}
	return batch, nil
}

// check reports how t does not fit input s.
func (s *tensorSpec) check(t *oip.Tensor) error {
	if t.Datatype != s.dtype {
		return errorf(ErrInvalidInput, "input %q has datatype %s; the model expects %s", s.name, t.Datatype, s.dtype)
	}
	fits := len(t.Shape) == len(s.shape)
	for d, n := range t.Shape {
		if n < 1 {
			return errorf(ErrInvalidInput, "input %q has shape %s; every dimension must be at least 1", s.name, oip.FormatShape(t.Shape))
		}
		if fits && s.shape[d] >= 0 && n != s.shape[d] {
			fits = false
		}
	}
	if !fits {
		return errorf(ErrInvalidInput, "input %q has shape %s; the model expects %s (-1: any size)", s.name, oip.FormatShape(t.Shape), oip.FormatShape(s.shape))
	}
	n := oip.ShapeElements(t.Shape)
	if n < 0 || n > int64(math.MaxInt/s.size) {
		return errorf(ErrInvalidInput, "input %q has shape %s, which is too large", s.name, oip.FormatShape(t.Shape))
	}
	if want := int(n) * s.size; len(t.Data) != want {
		return errorf(ErrInvalidInput, "input %q has %d bytes of data; shape %s of %s needs %d", s.name, len(t.Data), oip.FormatShape(t.Shape), s.dtype, want)
	}
	return nil
}

// selectOutputs fills inst.sel from the requested names and returns how
// many outputs the result has.
func (m *Model) selectOutputs(inst *instance, names []string) (int, error) {
	sel := inst.sel
	if len(names) == 0 {
		for k := range sel {
			sel[k] = k
		}
		return len(sel), nil
	}
	for k := range sel {
		sel[k] = -1
	}
	for r, name := range names {
		k := m.outputIndex(name)
		if k < 0 {
			return 0, errorf(ErrUnknownOutput, "unknown output %q; the model's outputs are %s", name, specNames(m.out))
		}
		if sel[k] >= 0 {
			return 0, errorf(ErrUnknownOutput, "output %q is asked for twice", name)
		}
		sel[k] = r
	}
	return len(names), nil
}

// bindInputs wraps the inputs' Data, without copying, in ONNX Runtime
// values.
func (m *Model) bindInputs(inst *instance, inputs []oip.Tensor) error {
	for i := range m.in {
		s := &m.in[i]
		t := &inputs[inst.inIdx[i]]
		v, err := inst.inBound[i].bind(t.Shape, t.Data, s.ort)
		if err != nil {
			return causef(ErrRunFailed, err, "cannot pass input %q to ONNX Runtime: %s", s.name, ortMessage(err))
		}
		inst.inVals[i] = v
	}
	return nil
}

// bindOutputs gives ONNX Runtime a buffer for every output whose shape is
// known, the result's Data for those asked for, and leaves the others for
// ONNX Runtime to allocate. With allowPrealloc false only FP16 outputs get
// a buffer, and so do outputs whose guessed shape failed too often. It
// checks the buffers' total size against the limit before it allocates
// any. It reports whether any buffer rests on Load's inference of the
// shape rather than on necessity.
func (m *Model) bindOutputs(inst *instance, res []oip.Tensor, batch int64, allowPrealloc bool) (guessed bool, err error) {
	// First the shapes, marked in pre, and the total size.
	var total, largest int64
	big := -1
	for k := range m.out {
		s := &m.out[k]
		inst.pre[k] = false
		inst.outVals[k] = nil
		if s.rule == ruleDynamic || (s.rule == ruleBatch && batch < 0) {
			if s.mustPrealloc {
				return false, errorf(ErrInvalidInput, "output %q is FP16 of shape %s: the inputs must agree on dim 0 (the batch size)", s.name, oip.FormatShape(s.shape))
			}
			continue
		}
		prealloc := s.mustPrealloc || (allowPrealloc && !m.guesses[k].off.Load())
		if !prealloc && allowPrealloc {
			// The guess failed too often: ONNX Runtime allocates it,
			// checked after the run.
			continue
		}
		// Else preallocated, or, in the warm-up, left to ONNX Runtime
		// with the size the model declares checked first: a model whose
		// fixed outputs are over the limit fails to load before ONNX
		// Runtime allocates them.
		shape := inst.shapes[k]
		if s.rule == ruleBatch {
			shape[0] = batch
		}
		ne := oip.ShapeElements(shape)
		if ne < 0 || ne > int64(math.MaxInt/s.size) {
			return false, errorf(ErrOutputTooLarge, "output %q would have shape %s, which is too large; send fewer rows per request", s.name, oip.FormatShape(shape))
		}
		size := ne * int64(s.size)
		if size > largest {
			largest, big = size, k
		}
		// total is at most the limit, so this cannot overflow.
		if size > m.maxOutputBytes-total {
			return false, m.outputTooLarge(big, inst.shapes[big], largest, total+size)
		}
		total += size
		inst.pre[k] = prealloc
	}
	for k := range m.out {
		if !inst.pre[k] {
			continue
		}
		s := &m.out[k]
		shape := inst.shapes[k]
		size := int(oip.ShapeElements(shape)) * s.size
		var buf []byte
		if r := inst.sel[k]; r >= 0 {
			res[r].Data = grow(res[r].Data, size)
			buf = res[r].Data
		} else {
			inst.spare[k] = grow(inst.spare[k], size)
			buf = inst.spare[k]
		}
		v, err := inst.outBound[k].bind(shape, buf, s.ort)
		if err != nil {
			return false, causef(ErrRunFailed, err, "cannot give ONNX Runtime a buffer for output %q: %s", s.name, ortMessage(err))
		}
		inst.outVals[k] = v
		if !s.mustPrealloc {
			guessed = true
		}
	}
	return guessed, nil
}

// outputTooLarge describes outputs of total bytes over the limit, the
// largest of which is output k of shape and size bytes.
func (m *Model) outputTooLarge(k int, shape []int64, size, total int64) error {
	s := &m.out[k]
	if size == total {
		return errorf(ErrOutputTooLarge, "output %q would be %s %s, %d bytes, over the limit of %d bytes on the outputs of a request; send fewer rows per request, or raise max_output_bytes",
			s.name, s.dtype, oip.FormatShape(shape), size, m.maxOutputBytes)
	}
	return errorf(ErrOutputTooLarge, "output %q would be %s %s, %d bytes, which brings the outputs of the request to %d bytes, over the limit of %d; send fewer rows per request, or raise max_output_bytes",
		s.name, s.dtype, oip.FormatShape(shape), size, total, m.maxOutputBytes)
}

// checkAllocated checks the total size of the outputs of a run in which
// ONNX Runtime allocated some, before Run copies them into the result.
func (m *Model) checkAllocated(inst *instance) error {
	var total, largest int64
	big, allocated := -1, false
	for k := range m.out {
		var size int64
		if inst.pre[k] {
			size = oip.ShapeElements(inst.shapes[k]) * int64(m.out[k].size)
		} else if b, ok := valueBytes(inst.outVals[k]); ok {
			size, allocated = int64(len(b)), true
		}
		if size > largest {
			largest, big = size, k
		}
		total += size
	}
	if !allocated || total <= m.maxOutputBytes {
		return nil
	}
	shape := inst.shapes[big]
	if !inst.pre[big] {
		shape = inst.outVals[big].GetShape()
	}
	return m.outputTooLarge(big, shape, largest, total)
}

// collect fills the shapes of the result, and the data of the outputs that
// ONNX Runtime allocated once checkAllocated lets them through.
func (m *Model) collect(inst *instance, res []oip.Tensor) error {
	if err := m.checkAllocated(inst); err != nil {
		return err
	}
	for k, r := range inst.sel {
		if r < 0 {
			continue
		}
		t := &res[r]
		if inst.pre[k] {
			t.Shape = append(t.Shape[:0], inst.shapes[k]...)
			continue
		}
		v := inst.outVals[k]
		b, ok := valueBytes(v)
		if !ok || ort.TensorElementDataType(v.DataType()) != m.out[k].ort {
			return errorf(ErrRunFailed, "BUG: output %q came back from ONNX Runtime as %T of %s; the model declares %s",
				m.out[k].name, v, ortTypeName(ort.TensorElementDataType(v.DataType())), ortTypeName(m.out[k].ort))
		}
		t.Shape = append(t.Shape[:0], v.GetShape()...)
		t.Data = append(t.Data[:0], b...)
	}
	return nil
}

// warmUp runs each instance once with zero inputs of batch 1, and the first
// also without preallocated outputs at batch 1 and 2 to check the output
// shapes planOutputs inferred against what ONNX Runtime computes. A model
// whose operators refuse zeros (a division by an input) warms up on ones;
// one that refuses ones elsewhere loads unchecked; one that refuses both
// the same way fails to load. Each instance then runs samples.
func (m *Model) warmUp(samples []WarmupRun) error {
	first := m.instances[0]
	res, err := m.runZeros(first, 1, false)
	if zerr := err; errors.Is(zerr, ErrInputRejected) {
		// An operator refused zeros (a division by an input): warm up on
		// ones instead.
		m.warmOnes = true
		res, err = m.runZeros(first, 1, false)
		refused := errors.Is(err, ErrInputRejected)
		sameWay := refused && err.Error() == zerr.Error()
		needsRows := false
		if sameWay && m.batchOnly {
			// Refused the same way at batch 1, on a shape the model fixes
			// but for the batch: the model may want more rows (the top 2
			// of a batch). Two rows that it takes mean it is not broken.
			_, err2 := m.runZeros(first, 2, false)
			needsRows = err2 == nil
		}
		if needsRows || refused && (!sameWay || m.pickedDims()) {
			// Ones are refused elsewhere (a divisor b-1, an index into a
			// table of one row): the model wants values no constant
			// input gives. Or the warm-up's shape is refused, whatever
			// the values: a dimension other than the batch's that the
			// model leaves variable was set to 1 (an image of 1x1 to a
			// 3x3 convolution). It loads, its output shapes unchecked
			// (ONNX Runtime allocates all but the FP16 ones), and its
			// requests are the judges. Refused the same way by both, on
			// a shape the model fixes, it is broken.
			m.warmTolerant = true
			m.demote(ruleStatic)
			m.demote(ruleBatch)
			err = nil
		}
	}
	if err != nil {
		return causef(ErrInvalidModel, err, "warm-up inference (batch 1, %s inputs) failed: %s", m.warmValue(), err)
	}
	if !m.warmTolerant {
		m.checkShapes(res, 1)
	}
	if m.batchOnly && m.hasRule(ruleBatch) && !m.warmTolerant {
		res, err := m.runZeros(first, 2, false)
		switch {
		case err == nil:
			m.checkShapes(res, 2)
		case errors.Is(err, ErrOutputTooLarge):
			// Batch 1 fits the limit but batch 2 does not, so every
			// request of more rows will be refused before it runs:
			// nothing to check, and the guess stands.
		default:
			m.demote(ruleBatch)
			// An FP16 output keeps its rule (demote cannot let ONNX
			// Runtime allocate it): if batch 2 still fails, it does not
			// follow the batch, and every request of more rows would.
			if m.hasRule(ruleBatch) {
				if _, err := m.runZeros(first, 2, false); errors.Is(err, ErrRunFailed) {
					// Only ONNX Runtime refusing that output's buffer
					// blames it; a model that refuses 2 rows does not.
					for k := range m.out {
						if s := &m.out[k]; s.rule == ruleBatch && strings.Contains(err.Error(), "output '"+s.name+"'") {
							return causef(ErrUnsupportedType, err, "output %q is FP16 of shape %s but does not follow the batch dimension (a run of 2 rows failed: %s); the engine supports FP16 outputs only of a fixed shape or of [batch, fixed...]", s.name, oip.FormatShape(s.shape), err)
						}
					}
				}
			}
		}
	}
	for i, inst := range m.instances {
		if _, err := m.runZeros(inst, 1, true); err != nil && !(m.warmTolerant && errors.Is(err, ErrInputRejected)) {
			return causef(ErrInvalidModel, err, "warm-up inference of instance %d failed: %s", i, err)
		}
		for _, w := range samples {
			for range max(w.Count, 1) {
				if _, err := m.run(inst, w.Inputs, nil, nil, true); err != nil {
					return causef(ErrInvalidModel, err, "warm-up sample %q (model_warmup) failed on instance %d: %s", w.Name, i, err)
				}
			}
		}
	}
	return nil
}

// pickedDims reports whether the warm-up picks the size of a dimension
// other than the batch's: an input with a variable dimension in a model
// that is not [batch, fixed...] throughout.
func (m *Model) pickedDims() bool {
	if m.batchOnly {
		return false
	}
	for i := range m.in {
		// Beside a fixed input, even the leading -1 of [-1, fixed...]
		// may be a size the model ties to another input's, not a batch.
		if slices.Contains(m.in[i].shape, -1) {
			return true
		}
	}
	return false
}

// runZeros runs inst on zero inputs with every dynamic dimension set to 1,
// and dim 0 to batch when every input is [batch, fixed...].
func (m *Model) runZeros(inst *instance, batch int64, allowPrealloc bool) ([]oip.Tensor, error) {
	inputs := make([]oip.Tensor, len(m.in))
	var total int64
	for i := range m.in {
		s := &m.in[i]
		shape := make([]int64, len(s.shape))
		for d, n := range s.shape {
			shape[d] = max(n, 1)
		}
		if m.batchOnly {
			shape[0] = batch
		}
		// The model file declares these shapes: bound them before
		// allocating.
		n := oip.ShapeElements(shape)
		if n < 0 || n > (maxWarmUpInputBytes-total)/int64(s.size) {
			return nil, errorf(ErrInvalidModel, "input %q is %s %s: its inputs for the warm-up at batch %d would take more than %d bytes",
				s.name, s.dtype, oip.FormatShape(s.shape), batch, int64(maxWarmUpInputBytes))
		}
		total += n * int64(s.size)
		data := make([]byte, int(n)*s.size)
		if m.warmOnes {
			fillOnes(data, s.dtype)
		}
		inputs[i] = oip.Tensor{
			Name:     s.name,
			Datatype: s.dtype,
			Shape:    shape,
			Data:     data,
		}
	}
	return m.run(inst, inputs, nil, nil, allowPrealloc)
}

// maxWarmUpInputBytes bounds the inputs of a warm-up run, whose shapes
// the model file declares: 1 GiB, beyond any input a request could carry.
const maxWarmUpInputBytes = 1 << 30

// warmValue names the value of the warm-up's inputs.
func (m *Model) warmValue() string {
	if m.warmOnes {
		return "ones as"
	}
	return "zero"
}

// fillOnes writes the value 1 of dtype into every element of data.
func fillOnes(data []byte, dtype oip.DataType) {
	var one []byte
	switch dtype {
	case oip.FP16:
		one = []byte{0x00, 0x3c}
	case oip.FP32:
		one = []byte{0x00, 0x00, 0x80, 0x3f}
	case oip.FP64:
		one = []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}
	default: // BOOL and the integers, little-endian
		one = make([]byte, dtype.Size())
		one[0] = 1
	}
	for i := 0; i+len(one) <= len(data); i += len(one) {
		copy(data[i:], one)
	}
}

// checkShapes demotes to ruleDynamic every output whose shape in res,
// computed by ONNX Runtime for the given batch, differs from the inferred
// one.
func (m *Model) checkShapes(res []oip.Tensor, batch int64) {
	for k := range m.out {
		s := &m.out[k]
		if s.rule == ruleDynamic || s.mustPrealloc {
			continue
		}
		got := res[k].Shape
		same := len(got) == len(s.shape)
		for d := 0; same && d < len(got); d++ {
			want := s.shape[d]
			if s.rule == ruleBatch && d == 0 {
				want = batch
			}
			same = got[d] == want
		}
		if !same {
			s.rule = ruleDynamic
		}
	}
}

// hasRule reports whether any output follows rule.
func (m *Model) hasRule(rule outputRule) bool {
	for k := range m.out {
		if m.out[k].rule == rule {
			return true
		}
	}
	return false
}

// demote sets the outputs that follow rule, but for FP16 ones, to
// ruleDynamic.
func (m *Model) demote(rule outputRule) {
	for k := range m.out {
		if s := &m.out[k]; s.rule == rule && !s.mustPrealloc {
			s.rule = ruleDynamic
		}
	}
}

// planOutputs decides how Run provides each output's buffer; warmUp then
// checks the guesses.
func (m *Model) planOutputs() error {
	m.batchOnly = true
	for i := range m.in {
		if s := &m.in[i]; s.shape[0] >= 0 || !fixed(s.shape[1:]) {
			m.batchOnly = false
		}
	}
	for k := range m.out {
		s := &m.out[k]
		s.mustPrealloc = s.dtype == oip.FP16
		// An output that is a graph input ONNX Runtime answers with the
		// input's own value, leaving a buffer given for it untouched: let
		// it allocate the output, which then holds the input's bytes.
		passthrough := m.inputIndex(s.name) >= 0
		if passthrough && s.mustPrealloc {
			return errorf(ErrUnsupportedType, "output %q is the FP16 input of that name passed through, which the engine does not support; give the output a name of its own (an Identity node)", s.name)
		}
		switch {
		case passthrough:
			s.rule = ruleDynamic
		case len(s.shape) > 0 && fixed(s.shape):
			s.rule = ruleStatic
		case len(s.shape) > 0 && m.batchOnly && s.shape[0] < 0 && fixed(s.shape[1:]):
			s.rule = ruleBatch
		default:
			s.rule = ruleDynamic
		}
		if s.mustPrealloc && s.rule == ruleDynamic {
			return errorf(ErrUnsupportedType, "output %q is FP16 of shape %s; the engine supports FP16 outputs only of a fixed shape or of [batch, fixed...] with every input [batch, fixed...]", s.name, oip.FormatShape(s.shape))
		}
	}
	return nil
}

// fixed reports whether every dimension of shape is a known size.
func fixed(shape []int64) bool {
	for _, n := range shape {
		if n < 1 {
			return false
		}
	}
	return true
}

// newSpecs checks the inputs or outputs (kind) that ONNX Runtime reports
// and describes them.
func newSpecs(kind string, infos []ort.InputOutputInfo) ([]tensorSpec, []oip.TensorMetadata, error) {
	specs := make([]tensorSpec, len(infos))
	meta := make([]oip.TensorMetadata, len(infos))
	for i, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			return nil, nil, errorf(ErrUnsupportedType, "%s %q is a %s; the engine supports tensors only", kind, info.Name, onnxKindName(info.OrtValueType))
		}
		dt, ok := fromORT(info.DataType)
		if !ok {
			return nil, nil, errorf(ErrUnsupportedType, "%s %q is a %s tensor; the engine supports tensors of BOOL, INT8-64, UINT8-64, FP16, FP32 and FP64", kind, info.Name, ortTypeName(info.DataType))
		}
		shape := make([]int64, len(info.Dimensions))
		for d, n := range info.Dimensions {
			shape[d] = max(n, -1)
		}
		if len(shape) == 0 {
			// onnxruntime_go cannot pass a tensor without dimensions either
			// way: NewTensor refuses the shape.
			return nil, nil, errorf(ErrUnsupportedType, "%s %q is a scalar (rank 0); infergate serves tensors with at least one dimension", kind, info.Name)
		}
		specs[i] = tensorSpec{name: info.Name, dtype: dt, ort: info.DataType, size: dt.Size(), shape: shape}
		meta[i] = oip.TensorMetadata{Name: info.Name, Datatype: dt, Shape: slices.Clone(shape)}
	}
	return specs, meta, nil
}

// destroyInstances destroys the sessions of a Model that Load gives up on.
func (m *Model) destroyInstances() {
	for _, inst := range m.instances {
		inst.destroy()
	}
	m.instances = nil
}

// inputIndex returns the index of the input named name, or -1.
func (m *Model) inputIndex(name string) int {
	for i := range m.in {
		if m.in[i].name == name {
			return i
		}
	}
	return -1
}

// outputIndex returns the index of the output named name, or -1.
func (m *Model) outputIndex(name string) int {
	for k := range m.out {
		if m.out[k].name == name {
			return k
		}
	}
	return -1
}

// resize returns dst with length n, reusing its tensors up to its capacity.
func resize(dst []oip.Tensor, n int) []oip.Tensor {
	if cap(dst) >= n {
		return dst[:n]
	}
	res := make([]oip.Tensor, n)
	copy(res, dst[:cap(dst)])
	return res
}

// grow returns b with length n, reusing its capacity when it suffices. The
// contents are unspecified.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n)
}

// specNames lists the names of specs for error messages: "a", "b".
func specNames(specs []tensorSpec) string {
	var b strings.Builder
	for i := range specs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(specs[i].name))
	}
	return b.String()
}
