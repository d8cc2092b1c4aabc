package oip

import (
	"encoding/binary"
	"math"
)

// Float64At returns element i of data, a tensor of type d in the
// protocol's little-endian layout, as a float64; ok is false for BYTES
// and invalid types. It serves comparisons, not the request path.
func Float64At(d DataType, data []byte, i int) (v float64, ok bool) {
	le := binary.LittleEndian
	switch d {
	case BOOL, UINT8:
		return float64(data[i]), true
	case INT8:
		return float64(int8(data[i])), true
	case UINT16:
		return float64(le.Uint16(data[2*i:])), true
	case INT16:
		return float64(int16(le.Uint16(data[2*i:]))), true
	case UINT32:
		return float64(le.Uint32(data[4*i:])), true
	case INT32:
		return float64(int32(le.Uint32(data[4*i:]))), true
	case UINT64:
		return float64(le.Uint64(data[8*i:])), true
	case INT64:
		return float64(int64(le.Uint64(data[8*i:]))), true
	case FP16:
		return float64(halfToFloat32(le.Uint16(data[2*i:]))), true
	case FP32:
		return float64(math.Float32frombits(le.Uint32(data[4*i:]))), true
	case FP64:
		return math.Float64frombits(le.Uint64(data[8*i:])), true
	}
	return 0, false
}
