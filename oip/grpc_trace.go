package oip

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// TraceSetting is one setting of Triton's trace extension: its name and
// its values (one, but for trace_level's list). In a request, no values
// clears the setting (a model's then follows the node's).
type TraceSetting struct {
	Name   string
	Values []string
}

// MaxTraceSettings bounds the settings of one trace setting request; the
// extension defines six.
const MaxTraceSettings = 16

// DecodeTraceSettingRequest decodes a TraceSettingRequest: settings (1),
// a map of name to SettingValue (value = 1, repeated string), and
// model_name (2). Strings must be UTF-8, as protobuf strings are.
func DecodeTraceSettingRequest(b []byte) (settings []TraceSetting, model string, err error) {
	const msg = "TraceSettingRequest"
	str := func(num protowire.Number, typ protowire.Type, v []byte, what string) (string, error) {
		if typ != protowire.BytesType {
			return "", errorf("%s field %d has wire type %d; the protocol's is length-delimited", what, num, typ)
		}
		if !utf8.Valid(v) {
			return "", errorf("%s field %d is not valid UTF-8 (a protobuf string must be)", what, num)
		}
		return string(v), nil
	}
	err = eachField(b, msg, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			if len(settings) == MaxTraceSettings {
				return errorf("%s has more than %d settings; the trace extension has six", msg, MaxTraceSettings)
			}
			name, value, err := settingsEntry(msg, typ, v)
			if err != nil {
				return err
			}
			s := TraceSetting{Name: name}
			err = eachField(value, "SettingValue", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 {
					return nil
				}
				if len(s.Values) == MaxTraceSettings {
					return errorf("setting %q has more than %d values", s.Name, MaxTraceSettings)
				}
				x, err := str(num, typ, v, "SettingValue")
				s.Values = append(s.Values, x)
				return err
			})
			if err != nil {
				return err
			}
			// A repeated key takes the last value, as protobuf's maps do.
			for i := range settings {
				if settings[i].Name == s.Name {
					settings[i] = s
					return nil
				}
			}
			settings = append(settings, s)
		case 2:
			model, err = str(num, typ, v, msg)
			return err
		}
		return nil
	})
	return settings, model, err
}

// settingsEntry splits v, of wire type typ, an entry of the settings map
// of msg (field 1, map<string, SettingValue>, as the trace and logging
// extensions have it), into its name, which must be UTF-8, and its
// value's message.
func settingsEntry(msg string, typ protowire.Type, v []byte) (name string, value []byte, err error) {
	if typ != protowire.BytesType {
		return "", nil, errorf("%s field 1 has wire type %d; the protocol's is length-delimited", msg, typ)
	}
	key, value, err := mapEntry(v)
	if err != nil {
		return "", nil, err
	}
	if !utf8.Valid(key) {
		return "", nil, errorf("%s: a setting's name is not valid UTF-8 (a protobuf string must be)", msg)
	}
	return string(key), value, nil
}

// AppendTraceSettingResponse appends settings as a TraceSettingResponse:
// its settings map (1), each a SettingValue (value = 1, repeated string).
func AppendTraceSettingResponse(dst []byte, settings []TraceSetting) []byte {
	for _, s := range settings {
		dst = appendMessage(dst, 1, func(dst []byte) []byte {
			dst = appendPBString(dst, fMapKey, s.Name)
			return appendMessage(dst, fMapValue, func(dst []byte) []byte {
				for _, v := range s.Values {
					// Every value, an empty one too: repeated fields keep them.
					dst = protowire.AppendTag(dst, 1, protowire.BytesType)
					dst = protowire.AppendString(dst, pbString(v))
				}
				return dst
			})
		})
	}
	return dst
}
