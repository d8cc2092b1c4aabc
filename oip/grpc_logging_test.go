package oip_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/oip"
)

// logRequest builds a LogSettingsRequest with the protobuf library.
func logRequest(settings []oip.LogSetting) []byte {
	m := pbtest.New("LogSettingsRequest")
	mp := m.Mutable(m.Descriptor().Fields().ByName("settings")).Map()
	for _, s := range settings {
		v := mp.NewValue().Message()
		fs := v.Descriptor().Fields()
		switch s.Kind {
		case oip.LogBool:
			v.Set(fs.ByName("bool_param"), protoreflect.ValueOfBool(s.Bool))
		case oip.LogUint32:
			v.Set(fs.ByName("uint32_param"), protoreflect.ValueOfUint32(s.Uint32))
		case oip.LogString:
			v.Set(fs.ByName("string_param"), protoreflect.ValueOfString(s.String))
		}
		mp.Set(protoreflect.ValueOfString(s.Name).MapKey(), protoreflect.ValueOfMessage(v))
	}
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// logSettingsOf reads the settings map of a LogSettings message, in name
// order.
func logSettingsOf(m *dynamicpb.Message) []oip.LogSetting {
	var out []oip.LogSetting
	m.Get(m.Descriptor().Fields().ByName("settings")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		s := oip.LogSetting{Name: k.String()}
		v.Message().Range(func(fd protoreflect.FieldDescriptor, x protoreflect.Value) bool {
			switch fd.Name() {
			case "bool_param":
				s.Kind, s.Bool = oip.LogBool, x.Bool()
			case "uint32_param":
				s.Kind, s.Uint32 = oip.LogUint32, uint32(x.Uint())
			case "string_param":
				s.Kind, s.String = oip.LogString, x.String()
			}
			return true
		})
		out = append(out, s)
		return true
	})
	sortLogSettings(out)
	return out
}

func sortLogSettings(s []oip.LogSetting) {
	slices.SortFunc(s, func(a, b oip.LogSetting) int { return strings.Compare(a.Name, b.Name) })
}

// LogSettings' request, as a protobuf library writes it, decodes to its
// settings; the answer reads back in a protobuf library as written,
// false, 0 and "" included (a oneof's field is sent when set).
func TestLogSettingsCodec(t *testing.T) {
	in := []oip.LogSetting{
		{Name: "log_file", Kind: oip.LogString},
		{Name: "log_format", Kind: oip.LogString, String: "ISO8601"},
		{Name: "log_info", Kind: oip.LogBool},
		{Name: "log_none"},
		{Name: "log_verbose_level", Kind: oip.LogUint32, Uint32: 4294967295},
		{Name: "log_warnings", Kind: oip.LogBool, Bool: true},
	}
	got, err := oip.DecodeLogSettingsRequest(logRequest(in))
	if err != nil {
		t.Fatal(err)
	}
	sortLogSettings(got)
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %+v; want %+v", got, in)
	}
	out := slices.DeleteFunc(slices.Clone(in), func(s oip.LogSetting) bool { return s.Kind == oip.LogUnset })
	m := pbtest.New("LogSettingsResponse")
	if err := proto.Unmarshal(oip.AppendLogSettingsResponse(nil, out), m); err != nil {
		t.Fatal(err)
	}
	if got := logSettingsOf(m); !reflect.DeepEqual(got, out) {
		t.Fatalf("response read back as %+v; want %+v", got, out)
	}
	for _, c := range []struct {
		b        []byte
		fragment string
	}{
		// settings {key "a" value {uint32_param 2^32}}
		{[]byte{0x0a, 0x0b, 0x0a, 0x01, 'a', 0x12, 0x06, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10}, "over 4294967295"},
		// settings {key "a" value {string_param "\xff"}}
		{[]byte{0x0a, 0x08, 0x0a, 0x01, 'a', 0x12, 0x03, 0x1a, 0x01, 0xff}, "not valid UTF-8"},
		// settings {key "a" value {bool_param as length-delimited}}
		{[]byte{0x0a, 0x08, 0x0a, 0x01, 'a', 0x12, 0x03, 0x0a, 0x01, 0x01}, "wire type"},
		{[]byte{0x0a, 0x05}, "LogSettingsRequest"},
		{[]byte{0x08, 0x01}, "wire type"},
	} {
		if _, err := oip.DecodeLogSettingsRequest(c.b); err == nil || !strings.Contains(err.Error(), c.fragment) {
			t.Errorf("%x: got %v; want an error containing %q", c.b, err, c.fragment)
		}
	}
}

// FuzzDecodeLogSettingsRequest: any bytes decode or fail without a panic,
// and what decodes reads as the protobuf library reads it.
func FuzzDecodeLogSettingsRequest(f *testing.F) {
	f.Add(logRequest([]oip.LogSetting{{Name: "log_info", Kind: oip.LogBool}, {Name: "log_verbose_level", Kind: oip.LogUint32, Uint32: 1}, {Name: "log_format", Kind: oip.LogString, String: "default"}}))
	f.Add(logRequest(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := oip.DecodeLogSettingsRequest(b)
		if err != nil {
			return
		}
		m := pbtest.New("LogSettingsRequest")
		if proto.Unmarshal(b, m) != nil {
			return // the library is stricter in places (a map entry's fields); nothing to compare
		}
		sortLogSettings(got)
		want := logSettingsOf(m)
		if len(got) == 0 && len(want) == 0 {
			got, want = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v; protobuf reads %+v", got, want)
		}
	})
}
