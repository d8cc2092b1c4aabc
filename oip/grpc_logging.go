package oip

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// LogSettingKind is which value a LogSetting holds: the SettingValue
// oneof of Triton's logging extension.
type LogSettingKind uint8

// The kinds of LogSetting, numbered as SettingValue's fields are.
const (
	LogUnset  LogSettingKind = 0
	LogBool   LogSettingKind = 1
	LogUint32 LogSettingKind = 2
	LogString LogSettingKind = 3
)

// LogSetting is one setting of Triton's logging extension: its name and
// a bool, uint32 or string value, as Kind says (LogUnset: a request's
// SettingValue that set none).
type LogSetting struct {
	Name   string
	Kind   LogSettingKind
	Bool   bool
	Uint32 uint32
	String string
}

// MaxLogSettings bounds the settings of one LogSettings request; the
// extension defines six.
const MaxLogSettings = 16

// DecodeLogSettingsRequest decodes a LogSettingsRequest: settings (1), a
// map of name to SettingValue (bool_param = 1, uint32_param = 2,
// string_param = 3, one of them). A repeated name takes its last value,
// as protobuf's maps do.
func DecodeLogSettingsRequest(b []byte) ([]LogSetting, error) {
	const msg = "LogSettingsRequest"
	var settings []LogSetting
	err := eachField(b, msg, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 {
			return nil
		}
		name, value, err := settingsEntry(msg, typ, v)
		if err != nil {
			return err
		}
		s := LogSetting{Name: name}
		err = eachField(value, "SettingValue", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			switch {
			case num == 1 && typ == protowire.VarintType:
				s.Kind, s.Bool = LogBool, x != 0
			case num == 2 && typ == protowire.VarintType:
				if x > 1<<32-1 {
					return errorf("setting %q: uint32_param %d is over 4294967295", s.Name, x)
				}
				s.Kind, s.Uint32 = LogUint32, uint32(x)
			case num == 3 && typ == protowire.BytesType:
				if !utf8.Valid(v) {
					return errorf("setting %q: string_param is not valid UTF-8 (a protobuf string must be)", s.Name)
				}
				s.Kind, s.String = LogString, string(v)
			case num >= 1 && num <= 3:
				return errorf("setting %q: SettingValue field %d has wire type %d, not the protocol's", s.Name, num, typ)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range settings {
			if settings[i].Name == s.Name {
				settings[i] = s
				return nil
			}
		}
		if len(settings) == MaxLogSettings {
			return errorf("%s has more than %d settings; the logging extension has six", msg, MaxLogSettings)
		}
		settings = append(settings, s)
		return nil
	})
	return settings, err
}

// AppendLogSettingsResponse appends settings as a LogSettingsResponse:
// its settings map (1), each a SettingValue with the one field its kind
// sets, sent even when it is the default (a oneof's field is).
func AppendLogSettingsResponse(dst []byte, settings []LogSetting) []byte {
	for _, s := range settings {
		dst = appendMessage(dst, 1, func(dst []byte) []byte {
			dst = appendPBString(dst, fMapKey, s.Name)
			return appendMessage(dst, fMapValue, func(dst []byte) []byte {
				switch s.Kind {
				case LogBool:
					dst = protowire.AppendTag(dst, 1, protowire.VarintType)
					dst = protowire.AppendVarint(dst, protowire.EncodeBool(s.Bool))
				case LogUint32:
					dst = protowire.AppendTag(dst, 2, protowire.VarintType)
					dst = protowire.AppendVarint(dst, uint64(s.Uint32))
				case LogString:
					dst = protowire.AppendTag(dst, 3, protowire.BytesType)
					dst = protowire.AppendString(dst, pbString(s.String))
				}
				return dst
			})
		})
	}
	return dst
}
