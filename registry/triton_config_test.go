package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Triton configuration of a model without a batch dimension
// (max_batch_size 0, whole shapes in dims) loads, and its requests are
// never stacked.
func TestMaxBatchSizeZeroLoads(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{MaxBatchSize: 64})
	writeModel(t, dir, "m", 1, "v1")
	writeConfig(t, dir, "m", `{"max_batch_size":0,
		"input":[{"name":"x","data_type":"TYPE_FP32","dims":[-1,2]}],
		"output":[{"name":"y","data_type":"TYPE_FP32","dims":[-1,1]}]}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 0)
	defer v.Release()
	if v.Batchable || v.Batcher.Config().MaxBatchSize != 1 || v.Config.MaxBatchSize != 0 {
		t.Fatalf("batchable %v, batcher max batch %d, config max_batch_size %d; want false, 1, 0",
			v.Batchable, v.Batcher.Config().MaxBatchSize, v.Config.MaxBatchSize)
	}
}

// Every integer may be given as a string of digits, as the JSON form of
// Triton's configuration gives its 64-bit fields; field names match
// exactly.
func TestConfigIntegersAsStrings(t *testing.T) {
	c, err := ParseModelConfig([]byte(`{"max_batch_size":"8","dynamic_batching":{"priority_levels":"2","default_priority_level":"1"},
		"version_policy":{"specific":{"versions":["1","3"]}},"instance_group":[{"count":"2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DynamicBatching
	if c.MaxBatchSize != 8 || d.PriorityLevels != 2 || d.DefaultPriorityLevel != 1 || len(c.VersionPolicy.Specific.Versions) != 2 || c.Instances != 2 {
		t.Fatalf("got %+v, %+v", c, *d)
	}
	for in, want := range map[string]string{
		`{"MAX_BATCH_SIZE":8}`:                       `unknown field "MAX_BATCH_SIZE": infergate reads no such field there (names are case-sensitive)`,
		`{"dynamic_batching":{"Priority_Levels":2}}`: `unknown field "Priority_Levels" in dynamic_batching`,
		`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[1],"reshape":{"shape":[1]}}]}`: `unknown field "reshape" in input[0]`,
		`{"max_batch_size":"8x"}`: "max_batch_size takes an integer, not a string",
		`[]`:                      "a configuration is an object of fields, not a list",
	} {
		if _, err := ParseModelConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want an error containing %q", in, err, want)
		}
	}
}

// An instance_group that gives no count runs one instance, as Triton's
// does, unless instances says otherwise; KIND_GPU without gpus takes the
// node's CUDA device, or the first.
func TestInstanceGroupDefaults(t *testing.T) {
	f := func(config string, node ModelConfig, instances int, device string) {
		t.Helper()
		c, err := ParseModelConfig([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		got := c.withDefaults(node)
		if got.Instances != instances || got.Device != device {
			t.Fatalf("%s on a node with %d instances on %q: %d on %q; want %d on %q", config, node.Instances, node.Device, got.Instances, got.Device, instances, device)
		}
	}
	f(`{"instance_group":[{"kind":"KIND_CPU"}]}`, ModelConfig{Instances: 4}, 1, "cpu")
	f(`{"instance_group":[{"count":0,"kind":"KIND_CPU"}]}`, ModelConfig{Instances: 4}, 1, "cpu")
	f(`{"instances":3,"instance_group":[{"kind":"KIND_CPU"}]}`, ModelConfig{Instances: 4}, 3, "cpu")
	f(`{"instance_group":[{"count":1,"kind":"KIND_GPU"}]}`, ModelConfig{Device: "cuda:1"}, 1, "cuda:1")
	f(`{"instance_group":[{"count":1,"kind":"KIND_GPU"}]}`, ModelConfig{Device: "cpu"}, 1, "cuda:0")
	f(`{"device":"cuda:2","instance_group":[{"count":1,"kind":"KIND_GPU"}]}`, ModelConfig{Device: "cuda:1"}, 1, "cuda:2")
	f(`{"instance_group":[{"count":1,"kind":"KIND_AUTO"}]}`, ModelConfig{Device: "cuda:1"}, 1, "cuda:1")
}

// Triton's fields that only check (platform, backend) or only describe
// (name, input, output) do not reload a version whose file and settings
// are unchanged; input and output are checked again against it all the
// same, and a configuration that does not fit it is refused while it
// keeps serving.
func TestTritonChecksDoNotReload(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	load := func(config, wantErr string) {
		t.Helper()
		writeConfig(t, dir, "m", config)
		err := r.Load("m", nil)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", config, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: got %v; want an error containing %q", config, err, wantErr)
		}
	}
	load(`{"max_batch_size":8}`, "")
	load(`{"max_batch_size":8,"platform":"onnxruntime_onnx","backend":"onnxruntime","default_model_filename":"model.onnx"}`, "")
	load(`{"max_batch_size":8,"name":"m","input":[{"name":"x","data_type":"TYPE_FP32","dims":[2]}],"output":[{"name":"y","data_type":"TYPE_FP32","dims":[1]}]}`, "")
	if n := l.count(); n != 1 {
		t.Fatalf("%d loads; want the first only", n)
	}
	load(`{"max_batch_size":8,"input":[{"name":"x","data_type":"TYPE_FP32","dims":[3]}]}`, `input "x" has dims [2] in the model`)
	v := mustAcquire(t, r, "m", 1)
	v.Release()
	if n := l.count(); n != 1 {
		t.Fatalf("%d loads; want the first only", n)
	}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 1 || idx[0].State != StateReady || !strings.Contains(idx[0].Reason, "serving the earlier configuration; the new one does not fit the model") {
		t.Fatalf("index %+v", idx)
	}
}

// config.pbtxt errors name the line, whether the text cannot be read or
// a field is unknown, repeated, or of the wrong type.
func TestConfigTextErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		"name: \"m\"\nmax_batch_size: 8\n\nsequence_batching { }\n":                            `config.pbtxt line 4: unknown field "sequence_batching"`,
		"name: \"m\"\nparameters { key: \"a\" }\nparameters { key: \"b\" }\n":                  "config.pbtxt line 2: each entry of parameters is a message of a key (a string or an integer) and a value",
		"input [ { name: \"x\"\n data_type: TYPE_FP32\n dims: [ 1 ]\n format: FORMAT_NCHW } ]": `config.pbtxt line 4: input[0].format is "FORMAT_NCHW"`,
		"name: \"m\"\n\nresponse_cache { enable: 1 }\n":                                        "config.pbtxt line 3: response_cache.enable takes true or false, not a number",
		"name: \"m\"\nmax_batch_size: -infinity\n":                                             `config.pbtxt line 2: "-infinity" is not a finite number`,
		"name: \"m\"\nmax_batch_size: 1e400\n":                                                 `config.pbtxt line 2: "1e400" is not a finite number`,
		"input [ { name: \"x\" data_type: TYPE_FP32\n dims: [ 9223372036854775808 ] } ]":       "config.pbtxt line 2: 9223372036854775808 is out of the range of a 64-bit integer",
		"max_batch_size: 8\nMAX_BATCH_SIZE: 16\n":                                              `config.pbtxt line 2: unknown field "MAX_BATCH_SIZE"`,
		"name: \"m\"\nname: \"n\"\n":                                                           `config.pbtxt line 2: field "name" is given again; it takes one value`,
		"max_batch_size: [ 8 ]\n":                                                              `config.pbtxt line 1: field "max_batch_size" takes one value, not a list`,
		"response_cache: 8\n":                                                                  "config.pbtxt line 1: response_cache takes an object, not a number",
		"max_batch_size { }\n":                                                                 "config.pbtxt line 1: max_batch_size takes an integer, not a message",
		"instance_group [ { count: 100 } ]\n":                                                  "config.pbtxt line 1: instance_group's count must be between 1 and 64, got 100",
		"dynamic_batching {\n  max_queue_delay_microseconds: 20000000\n}\n":                    "config.pbtxt line 2: dynamic_batching.max_queue_delay_microseconds must be between 0 and 10000000",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.pbtxt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readModelConfig(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v; want an error containing %q", text, err, want)
		}
	}
}

// A configuration as Triton's GET .../config prints it, every default
// included, loads; the defaults say nothing. A setting infergate has not,
// given a value other than Triton's default, is refused naming it.
func TestTritonPrintedConfig(t *testing.T) {
	printed := `{"name":"ctr","platform":"onnxruntime_onnx","backend":"onnxruntime","runtime":"",
	"version_policy":{"latest":{"num_versions":1}},"max_batch_size":16,
	"input":[{"name":"features","data_type":"TYPE_FP32","format":"FORMAT_NONE","dims":["64"],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false}],
	"output":[{"name":"score","data_type":"TYPE_FP32","dims":["1"],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}],
	"batch_input":[],"batch_output":[],
	"optimization":{"priority":"PRIORITY_DEFAULT","input_pinned_memory":{"enable":true},"output_pinned_memory":{"enable":true},"gather_kernel_buffer_threshold":0,"eager_batching":false},
	"dynamic_batching":{"preferred_batch_size":[8],"max_queue_delay_microseconds":"0","preserve_ordering":false,"priority_levels":"0","default_priority_level":"0","priority_queue_policy":{},
		"default_queue_policy":{"timeout_action":"REJECT","default_timeout_microseconds":"0","allow_timeout_override":false,"max_queue_size":100}},
	"instance_group":[{"name":"ctr_0","kind":"KIND_CPU","count":2,"gpus":[],"secondary_devices":[],"profile":[],"passive":false,"host_policy":""}],
	"default_model_filename":"model.onnx","cc_model_filenames":{},"metric_tags":{},
	"parameters":{"intra_op_thread_count":{"string_value":"2"},"inter_op_thread_count":{"string_value":"0"}},
	"model_warmup":[],"model_transaction_policy":{"decoupled":false}}`
	c, err := ParseModelConfig([]byte(printed))
	if err != nil {
		t.Fatal(err)
	}
	if c.Instances != 2 || c.Device != "cpu" || c.IntraOpThreads != 2 || c.InterOpThreads != 0 || c.MaxBatchSize != 16 || c.Parameters != nil ||
		c.MaxQueue != 100 || c.DynamicBatching.TimeoutOverride(1) {
		t.Fatalf("got %+v", c)
	}
	for in, want := range map[string]string{
		`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[3],"format":"FORMAT_NCHW"}]}`:               `input[0].format is "FORMAT_NCHW": infergate has no such setting, and takes only Triton's default, "FORMAT_NONE"; remove it`,
		`{"optimization":{"cuda":{"graphs":true}}}`:                                                        `optimization is {"cuda":{"graphs":true}}`,
		`{"model_warmup":[{"name":"w"}]}`:                                                                  `model_warmup "w" gives no inputs`,
		`{"dynamic_batching":{"priority_queue_policy":{"2":{}}}}`:                                          `dynamic_batching.priority_queue_policy has a policy for priority "2"; its keys are priority levels, 1 to priority_levels (1)`,
		`{"parameters":{"execution_mode":{"string_value":"1"}}}`:                                           `parameters: "execution_mode" is not one infergate reads`,
		`{"parameters":{"intra_op_thread_count":{"string_value":"many"}}}`:                                 `parameters: intra_op_thread_count must be a string_value of 0 to 256, got "many"`,
		`{"intra_op_threads":3,"parameters":{"intra_op_thread_count":{"string_value":"2"}}}`:               "parameters: intra_op_thread_count is 2 but the configuration's own thread count is 3",
		`{"parameters":{"intra_op_thread_count":{"int_value":2}}}`:                                         `unknown field "int_value" in parameters.intra_op_thread_count`,
		`{"parameters":{"share_session_between_instances":{"string_value":"yes"}}}`:                        `parameters: share_session_between_instances must be a string_value of "true" or "false", got "yes"`,
		`{"share_session":true,"parameters":{"share_session_between_instances":{"string_value":"false"}}}`: `share_session_between_instances is "false" but the configuration's own share_session is true`,
	} {
		if _, err := ParseModelConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want an error containing %q", in, err, want)
		}
	}

	// The same in config.pbtxt, parameters written as map entries.
	text := `name: "ctr"
input [ { name: "features" data_type: TYPE_FP32 format: FORMAT_NONE dims: [ 64 ] } ]
instance_group [ { name: "ctr_0" count: 2 kind: KIND_CPU passive: false } ]
optimization { input_pinned_memory { enable: true } }
parameters { key: "intra_op_thread_count" value { string_value: "2" } }
parameters [ { key: "inter_op_thread_count", value: { string_value: "1" } } ]
parameters { key: "share_session_between_instances" value { string_value: "true" } }
`
	c, err = ParseModelConfigText([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Instances != 2 || c.IntraOpThreads != 2 || c.InterOpThreads != 1 || !c.ShareSession {
		t.Fatalf("got %+v", c)
	}
	// infergate's own spelling, and Triton's agreeing with it.
	for _, in := range []string{`{"instances":2,"share_session":true}`, `{"share_session":true,"parameters":{"share_session_between_instances":{"string_value":"true"}}}`} {
		if c, err := ParseModelConfig([]byte(in)); err != nil || !c.ShareSession {
			t.Fatalf("%s: got %+v, %v; want ShareSession", in, c, err)
		}
	}
	for in, want := range map[string]string{
		"input [ { name: \"x\"\n format: FORMAT_NHWC } ]":           `config.pbtxt line 2: input[0].format is "FORMAT_NHWC"`,
		"parameters { key: \"a\" }":                                 "config.pbtxt line 1: each entry of parameters is a message of a key (a string or an integer) and a value",
		"\nparameters { key: \"a\" value { string_value: \"1\" } }": `config.pbtxt line 2: parameters: "a" is not one infergate reads`,
	} {
		if _, err := ParseModelConfigText([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v; want an error containing %q", in, err, want)
		}
	}
}

// max_batch_size 0 means no batch dimension however the text spells the
// zero, in config.pbtxt as in config.json.
func TestMaxBatchSizeZeroSpellings(t *testing.T) {
	for _, in := range []string{`{"max_batch_size":0}`, `{"max_batch_size":-0}`, `{"max_batch_size":"0"}`, `{"max_batch_size":"-0"}`} {
		c, err := ParseModelConfig([]byte(in))
		if err != nil || !c.noBatchDim {
			t.Errorf("%s: no batch dimension %v, error %v; want true, nil", in, c.noBatchDim, err)
		}
	}
	for _, in := range []string{"max_batch_size: 0", "max_batch_size: -0", "max_batch_size: 0x0"} {
		c, err := ParseModelConfigText([]byte(in))
		if err != nil || !c.noBatchDim {
			t.Errorf("%s: no batch dimension %v, error %v; want true, nil", in, c.noBatchDim, err)
		}
	}
	for in, want := range map[string]string{
		`{"max_batch_size":"08"}`: "max_batch_size takes an integer, not a string",
		`{"max_batch_size":8.0}`:  "max_batch_size takes an integer, not a number 8.0",
	} {
		if _, err := ParseModelConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want an error containing %q", in, err, want)
		}
	}
	if _, err := ParseModelConfigText([]byte("max_batch_size: 8.0")); err == nil || !strings.Contains(err.Error(), "line 1: max_batch_size takes an integer") {
		t.Errorf("max_batch_size: 8.0: got %v; want it refused", err)
	}

	r, _, dir := newTestRepo(t, ModelConfig{MaxBatchSize: 64})
	writeModel(t, dir, "m", 1, "v1")
	text := "max_batch_size: 0\ninput [ { name: \"x\", data_type: TYPE_FP32, dims: [ -1, 2 ] } ]\n"
	if err := os.WriteFile(filepath.Join(dir, "m", "config.pbtxt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", nil); err != nil {
		t.Fatalf("config.pbtxt with max_batch_size 0 and whole shapes: %v", err)
	}
	v := mustAcquire(t, r, "m", 0)
	defer v.Release()
	if v.Batchable {
		t.Fatal("batches with max_batch_size 0 in config.pbtxt")
	}
}

// A version that failed on what its configuration says of the model is
// retried by the next poll once the configuration is fixed.
func TestPollRetriesAfterChecksFixed(t *testing.T) {
	for _, c := range []struct{ bad, good string }{
		{`{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[3]}]}`, `{"input":[{"name":"x","data_type":"TYPE_FP32","dims":[2]}]}`},
		{`{"name":"other"}`, `{"name":"m"}`},
	} {
		r, _, dir := newTestRepo(t, ModelConfig{})
		writeModel(t, dir, "m", 1, "m1")
		writeConfig(t, dir, "m", c.bad)
		if err := r.Poll(); err == nil {
			t.Fatalf("%s: the first poll loaded it", c.bad)
		}
		writeConfig(t, dir, "m", c.good)
		if err := r.Poll(); err != nil {
			t.Fatalf("the poll after %s became %s: %v", c.bad, c.good, err)
		}
		mustAcquire(t, r, "m", 1).Release()
	}
}

// What a version runs with, node defaults filled in, loads back as an
// override (the cluster hands a serving version's configuration back),
// even with preferred sizes that batching does not use.
func TestServingConfigLoadsBack(t *testing.T) {
	for _, c := range []struct {
		node   ModelConfig
		config string
	}{
		{ModelConfig{MaxBatchSize: 1}, `{"dynamic_batching":{"preferred_batch_sizes":[4]}}`},
		{ModelConfig{MaxBatchSize: 8}, `{"dynamic_batching":{"enabled":false,"preferred_batch_sizes":[16]}}`},
		{ModelConfig{MaxBatchSize: 8}, `{"max_batch_size":0,"dynamic_batching":{"priority_levels":2}}`},
	} {
		r, _, dir := newTestRepo(t, c.node)
		writeModel(t, dir, "m", 1, "m1")
		writeConfig(t, dir, "m", c.config)
		if err := r.Load("m", nil); err != nil {
			t.Fatalf("%s: %v", c.config, err)
		}
		v := mustAcquire(t, r, "m", 1)
		cfg := v.Config
		v.Release()
		if err := r.Load("m", &cfg); err != nil {
			t.Fatalf("%s: loading back what it runs with: %v", c.config, err)
		}
	}
	// Where batching is on, preferred sizes must fit.
	if _, err := ParseModelConfig([]byte(`{"max_batch_size":8,"dynamic_batching":{"preferred_batch_sizes":[16]}}`)); err == nil {
		t.Fatal("preferred size 16 above max_batch_size 8 accepted with batching on")
	}
}

// An override built in Go is held to the rules of a parsed one.
func TestGoOverrideFoldsTriton(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", &ModelConfig{Platform: "tensorflow_savedmodel"}); err == nil || !strings.Contains(err.Error(), `platform "tensorflow_savedmodel"`) {
		t.Fatalf("got %v; want the platform refused", err)
	}
	if err := r.Load("m", &ModelConfig{InstanceGroup: []InstanceGroup{{Count: 3, Kind: "KIND_CPU"}}}); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	defer v.Release()
	if v.Config.Instances != 3 || v.Config.Device != "cpu" {
		t.Fatalf("instance_group of 3 on the CPU: loaded with %d on %q", v.Config.Instances, v.Config.Device)
	}
}
