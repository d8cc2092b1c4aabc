package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// A configuration is read in two steps: its text (config.json, or
// config.pbtxt turned into the same tree) is first checked as a tree of
// JSON values against ModelConfig's fields, then decoded. The check names
// a field that does not exist by its exact spelling and its place
// (encoding/json would match MAX_BATCH_SIZE to max_batch_size, and says
// nothing of where an unknown field sits), and lets every integer be
// given as a string of digits, as the JSON form of Triton's configuration
// writes its 64-bit fields.

// configType is the type the tree of a whole configuration must fit.
var configType = reflect.TypeFor[ModelConfig]()

// jsonField returns the field of struct type t that JSON names name,
// exactly, and its type.
func jsonField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// indirect returns t without its pointers.
func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isIntKind reports whether values of t are integers.
func isIntKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// isDigits reports whether s is an optional '-' and decimal digits, as
// JSON writes an integer (no leading zero).
func isDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkTree checks tree v, decoded from JSON with UseNumber, against type
// t at path, and returns it with the integers given as strings turned into
// numbers. where names a path's place in the text the tree came from ("":
// none known). A value of the wrong type is left for the decoder to
// report.
func checkTree(v any, t reflect.Type, path string, where func(string) string) (any, error) {
	t = indirect(t)
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for k, sub := range m {
			ft, ok := jsonField(t, k)
			p := joinPath(path, k)
			if def, inert := inertFields[stripIndices(p)]; !ok && inert {
				if !sameAsDefault(sub, def) {
					return nil, fmt.Errorf("%s%s is %s: infergate has no such setting, and takes only Triton's default, %s; remove it", where(p), p, compactJSON(sub), compactJSON(def))
				}
				delete(m, k) // it says nothing
				continue
			}
			if !ok {
				return nil, fmt.Errorf("%s%s", where(p), unknownField(k, path))
			}
			out, err := checkTree(sub, ft, p, where)
			if err != nil {
				return nil, err
			}
			m[k] = out
		}
		return m, nil
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for k, sub := range m {
			out, err := checkTree(sub, t.Elem(), joinPath(path, k), where)
			if err != nil {
				return nil, err
			}
			m[k] = out
		}
		return m, nil
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return v, nil
		}
		for i, e := range l {
			out, err := checkTree(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), where)
			if err != nil {
				return nil, err
			}
			l[i] = out
		}
		return l, nil
	}
	if s, ok := v.(string); ok && isIntKind(t) && isDigits(s) {
		return json.Number(s), nil
	}
	// A value of the wrong kind is refused here, where the path has its
	// list indices (input[1].dims): decoding would name input.dims, and
	// config.pbtxt the first entry's line.
	wrong := false
	switch _, isNum := v.(json.Number); {
	case isIntKind(t):
		_, isInt := v.(int64)
		wrong = !isNum && !isInt
	case t.Kind() == reflect.Bool:
		_, ok := v.(bool)
		wrong = !ok
	case t.Kind() == reflect.String:
		_, ok := v.(string)
		wrong = !ok
	}
	if wrong && v != nil {
		return nil, fmt.Errorf("%s%s takes %s, not %s", where(path), path, typeWords(t), jsonKind(v))
	}
	return v, nil
}

// unknownField says that the object at path has no field key.
func unknownField(key, path string) string {
	in := ""
	if path != "" {
		in = " in " + path
	}
	return fmt.Sprintf("unknown field %q%s: infergate reads no such field there (names are case-sensitive)", key, in)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decodeTree decodes checked tree v into c. A value of the wrong type is
// reported with its field's path, and where it is in the text.
func decodeTree(v any, c *ModelConfig, where func(string) string) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBadConfig, err)
	}
	if err := json.Unmarshal(data, c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%w: %s%s takes %s, not a %s", ErrBadConfig, where(te.Field), te.Field, typeWords(te.Type), te.Value)
		}
		return fmt.Errorf("%w: %s", ErrBadConfig, err)
	}
	return nil
}

// typeWords describes a field's type to a person.
func typeWords(t reflect.Type) string {
	switch {
	case isIntKind(t):
		return "an integer"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return "an object"
	}
	return t.String()
}

// inertFields are fields of Triton's model configuration that infergate
// has no setting for, by path without list indices, with Triton's default
// value (as JSON): Triton's own GET .../config prints every one of them,
// so that a configuration copied from it holds them all. A field that
// holds its default, or an object with part of it, says nothing and is
// dropped; any other value is refused, naming the default.
var inertFields = func() map[string]any {
	m := map[string]string{
		"runtime":                            `""`,
		"batch_input":                        `[]`,
		"batch_output":                       `[]`,
		"cc_model_filenames":                 `{}`,
		"metric_tags":                        `{}`,
		"model_transaction_policy":           `{"decoupled":false}`,
		"input.format":                       `"FORMAT_NONE"`,
		"input.is_shape_tensor":              `false`,
		"input.allow_ragged_batch":           `false`,
		"input.optional":                     `false`,
		"input.is_non_linear_format_io":      `false`,
		"output.label_filename":              `""`,
		"output.is_shape_tensor":             `false`,
		"output.is_non_linear_format_io":     `false`,
		"instance_group.passive":             `false`,
		"instance_group.host_policy":         `""`,
		"instance_group.secondary_devices":   `[]`,
		"instance_group.profile":             `[]`,
		"dynamic_batching.preserve_ordering": `false`,
		"optimization": `{"priority":"PRIORITY_DEFAULT","input_pinned_memory":{"enable":true},
			"output_pinned_memory":{"enable":true},"gather_kernel_buffer_threshold":0,"eager_batching":false,
			"cuda":{"graphs":false,"busy_wait_events":false,"graph_spec":[],"output_copy_stream":false},
			"execution_accelerators":{"gpu_execution_accelerator":[],"cpu_execution_accelerator":[]}}`,
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var d any
		if err := dec.Decode(&d); err != nil {
			panic("BUG: inert default of " + k + ": " + err.Error())
		}
		out[k] = d
	}
	return out
}()

// sameAsDefault reports whether v says no more than def: equal scalars,
// an empty list, or an object whose fields each say no more than def's.
func sameAsDefault(v, def any) bool {
	switch d := def.(type) {
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, sub := range m {
			dsub, ok := d[k]
			if !ok || !sameAsDefault(sub, dsub) {
				return false
			}
		}
		return true
	case []any:
		l, ok := v.([]any)
		return ok && len(l) == 0
	}
	switch v.(type) {
	case map[string]any, []any, nil:
		return false
	}
	return fmt.Sprint(v) == fmt.Sprint(def)
}

// compactJSON writes v as JSON, for messages.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
