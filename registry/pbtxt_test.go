package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tritonPbtxt is a config.pbtxt as Triton's users write them: comments,
// both ways of writing a list, enum values, nested messages, colons
// before messages or not.
const tritonPbtxt = `
# the click-through model
name: "ctr"
platform: "onnxruntime_onnx"
default_model_filename: "model.onnx"
max_batch_size: 32
version_policy: { latest { num_versions: 2 } }
input [
  {
    name: "features"
    data_type: TYPE_FP32
    dims: [ 64 ]
  }
]
output {
  name: "score"
  data_type: TYPE_FP32
  dims: 1
}
instance_group [ { count: 2, kind: KIND_CPU } ]
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 100
  priority_levels: 2
  default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 5000 max_queue_size: 64 }
}
response_cache { enable: true }
`

// The same configuration in the JSON form of Triton's.
const tritonJSON = `{
  "name": "ctr", "platform": "onnxruntime_onnx", "default_model_filename": "model.onnx",
  "max_batch_size": 32, "version_policy": {"latest": {"num_versions": 2}},
  "input": [{"name": "features", "data_type": "TYPE_FP32", "dims": ["64"]}],
  "output": [{"name": "score", "data_type": "TYPE_FP32", "dims": [1]}],
  "instance_group": [{"count": 2, "kind": "KIND_CPU"}],
  "dynamic_batching": {"preferred_batch_size": [8, 16], "max_queue_delay_microseconds": "100", "priority_levels": 2,
    "default_queue_policy": {"timeout_action": "REJECT", "default_timeout_microseconds": 5000, "max_queue_size": 64}},
  "response_cache": {"enable": true}
}`

func TestParseModelConfigText(t *testing.T) {
	got, err := ParseModelConfigText([]byte(tritonPbtxt))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseModelConfig([]byte(tritonJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config.pbtxt gave\n%+v\nthe same in JSON\n%+v", got, want)
	}
	d := got.DynamicBatching
	if got.Instances != 2 || got.Device != "cpu" || got.MaxQueue != 64 || got.VersionPolicy.Latest.NumVersions != 2 ||
		!reflect.DeepEqual(d.PreferredBatchSizes, []int{8, 16}) || *d.MaxQueueDelayUS != 100 || d.DefaultQueueTimeoutUS != 5000 ||
		!got.ResponseCache.Enable || len(got.Output) != 1 || !reflect.DeepEqual(got.Output[0].Dims, []int64{1}) {
		t.Fatalf("config.pbtxt gave %+v (dynamic batching %+v)", got, *d)
	}

	f := func(in, wantErr string) {
		t.Helper()
		_, err := ParseModelConfigText([]byte(in))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ParseModelConfigText(%q): got %v; want an error containing %q", in, err, wantErr)
		}
	}
	f(`max_batch_size: 8 max_batch_size: 16`, `line 1: field "max_batch_size" is given again; it takes one value`)
	f("input {\n name: \"x\"", "line 2: the text ends inside a message")
	f(`input { name: "x" >`, `a message opened with '{' is closed with '>'`)
	f(`}`, `'}' closes no message`)
	f(`dims: [1, 2`, "a ']' is missing")
	f(`dims: [1 2]`, "want ',' or ']' in a list")
	f(`max_batch_size 8`, `want ':' or '{' after field "max_batch_size"`)
	f(`max_batch_size: 0x1g`, `"0x1g" is not a number`)
	f(`name: "ct`, "a string is not closed")
	f(`name: "c\qr"`, `the escape \q`)
	f(`: 8`, "want a field name")
	f(`max_batch_size: ]`, "want a value")
	f(`optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }`, `optimization is {"execution_accelerators":{"cpu_execution_accelerator":[{"name":"openvino"}]}}`)
	f(`sequence_batching { }`, `unknown field "sequence_batching"`)
	f(`input [{ name: "x" data_type: TYPE_FP32 dims: [3] format: FORMAT_NCHW }]`, `input[0].format is "FORMAT_NCHW": infergate has no such setting`)
	f(`platform: "tensorflow_savedmodel"`, `platform "tensorflow_savedmodel"`)
	f(`default_model_filename: "model.plan"`, `default_model_filename "model.plan"`)
	f(`max_batch_size: 1.5`, "line 1: max_batch_size takes an integer, not a number 1.5")
	f(strings.Repeat("a {", 40), "nest deeper than 32")
	f(`input: [`+strings.Repeat("{a: [", 40), "nest deeper than 32")
	f(`dims: [[1]]`, `want a value, found "[1]]"`)
	// An error in the second entry of a list names that entry's line, not
	// the first's or the list's.
	two := "input [\n  {\n    name: \"a\"\n    data_type: TYPE_FP32\n  },\n  {\n    name: \"b\"\n    data_type: TYPE_FOO\n  }\n]\n"
	f(two, `config.pbtxt line 8: input "b": data_type "TYPE_FOO"`)
	f(strings.NewReplacer(`"b"`, `"a"`, "TYPE_FOO", "TYPE_FP32").Replace(two), `config.pbtxt line 7: input lists "a" twice`)
	f("input [\n  { name: \"a\" data_type: TYPE_FP32 },\n  {\n    data_type: TYPE_FP32\n  }\n]\n", `config.pbtxt line 3: input[1] has no name`)
	f("input [\n  { name: \"a\" data_type: TYPE_FP32 },\n  {\n    name: \"b\"\n  }\n]\n", `config.pbtxt line 3: input "b": data_type ""`)

	// Strings join as in C; a field given again adds to a list; an empty
	// list is one.
	c, err := ParseModelConfigText([]byte(`name: "c" 'tr'; input { name: "a" data_type: TYPE_FP32 dims: 1 dims: 2 }, input { name: "b", data_type: TYPE_STRING, dims: [] }`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "ctr" || len(c.Input) != 2 || !reflect.DeepEqual(c.Input[0].Dims, []int64{1, 2}) || c.Input[1].Dims == nil || len(c.Input[1].Dims) != 0 {
		t.Fatalf("got name %q, inputs %+v", c.Name, c.Input)
	}
}

// A model directory moved from Triton, with its config.pbtxt, loads with
// the settings the file gives; one with both files is refused.
func TestReadModelConfigText(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.pbtxt", tritonPbtxt)
	c, err := readModelConfig(dir)
	if err != nil || c.Instances != 2 || c.MaxBatchSize != 32 {
		t.Fatalf("got %+v, %v; want instances 2, max_batch_size 32", c, err)
	}
	write("config.pbtxt", "max_batch_size: [")
	if _, err := readModelConfig(dir); err == nil || !strings.Contains(err.Error(), "config.pbtxt: invalid model configuration: config.pbtxt line 1") {
		t.Fatalf("got %v; want the file and line named", err)
	}
	write("config.json", `{}`)
	if _, err := readModelConfig(dir); err == nil || !strings.Contains(err.Error(), "has both config.json and config.pbtxt; keep one") {
		t.Fatalf("got %v; want both files refused", err)
	}
}

// FuzzParseModelConfigText: any text is a configuration or an error.
func FuzzParseModelConfigText(f *testing.F) {
	f.Add([]byte(tritonPbtxt))
	f.Add([]byte(`input [{dims: [1, 2]}, {}] x <y: 'z'>`))
	f.Add([]byte("# only a comment"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseModelConfigText(data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("%q parsed into a configuration that fails Validate: %v", data, verr)
			}
		}
	})
}
