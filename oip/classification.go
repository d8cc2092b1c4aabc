package oip

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// The classification extension (Triton's): an output asked for with the
// "classification" parameter N comes back, in place of its values, as the
// N highest-valued elements of each batch entry (of the whole tensor when
// the model does not batch), highest first, each as the BYTES string
// "<value>:<index>". The index counts the entry's elements in row-major
// order; equal values keep index order. Values are printed as Triton
// prints them: integers in decimal, floats with six decimals, and "inf",
// "-inf" and "nan". infergate has no label files, so no ":<label>" part
// follows.

// MaxClassification bounds the "classification" parameter.
const MaxClassification = 1 << 20

// Classifiable reports whether an output of type dt can be classified: the
// integer types, FP16, FP32 and FP64.
func Classifiable(dt DataType) bool {
	switch dt {
	case UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64:
		return true
	}
	return false
}

// Classify sets dst to the top-k classification of t, whose first
// dimension is the batch when batched: a BYTES tensor of shape
// [batch, n], or [n] when not batched, n being k or each entry's element
// count if smaller. It reuses dst's Name, Shape and Data, and order as its
// scratch, which it returns. It fails, leaving dst unusable, when t's
// type is not Classifiable, or when dst's data would exceed limit bytes.
func Classify(dst, t *Tensor, k int64, batched bool, limit int, order []int) ([]int, error) {
	if !Classifiable(t.Datatype) {
		return order, errorf("output %q is %s: classification needs an integer, FP16, FP32 or FP64 output", t.Name, t.Datatype)
	}
	size := t.Datatype.Size()
	total := len(t.Data) / size
	rows := 1
	if batched && len(t.Shape) > 0 {
		rows = int(t.Shape[0])
	}
	per := 0
	if rows > 0 {
		per = total / rows
	}
	n := int(min(k, int64(per)))
	dst.Name = t.Name
	dst.Datatype = BYTES
	if batched {
		dst.Shape = append(dst.Shape[:0], int64(rows), int64(n))
	} else {
		dst.Shape = append(dst.Shape[:0], int64(n))
	}
	dst.Data = dst.Data[:0]
	for r := range rows {
		row := t.Data[r*per*size : (r+1)*per*size]
		order = order[:0]
		for i := range per {
			order = append(order, i)
		}
		slices.SortStableFunc(order, func(a, b int) int { return compareElems(t.Datatype, row, b, a) })
		for _, i := range order[:n] {
			start := len(dst.Data)
			dst.Data = append(dst.Data, 0, 0, 0, 0) // the length, set below
			dst.Data = appendClassValue(dst.Data, t.Datatype, row, i)
			dst.Data = append(dst.Data, ':')
			dst.Data = strconv.AppendInt(dst.Data, int64(i), 10)
			binary.LittleEndian.PutUint32(dst.Data[start:], uint32(len(dst.Data)-start-4))
			if len(dst.Data) > limit {
				return order, errorf("the classification of output %q takes more than %d bytes; ask for fewer classes", t.Name, limit)
			}
		}
	}
	return order, nil
}

// compareElems compares elements i and j of row, of type dt, by value; a
// NaN is below every number.
func compareElems(dt DataType, row []byte, i, j int) int {
	switch dt {
	case UINT8:
		return cmp.Compare(row[i], row[j])
	case UINT16:
		return cmp.Compare(binary.LittleEndian.Uint16(row[2*i:]), binary.LittleEndian.Uint16(row[2*j:]))
	case UINT32:
		return cmp.Compare(binary.LittleEndian.Uint32(row[4*i:]), binary.LittleEndian.Uint32(row[4*j:]))
	case UINT64:
		return cmp.Compare(binary.LittleEndian.Uint64(row[8*i:]), binary.LittleEndian.Uint64(row[8*j:]))
	case INT8:
		return cmp.Compare(int8(row[i]), int8(row[j]))
	case INT16:
		return cmp.Compare(int16(binary.LittleEndian.Uint16(row[2*i:])), int16(binary.LittleEndian.Uint16(row[2*j:])))
	case INT32:
		return cmp.Compare(int32(binary.LittleEndian.Uint32(row[4*i:])), int32(binary.LittleEndian.Uint32(row[4*j:])))
	case INT64:
		return cmp.Compare(int64(binary.LittleEndian.Uint64(row[8*i:])), int64(binary.LittleEndian.Uint64(row[8*j:])))
	}
	// cmp.Compare orders a NaN below every number, as wanted.
	return cmp.Compare(floatElem(dt, row, i), floatElem(dt, row, j))
}

// floatElem returns element i of row, of floating-point type dt.
func floatElem(dt DataType, row []byte, i int) float64 {
	switch dt {
	case FP16:
		return float64(halfToFloat32(binary.LittleEndian.Uint16(row[2*i:])))
	case FP32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:])))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(row[8*i:]))
}

// appendClassValue appends element i of row, of type dt, as classification
// strings print it.
func appendClassValue(dst []byte, dt DataType, row []byte, i int) []byte {
	switch dt {
	case UINT8:
		return strconv.AppendUint(dst, uint64(row[i]), 10)
	case UINT16:
		return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(row[2*i:])), 10)
	case UINT32:
		return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(row[4*i:])), 10)
	case UINT64:
		return strconv.AppendUint(dst, binary.LittleEndian.Uint64(row[8*i:]), 10)
	case INT8:
		return strconv.AppendInt(dst, int64(int8(row[i])), 10)
	case INT16:
		return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(row[2*i:]))), 10)
	case INT32:
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(row[4*i:]))), 10)
	case INT64:
		return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(row[8*i:])), 10)
	}
	switch f := floatElem(dt, row, i); {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	default:
		return strconv.AppendFloat(dst, f, 'f', 6, 64)
	}
}
