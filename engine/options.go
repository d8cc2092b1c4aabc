package engine

import (
	"strconv"
	"strings"

	"github.com/infergate/infergate/oip"
)

// Limits that Validate enforces; they catch typos, not tune anything.
const (
	maxInstances = 256
	maxThreads   = 1024
)

// DefaultMaxOutputBytes is the limit on the outputs of one Run that
// Options.MaxOutputBytes 0 stands for: 256 MiB.
const DefaultMaxOutputBytes = 256 << 20

// Options are the settings for loading a model version. The zero value is
// valid and means one CPU instance with one intra-op and one inter-op
// thread, and outputs of at most 256 MiB a Run.
type Options struct {
	// Instances is the number of inferences of the model that run in
	// parallel, each on a session with its own copy of the weights unless
	// ShareSession is set; Run blocks while all are busy. 0 means 1.
	Instances int
	// ShareSession runs every instance on one ONNX Runtime session, which
	// runs concurrent inferences: the weights are held once, so memory
	// does not grow with Instances. Each instance keeps its own input and
	// output buffers.
	ShareSession bool
	// NoCPUMemArena turns off ONNX Runtime's CPU memory arena: a run's
	// intermediate tensors are allocated and freed with it, so the memory
	// of an unusually large run goes back to the system when it ends
	// instead of staying with the session (the arena never shrinks), at
	// the cost of an allocation per tensor per run.
	NoCPUMemArena bool
	// IntraOpThreads is the number of threads one inference may use inside
	// an operator (a MatMul split across cores). 0 means 1: the gateway
	// runs several models and instances on a few cores, and parallelism
	// across requests comes from Instances and batching. With more than
	// one thread the pool does not spin while idle.
	IntraOpThreads int
	// InterOpThreads is the number of threads that run independent
	// operators of one inference at once; more than 1 switches the session
	// to parallel execution, which pays only for graphs with wide
	// branches. 0 means 1.
	InterOpThreads int
	// Device is "" or "cpu" for the CPU, or "cuda:N" for the CUDA GPU with
	// index N, which needs a CUDA build of ONNX Runtime.
	Device string
	// MaxOutputBytes bounds the bytes of all the outputs of one Run
	// together, those not asked for included (they are computed anyway);
	// a Run over it fails with ErrOutputTooLarge. Outputs whose shape is
	// known before the run are checked before Run allocates them, so a
	// small request cannot make the process allocate a huge result.
	// Outputs that ONNX Runtime allocates are checked as soon as the run
	// returns, before Run copies them into the result: ONNX Runtime has
	// computed them by then, and onnxruntime_go has copied them into Go
	// memory (it gives no way to see an output's shape before that copy).
	// The limit applies to a Run, which with batching is a whole batch.
	// The warm-up in Load obeys it too, so a model whose outputs at batch
	// 1 exceed it fails to load. 0 means DefaultMaxOutputBytes.
	MaxOutputBytes int64
	// Warmup, when set, is called once Load knows the model's inputs and
	// outputs, and returns inferences that every instance runs, each
	// Count times, after Load's own warm-up and before Load returns: the
	// shapes and values a configuration picks (Triton's model_warmup),
	// which may depend on whether the model batches. An error, or a run
	// that fails, fails the load.
	Warmup func(inputs, outputs []oip.TensorMetadata) ([]WarmupRun, error)
}

// WarmupRun is one warm-up inference: whole input tensors (the batch
// dimension included), run Count times on each instance (0 means 1).
type WarmupRun struct {
	Name   string
	Inputs []oip.Tensor
	Count  int
}

// DefaultOptions returns the options the zero value stands for, written
// out.
func DefaultOptions() Options {
	return Options{Instances: 1, IntraOpThreads: 1, InterOpThreads: 1, Device: "cpu", MaxOutputBytes: DefaultMaxOutputBytes}
}

// Validate reports the first setting of o that Load would refuse.
func (o Options) Validate() error {
	if o.Instances < 0 || o.Instances > maxInstances {
		return errorf(ErrInvalidOptions, "instances %d: must be between 1 and %d (0 means 1)", o.Instances, maxInstances)
	}
	if o.IntraOpThreads < 0 || o.IntraOpThreads > maxThreads {
		return errorf(ErrInvalidOptions, "intra-op threads %d: must be between 1 and %d (0 means 1)", o.IntraOpThreads, maxThreads)
	}
	if o.InterOpThreads < 0 || o.InterOpThreads > maxThreads {
		return errorf(ErrInvalidOptions, "inter-op threads %d: must be between 1 and %d (0 means 1)", o.InterOpThreads, maxThreads)
	}
	if _, _, err := parseDevice(o.Device); err != nil {
		return err
	}
	if o.MaxOutputBytes < 0 {
		return errorf(ErrInvalidOptions, "max output bytes %d: must be positive (0 means %d, 256 MiB)", o.MaxOutputBytes, DefaultMaxOutputBytes)
	}
	return nil
}

// withDefaults returns o with its zero fields replaced by their meaning.
func (o Options) withDefaults() Options {
	o.Instances = max(o.Instances, 1)
	o.IntraOpThreads = max(o.IntraOpThreads, 1)
	o.InterOpThreads = max(o.InterOpThreads, 1)
	if o.Device == "" {
		o.Device = "cpu"
	}
	if o.MaxOutputBytes == 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return o
}

// parseDevice splits a Device value: cuda is false for the CPU, else id is
// the GPU index.
func parseDevice(s string) (cuda bool, id int, err error) {
	switch s {
	case "", "cpu":
		return false, 0, nil
	case "cuda":
		return false, 0, errorf(ErrInvalidOptions, "device %q: use \"cpu\" or \"cuda:N\" with N the GPU index, such as \"cuda:0\"", s)
	}
	n, ok := strings.CutPrefix(s, "cuda:")
	if !ok {
		return false, 0, errorf(ErrInvalidOptions, "device %q: use \"cpu\" or \"cuda:N\"", s)
	}
	id, err = strconv.Atoi(n)
	if err != nil || id < 0 || n != strconv.Itoa(id) {
		return false, 0, errorf(ErrInvalidOptions, "device %q: N in \"cuda:N\" must be a GPU index such as 0", s)
	}
	return true, id, nil
}
