package registry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/infergate/infergate/oip"
)

// This file holds the parts of a model's configuration that Triton spells
// its own way. A user moving from Triton can load a configuration in the
// JSON form of Triton's model configuration as written (name, platform,
// backend, default_model_filename, input, output, instance_group,
// parameters, and dynamic_batching's preferred_batch_size,
// max_queue_delay_microseconds and default_queue_policy; the settings
// infergate has not, at their defaults, in config_schema.go), and GET
// /v2/models/{m}/config answers with the same fields, as Triton does.
// Every such field maps onto one of infergate's own; a configuration that
// gives both spellings must give one value.

// TritonPlatform and TritonBackend are the only platform and backend a
// configuration may name: infergate runs ONNX models on ONNX Runtime.
const (
	TritonPlatform = "onnxruntime_onnx"
	TritonBackend  = "onnxruntime"
)

// TensorConfig is one entry of a configuration's input or output list:
// what the model's tensor of that name must be. For a version that
// batches (ModelConfig.Batched), Dims leave the batch dimension out, as
// Triton's do when max_batch_size is above 0.
type TensorConfig struct {
	Name string `json:"name"`
	// DataType is Triton's name of the type: TYPE_FP32, TYPE_STRING for
	// the protocol's BYTES, and so on.
	DataType string  `json:"data_type"`
	Dims     []int64 `json:"dims"`
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

// TritonParameter is the value of one of Triton's model parameters.
type TritonParameter struct {
	StringValue string `json:"string_value"`
}

// QueuePolicy is Triton's default_queue_policy, as far as infergate's
// batcher has the same settings: a request that waits past the timeout is
// refused (timeout_action REJECT).
type QueuePolicy struct {
	TimeoutAction              string `json:"timeout_action,omitempty"`
	DefaultTimeoutMicroseconds *int64 `json:"default_timeout_microseconds,omitempty"`
	AllowTimeoutOverride       *bool  `json:"allow_timeout_override,omitempty"`
	MaxQueueSize               *int64 `json:"max_queue_size,omitempty"`
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
		out[i] = TensorConfig{Name: t.Name, DataType: tritonType(t.Datatype), Dims: slices.Clone(shape)}
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
// which Validate and the loader read, and clears them; Name, Input and
// Output stay, for the loader to check the model against. It refuses
// what has no counterpart, values out of range (under Triton's names),
// and two spellings of one setting that disagree. where names a field's
// place in the text, by its path.
func (c *ModelConfig) fromTriton(where func(string) string) error {
	bad := func(path, format string, args ...any) error {
		return fmt.Errorf("%w: %s%s", ErrBadConfig, where(path), fmt.Sprintf(format, args...))
	}
	if c.Platform != "" && c.Platform != TritonPlatform {
		return bad("platform", "platform %q: infergate serves ONNX models through ONNX Runtime; use %q or leave platform out", c.Platform, TritonPlatform)
	}
	if c.Backend != "" && c.Backend != TritonBackend {
		return bad("backend", "backend %q: infergate serves ONNX models through ONNX Runtime; use %q or leave backend out", c.Backend, TritonBackend)
	}
	if c.DefaultModelFilename != "" && c.DefaultModelFilename != "model.onnx" {
		return bad("default_model_filename", "default_model_filename %q: infergate reads each version from model.onnx; rename the files, or leave default_model_filename out", c.DefaultModelFilename)
	}
	// Checked: they say nothing more.
	c.Platform, c.Backend, c.DefaultModelFilename = "", "", ""
	for _, list := range []struct {
		key string
		ts  []TensorConfig
	}{{"input", c.Input}, {"output", c.Output}} {
		seen := make(map[string]bool, len(list.ts))
		for i, t := range list.ts {
			path := fmt.Sprintf("%s[%d]", list.key, i)
			if t.Name == "" {
				return bad(path, "%s has no name", path)
			}
			if _, ok := tritonDataType(t.DataType); !ok {
				return bad(path+".data_type", "%s %q: data_type %q is not a Triton type such as TYPE_FP32", list.key, t.Name, t.DataType)
			}
			if seen[t.Name] {
				return bad(path+".name", "%s lists %q twice", list.key, t.Name)
			}
			seen[t.Name] = true
		}
	}
	if err := c.instanceGroupFromTriton(bad); err != nil {
		return err
	}
	if err := c.parametersFromTriton(bad); err != nil {
		return err
	}
	if err := c.checkWarmup(bad); err != nil {
		return err
	}
	if d := c.DynamicBatching; d != nil {
		return c.dynamicBatchingFromTriton(d, bad)
	}
	return nil
}

func (c *ModelConfig) instanceGroupFromTriton(bad func(path, format string, args ...any) error) error {
	switch len(c.InstanceGroup) {
	case 0:
		return nil
	case 1:
	default:
		return bad("instance_group", "instance_group has %d groups; infergate runs a version's instances on one device: give one group", len(c.InstanceGroup))
	}
	g := c.InstanceGroup[0]
	c.InstanceGroup = nil
	count := g.Count
	if count < 0 || count > maxInstances {
		return bad("instance_group.count", "instance_group's count must be between 1 and %d, got %d", maxInstances, count)
	}
	switch {
	case count == 0 && c.Instances == 0:
		count = 1 // as Triton counts a group that gives none
	case count == 0:
		count = c.Instances
	case c.Instances != 0 && c.Instances != count:
		return bad("instance_group.count", "instances is %d but instance_group's count is %d; give one of them", c.Instances, count)
	}
	c.Instances = count
	device := ""
	switch g.Kind {
	case "KIND_CPU":
		if len(g.GPUs) > 0 {
			return bad("instance_group.kind", "instance_group of kind KIND_CPU lists gpus; leave them out, or use KIND_GPU")
		}
		device = "cpu"
	case "KIND_GPU", "KIND_AUTO", "":
		switch {
		case len(g.GPUs) > 1:
			return bad("instance_group.gpus", "instance_group lists gpus %v; infergate runs a version's instances on one GPU: list one", g.GPUs)
		case len(g.GPUs) == 1:
			if g.GPUs[0] < 0 || g.GPUs[0] > 999 {
				return bad("instance_group.gpus", "instance_group lists gpu %d; GPUs are numbered 0 to 999", g.GPUs[0])
			}
			device = "cuda:" + strconv.Itoa(g.GPUs[0])
		case g.Kind == "KIND_GPU":
			// Triton's "every GPU": the node's, or the first.
			if c.Device == "cpu" {
				return bad("instance_group.kind", "device is \"cpu\" but instance_group's kind is KIND_GPU; give one of them")
			}
			if c.Device == "" {
				c.anyGPU = true
			}
		}
	default:
		return bad("instance_group.kind", "instance_group's kind %q: use KIND_CPU, KIND_GPU or KIND_AUTO", g.Kind)
	}
	if device != "" {
		if c.Device != "" && c.Device != device {
			return bad("instance_group", "device is %q but instance_group places the instances on %q; give one of them", c.Device, device)
		}
		c.Device = device
	}
	return nil
}

// parametersFromTriton folds the ONNX Runtime backend's thread counts
// into IntraOpThreads and InterOpThreads, its session sharing into
// ShareSession and its CPU memory arena into CPUMemArena; other
// parameters are refused.
func (c *ModelConfig) parametersFromTriton(bad func(path, format string, args ...any) error) error {
	params := c.Parameters
	c.Parameters = nil
	keys := slices.Sorted(maps.Keys(params))
	for _, k := range keys {
		path := "parameters." + k
		var dst *int
		switch k {
		case "intra_op_thread_count":
			dst = &c.IntraOpThreads
		case "inter_op_thread_count":
			dst = &c.InterOpThreads
		case "share_session_between_instances":
			// Triton's backend reads it as a boolean string.
			on, err := strconv.ParseBool(params[k].StringValue)
			if err != nil {
				return bad(path, "parameters: %s must be a string_value of \"true\" or \"false\", got %q", k, params[k].StringValue)
			}
			if c.ShareSession && !on {
				return bad(path, "parameters: %s is \"false\" but the configuration's own share_session is true; give one of them", k)
			}
			c.ShareSession = on
			continue
		case "enable_mem_arena":
			// Triton's backend reads "0" or "1"; a boolean word as well.
			on, err := strconv.ParseBool(params[k].StringValue)
			if err != nil {
				return bad(path, "parameters: %s must be a string_value of \"1\" or \"0\", got %q", k, params[k].StringValue)
			}
			if c.CPUMemArena != nil && *c.CPUMemArena != on {
				return bad(path, "parameters: %s is %q but the configuration's own cpu_mem_arena is %v; give one of them", k, params[k].StringValue, *c.CPUMemArena)
			}
			c.CPUMemArena = &on
			continue
		default:
			return bad(path, "parameters: %q is not one infergate reads; it reads intra_op_thread_count, inter_op_thread_count, share_session_between_instances and enable_mem_arena", k)
		}
		n, err := strconv.Atoi(params[k].StringValue)
		if err != nil || n < 0 || n > 256 {
			return bad(path, "parameters: %s must be a string_value of 0 to 256, got %q", k, params[k].StringValue)
		}
		if n == 0 {
			continue // ONNX Runtime chooses in Triton; here the node's flag does
		}
		if *dst != 0 && *dst != n {
			return bad(path, "parameters: %s is %d but the configuration's own thread count is %d; give one of them", k, n, *dst)
		}
		*dst = n
	}
	return nil
}

func (c *ModelConfig) dynamicBatchingFromTriton(d *DynamicBatching, bad func(path, format string, args ...any) error) error {
	if d.PreferredBatchSize != nil {
		for _, p := range d.PreferredBatchSize {
			if !c.preferredFits(p) {
				return bad("dynamic_batching.preferred_batch_size", "dynamic_batching.preferred_batch_size holds %d; each must be between 1 and max_batch_size", p)
			}
		}
		if d.PreferredBatchSizes != nil && !slices.Equal(d.PreferredBatchSizes, d.PreferredBatchSize) {
			return bad("dynamic_batching.preferred_batch_size", "dynamic_batching gives preferred_batch_sizes %v and preferred_batch_size %v; give one of them", d.PreferredBatchSizes, d.PreferredBatchSize)
		}
		d.PreferredBatchSizes, d.PreferredBatchSize = d.PreferredBatchSize, nil
	}
	if p := d.MaxQueueDelayMicroseconds; p != nil {
		if *p < 0 || *p > maxQueueDelayUS {
			return bad("dynamic_batching.max_queue_delay_microseconds", "dynamic_batching.max_queue_delay_microseconds must be between 0 and %d (10 s), got %d", int64(maxQueueDelayUS), *p)
		}
		if d.MaxQueueDelayUS != nil && *d.MaxQueueDelayUS != *p {
			return bad("dynamic_batching.max_queue_delay_microseconds", "dynamic_batching gives max_queue_delay_us %d and max_queue_delay_microseconds %d; give one of them", *d.MaxQueueDelayUS, *p)
		}
		d.MaxQueueDelayUS, d.MaxQueueDelayMicroseconds = p, nil
	}
	q := d.DefaultQueuePolicy
	if q == nil {
		return nil
	}
	d.DefaultQueuePolicy = nil
	if q.TimeoutAction != "" && q.TimeoutAction != "REJECT" {
		return bad("dynamic_batching.default_queue_policy.timeout_action", "dynamic_batching.default_queue_policy.timeout_action %q: infergate refuses a request whose queue time runs out (REJECT); DELAY is not supported", q.TimeoutAction)
	}
	if p := q.AllowTimeoutOverride; p != nil {
		if d.AllowTimeoutOverride != nil && *d.AllowTimeoutOverride != *p {
			return bad("dynamic_batching.default_queue_policy.allow_timeout_override", "dynamic_batching gives allow_timeout_override %v and default_queue_policy.allow_timeout_override %v; give one of them", *d.AllowTimeoutOverride, *p)
		}
		d.AllowTimeoutOverride = p
	}
	if p := q.DefaultTimeoutMicroseconds; p != nil {
		if *p < 0 || *p > maxQueueTimeoutUS {
			return bad("dynamic_batching.default_queue_policy.default_timeout_microseconds", "dynamic_batching.default_queue_policy.default_timeout_microseconds must be between 0 and %d (1 h), got %d", int64(maxQueueTimeoutUS), *p)
		}
		if d.DefaultQueueTimeoutUS != 0 && d.DefaultQueueTimeoutUS != *p {
			return bad("dynamic_batching.default_queue_policy.default_timeout_microseconds", "dynamic_batching gives default_queue_timeout_us %d and default_queue_policy.default_timeout_microseconds %d; give one of them", d.DefaultQueueTimeoutUS, *p)
		}
		d.DefaultQueueTimeoutUS = *p
	}
	if p := q.MaxQueueSize; p != nil && *p != 0 {
		// Triton's 0 means no bound; infergate's queue is always bounded,
		// and 0 takes the node's bound.
		if *p < 0 || *p > maxQueueLimit {
			return bad("dynamic_batching.default_queue_policy.max_queue_size", "dynamic_batching.default_queue_policy.max_queue_size must be between 1 and %d, got %d", maxQueueLimit, *p)
		}
		if c.MaxQueue != 0 && c.MaxQueue != int(*p) {
			return bad("dynamic_batching.default_queue_policy.max_queue_size", "max_queue is %d but dynamic_batching.default_queue_policy.max_queue_size is %d; give one of them", c.MaxQueue, *p)
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

// CheckModel reports where c's name, input and output lists disagree
// with model name and a version whose tensors are inputs and outputs. The
// dims of a version that batches (see Batched) leave the batch dimension
// out, as Triton's do when max_batch_size is above 0.
func (c *ModelConfig) CheckModel(name string, inputs, outputs []oip.TensorMetadata) error {
	if c.Name != "" && c.Name != name {
		return fmt.Errorf("%w: the configuration names model %q, but it is loaded as %q; fix name or leave it out", ErrBadConfig, c.Name, name)
	}
	batched := c.Batched(inputs, outputs)
	for _, list := range []struct {
		key    string
		want   []TensorConfig
		actual []oip.TensorMetadata
	}{{"input", c.Input, inputs}, {"output", c.Output, outputs}} {
		actual := TensorConfigs(list.actual, batched)
		for _, w := range list.want {
			i := slices.IndexFunc(actual, func(a TensorConfig) bool { return a.Name == w.Name })
			if i < 0 {
				return fmt.Errorf("%w: %s %q is not one of the model's; its %ss are %s", ErrBadConfig, list.key, w.Name, list.key, tensorNames(list.actual))
			}
			a := actual[i]
			if w.DataType != a.DataType {
				return fmt.Errorf("%w: %s %q is %s in the model, not %s", ErrBadConfig, list.key, w.Name, a.DataType, w.DataType)
			}
			if narrows(w.Dims, a.Dims) {
				return fmt.Errorf("%w: %s %q has dims %s in the model; %s fixes a dimension it leaves variable (-1), which infergate would not check requests against: write -1 there", ErrBadConfig, list.key, w.Name, oip.FormatShape(a.Dims), oip.FormatShape(w.Dims))
			}
			if !slices.Equal(w.Dims, a.Dims) {
				hint := ""
				switch {
				case batched:
					hint = fmt.Sprintf(" (its shape %s without the batch dimension, which dims leave out when max_batch_size is above 0)", oip.FormatShape(list.actual[i].Shape))
				case batchable(inputs) && batchable(outputs):
					hint = " (its whole shape: max_batch_size 0 says the model has no batch dimension)"
				}
				return fmt.Errorf("%w: %s %q has dims %s in the model%s, not %s", ErrBadConfig, list.key, w.Name, oip.FormatShape(a.Dims), hint, oip.FormatShape(w.Dims))
			}
		}
	}
	return c.checkWarmupModel(inputs, batched)
}

// checkWarmupModel reports a model_warmup sample that does not fit a
// version whose inputs are inputs: one that leaves an input out, names
// one the model has not, or gives one another type or shape (built as
// Warmups builds it, the batch dimension first when batched).
func (c *ModelConfig) checkWarmupModel(inputs []oip.TensorMetadata, batched bool) error {
	for _, s := range c.ModelWarmup {
		if !batched && s.BatchSize > 1 {
			return fmt.Errorf("%w: model_warmup %q: batch_size is %d, but this version has no batch dimension: leave batch_size out and give the whole shapes as dims", ErrBadConfig, s.Name, s.BatchSize)
		}
		for _, in := range inputs {
			if _, ok := s.Inputs[in.Name]; !ok {
				return fmt.Errorf("%w: model_warmup %q gives no input %q; a warm-up gives every input of the model", ErrBadConfig, s.Name, in.Name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
			w := s.Inputs[name]
			i := slices.IndexFunc(inputs, func(m oip.TensorMetadata) bool { return m.Name == name })
			if i < 0 {
				return fmt.Errorf("%w: model_warmup %q gives input %q, which the model has not; its inputs are %s", ErrBadConfig, s.Name, name, tensorNames(inputs))
			}
			m := inputs[i]
			if dt, _ := tritonDataType(w.DataType); dt != m.Datatype {
				return fmt.Errorf("%w: model_warmup %q input %q is %s, but the model takes %s (TYPE_%s)", ErrBadConfig, s.Name, name, w.DataType, m.Datatype, m.Datatype)
			}
			shape := w.Dims
			if batched {
				shape = append([]int64{max(s.BatchSize, 1)}, w.Dims...)
			}
			if !fits(shape, m.Shape) {
				hint := ""
				if batched {
					hint = fmt.Sprintf(" (batch_size %d, then dims %s: the model batches, so dims leave the batch dimension out)", max(s.BatchSize, 1), oip.FormatShape(w.Dims))
				} else {
					hint = " (dims are the whole shape: the model has no batch dimension)"
				}
				return fmt.Errorf("%w: model_warmup %q input %q has shape %s%s, which the model's %s does not take", ErrBadConfig, s.Name, name, oip.FormatShape(shape), hint, oip.FormatShape(m.Shape))
			}
		}
	}
	return nil
}

// fits reports whether a tensor of shape fits a model's shape, where -1
// takes any size.
func fits(shape, model []int64) bool {
	if len(shape) != len(model) {
		return false
	}
	for i := range model {
		if model[i] >= 0 && model[i] != shape[i] {
			return false
		}
	}
	return true
}

// tensorNames lists the names of ts, comma-separated.
func tensorNames(ts []oip.TensorMetadata) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// Batched reports whether a version whose tensors are inputs and outputs
// stacks requests along a batch dimension under c: every tensor has a
// variable first dimension, and c does not say there is none
// (max_batch_size 0).
func (c *ModelConfig) Batched(inputs, outputs []oip.TensorMetadata) bool {
	return !c.noBatchDim && batchable(inputs) && batchable(outputs)
}

// narrows reports whether dims want fix some dimension that dims model
// leaves variable, and agree with it elsewhere.
func narrows(want, model []int64) bool {
	if len(want) != len(model) {
		return false
	}
	fixed := false
	for j := range model {
		switch {
		case want[j] == model[j]:
		case model[j] < 0 && want[j] >= 0:
			fixed = true
		default:
			return false
		}
	}
	return fixed
}
