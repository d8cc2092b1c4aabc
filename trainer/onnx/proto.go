package onnx

import (
	"encoding/binary"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of onnx.proto (package onnx, proto2 syntax), for the fields
// this writer emits. Fields are written in ascending number order, repeated
// scalars unpacked as proto2 does by default; every protobuf parser accepts
// both forms.
const (
	// ModelProto.
	fieldModelIRVersion     = 1  // int64 ir_version
	fieldModelProducerName  = 2  // string producer_name
	fieldModelDocString     = 6  // string doc_string
	fieldModelGraph         = 7  // GraphProto graph
	fieldModelOpsetImport   = 8  // repeated OperatorSetIdProto opset_import
	fieldModelMetadataProps = 14 // repeated StringStringEntryProto metadata_props

	// OperatorSetIdProto. The domain (1) is left out: absent means the
	// default ONNX domain "".
	fieldOpsetVersion = 2 // int64 version

	// StringStringEntryProto.
	fieldEntryKey   = 1 // string key
	fieldEntryValue = 2 // string value

	// GraphProto.
	fieldGraphNode        = 1  // repeated NodeProto node
	fieldGraphName        = 2  // string name
	fieldGraphInitializer = 5  // repeated TensorProto initializer
	fieldGraphInput       = 11 // repeated ValueInfoProto input
	fieldGraphOutput      = 12 // repeated ValueInfoProto output

	// NodeProto.
	fieldNodeInput     = 1 // repeated string input
	fieldNodeOutput    = 2 // repeated string output
	fieldNodeName      = 3 // string name
	fieldNodeOpType    = 4 // string op_type
	fieldNodeAttribute = 5 // repeated AttributeProto attribute

	// AttributeProto.
	fieldAttrName   = 1  // string name
	fieldAttrF      = 2  // float f
	fieldAttrI      = 3  // int64 i
	fieldAttrS      = 4  // bytes s
	fieldAttrFloats = 7  // repeated float floats
	fieldAttrInts   = 8  // repeated int64 ints
	fieldAttrType   = 20 // AttributeType type

	// ValueInfoProto.
	fieldValueInfoName = 1 // string name
	fieldValueInfoType = 2 // TypeProto type

	// TypeProto; its tensor_type is a TypeProto.Tensor.
	fieldTypeTensorType = 1 // TypeProto.Tensor tensor_type (oneof value)
	fieldTensorElemType = 1 // TypeProto.Tensor: int32 elem_type
	fieldTensorShape    = 2 // TypeProto.Tensor: TensorShapeProto shape

	// TensorShapeProto and its Dimension.
	fieldShapeDim = 1 // repeated Dimension dim
	fieldDimValue = 1 // Dimension: int64 dim_value (oneof value)
	fieldDimParam = 2 // Dimension: string dim_param (oneof value)

	// TensorProto.
	fieldTensorDims     = 1 // repeated int64 dims
	fieldTensorDataType = 2 // int32 data_type
	fieldTensorName     = 8 // string name
	fieldTensorRawData  = 9 // bytes raw_data
)

// attrType is AttributeProto.AttributeType.
type attrType int32

// The AttributeProto.AttributeType values that Attr can hold.
const (
	attrTypeFloat  attrType = 1
	attrTypeInt    attrType = 2
	attrTypeString attrType = 3
	attrTypeFloats attrType = 6
	attrTypeInts   attrType = 7
)

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessageField appends the already encoded message msg as field num.
func appendMessageField(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendFloatField(b []byte, num protowire.Number, f float32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(f))
}

// appendModel encodes m as a ModelProto, with the defaults of Model filled in.
func appendModel(b []byte, m *Model) []byte {
	b = appendVarintField(b, fieldModelIRVersion, uint64(m.irVersion()))
	b = appendStringField(b, fieldModelProducerName, m.producerName())
	if m.DocString != "" {
		b = appendStringField(b, fieldModelDocString, m.DocString)
	}
	b = appendMessageField(b, fieldModelGraph, appendGraph(make([]byte, 0, m.Graph.sizeHint()), &m.Graph))

	var opset []byte
	opset = appendVarintField(opset, fieldOpsetVersion, uint64(m.opset()))
	b = appendMessageField(b, fieldModelOpsetImport, opset)

	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var entry []byte
	for _, k := range keys {
		entry = appendStringField(entry[:0], fieldEntryKey, k)
		entry = appendStringField(entry, fieldEntryValue, m.Metadata[k])
		b = appendMessageField(b, fieldModelMetadataProps, entry)
	}
	return b
}

// appendGraph encodes g as a GraphProto.
func appendGraph(b []byte, g *Graph) []byte {
	var msg []byte
	for i := range g.Nodes {
		msg = appendNode(msg[:0], &g.Nodes[i])
		b = appendMessageField(b, fieldGraphNode, msg)
	}
	b = appendStringField(b, fieldGraphName, g.name())
	for i := range g.Initializers {
		t := &g.Initializers[i]
		// Tensors are written in place, without an intermediate buffer:
		// they hold nearly all of a model's bytes.
		b = protowire.AppendTag(b, fieldGraphInitializer, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(tensorSize(t)))
		b = appendTensor(b, t)
	}
	for i := range g.Inputs {
		msg = appendValueInfo(msg[:0], &g.Inputs[i])
		b = appendMessageField(b, fieldGraphInput, msg)
	}
	for i := range g.Outputs {
		msg = appendValueInfo(msg[:0], &g.Outputs[i])
		b = appendMessageField(b, fieldGraphOutput, msg)
	}
	return b
}

// appendNode encodes n as a NodeProto in the default domain.
func appendNode(b []byte, n *Node) []byte {
	for _, in := range n.Inputs {
		b = appendStringField(b, fieldNodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendStringField(b, fieldNodeOutput, out)
	}
	if n.Name != "" {
		b = appendStringField(b, fieldNodeName, n.Name)
	}
	b = appendStringField(b, fieldNodeOpType, n.OpType)
	var msg []byte
	for i := range n.Attrs {
		msg = appendAttr(msg[:0], &n.Attrs[i])
		b = appendMessageField(b, fieldNodeAttribute, msg)
	}
	return b
}

// appendAttr encodes a as an AttributeProto.
func appendAttr(b []byte, a *Attr) []byte {
	b = appendStringField(b, fieldAttrName, a.name)
	switch a.typ {
	case attrTypeFloat:
		b = appendFloatField(b, fieldAttrF, a.f)
	case attrTypeInt:
		b = appendVarintField(b, fieldAttrI, uint64(a.i))
	case attrTypeString:
		b = appendStringField(b, fieldAttrS, a.s)
	case attrTypeFloats:
		for _, f := range a.floats {
			b = appendFloatField(b, fieldAttrFloats, f)
		}
	case attrTypeInts:
		for _, v := range a.ints {
			b = appendVarintField(b, fieldAttrInts, uint64(v))
		}
	}
	return appendVarintField(b, fieldAttrType, uint64(a.typ))
}

// appendValueInfo encodes v as a ValueInfoProto holding a tensor type.
func appendValueInfo(b []byte, v *ValueInfo) []byte {
	b = appendStringField(b, fieldValueInfoName, v.Name)

	var shape, dim []byte
	for _, d := range v.Dims {
		if d < 0 {
			dim = appendStringField(dim[:0], fieldDimParam, BatchDim)
		} else {
			dim = appendVarintField(dim[:0], fieldDimValue, uint64(d))
		}
		shape = appendMessageField(shape, fieldShapeDim, dim)
	}
	var tensorType []byte
	tensorType = appendVarintField(tensorType, fieldTensorElemType, uint64(v.Type))
	tensorType = appendMessageField(tensorType, fieldTensorShape, shape)

	var typ []byte
	typ = appendMessageField(typ, fieldTypeTensorType, tensorType)
	return appendMessageField(b, fieldValueInfoType, typ)
}

// appendTensor encodes t as a TensorProto whose data is in raw_data,
// little-endian. It appends exactly tensorSize(t) bytes.
func appendTensor(b []byte, t *Tensor) []byte {
	for _, d := range t.Dims {
		b = appendVarintField(b, fieldTensorDims, uint64(d))
	}
	b = appendVarintField(b, fieldTensorDataType, uint64(t.Type))
	b = appendStringField(b, fieldTensorName, t.Name)
	b = protowire.AppendTag(b, fieldTensorRawData, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(rawSize(t)))
	switch {
	case t.Floats != nil:
		for _, f := range t.Floats {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
		}
	case t.Int64s != nil:
		for _, v := range t.Int64s {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	default:
		b = append(b, t.Raw...)
	}
	return b
}

// rawSize returns the length of t's raw_data.
func rawSize(t *Tensor) int {
	switch {
	case t.Floats != nil:
		return 4 * len(t.Floats)
	case t.Int64s != nil:
		return 8 * len(t.Int64s)
	default:
		return len(t.Raw)
	}
}

// tensorSize returns the length of t's TensorProto encoding, as appendTensor
// writes it.
func tensorSize(t *Tensor) int {
	n := 0
	for _, d := range t.Dims {
		n += protowire.SizeTag(fieldTensorDims) + protowire.SizeVarint(uint64(d))
	}
	n += protowire.SizeTag(fieldTensorDataType) + protowire.SizeVarint(uint64(t.Type))
	n += protowire.SizeTag(fieldTensorName) + protowire.SizeBytes(len(t.Name))
	n += protowire.SizeTag(fieldTensorRawData) + protowire.SizeBytes(rawSize(t))
	return n
}
