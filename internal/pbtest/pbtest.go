// Package pbtest describes the protocol's gRPC messages
// (inference.GRPCInferenceService) to the protobuf runtime, for tests: it
// builds their descriptor from the field numbers of the protocol's .proto
// file, so that dynamicpb messages, encoded and decoded by the protobuf
// library itself, check infergate's hand-written codec (oip/grpc.go)
// against another implementation of the wire format.
package pbtest

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

type kind = descriptorpb.FieldDescriptorProto_Type

const (
	tBool    = descriptorpb.FieldDescriptorProto_TYPE_BOOL
	tInt32   = descriptorpb.FieldDescriptorProto_TYPE_INT32
	tInt64   = descriptorpb.FieldDescriptorProto_TYPE_INT64
	tUint32  = descriptorpb.FieldDescriptorProto_TYPE_UINT32
	tUint64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
	tFloat   = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
	tDouble  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	tString  = descriptorpb.FieldDescriptorProto_TYPE_STRING
	tBytes   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
	tMessage = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	tEnum    = descriptorpb.FieldDescriptorProto_TYPE_ENUM
	optional = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	repeated = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
)

func field(name string, num int32, t kind, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: t.Enum(), Label: label.Enum(), JsonName: proto.String(name)}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

func one(name string, num int32, t kind) *descriptorpb.FieldDescriptorProto {
	return field(name, num, t, optional, "")
}

func many(name string, num int32, t kind) *descriptorpb.FieldDescriptorProto {
	return field(name, num, t, repeated, "")
}

func msgs(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tMessage, repeated, typeName)
}

func msg(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tMessage, optional, typeName)
}

// enumField returns field num of the enum type typeName.
func enumField(name string, num int32, typeName string) *descriptorpb.FieldDescriptorProto {
	return field(name, num, tEnum, optional, typeName)
}

// enum describes an enum type whose values are named in order from 0.
func enum(name string, values ...string) *descriptorpb.EnumDescriptorProto {
	e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
	for i, v := range values {
		e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(i))})
	}
	return e
}

func message(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
	return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
}

// paramsMap returns the map<string, InferParameter> field num and its
// entry type, named as protoc names them.
func paramsMap(parent string, num int32) (*descriptorpb.FieldDescriptorProto, *descriptorpb.DescriptorProto) {
	entry := message("ParametersEntry", one("key", 1, tString), msg("value", 2, ".inference.InferParameter"))
	entry.Options = &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}
	return msgs("parameters", num, parent+".ParametersEntry"), entry
}

func withParams(m *descriptorpb.DescriptorProto, full string, num int32) *descriptorpb.DescriptorProto {
	f, e := paramsMap(full, num)
	m.Field = append(m.Field, f)
	m.NestedType = append(m.NestedType, e)
	return m
}

var files = func() protoreflect.FileDescriptor {
	param := message("InferParameter",
		one("bool_param", 1, tBool), one("int64_param", 2, tInt64), one("string_param", 3, tString),
		one("double_param", 4, tDouble), one("uint64_param", 5, tUint64))
	param.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("parameter_choice")}}
	for _, f := range param.Field {
		f.OneofIndex = proto.Int32(0)
	}
	contents := message("InferTensorContents",
		many("bool_contents", 1, tBool), many("int_contents", 2, tInt32), many("int64_contents", 3, tInt64),
		many("uint_contents", 4, tUint32), many("uint64_contents", 5, tUint64), many("fp32_contents", 6, tFloat),
		many("fp64_contents", 7, tDouble), many("bytes_contents", 8, tBytes))
	tensor := func(name, full string) *descriptorpb.DescriptorProto {
		m := message(name, one("name", 1, tString), one("datatype", 2, tString), many("shape", 3, tInt64))
		m = withParams(m, full, 4)
		m.Field = append(m.Field, msg("contents", 5, ".inference.InferTensorContents"))
		return m
	}
	reqOut := withParams(message("InferRequestedOutputTensor", one("name", 1, tString)),
		".inference.ModelInferRequest.InferRequestedOutputTensor", 2)
	req := message("ModelInferRequest", one("model_name", 1, tString), one("model_version", 2, tString), one("id", 3, tString))
	req = withParams(req, ".inference.ModelInferRequest", 4)
	req.Field = append(req.Field,
		msgs("inputs", 5, ".inference.ModelInferRequest.InferInputTensor"),
		msgs("outputs", 6, ".inference.ModelInferRequest.InferRequestedOutputTensor"),
		many("raw_input_contents", 7, tBytes))
	req.NestedType = append(req.NestedType, tensor("InferInputTensor", ".inference.ModelInferRequest.InferInputTensor"), reqOut)
	resp := message("ModelInferResponse", one("model_name", 1, tString), one("model_version", 2, tString), one("id", 3, tString))
	resp = withParams(resp, ".inference.ModelInferResponse", 4)
	resp.Field = append(resp.Field,
		msgs("outputs", 5, ".inference.ModelInferResponse.InferOutputTensor"),
		many("raw_output_contents", 6, tBytes))
	resp.NestedType = append(resp.NestedType, tensor("InferOutputTensor", ".inference.ModelInferResponse.InferOutputTensor"))
	tmeta := withParams(message("TensorMetadata", one("name", 1, tString), one("datatype", 2, tString), many("shape", 3, tInt64)),
		".inference.ModelMetadataResponse.TensorMetadata", 4)
	mmeta := message("ModelMetadataResponse", one("name", 1, tString), many("versions", 2, tString), one("platform", 3, tString),
		msgs("inputs", 4, ".inference.ModelMetadataResponse.TensorMetadata"),
		msgs("outputs", 5, ".inference.ModelMetadataResponse.TensorMetadata"))
	mmeta.NestedType = []*descriptorpb.DescriptorProto{tmeta}
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("infergate_pbtest_inference.proto"),
		Package: proto.String("inference"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			message("ServerLiveRequest"), message("ServerLiveResponse", one("live", 1, tBool)),
			message("ServerReadyRequest"), message("ServerReadyResponse", one("ready", 1, tBool)),
			message("ModelReadyRequest", one("name", 1, tString), one("version", 2, tString)),
			message("ModelReadyResponse", one("ready", 1, tBool)),
			message("ServerMetadataRequest"),
			message("ServerMetadataResponse", one("name", 1, tString), one("version", 2, tString), many("extensions", 3, tString)),
			message("ModelMetadataRequest", one("name", 1, tString), one("version", 2, tString)),
			mmeta, req, resp, param, contents,
			message("ModelStreamInferResponse", one("error_message", 1, tString), msg("infer_response", 2, ".inference.ModelInferResponse")),
		},
	}
	addTriton(fd)
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(fmt.Sprintf("BUG: the test descriptor of the protocol is wrong: %v", err))
	}
	return f
}()

// New returns an empty dynamic message of the protocol's message name,
// such as "ModelInferRequest"; it panics for a name the protocol lacks.
func New(name string) *dynamicpb.Message {
	d := files.Messages().ByName(protoreflect.Name(name))
	if d == nil {
		panic("pbtest: no message " + name)
	}
	return dynamicpb.NewMessage(d)
}

// Tensor is what a test puts in an input or reads from an output.
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	// FP32, Int, Bytes fill the typed contents (leave all empty for raw).
	FP32  []float32
	Int   []int32
	Bytes [][]byte
}

// Param is an InferParameter: set exactly one.
type Param struct {
	Bool   *bool
	Int64  *int64
	Uint64 *uint64
	String *string
}

// InferRequest returns a ModelInferRequest: model and version, the inputs
// with their typed contents, raw (one entry per input, or nil), and the
// request parameters and requested outputs with their parameters.
func InferRequest(model, version, id string, inputs []Tensor, raw [][]byte, params map[string]Param, outputs map[string]map[string]Param) *dynamicpb.Message {
	m := New("ModelInferRequest")
	fs := m.Descriptor().Fields()
	m.Set(fs.ByName("model_name"), protoreflect.ValueOfString(model))
	m.Set(fs.ByName("model_version"), protoreflect.ValueOfString(version))
	m.Set(fs.ByName("id"), protoreflect.ValueOfString(id))
	setParams(m, params)
	ins := m.Mutable(fs.ByName("inputs")).List()
	for _, t := range inputs {
		in := ins.NewElement().Message()
		ifs := in.Descriptor().Fields()
		in.Set(ifs.ByName("name"), protoreflect.ValueOfString(t.Name))
		in.Set(ifs.ByName("datatype"), protoreflect.ValueOfString(t.Datatype))
		shape := in.Mutable(ifs.ByName("shape")).List()
		for _, d := range t.Shape {
			shape.Append(protoreflect.ValueOfInt64(d))
		}
		if t.FP32 != nil || t.Int != nil || t.Bytes != nil {
			c := in.Mutable(ifs.ByName("contents")).Message()
			cfs := c.Descriptor().Fields()
			for _, x := range t.FP32 {
				c.Mutable(cfs.ByName("fp32_contents")).List().Append(protoreflect.ValueOfFloat32(x))
			}
			for _, x := range t.Int {
				c.Mutable(cfs.ByName("int_contents")).List().Append(protoreflect.ValueOfInt32(x))
			}
			for _, x := range t.Bytes {
				c.Mutable(cfs.ByName("bytes_contents")).List().Append(protoreflect.ValueOfBytes(x))
			}
		}
		ins.Append(protoreflect.ValueOfMessage(in))
	}
	for name, ps := range outputs {
		l := m.Mutable(fs.ByName("outputs")).List()
		o := l.NewElement().Message()
		o.Set(o.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString(name))
		setParams(o, ps)
		l.Append(protoreflect.ValueOfMessage(o))
	}
	for _, r := range raw {
		m.Mutable(fs.ByName("raw_input_contents")).List().Append(protoreflect.ValueOfBytes(r))
	}
	return m
}

func setParams(m protoreflect.Message, params map[string]Param) {
	if len(params) == 0 {
		return
	}
	mp := m.Mutable(m.Descriptor().Fields().ByName("parameters")).Map()
	for k, p := range params {
		v := mp.NewValue().Message()
		pfs := v.Descriptor().Fields()
		switch {
		case p.Bool != nil:
			v.Set(pfs.ByName("bool_param"), protoreflect.ValueOfBool(*p.Bool))
		case p.Int64 != nil:
			v.Set(pfs.ByName("int64_param"), protoreflect.ValueOfInt64(*p.Int64))
		case p.Uint64 != nil:
			v.Set(pfs.ByName("uint64_param"), protoreflect.ValueOfUint64(*p.Uint64))
		case p.String != nil:
			v.Set(pfs.ByName("string_param"), protoreflect.ValueOfString(*p.String))
		}
		mp.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfMessage(v))
	}
}

// Output is one output of a decoded ModelInferResponse.
type Output struct {
	Name     string
	Datatype string
	Shape    []int64
	Raw      []byte
}

// Response is a decoded ModelInferResponse.
type Response struct {
	Model, Version, ID string
	Outputs            []Output
	// Params holds its parameters' values, if any: bool, int64, string,
	// float64 or uint64.
	Params map[string]any
}

// DecodeInferResponse decodes b as a ModelInferResponse with the protobuf
// library.
func DecodeInferResponse(b []byte) (*Response, error) {
	m := New("ModelInferResponse")
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return decodeResponse(m)
}

// DecodeStreamResponse decodes b as a ModelStreamInferResponse with the
// protobuf library: its error_message and its infer_response.
func DecodeStreamResponse(b []byte) (string, *Response, error) {
	m := New("ModelStreamInferResponse")
	if err := proto.Unmarshal(b, m); err != nil {
		return "", nil, err
	}
	fs := m.Descriptor().Fields()
	r, err := decodeResponse(m.Get(fs.ByName("infer_response")).Message())
	return m.Get(fs.ByName("error_message")).String(), r, err
}

func decodeResponse(m protoreflect.Message) (*Response, error) {
	fs := m.Descriptor().Fields()
	r := &Response{
		Model:   m.Get(fs.ByName("model_name")).String(),
		Version: m.Get(fs.ByName("model_version")).String(),
		ID:      m.Get(fs.ByName("id")).String(),
	}
	m.Get(fs.ByName("parameters")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		p := v.Message()
		if f := p.WhichOneof(p.Descriptor().Oneofs().ByName("parameter_choice")); f != nil {
			if r.Params == nil {
				r.Params = make(map[string]any)
			}
			r.Params[k.String()] = p.Get(f).Interface()
		}
		return true
	})
	outs := m.Get(fs.ByName("outputs")).List()
	raws := m.Get(fs.ByName("raw_output_contents")).List()
	if raws.Len() != outs.Len() {
		return nil, fmt.Errorf("%d raw_output_contents for %d outputs", raws.Len(), outs.Len())
	}
	for i := range outs.Len() {
		o := outs.Get(i).Message()
		ofs := o.Descriptor().Fields()
		out := Output{Name: o.Get(ofs.ByName("name")).String(), Datatype: o.Get(ofs.ByName("datatype")).String(), Raw: raws.Get(i).Bytes()}
		sh := o.Get(ofs.ByName("shape")).List()
		for j := range sh.Len() {
			out.Shape = append(out.Shape, sh.Get(j).Int())
		}
		r.Outputs = append(r.Outputs, out)
	}
	return r, nil
}
