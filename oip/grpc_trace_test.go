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

// traceRequest builds a TraceSettingRequest with the protobuf library.
func traceRequest(model string, settings []oip.TraceSetting) []byte {
	m := pbtest.New("TraceSettingRequest")
	fs := m.Descriptor().Fields()
	mp := m.Mutable(fs.ByName("settings")).Map()
	for _, s := range settings {
		v := mp.NewValue().Message()
		list := v.Mutable(v.Descriptor().Fields().ByName("value")).List()
		for _, x := range s.Values {
			list.Append(protoreflect.ValueOfString(x))
		}
		mp.Set(protoreflect.ValueOfString(s.Name).MapKey(), protoreflect.ValueOfMessage(v))
	}
	if model != "" {
		m.Set(fs.ByName("model_name"), protoreflect.ValueOfString(model))
	}
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// settingsOf reads the settings map of a TraceSetting message.
func settingsOf(m *dynamicpb.Message) []oip.TraceSetting {
	var out []oip.TraceSetting
	m.Get(m.Descriptor().Fields().ByName("settings")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		s := oip.TraceSetting{Name: k.String()}
		list := v.Message().Get(v.Message().Descriptor().Fields().ByName("value")).List()
		for i := range list.Len() {
			s.Values = append(s.Values, list.Get(i).String())
		}
		out = append(out, s)
		return true
	})
	slices.SortFunc(out, func(a, b oip.TraceSetting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TraceSetting's request, as a protobuf library writes it, decodes to its
// settings (no values: clear it) and model; the answer reads back in a
// protobuf library as written, empty values included.
func TestTraceSettingCodec(t *testing.T) {
	in := []oip.TraceSetting{{Name: "log_frequency"}, {Name: "trace_level", Values: []string{"TIMESTAMPS"}}, {Name: "trace_rate", Values: []string{"10"}}}
	got, model, err := oip.DecodeTraceSettingRequest(traceRequest("ctr", in))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b oip.TraceSetting) int { return strings.Compare(a.Name, b.Name) })
	if model != "ctr" || !reflect.DeepEqual(got, in) {
		t.Fatalf("got %q %+v; want ctr %+v", model, got, in)
	}
	out := []oip.TraceSetting{{Name: "trace_file", Values: []string{""}}, {Name: "trace_level", Values: []string{"OFF"}}, {Name: "trace_rate", Values: []string{"1000"}}}
	m := pbtest.New("TraceSettingResponse")
	if err := proto.Unmarshal(oip.AppendTraceSettingResponse(nil, out), m); err != nil {
		t.Fatal(err)
	}
	if got := settingsOf(m); !reflect.DeepEqual(got, out) {
		t.Fatalf("response read back as %+v; want %+v", got, out)
	}
	for _, c := range []struct {
		b        []byte
		fragment string
	}{
		{[]byte{0x12, 0x02, 0xff, 0xfe}, "not valid UTF-8"},
		{[]byte{0x0a, 0x05}, "TraceSettingRequest"},
		{[]byte{0x08, 0x01}, "wire type"},
	} {
		if _, _, err := oip.DecodeTraceSettingRequest(c.b); err == nil || !strings.Contains(err.Error(), c.fragment) {
			t.Errorf("%x: got %v; want an error containing %q", c.b, err, c.fragment)
		}
	}
}

// FuzzDecodeTraceSettingRequest: any bytes decode or fail without a
// panic, and what decodes is what the protobuf library reads there.
func FuzzDecodeTraceSettingRequest(f *testing.F) {
	f.Add(traceRequest("ctr", []oip.TraceSetting{{Name: "trace_level", Values: []string{"TIMESTAMPS"}}, {Name: "trace_count"}}))
	f.Add(traceRequest("", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, model, err := oip.DecodeTraceSettingRequest(b)
		if err != nil {
			return
		}
		m := pbtest.New("TraceSettingRequest")
		if proto.Unmarshal(b, m) != nil {
			return // the library is stricter in places (a map entry's fields); nothing to compare
		}
		slices.SortFunc(got, func(a, b oip.TraceSetting) int { return strings.Compare(a.Name, b.Name) })
		want := settingsOf(m)
		if len(got) == 0 && len(want) == 0 {
			got, want = nil, nil
		}
		if wantModel := m.Get(m.Descriptor().Fields().ByName("model_name")).String(); model != wantModel || !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %q %+v; protobuf reads %q %+v", model, got, wantModel, want)
		}
	})
}
