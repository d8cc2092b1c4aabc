package engine

import (
	"strconv"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infergate/infergate/oip"
)

// ortTypes maps each oip.DataType that the engine carries to ONNX Runtime's
// element type; 0 (ONNX's UNDEFINED) marks the ones it does not.
var ortTypes = [...]ort.TensorElementDataType{
	oip.BOOL:   ort.TensorElementDataTypeBool,
	oip.UINT8:  ort.TensorElementDataTypeUint8,
	oip.UINT16: ort.TensorElementDataTypeUint16,
	oip.UINT32: ort.TensorElementDataTypeUint32,
	oip.UINT64: ort.TensorElementDataTypeUint64,
	oip.INT8:   ort.TensorElementDataTypeInt8,
	oip.INT16:  ort.TensorElementDataTypeInt16,
	oip.INT32:  ort.TensorElementDataTypeInt32,
	oip.INT64:  ort.TensorElementDataTypeInt64,
	oip.FP16:   ort.TensorElementDataTypeFloat16,
	oip.FP32:   ort.TensorElementDataTypeFloat,
	oip.FP64:   ort.TensorElementDataTypeDouble,
	oip.BYTES:  ort.TensorElementDataTypeUndefined,
}

// toORT returns ONNX Runtime's element type for d, and false when the
// engine cannot carry d (BYTES, InvalidType).
func toORT(d oip.DataType) (ort.TensorElementDataType, bool) {
	if int(d) >= len(ortTypes) || ortTypes[d] == ort.TensorElementDataTypeUndefined {
		return ort.TensorElementDataTypeUndefined, false
	}
	return ortTypes[d], true
}

// fromORT returns the oip.DataType of ONNX Runtime's element type t, and
// false when there is none (string, bfloat16, complex, float8, int4, ...).
func fromORT(t ort.TensorElementDataType) (oip.DataType, bool) {
	for d, ot := range ortTypes {
		if ot == t && ot != ort.TensorElementDataTypeUndefined {
			return oip.DataType(d), true
		}
	}
	return oip.InvalidType, false
}

// ortTypeName names ONNX Runtime's element type t the way ONNX does
// ("FLOAT", "STRING", "BFLOAT16"), for error messages.
func ortTypeName(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "FLOAT"
	case ort.TensorElementDataTypeUint8:
		return "UINT8"
	case ort.TensorElementDataTypeInt8:
		return "INT8"
	case ort.TensorElementDataTypeUint16:
		return "UINT16"
	case ort.TensorElementDataTypeInt16:
		return "INT16"
	case ort.TensorElementDataTypeInt32:
		return "INT32"
	case ort.TensorElementDataTypeInt64:
		return "INT64"
	case ort.TensorElementDataTypeString:
		return "STRING"
	case ort.TensorElementDataTypeBool:
		return "BOOL"
	case ort.TensorElementDataTypeFloat16:
		return "FLOAT16"
	case ort.TensorElementDataTypeDouble:
		return "DOUBLE"
	case ort.TensorElementDataTypeUint32:
		return "UINT32"
	case ort.TensorElementDataTypeUint64:
		return "UINT64"
	case ort.TensorElementDataTypeComplex64:
		return "COMPLEX64"
	case ort.TensorElementDataTypeComplex128:
		return "COMPLEX128"
	case ort.TensorElementDataTypeBFloat16:
		return "BFLOAT16"
	case ort.TensorElementDataTypeFloat8E4M3FN:
		return "FLOAT8E4M3FN"
	case ort.TensorElementDataTypeFloat8E4M3FNUZ:
		return "FLOAT8E4M3FNUZ"
	case ort.TensorElementDataTypeFloat8E5M2:
		return "FLOAT8E5M2"
	case ort.TensorElementDataTypeFloat8E5M2FNUZ:
		return "FLOAT8E5M2FNUZ"
	case ort.TensorElementDataTypeUint4:
		return "UINT4"
	case ort.TensorElementDataTypeInt4:
		return "INT4"
	}
	return "element type " + strconv.Itoa(int(t))
}

// onnxKindName names a non-tensor ONNX value kind for error messages.
func onnxKindName(t ort.ONNXType) string {
	switch t {
	case ort.ONNXTypeSequence:
		return "sequence"
	case ort.ONNXTypeMap:
		return "map"
	case ort.ONNXTypeOpaque:
		return "opaque value"
	case ort.ONNXTypeSparseTensor:
		return "sparse tensor"
	case ort.ONNXTypeOptional:
		return "optional value"
	}
	return "value of unknown kind " + strconv.Itoa(int(t))
}

// valueBytes returns the raw bytes of an output that ONNX Runtime
// allocated and onnxruntime_go copied into Go memory, and false for a kind
// of value the engine never asks for. The bytes alias v's memory: copy them
// before v is destroyed.
func valueBytes(v ort.Value) ([]byte, bool) {
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[float64]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[int8]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[int16]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[int32]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[int64]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[uint8]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[uint16]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[uint32]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[uint64]:
		return asBytes(t.GetData()), true
	case *ort.Tensor[bool]:
		// A Go bool is one byte holding 0 or 1, as the protocol's BOOL is.
		return asBytes(t.GetData()), true
	case *ort.CustomDataTensor:
		return t.GetData(), true
	}
	return nil, false
}

// asBytes views s as its raw bytes in host order, which is little-endian on
// every platform ONNX Runtime ships for.
func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}
