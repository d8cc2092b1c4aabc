// Package pbtest builds and reads the protocol's gRPC messages
// (inference.GRPCInferenceService) with the protobuf library, for tests:
// dynamicpb messages of the descriptor oip.GRPCFile (the field numbers of
// the protocol's .proto files, written down apart from the codec's),
// encoded and decoded by the protobuf library itself, check infergate's
// hand-written codec (oip/grpc.go) against another implementation of the
// wire format.
package pbtest

import (
	"fmt"

	"github.com/infergate/infergate/oip"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// files is the protocol's descriptor, as infergate gives it to gRPC's
// reflection service (oip.GRPCFile).
var files = oip.GRPCFile()

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
	// Params are an input's parameters.
	Params map[string]Param
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
		setParams(in, t.Params)
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

// paramValues returns the values of m's parameters map, nil if empty.
func paramValues(m protoreflect.Message) map[string]any {
	var out map[string]any
	m.Get(m.Descriptor().Fields().ByName("parameters")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		p := v.Message()
		if f := p.WhichOneof(p.Descriptor().Oneofs().ByName("parameter_choice")); f != nil {
			if out == nil {
				out = make(map[string]any)
			}
			out[k.String()] = p.Get(f).Interface()
		}
		return true
	})
	return out
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
	r.Params = paramValues(m)
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
