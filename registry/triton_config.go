package registry

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/infergate/infergate/oip"
)

// This file holds the parts of a model's configuration that Triton spells
// its own way. A user moving from Triton can load a configuration in the
// JSON form of Triton's model configuration as written (name, platform,
// input, output, instance_group, and dynamic_batching's
// preferred_batch_size, max_queue_delay_microseconds and
// default_queue_policy), and GET /v2/models/{m}/config answers with the
// same fields, as Triton does. Every
// such field maps onto one of infergate's own; a configuration that gives
// both spellings must give one value.

// TritonPlatform and TritonBackend are the only platform and backend a
// configuration may name: infergate runs ONNX models on ONNX Runtime.
const (
	TritonPlatform = "onnxruntime_onnx"
	TritonBackend  = "onnxruntime"
)

// TensorConfig is one entry of a configuration's input or output list:
// what the model's tensor of that name must be. With batching (a version
// whose tensors all lead with a variable dimension), Dims leave the batch
// dimension out, as Triton's do when max_batch_size is above 0.
type TensorConfig struct {
	Name string `json:"name"`
	// DataType is Triton's name of the type: TYPE_FP32, TYPE_STRING for
	// the protocol's BYTES, and so on.
	DataType string    `json:"data_type"`
	Dims     []JSONInt `json:"dims"`
}

// InstanceGroup is Triton's instance_group entry: Count instances of the
// version on one device. infergate takes one group, on the CPU or on one
// GPU.
type InstanceGroup struct {
	Name  string `json:"name,omitempty"`
	Count int    `json:"count,omitempty"`
	// Kind is KIND_CPU, KIND_GPU or KIND_AUTO (the default: the device of
	// GPUs when given, else the node's).
	Kind string `json:"kind,omitempty"`
	// GPUs lists the CUDA device of a KIND_GPU group: one at most.
	GPUs []int `json:"gpus,omitempty"`
}

// QueuePolicy is Triton's default_queue_policy, as far as infergate's
// batcher has the same settings: a request that waits past the timeout is
// refused (timeout_action REJECT), and a request's own shorter timeout
// applies (allow_timeout_override true).
type QueuePolicy struct {
	TimeoutAction              string   `json:"timeout_action,omitempty"`
	DefaultTimeoutMicroseconds *JSONInt `json:"default_timeout_microseconds,omitempty"`
	AllowTimeoutOverride       *bool    `json:"allow_timeout_override,omitempty"`
	MaxQueueSize               *JSONInt `json:"max_queue_size,omitempty"`
}

// JSONInt is an integer that JSON may give as a number or as a string of
// decimal digits, as the JSON form of a Triton configuration gives its
// 64-bit fields ("dims": ["64"]).
type JSONInt int64

// UnmarshalJSON accepts 64, "64" and -1, "-1".
func (n *JSONInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an integer: dims and Triton's other 64-bit fields take integers, as numbers or strings of digits", b)
	}
	*n = JSONInt(v)
	return nil
}

// tritonType returns Triton's name of data type d.
func tritonType(d oip.DataType) string {
	if d == oip.BYTES {
		return "TYPE_STRING"
	}
	return "TYPE_" + d.String()
}

// TensorConfigs describes tensors ts as a configuration's input or output
// list; batched drops their leading (batch) dimension.
func TensorConfigs(ts []oip.TensorMetadata, batched bool) []TensorConfig {
	out := make([]TensorConfig, len(ts))
	for i, t := range ts {
		shape := t.Shape
		if batched && len(shape) > 0 {
			shape = shape[1:]
		}
		dims := make([]JSONInt, len(shape))
		for j, d := range shape {
			dims[j] = JSONInt(d)
		}
		out[i] = TensorConfig{Name: t.Name, DataType: tritonType(t.Datatype), Dims: dims}
	}
	return out
}

// InstanceGroups describes where c's instances run, as Triton's
// instance_group; c has the node's defaults filled in.
func (c *ModelConfig) InstanceGroups() []InstanceGroup {
	g := InstanceGroup{Count: max(c.Instances, 1), Kind: "KIND_CPU"}
	if gpu, ok := strings.CutPrefix(c.Device, "cuda:"); ok {
		n, _ := strconv.Atoi(gpu)
		g.Kind, g.GPUs = "KIND_GPU", []int{n}
	}
	return []InstanceGroup{g}
}

// fromTriton folds the Triton spellings of c into infergate's own fields,
// which Validate and the loader read, and clears them (Name, Platform,
// Backend, Input and Output stay: the loader checks the model against
// them). It refuses what has no counterpart, and two spellings of one
// setting that disagree.
func (c *ModelConfig) fromTriton() error {
	if c.Platform != "" && c.Platform != TritonPlatform {
		return fmt.Errorf("%w: platform %q: infergate serves ONNX models through ONNX Runtime; use %q or leave platform out", ErrBadConfig, c.Platform, TritonPlatform)
	}
	if c.Backend != "" && c.Backend != TritonBackend {
		return fmt.Errorf("%w: backend %q: infergate serves ONNX models through ONNX Runtime; use %q or leave backend out", ErrBadConfig, c.Backend, TritonBackend)
	}
	if c.DefaultModelFilename != "" {
		if c.DefaultModelFilename != "model.onnx" {
			return fmt.Errorf("%w: default_model_filename %q: infergate reads each version from model.onnx; rename the files, or leave default_model_filename out", ErrBadConfig, c.DefaultModelFilename)
		}
		c.DefaultModelFilename = ""
	}
	for _, list := range []struct {
		key string
		ts  []TensorConfig
	}{{"input", c.Input}, {"output", c.Output}} {
		for i, t := range list.ts {
			if t.Name == "" {
				return fmt.Errorf("%w: %s[%d] has no name", ErrBadConfig, list.key, i)
			}
			if _, ok := tritonDataType(t.DataType); !ok {
				return fmt.Errorf("%w: %s %q: data_type %q is not a Triton type such as TYPE_FP32", ErrBadConfig, list.key, t.Name, t.DataType)
			}
			if j := slices.IndexFunc(list.ts[:i], func(o TensorConfig) bool { return o.Name == t.Name }); j >= 0 {
				return fmt.Errorf("%w: %s lists %q twice", ErrBadConfig, list.key, t.Name)
			}
		}
	}
	if err := c.instanceGroupFromTriton(); err != nil {
		return err
	}
	if d := c.DynamicBatching; d != nil {
		return c.dynamicBatchingFromTriton(d)
	}
	return nil
}

func (c *ModelConfig) instanceGroupFromTriton() error {
	switch len(c.InstanceGroup) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("%w: instance_group has %d groups; infergate runs a version's instances on one device: give one group", ErrBadConfig, len(c.InstanceGroup))
	}
	g := c.InstanceGroup[0]
	c.InstanceGroup = nil
	if g.Count != 0 {
		if c.Instances != 0 && c.Instances != g.Count {
			return fmt.Errorf("%w: instances is %d but instance_group's count is %d; give one of them", ErrBadConfig, c.Instances, g.Count)
		}
		if g.Count < 0 {
			return fmt.Errorf("%w: instance_group's count must be between 1 and 64, got %d", ErrBadConfig, g.Count)
		}
		c.Instances = g.Count
	}
	device := ""
	switch g.Kind {
	case "KIND_CPU":
		if len(g.GPUs) > 0 {
			return fmt.Errorf("%w: instance_group of kind KIND_CPU lists gpus; leave them out, or use KIND_GPU", ErrBadConfig)
		}
		device = "cpu"
	case "KIND_GPU", "KIND_AUTO", "":
		switch {
		case len(g.GPUs) > 1:
			return fmt.Errorf("%w: instance_group lists gpus %v; infergate runs a version's instances on one GPU: list one", ErrBadConfig, g.GPUs)
		case len(g.GPUs) == 1:
			if g.GPUs[0] < 0 {
				return fmt.Errorf("%w: instance_group lists gpu %d; GPUs are numbered from 0", ErrBadConfig, g.GPUs[0])
			}
			device = "cuda:" + strconv.Itoa(g.GPUs[0])
		case g.Kind == "KIND_GPU":
			device = "cuda:0"
		}
	default:
		return fmt.Errorf("%w: instance_group's kind %q: use KIND_CPU, KIND_GPU or KIND_AUTO", ErrBadConfig, g.Kind)
	}
	if device != "" {
		if c.Device != "" && c.Device != device {
			return fmt.Errorf("%w: device is %q but instance_group places the instances on %q; give one of them", ErrBadConfig, c.Device, device)
		}
		c.Device = device
	}
	return nil
}

func (c *ModelConfig) dynamicBatchingFromTriton(d *DynamicBatching) error {
	if d.PreferredBatchSize != nil {
		if d.PreferredBatchSizes != nil && !slices.Equal(d.PreferredBatchSizes, d.PreferredBatchSize) {
			return fmt.Errorf("%w: dynamic_batching gives preferred_batch_sizes %v and preferred_batch_size %v; give one of them", ErrBadConfig, d.PreferredBatchSizes, d.PreferredBatchSize)
		}
		d.PreferredBatchSizes, d.PreferredBatchSize = d.PreferredBatchSize, nil
	}
	if p := d.MaxQueueDelayMicroseconds; p != nil {
		if d.MaxQueueDelayUS != 0 && d.MaxQueueDelayUS != int64(*p) {
			return fmt.Errorf("%w: dynamic_batching gives max_queue_delay_us %d and max_queue_delay_microseconds %d; give one of them", ErrBadConfig, d.MaxQueueDelayUS, *p)
		}
		d.MaxQueueDelayUS, d.MaxQueueDelayMicroseconds = int64(*p), nil
	}
	q := d.DefaultQueuePolicy
	if q == nil {
		return nil
	}
	d.DefaultQueuePolicy = nil
	if q.TimeoutAction != "" && q.TimeoutAction != "REJECT" {
		return fmt.Errorf("%w: dynamic_batching.default_queue_policy.timeout_action %q: infergate refuses a request whose queue time runs out (REJECT); DELAY is not supported", ErrBadConfig, q.TimeoutAction)
	}
	if q.AllowTimeoutOverride != nil && !*q.AllowTimeoutOverride {
		return fmt.Errorf("%w: dynamic_batching.default_queue_policy.allow_timeout_override false: infergate always lets a request shorten its timeout; leave it out or set it true", ErrBadConfig)
	}
	if p := q.DefaultTimeoutMicroseconds; p != nil {
		if d.DefaultQueueTimeoutUS != 0 && d.DefaultQueueTimeoutUS != int64(*p) {
			return fmt.Errorf("%w: dynamic_batching gives default_queue_timeout_us %d and default_queue_policy.default_timeout_microseconds %d; give one of them", ErrBadConfig, d.DefaultQueueTimeoutUS, *p)
		}
		d.DefaultQueueTimeoutUS = int64(*p)
	}
	if p := q.MaxQueueSize; p != nil && *p != 0 {
		// Triton's 0 means no bound; infergate's queue is always bounded,
		// and 0 takes the node's bound.
		if *p < 0 || *p > maxQueueLimit {
			return fmt.Errorf("%w: dynamic_batching.default_queue_policy.max_queue_size must be between 1 and %d, got %d", ErrBadConfig, maxQueueLimit, *p)
		}
		if c.MaxQueue != 0 && c.MaxQueue != int(*p) {
			return fmt.Errorf("%w: max_queue is %d but dynamic_batching.default_queue_policy.max_queue_size is %d; give one of them", ErrBadConfig, c.MaxQueue, *p)
		}
		c.MaxQueue = int(*p)
	}
	return nil
}

// tritonDataType returns the protocol type that Triton's type name s
// stands for.
func tritonDataType(s string) (oip.DataType, bool) {
	name, ok := strings.CutPrefix(s, "TYPE_")
	if !ok {
		return oip.InvalidType, false
	}
	if name == "STRING" {
		return oip.BYTES, true
	}
	if name == "BYTES" {
		return oip.InvalidType, false // Triton has no TYPE_BYTES
	}
	return oip.ParseDataType(name)
}

// checkModel reports where the configuration's name, input and output
// lists, checked once the model is open, disagree with model name and the
// model's tensors. batched says whether the version stacks requests, so
// that dims leave the batch dimension out.
func (c *ModelConfig) checkModel(name string, inputs, outputs []oip.TensorMetadata, batched bool) error {
	if c.Name != "" && c.Name != name {
		return fmt.Errorf("%w: the configuration names model %q, but it is loaded as %q; fix name or leave it out", ErrBadConfig, c.Name, name)
	}
	for _, list := range []struct {
		key    string
		want   []TensorConfig
		actual []oip.TensorMetadata
	}{{"input", c.Input, inputs}, {"output", c.Output, outputs}} {
		actual := TensorConfigs(list.actual, batched)
		for _, w := range list.want {
			i := slices.IndexFunc(actual, func(a TensorConfig) bool { return a.Name == w.Name })
			if i < 0 {
				names := make([]string, len(actual))
				for j, a := range actual {
					names[j] = a.Name
				}
				return fmt.Errorf("%w: %s %q is not one of the model's; its %ss are %s", ErrBadConfig, list.key, w.Name, list.key, strings.Join(names, ", "))
			}
			a := actual[i]
			if w.DataType != a.DataType {
				return fmt.Errorf("%w: %s %q is %s in the model, not %s", ErrBadConfig, list.key, w.Name, a.DataType, w.DataType)
			}
			if !slices.Equal(w.Dims, a.Dims) {
				hint := ""
				if batched {
					hint = fmt.Sprintf(" (its shape %s without the batch dimension, which dims leave out when a version batches)", formatDims(list.actual[i].Shape))
				}
				return fmt.Errorf("%w: %s %q has dims %s in the model%s, not %s", ErrBadConfig, list.key, w.Name, formatDims(a.Dims), hint, formatDims(w.Dims))
			}
		}
	}
	return nil
}

// formatDims writes dims as JSON does: [-1,64].
func formatDims[T ~int64](dims []T) string {
	b := []byte{'['}
	for i, d := range dims {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	return string(append(b, ']'))
}
