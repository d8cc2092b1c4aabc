package engine

import (
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// instance is one session with the scratch space of the Run that holds it.
// Only the goroutine that took it from Model.free touches it.
type instance struct {
	// sess is the session it runs on, which others may share
	// (Options.ShareSession); nil once destroyed.
	sess *session
	// inVals and outVals are the ONNX Runtime values of the current run in
	// model order. An input, and an output whose buffer Run provides (pre),
	// is a value of inBound or outBound, which outlive the run; any other
	// output was allocated by ONNX Runtime and is destroyed after the run.
	inVals  []ort.Value
	outVals []ort.Value
	// inBound and outBound are, per input and output, the values that wrap
	// the Go buffer of the last run, one per shape, reused while runs pass
	// the same buffer: it saves two cgo calls and three allocations per
	// tensor.
	inBound  []boundValue
	outBound []boundValue
	// inIdx maps a model input to its index in Run's inputs.
	inIdx []int
	// sel maps a model output to its index in Run's result, or -1 when the
	// caller did not ask for it (it is computed anyway).
	sel []int
	// pre marks the outputs of the current run whose buffer Run provided.
	pre []bool
	// shapes holds, per output, the shape of a preallocated output: the
	// fixed dims from Load, dim 0 set per run for ruleBatch.
	shapes [][]int64
	// spare holds, per output, the buffer of an output computed but not
	// asked for, kept for the next run.
	spare [][]byte
}

// newSessionOptions turns o, with its defaults applied, into ONNX Runtime
// session options. The caller destroys them.
func newSessionOptions(o Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, causef(ErrNotInitialized, err, "cannot create ONNX Runtime session options: %s", ortMessage(err))
	}
	err = so.SetIntraOpNumThreads(o.IntraOpThreads)
	if err == nil {
		err = so.SetInterOpNumThreads(o.InterOpThreads)
	}
	if err == nil && o.IntraOpThreads > 1 {
		// Idle pool threads would spin and take cores from the other
		// models and instances.
		err = so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0")
	}
	if err == nil && o.InterOpThreads > 1 {
		err = so.SetExecutionMode(ort.ExecutionModeParallel)
		if err == nil {
			err = so.AddSessionConfigEntry("session.inter_op.allow_spinning", "0")
		}
	}
	if err != nil {
		so.Destroy()
		return nil, causef(ErrInvalidOptions, err, "ONNX Runtime refuses the thread settings (intra-op %d, inter-op %d): %s", o.IntraOpThreads, o.InterOpThreads, ortMessage(err))
	}
	if o.NoCPUMemArena {
		if err := so.SetCpuMemArena(false); err != nil {
			so.Destroy()
			return nil, causef(ErrInvalidOptions, err, "ONNX Runtime refuses to turn its CPU memory arena off: %s", ortMessage(err))
		}
	}
	if cuda, id, _ := parseDevice(o.Device); cuda {
		if err := appendCUDA(so, o.Device, id); err != nil {
			so.Destroy()
			return nil, err
		}
	}
	return so, nil
}

// CheckDevice reports whether Load can place sessions on device: the CPU
// always; "cuda:N" only with a CUDA build of ONNX Runtime whose provider
// accepts that GPU, which it tries without loading a model. Init must have
// been called.
func CheckDevice(device string) error {
	cuda, id, err := parseDevice(device)
	if err != nil || !cuda {
		return err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return causef(ErrRunFailed, err, "cannot create ONNX Runtime session options: %s", ortMessage(err))
	}
	defer so.Destroy()
	return appendCUDA(so, device, id)
}

// appendCUDA adds the CUDA execution provider for GPU id to so.
func appendCUDA(so *ort.SessionOptions, device string, id int) error {
	co, err := ort.NewCUDAProviderOptions()
	if err == nil {
		defer co.Destroy()
		err = co.Update(map[string]string{"device_id": strconv.Itoa(id)})
	}
	if err == nil {
		err = so.AppendExecutionProviderCUDA(co)
	}
	if err == nil {
		return nil
	}
	lib := LibPath()
	dir := filepath.Dir(lib)
	if !isFile(filepath.Join(dir, "libonnxruntime_providers_cuda.so")) || !isFile(filepath.Join(dir, "libonnxruntime_providers_shared.so")) {
		return causef(ErrDeviceUnavailable, err, "cannot use device %s: the ONNX Runtime library at %s has no CUDA execution provider (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so must sit beside it); use --device cpu or a CUDA build of ONNX Runtime", device, lib)
	}
	return causef(ErrDeviceUnavailable, err, "cannot use device %s: %s; check the GPU index and the CUDA and cuDNN libraries that ONNX Runtime needs, or use --device cpu", device, ortMessage(err))
}

// session is an ONNX Runtime session and the number of instances that
// run on it: the last one to be destroyed destroys it.
type session struct {
	s    *ort.DynamicAdvancedSession
	refs atomic.Int32
}

// newSession creates a session of the model.
func newSession(onnxData []byte, inNames, outNames []string, so *ort.SessionOptions, device string) (*session, error) {
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(onnxData, inNames, outNames, so)
	if err != nil {
		if cuda, _, _ := parseDevice(device); cuda {
			// The model loaded on the CPU to read its inputs, so the
			// device is what fails.
			return nil, causef(ErrDeviceUnavailable, err, "cannot create a session of the model on %s: %s", device, ortMessage(err))
		}
		return nil, causef(ErrInvalidModel, err, "ONNX Runtime cannot create a session of the model: %s", ortMessage(err))
	}
	return &session{s: sess}, nil
}

// newInstance creates the scratch space of one instance that runs on
// sess, which it then holds a reference to.
func (m *Model) newInstance(sess *session) *instance {
	sess.refs.Add(1)
	inst := &instance{
		sess:     sess,
		inVals:   make([]ort.Value, len(m.in)),
		outVals:  make([]ort.Value, len(m.out)),
		inBound:  make([]boundValue, len(m.in)),
		outBound: make([]boundValue, len(m.out)),
		inIdx:    make([]int, len(m.in)),
		sel:      make([]int, len(m.out)),
		pre:      make([]bool, len(m.out)),
		shapes:   make([][]int64, len(m.out)),
		spare:    make([][]byte, len(m.out)),
	}
	for k := range m.out {
		inst.shapes[k] = slices.Clone(m.out[k].shape)
	}
	return inst
}

// destroy releases the session and every value.
func (inst *instance) destroy() {
	inst.releaseOutputs()
	for i := range inst.inBound {
		inst.inBound[i].release()
		inst.inVals[i] = nil
	}
	for k := range inst.outBound {
		inst.outBound[k].release()
	}
	clear(inst.spare)
	if inst.sess != nil {
		if inst.sess.refs.Add(-1) == 0 {
			inst.sess.s.Destroy()
		}
		inst.sess = nil
	}
}

// releaseOutputs destroys the outputs of the current run that ONNX Runtime
// allocated, and forgets the others.
func (inst *instance) releaseOutputs() {
	for k, v := range inst.outVals {
		if v != nil && !inst.pre[k] {
			destroyValue(v)
		}
		inst.outVals[k] = nil
	}
}

// boundValue holds the ONNX Runtime values that wrap one Go buffer, one
// per shape that runs have passed with it, for reuse by later runs: a
// batcher's gather buffer is one buffer whose first rows×width bytes each
// run passes, so a value per batch size saves two cgo calls and three
// allocations per tensor on every run whose size was seen before. ONNX
// Runtime keeps the buffer's address, so the buffer is pinned while values
// wrap it; it touches the bytes only during a run that binds one.
type boundValue struct {
	base   *byte // first byte of the buffer every value in vals wraps
	cap    int   // the buffer's capacity from base
	pinner runtime.Pinner
	vals   []boundShape
}

// maxBoundBytes is the largest buffer whose values outlive the run that
// bound them (instance.dropLarge). A larger one is a request's own input
// or output, the only one of its size, whose caller drops it (the
// gateway keeps no request buffers over 1 MiB); keeping values over it
// would keep the buffer in memory, pinned, until the next run of another
// buffer: the largest request an instance ever ran, for as long as it
// stays idle. Wrapping it again costs two cgo calls, nothing beside the
// run over that many bytes.
const maxBoundBytes = 1 << 20

// boundShape is one value over the first size bytes of the buffer.
type boundShape struct {
	v     *ort.CustomDataTensor
	size  int
	shape []int64
}

// maxBoundShapes bounds the values kept per buffer: one per batch size of
// the default max_batch_size, and more sizes only evict the oldest.
const maxBoundShapes = 64

// bind returns a value of element type t wrapping data with shape,
// reusing one made earlier for the same buffer, size and shape. Each
// boundValue serves one input or output, so t never changes.
func (b *boundValue) bind(shape []int64, data []byte, t ort.TensorElementDataType) (*ort.CustomDataTensor, error) {
	if len(data) > 0 && b.base == &data[0] {
		for i := range b.vals {
			if s := &b.vals[i]; s.size == len(data) && slices.Equal(s.shape, shape) {
				return s.v, nil
			}
		}
	} else {
		b.release()
		if len(data) > 0 {
			b.pinner.Pin(&data[0])
			b.base, b.cap = &data[0], cap(data)
		}
	}
	v, err := ort.NewCustomDataTensor(ort.Shape(shape), data, t)
	if err != nil {
		if len(b.vals) == 0 {
			b.release()
		}
		return nil, err
	}
	if len(b.vals) == maxBoundShapes {
		b.vals[0].v.Destroy()
		b.vals = append(b.vals[:0], b.vals[1:]...)
	}
	b.vals = append(b.vals, boundShape{v: v, size: len(data), shape: slices.Clone(shape)})
	return v, nil
}

// release destroys every value and unpins the buffer.
func (b *boundValue) release() {
	for i := range b.vals {
		b.vals[i].v.Destroy()
	}
	clear(b.vals)
	b.vals = b.vals[:0]
	b.pinner.Unpin()
	b.base, b.cap = nil, 0
}

// dropLarge releases the values over buffers larger than maxBoundBytes,
// and the spare output buffers larger than that, once a run is over.
func (inst *instance) dropLarge() {
	for i := range inst.inBound {
		if inst.inBound[i].cap > maxBoundBytes {
			inst.inBound[i].release()
			inst.inVals[i] = nil
		}
	}
	for k := range inst.outBound {
		if inst.outBound[k].cap > maxBoundBytes {
			inst.outBound[k].release()
		}
	}
	for k, b := range inst.spare {
		if cap(b) > maxBoundBytes {
			inst.spare[k] = nil
		}
	}
}

// destroyValue destroys v, which may be a typed nil pointer: onnxruntime_go
// stores one in an output slot when it fails to copy that output out.
func destroyValue(v ort.Value) {
	if t, ok := v.(*ort.CustomDataTensor); ok {
		if t != nil {
			t.Destroy()
		}
		return
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return
	}
	v.Destroy()
}
