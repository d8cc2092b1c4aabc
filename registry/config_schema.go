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

// isDigits reports whether s is an optional '-' and decimal digits.
func isDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
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
			if !ok {
				in := ""
				if path != "" {
					in = " in " + path
				}
				return nil, fmt.Errorf("%sunknown field %q%s: infergate reads no such field there (names are case-sensitive)", where(p), k, in)
			}
			out, err := checkTree(sub, ft, p, where)
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
	return v, nil
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
