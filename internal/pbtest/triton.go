package pbtest

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// RepositoryRequest returns a RepositoryModelLoadRequest or
// RepositoryModelUnloadRequest (typ) for model, with params: each value a
// bool, int64, string or []byte, set as the ModelRepositoryParameter
// field of its type.
func RepositoryRequest(typ, model string, params map[string]any) *dynamicpb.Message {
	m := New(typ)
	fs := m.Descriptor().Fields()
	m.Set(fs.ByName("model_name"), protoreflect.ValueOfString(model))
	ps := m.Mutable(fs.ByName("parameters")).Map()
	for k, v := range params {
		pv := dynamicpb.NewMessage(fs.ByName("parameters").MapValue().Message())
		pfs := pv.Descriptor().Fields()
		switch x := v.(type) {
		case bool:
			pv.Set(pfs.ByName("bool_param"), protoreflect.ValueOfBool(x))
		case int64:
			pv.Set(pfs.ByName("int64_param"), protoreflect.ValueOfInt64(x))
		case string:
			pv.Set(pfs.ByName("string_param"), protoreflect.ValueOfString(x))
		case []byte:
			pv.Set(pfs.ByName("bytes_param"), protoreflect.ValueOfBytes(x))
		default:
			panic(fmt.Sprintf("pbtest: a ModelRepositoryParameter has no field for a %T", v))
		}
		ps.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfMessage(pv))
	}
	return m
}

// Unknown returns the fields of m, and of the messages in it, that its
// descriptor does not name, as "path: field N": a field an encoder sent
// under a number the protocol does not give it.
func Unknown(m protoreflect.Message) []string {
	var out []string
	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		b := m.GetUnknown()
		for len(b) > 0 {
			num, typ, n := protowireConsumeField(b)
			if n < 0 {
				out = append(out, fmt.Sprintf("%s: unparsable unknown bytes", path))
				break
			}
			out = append(out, fmt.Sprintf("%s: field %d (wire type %d)", path, num, typ))
			b = b[n:]
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapValue().Message() != nil {
					v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
						walk(fmt.Sprintf("%s[%v]", name, k), e.Message())
						return true
					})
				}
			case fd.IsList():
				if fd.Message() != nil {
					for i := range v.List().Len() {
						walk(fmt.Sprintf("%s[%d]", name, i), v.List().Get(i).Message())
					}
				}
			case fd.Message() != nil:
				walk(name, v.Message())
			}
			return true
		})
	}
	walk(string(m.Descriptor().Name()), m)
	return out
}

// protowireConsumeField parses the field at the start of b: its number,
// wire type and length in all (negative when malformed).
func protowireConsumeField(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, n
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, m
	}
	return num, typ, n + m
}
