package engine

import (
	"strconv"
	"strings"
)

// Limits that Validate enforces; they catch typos, not tune anything.
const (
	maxInstances = 256
	maxThreads   = 1024
)

// Options are the settings for loading a model version. The zero value is
// valid and means one CPU instance with one intra-op and one inter-op
// thread.
type Options struct {
	// Instances is the number of sessions of the model, each with its own
	// copy of the weights, that run in parallel; Run blocks while all are
	// busy. 0 means 1.
	Instances int
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
}

// DefaultOptions returns the options the zero value stands for, written
// out.
func DefaultOptions() Options {
	return Options{Instances: 1, IntraOpThreads: 1, InterOpThreads: 1, Device: "cpu"}
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
