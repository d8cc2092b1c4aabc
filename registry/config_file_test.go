package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ModelConfigJSON gives a model directory's configuration as config.json
// text: config.json as it is, config.pbtxt in the JSON form that loads as
// the text does (max_batch_size 0 included), nothing for neither, and an
// error for both.
func TestModelConfigJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := ModelConfigJSON(dir); got != nil || err != nil {
		t.Fatalf("no file: got %q, %v; want nil, nil", got, err)
	}
	const text = "max_batch_size: 0\ninstance_group [ { count: 2, kind: KIND_CPU } ]\ndynamic_batching { priority_levels: 2 priority_queue_policy { key: 2 value { max_queue_size: 3 } } }\n"
	write("config.pbtxt", text)
	got, err := ModelConfigJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ParseModelConfig(got)
	if err != nil {
		t.Fatalf("the JSON form %s: %v", got, err)
	}
	fromText, err := ParseModelConfigText([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromText) || !fromJSON.noBatchDim || fromJSON.Instances != 2 {
		t.Fatalf("config.pbtxt as JSON %s loads as %+v; want %+v", got, fromJSON, fromText)
	}

	write("config.json", `{"instances": 4}`)
	if _, err := ModelConfigJSON(dir); err == nil || !strings.Contains(err.Error(), "has both config.json and config.pbtxt; keep one") {
		t.Fatalf("both files: got %v; want an error", err)
	}
	os.Remove(filepath.Join(dir, "config.pbtxt"))
	if got, err := ModelConfigJSON(dir); string(got) != `{"instances": 4}` || err != nil {
		t.Fatalf("config.json: got %q, %v; want it as it is", got, err)
	}
	os.Remove(filepath.Join(dir, "config.json"))
	write("config.pbtxt", "instance_group [ { count: 2 }\n")
	if _, err := ModelConfigJSON(dir); err == nil || !strings.Contains(err.Error(), "config.pbtxt: invalid model configuration: config.pbtxt line 2") {
		t.Fatalf("broken config.pbtxt: got %v; want an error naming the file and line", err)
	}
}
