package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ModelConfig is a model's config.json. Every field is optional; a zero
// value takes the node's default (the serve flags), except a
// max_batch_size written as 0 (see noBatchDim). Unknown fields are an
// error, so that a typo does not silently fall back to a default.
type ModelConfig struct {
	// Name, when set, must be the model's name (Triton's configurations
	// carry it).
	Name string `json:"name,omitempty"`
	// Platform and Backend, when set, must be TritonPlatform and
	// TritonBackend.
	Platform string `json:"platform,omitempty"`
	Backend  string `json:"backend,omitempty"`
	// DefaultModelFilename, when set, must be "model.onnx", the one file
	// name infergate reads in a version's directory.
	DefaultModelFilename string `json:"default_model_filename,omitempty"`
	// VersionPolicy picks which versions on disk are served.
	VersionPolicy VersionPolicy `json:"version_policy"`
	// Instances is the number of inferences run in parallel, each on an
	// ONNX Runtime session of its own unless ShareSession is set.
	Instances int `json:"instances,omitempty"`
	// ShareSession runs the instances on one session, which holds the
	// weights once: memory does not grow with Instances.
	ShareSession bool `json:"share_session,omitempty"`
	// CPUMemArena false turns off ONNX Runtime's CPU memory arena for the
	// model's sessions: the memory a run takes goes back once it ends,
	// rather than staying with the session for later runs, at a few
	// percent of speed. Nil, or true, keeps the arena (ONNX Runtime's
	// default).
	CPUMemArena *bool `json:"cpu_mem_arena,omitempty"`
	// IntraOpThreads and InterOpThreads are ONNX Runtime's thread pools
	// per session.
	IntraOpThreads int `json:"intra_op_threads,omitempty"`
	InterOpThreads int `json:"inter_op_threads,omitempty"`
	// Device is "cpu" or "cuda:N".
	Device string `json:"device,omitempty"`
	// MaxBatchSize is the most rows the dynamic batcher packs into one
	// execution; 1 turns batching off. A single request with more rows
	// still runs, alone. Left out it takes the node's default; written as
	// 0 it says, as in Triton, that the model has no batch dimension.
	MaxBatchSize int64 `json:"max_batch_size,omitempty"`
	// MaxQueue bounds the requests waiting for an instance of one version;
	// more are refused with 503 at once.
	MaxQueue int `json:"max_queue,omitempty"`
	// MaxOutputBytes bounds the outputs of one execution (a batch); a
	// request whose outputs would be larger gets 413. 0 takes the node
	// default.
	MaxOutputBytes int64 `json:"max_output_bytes,omitempty"`
	// DynamicBatching tunes the batcher; nil takes the node default.
	DynamicBatching *DynamicBatching `json:"dynamic_batching,omitempty"`
	// ResponseCache enables the node's response cache for this model.
	ResponseCache *ResponseCache `json:"response_cache,omitempty"`
	// Input and Output, when set, are what the model's tensors of those
	// names must be; a version whose tensors differ fails to load.
	Input  []TensorConfig `json:"input,omitempty"`
	Output []TensorConfig `json:"output,omitempty"`
	// InstanceGroup is Triton's spelling of Instances and Device.
	InstanceGroup []InstanceGroup `json:"instance_group,omitempty"`
	// Parameters are the ONNX Runtime backend's parameters in Triton's
	// spelling: intra_op_thread_count, inter_op_thread_count,
	// share_session_between_instances and enable_mem_arena, folded into
	// IntraOpThreads, InterOpThreads, ShareSession and CPUMemArena.
	Parameters map[string]TritonParameter `json:"parameters,omitempty"`
	// ModelWarmup lists inferences each instance runs before a version
	// serves (Triton's model_warmup; see WarmupSample).
	ModelWarmup []WarmupSample `json:"model_warmup,omitempty"`

	// noBatchDim records a max_batch_size given as 0, Triton's way of
	// saying that the model's first dimension is not a batch: requests
	// are never stacked, and the dims of Input and Output are the whole
	// shapes. (Left out, max_batch_size takes the node's default.)
	noBatchDim bool
	// anyGPU records an instance_group of kind KIND_GPU that names no
	// GPU: the node's CUDA device when it has one, else cuda:0.
	anyGPU bool
	// warmupDir is the model's warmup directory, set by the registry on
	// the copy it hands a LoadFunc (see Warmups).
	warmupDir string
}

// DynamicBatching configures the batcher of a model, in the spirit of
// Triton's dynamic_batching block.
type DynamicBatching struct {
	// Enabled turns batching off when false; nil means on.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxQueueDelayUS lets an idle instance wait this long to fill a
	// preferred batch; 0 dispatches at once (best on CPUs). Nil, left
	// out, takes the node's (serve --max-queue-delay).
	MaxQueueDelayUS *int64 `json:"max_queue_delay_us,omitempty"`
	// PreferredBatchSizes are the batch sizes (rows) to aim for.
	PreferredBatchSizes []int `json:"preferred_batch_sizes,omitempty"`
	// PreferredBatchSize, MaxQueueDelayMicroseconds and
	// DefaultQueuePolicy are Triton's spellings, folded into the fields
	// above (and into ModelConfig.MaxQueue) when parsed.
	PreferredBatchSize        []int        `json:"preferred_batch_size,omitempty"`
	MaxQueueDelayMicroseconds *int64       `json:"max_queue_delay_microseconds,omitempty"`
	DefaultQueuePolicy        *QueuePolicy `json:"default_queue_policy,omitempty"`
	// PriorityLevels is the number of request priorities, 1 the highest;
	// DefaultPriorityLevel applies to requests that give none.
	PriorityLevels       int `json:"priority_levels,omitempty"`
	DefaultPriorityLevel int `json:"default_priority_level,omitempty"`
	// AllowTimeoutOverride false makes the version ignore the timeout
	// parameter of its requests, as Triton's queue policy of that name
	// does: they wait as long as the server's and the model's own bounds
	// let them. Nil means true: a request may shorten its wait.
	AllowTimeoutOverride *bool `json:"allow_timeout_override,omitempty"`
	// DefaultQueueTimeoutUS bounds the queue time of requests that give no
	// timeout; 0 leaves it to the server's request timeout.
	DefaultQueueTimeoutUS int64 `json:"default_queue_timeout_us,omitempty"`
	// PriorityQueuePolicy gives priority levels queue policies of their
	// own, keyed by level ("1" is the highest), in Triton's spelling: a
	// level's max_queue_size bounds its own waiting requests (within
	// max_queue, which bounds them all; 0 sets no bound of its own), its
	// default_timeout_microseconds takes the place of
	// default_queue_timeout_us for its requests, and its
	// allow_timeout_override the place of allow_timeout_override. A
	// field a level's policy leaves out takes the model's setting.
	PriorityQueuePolicy map[string]QueuePolicy `json:"priority_queue_policy,omitempty"`
}

// TimeoutOverride reports whether the own timeouts of requests of
// priority level apply under d (nil means yes).
func (d *DynamicBatching) TimeoutOverride(level int) bool {
	if d == nil {
		return true
	}
	if p := d.PriorityQueuePolicy[strconv.Itoa(level)].AllowTimeoutOverride; p != nil {
		return *p
	}
	return d.AllowTimeoutOverride == nil || *d.AllowTimeoutOverride
}

// checkPriorityQueuePolicy reports the first bad setting of d's priority
// queue policies.
func (d *DynamicBatching) checkPriorityQueuePolicy() error {
	levels := max(d.PriorityLevels, 1)
	for _, k := range slices.Sorted(maps.Keys(d.PriorityQueuePolicy)) {
		q := d.PriorityQueuePolicy[k]
		path := "dynamic_batching.priority_queue_policy." + k
		if level, err := strconv.Atoi(k); err != nil || level < 1 || level > levels || strconv.Itoa(level) != k {
			return fmt.Errorf("%w: dynamic_batching.priority_queue_policy has a policy for priority %q; its keys are priority levels, 1 to priority_levels (%d)", ErrBadConfig, k, levels)
		}
		switch {
		case q.TimeoutAction != "" && q.TimeoutAction != "REJECT":
			return fmt.Errorf("%w: %s.timeout_action %q: infergate refuses a request whose queue time runs out (REJECT); DELAY is not supported", ErrBadConfig, path, q.TimeoutAction)
		case q.DefaultTimeoutMicroseconds != nil && (*q.DefaultTimeoutMicroseconds < 0 || *q.DefaultTimeoutMicroseconds > maxQueueTimeoutUS):
			return fmt.Errorf("%w: %s.default_timeout_microseconds must be between 0 and %d (1 h), got %d", ErrBadConfig, path, int64(maxQueueTimeoutUS), *q.DefaultTimeoutMicroseconds)
		case q.MaxQueueSize != nil && (*q.MaxQueueSize < 0 || *q.MaxQueueSize > maxQueueLimit):
			return fmt.Errorf("%w: %s.max_queue_size must be between 0 (no bound of the level's own) and %d, got %d", ErrBadConfig, path, maxQueueLimit, *q.MaxQueueSize)
		}
	}
	return nil
}

// On reports whether batching is enabled by d (nil means yes).
func (d *DynamicBatching) On() bool {
	return d == nil || d.Enabled == nil || *d.Enabled
}

// ResponseCache configures the response cache of a model.
type ResponseCache struct {
	Enable bool `json:"enable"`
}

// VersionPolicy follows Triton's version_policy: exactly one of Latest,
// All and Specific may be set; none set means Latest with one version.
type VersionPolicy struct {
	Latest   *LatestPolicy   `json:"latest,omitempty"`
	All      *struct{}       `json:"all,omitempty"`
	Specific *SpecificPolicy `json:"specific,omitempty"`
}

// LatestPolicy serves the NumVersions highest versions.
type LatestPolicy struct {
	NumVersions int `json:"num_versions"`
}

// SpecificPolicy serves exactly the listed versions that exist.
type SpecificPolicy struct {
	Versions []int64 `json:"versions"`
}

// Validate reports the first problem of c in words a person can act on.
func (c *ModelConfig) Validate() error {
	p := c.VersionPolicy
	n := 0
	if p.Latest != nil {
		n++
		if p.Latest.NumVersions < 1 {
			return fmt.Errorf("%w: version_policy.latest.num_versions must be at least 1, got %d", ErrBadConfig, p.Latest.NumVersions)
		}
	}
	if p.All != nil {
		n++
	}
	if p.Specific != nil {
		n++
		if len(p.Specific.Versions) == 0 {
			return fmt.Errorf("%w: version_policy.specific.versions is empty; list at least one version", ErrBadConfig)
		}
		for _, v := range p.Specific.Versions {
			if v < 1 {
				return fmt.Errorf("%w: version_policy.specific.versions holds %d; versions are positive integers", ErrBadConfig, v)
			}
		}
	}
	if n > 1 {
		return fmt.Errorf("%w: version_policy sets more than one of latest, all, specific; keep one", ErrBadConfig)
	}
	switch {
	case c.Instances < 0 || c.Instances > maxInstances:
		return fmt.Errorf("%w: instances must be between 1 and %d, got %d", ErrBadConfig, maxInstances, c.Instances)
	case c.IntraOpThreads < 0 || c.IntraOpThreads > 256:
		return fmt.Errorf("%w: intra_op_threads must be between 1 and 256, got %d", ErrBadConfig, c.IntraOpThreads)
	case c.InterOpThreads < 0 || c.InterOpThreads > 256:
		return fmt.Errorf("%w: inter_op_threads must be between 1 and 256, got %d", ErrBadConfig, c.InterOpThreads)
	case c.MaxBatchSize < 0 || c.MaxBatchSize > 1<<16:
		return fmt.Errorf("%w: max_batch_size must be between 1 and 65536 (or 0: the model has no batch dimension), got %d", ErrBadConfig, c.MaxBatchSize)
	case c.MaxOutputBytes < 0:
		return fmt.Errorf("%w: max_output_bytes must not be negative, got %d", ErrBadConfig, c.MaxOutputBytes)
	case c.MaxQueue < 0 || c.MaxQueue > maxQueueLimit:
		return fmt.Errorf("%w: max_queue must be between 1 and %d, got %d", ErrBadConfig, maxQueueLimit, c.MaxQueue)
	}
	if c.Device != "" && c.Device != "cpu" && !cudaDevice.MatchString(c.Device) {
		return fmt.Errorf("%w: device %q: use \"cpu\" or \"cuda:N\"", ErrBadConfig, c.Device)
	}
	if d := c.DynamicBatching; d != nil {
		switch {
		case d.MaxQueueDelayUS != nil && (*d.MaxQueueDelayUS < 0 || *d.MaxQueueDelayUS > maxQueueDelayUS):
			return fmt.Errorf("%w: dynamic_batching.max_queue_delay_us must be between 0 and %d (10 s), got %d", ErrBadConfig, int64(maxQueueDelayUS), *d.MaxQueueDelayUS)
		case d.PriorityLevels < 0 || d.PriorityLevels > 16:
			return fmt.Errorf("%w: dynamic_batching.priority_levels must be between 1 and 16, got %d", ErrBadConfig, d.PriorityLevels)
		case d.DefaultPriorityLevel < 0 || d.DefaultPriorityLevel > max(d.PriorityLevels, 1):
			return fmt.Errorf("%w: dynamic_batching.default_priority_level must be between 1 and priority_levels (%d), got %d", ErrBadConfig, max(d.PriorityLevels, 1), d.DefaultPriorityLevel)
		case d.DefaultQueueTimeoutUS < 0 || d.DefaultQueueTimeoutUS > maxQueueTimeoutUS:
			return fmt.Errorf("%w: dynamic_batching.default_queue_timeout_us must be between 0 and %d (1 h), got %d", ErrBadConfig, int64(maxQueueTimeoutUS), d.DefaultQueueTimeoutUS)
		}
		if err := d.checkPriorityQueuePolicy(); err != nil {
			return err
		}
		if c.noBatchDim && len(d.PreferredBatchSizes) > 0 {
			return fmt.Errorf("%w: dynamic_batching.preferred_batch_sizes are given with max_batch_size 0, which says the model has no batch dimension; leave them out, or give max_batch_size", ErrBadConfig)
		}
		for _, p := range d.PreferredBatchSizes {
			if !c.preferredFits(p) {
				return fmt.Errorf("%w: dynamic_batching.preferred_batch_sizes holds %d; each must be between 1 and max_batch_size", ErrBadConfig, p)
			}
		}
	}
	return nil
}

// preferredFits reports whether preferred batch size p fits c: at least
// 1, and above max_batch_size only where it would not be used. Batching
// off (max_batch_size 1, enabled false) keeps preferred sizes for when it
// is on again, and a configuration seen with the node's defaults filled
// in loads back.
func (c *ModelConfig) preferredFits(p int) bool {
	d := c.DynamicBatching
	return p >= 1 && (c.MaxBatchSize <= 1 || !d.On() || int64(p) <= c.MaxBatchSize)
}

var cudaDevice = regexp.MustCompile(`^cuda:[0-9]{1,3}$`)

const (
	// maxInstances bounds instances: sessions of one version.
	maxInstances = 64
	// maxQueueDelayUS bounds max_queue_delay_us: 10 s.
	maxQueueDelayUS = 10_000_000
	// maxQueueLimit bounds max_queue: each waiting request holds its
	// inputs, and instances × max_batch_size + max_queue, the requests a
	// version admits, must not overflow.
	maxQueueLimit = 1 << 20
	// maxQueueTimeoutUS bounds default_queue_timeout_us: an hour in a
	// queue is already no answer, and the bound keeps the microseconds'
	// conversion to a time.Duration from overflowing.
	maxQueueTimeoutUS = 3_600_000_000
)

// checkMerged reports what Validate cannot see in a model's own
// configuration, own, once the node's defaults have filled it in as c:
// the preferred batch sizes and the warm-up samples' batch_size against a
// max_batch_size the node gave.
// Checked before any file is read, it spares loading a model only for the
// batcher to refuse it.
func (c ModelConfig) checkMerged(own ModelConfig) error {
	if own.MaxBatchSize == 0 && !c.noBatchDim && c.MaxBatchSize > 0 {
		for _, s := range c.ModelWarmup {
			if s.BatchSize > c.MaxBatchSize {
				return fmt.Errorf("%w: model_warmup %q: batch_size %d is above max_batch_size %d (the node's default, serve --max-batch-size); lower batch_size, or set max_batch_size in the model's configuration",
					ErrBadConfig, s.Name, s.BatchSize, c.MaxBatchSize)
			}
		}
	}
	d := c.DynamicBatching
	if d == nil {
		return nil
	}
	for _, p := range d.PreferredBatchSizes {
		if !c.preferredFits(p) {
			from := ""
			if own.MaxBatchSize == 0 {
				from = " (the node's default, serve --max-batch-size)"
			}
			return fmt.Errorf("%w: dynamic_batching.preferred_batch_sizes holds %d, above max_batch_size %d%s; lower the preferred size, or set max_batch_size in the model's configuration",
				ErrBadConfig, p, c.MaxBatchSize, from)
		}
	}
	return nil
}

// withDefaults returns c with every unset field taken from d.
func (c ModelConfig) withDefaults(d ModelConfig) ModelConfig {
	if c.VersionPolicy.Latest == nil && c.VersionPolicy.All == nil && c.VersionPolicy.Specific == nil {
		c.VersionPolicy = d.VersionPolicy
		if c.VersionPolicy.Latest == nil && c.VersionPolicy.All == nil && c.VersionPolicy.Specific == nil {
			c.VersionPolicy.Latest = &LatestPolicy{NumVersions: 1}
		}
	}
	if c.Instances == 0 {
		c.Instances = d.Instances
	}
	if c.IntraOpThreads == 0 {
		c.IntraOpThreads = d.IntraOpThreads
	}
	if c.InterOpThreads == 0 {
		c.InterOpThreads = d.InterOpThreads
	}
	if c.Device == "" {
		c.Device = d.Device
		if c.anyGPU && !strings.HasPrefix(c.Device, "cuda:") {
			c.Device = "cuda:0"
		}
	}
	if c.MaxBatchSize == 0 && !c.noBatchDim {
		c.MaxBatchSize = d.MaxBatchSize
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = d.MaxOutputBytes
	}
	if c.DynamicBatching == nil {
		c.DynamicBatching = d.DynamicBatching
	} else if c.DynamicBatching.MaxQueueDelayUS == nil && d.DynamicBatching != nil && d.DynamicBatching.MaxQueueDelayUS != nil {
		// A block that leaves the delay out takes the node's.
		db := *c.DynamicBatching
		db.MaxQueueDelayUS = d.DynamicBatching.MaxQueueDelayUS
		c.DynamicBatching = &db
	}
	if c.ResponseCache == nil {
		c.ResponseCache = d.ResponseCache
	}
	return c
}

// ParseModelConfig decodes and validates a config.json body.
func ParseModelConfig(data []byte) (ModelConfig, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return ModelConfig{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return ModelConfig{}, fmt.Errorf("%w: %s", ErrBadConfig, err)
	}
	if dec.More() {
		return ModelConfig{}, fmt.Errorf("%w: trailing data after the JSON object", ErrBadConfig)
	}
	return parseTree(tree, func(string) string { return "" })
}

// parseTree reads a configuration from its tree of JSON values (objects
// as maps, numbers as json.Number); where names a field's place in the
// text, by its path.
func parseTree(tree any, where func(path string) string) (ModelConfig, error) {
	var c ModelConfig
	m, ok := tree.(map[string]any)
	if !ok {
		return c, fmt.Errorf("%w: a configuration is an object of fields, not %s", ErrBadConfig, jsonKind(tree))
	}
	tree, err := checkTree(m, configType, "", where)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if err := decodeTree(tree, &c, where); err != nil {
		return c, err
	}
	if isZero(m["max_batch_size"]) {
		// Triton's 0: the model has no batch dimension (see noBatchDim).
		c.noBatchDim = true
	}
	if err := c.fromTriton(where); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// isZero reports whether v, a value of a checked tree, is the number 0.
func isZero(v any) bool {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return err == nil && f == 0
	case int64:
		return n == 0
	}
	return false
}

// jsonKind names the kind of a JSON value.
func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number, float64, int64:
		return "a number"
	case bool:
		return "true or false"
	case nil:
		return "null"
	}
	return "an object"
}

// selectVersions applies policy p to the versions present on disk
// (ascending) and returns the ones to serve, ascending.
func selectVersions(p VersionPolicy, onDisk []int64) []int64 {
	switch {
	case p.All != nil:
		return onDisk
	case p.Specific != nil:
		var out []int64
		for _, v := range onDisk {
			for _, w := range p.Specific.Versions {
				if v == w {
					out = append(out, v)
					break
				}
			}
		}
		return out
	default:
		n := 1
		if p.Latest != nil {
			n = p.Latest.NumVersions
		}
		if len(onDisk) <= n {
			return onDisk
		}
		return onDisk[len(onDisk)-n:]
	}
}

var modelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// CheckName reports whether name can name a model: 1-128 characters of
// letters, digits, '_', '.', '-', starting with a letter or digit, and not
// containing "..".
func CheckName(name string) error {
	if !modelName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w %q: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit", ErrBadName, name)
	}
	return nil
}

// modelOnDisk is what a scan of one model directory found.
type modelOnDisk struct {
	config ModelConfig
	// configErr is why config.json could not be read or parsed; it
	// matters only where no override replaces the file.
	configErr error
	versions  []int64 // ascending; each has a model.onnx
}

// scanModel reads DIR/name: its config.json and the numeric version
// directories holding a model.onnx.
func scanModel(dir, name string) (modelOnDisk, error) {
	var m modelOnDisk
	mdir := filepath.Join(dir, name)
	st, err := os.Stat(mdir)
	if err != nil {
		return m, fmt.Errorf("%w: no directory for model %q in the repository %s", ErrModelNotFound, name, dir)
	}
	if !st.IsDir() {
		return m, fmt.Errorf("%w: %s is not a directory", ErrModelNotFound, mdir)
	}
	m.config, m.configErr = readModelConfig(mdir)
	entries, err := os.ReadDir(mdir)
	if err != nil {
		return m, fmt.Errorf("cannot list %s: %w", mdir, err)
	}
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		if st, err := os.Stat(filepath.Join(mdir, e.Name(), "model.onnx")); err == nil && st.Mode().IsRegular() {
			m.versions = append(m.versions, v)
		}
	}
	sort.Slice(m.versions, func(i, j int) bool { return m.versions[i] < m.versions[j] })
	return m, nil
}

// readModelConfig reads the configuration in model directory mdir: its
// config.json, or else the config.pbtxt of a model moved from Triton. A
// directory with both is refused, rather than one of them silently
// ignored.
func readModelConfig(mdir string) (ModelConfig, error) {
	data, path, err := readConfigFile(mdir)
	switch {
	case err != nil:
		return ModelConfig{}, err
	case data == nil:
		return ModelConfig{}, nil
	}
	parse := ParseModelConfig
	if filepath.Base(path) == "config.pbtxt" {
		parse = ParseModelConfigText
	}
	c, err := parse(data)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readConfigFile returns the contents and the path of model directory
// mdir's configuration file, config.json or config.pbtxt; nil when it has
// neither, and an error when it has both.
func readConfigFile(mdir string) (data []byte, path string, err error) {
	jsonPath, textPath := filepath.Join(mdir, "config.json"), filepath.Join(mdir, "config.pbtxt")
	data, err = os.ReadFile(jsonPath)
	if err != nil && !os.IsNotExist(err) {
		return nil, "", fmt.Errorf("%w: cannot read %s: %w", ErrBadConfig, jsonPath, err)
	}
	jsonFound := err == nil
	text, err := os.ReadFile(textPath)
	switch {
	case err != nil && !os.IsNotExist(err):
		return nil, "", fmt.Errorf("%w: cannot read %s: %w", ErrBadConfig, textPath, err)
	case err == nil && jsonFound:
		return nil, "", fmt.Errorf("%w: %s has both config.json and config.pbtxt; keep one", ErrBadConfig, mdir)
	case err == nil:
		return text, textPath, nil
	case jsonFound:
		return data, jsonPath, nil
	}
	return nil, "", nil
}

// ModelConfigJSON returns the configuration in model directory mdir as the
// text of a config.json: config.json as it is, or config.pbtxt turned into
// the same JSON form, which loads as the text did. It returns nil when the
// directory has neither, and an error when it has both or config.pbtxt
// cannot be read.
func ModelConfigJSON(mdir string) ([]byte, error) {
	data, path, err := readConfigFile(mdir)
	if err != nil || data == nil || filepath.Base(path) == "config.json" {
		return data, err
	}
	tree, _, err := configTextTree(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrBadConfig, err)
	}
	return json.Marshal(tree)
}

// listModels returns the names of the model directories in dir, sorted.
func listModels(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the model repository %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if CheckName(e.Name()) != nil {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			// A linked model directory counts, as scanModel follows it.
			st, err := os.Stat(filepath.Join(dir, e.Name()))
			isDir = err == nil && st.IsDir()
		}
		if isDir {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// strayModelFiles returns an error for each .onnx file at the top of
// repository dir, where only model directories belong: --models pointed
// at a directory of model files, say. listModels passes over them.
func strayModelFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cannot list the model repository %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".onnx") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		if CheckName(name) != nil {
			name = "<name>"
		}
		errs = append(errs, fmt.Errorf("found %s at the top of the model repository, which holds a directory per model: move it to %s",
			filepath.Join(dir, e.Name()), filepath.Join(dir, name, "1", "model.onnx")))
	}
	return errors.Join(errs...)
}

// layoutHints says where model directory mdir holds ONNX files that no
// version is made of, and where each belongs: a model.onnx without a
// version directory (the layout of KServe's storage), a version's file
// of another name, a version directory that is not a number. It reads
// mdir only when a model has no version to load.
func layoutHints(mdir string) []string {
	const most = 3
	entries, err := os.ReadDir(mdir)
	if err != nil {
		return nil
	}
	var hints []string
	onnxFiles := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			return nil
		}
		var names []string
		for _, e := range es {
			if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".onnx") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	for _, f := range onnxFiles(mdir) {
		hints = append(hints, fmt.Sprintf("found %s: move it into a version directory, %s",
			filepath.Join(mdir, f), filepath.Join(mdir, "1", "model.onnx")))
	}
	for _, e := range entries {
		if !e.IsDir() || len(hints) >= most {
			continue
		}
		vdir := filepath.Join(mdir, e.Name())
		_, isVersion := parseVersion(e.Name())
		for _, f := range onnxFiles(vdir) {
			switch {
			case !isVersion:
				hints = append(hints, fmt.Sprintf("found %s: %q is not a version directory; versions are numbers: 1, 2, ... (no leading zeros)",
					filepath.Join(vdir, f), e.Name()))
			case f != "model.onnx":
				hints = append(hints, fmt.Sprintf("found %s: a version's file must be called model.onnx",
					filepath.Join(vdir, f)))
			}
		}
	}
	if len(hints) > most {
		hints = hints[:most]
	}
	return hints
}

// parseVersion parses a version directory name: a positive decimal
// integer without sign or leading zeros.
func parseVersion(s string) (int64, bool) {
	if s == "" || len(s) > 18 || s[0] == '0' {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
