package oip

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The Triton binary tensor extension sends tensor data after the JSON
// header: the Inference-Header-Content-Length header says where the JSON
// ends, and each tensor with a "binary_data_size" parameter takes that many
// bytes, in the order the tensors appear. The bytes are laid out exactly as
// Tensor.Data is, so a binary tensor is checked and copied, no more.

// AppendBytesElement appends one element of a BYTES tensor to dst, as
// Tensor.Data lays it out: its length as 4 bytes little-endian, then b.
func AppendBytesElement(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// nextBytesElement splits the first element off BYTES data. ok is false
// when data is too short for the length it starts with.
func nextBytesElement(data []byte) (elem, rest []byte, ok bool) {
	if len(data) < 4 {
		return nil, data, false
	}
	n := binary.LittleEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) {
		return nil, data, false
	}
	return data[4 : 4+n], data[4+n:], true
}

// checkBinary checks that data holds exactly the elements that shape
// declares for dt: the right number of bytes, BOOL bytes of 0 or 1, and
// BYTES elements whose lengths add up.
func checkBinary(dt DataType, shape []int64, data []byte, w *where) error {
	if size := int64(dt.Size()); size > 0 {
		if n := ShapeElements(shape); n >= 0 && n <= math.MaxInt64/size && int64(len(data)) != n*size {
			return errorf("%s: binary_data_size is %d but shape %s of %s needs %d bytes", w.tensor(), len(data), FormatShape(shape), dt, n*size)
		}
	}
	if err := checkData(dt, shape, data); err != nil {
		return errorf("%s: binary data %s", w.tensor(), err.Error())
	}
	return nil
}

// dataError is a mismatch between a tensor's data and its shape, phrased
// to follow the word "data"; the callers say which tensor.
type dataError string

func (e dataError) Error() string { return string(e) }

// checkData checks that data holds exactly the elements that shape
// declares for dt; see checkBinary.
func checkData(dt DataType, shape []int64, data []byte) error {
	n := ShapeElements(shape)
	if n < 0 {
		return dataError(fmt.Sprintf("cannot be checked against shape %s, which has a negative dimension or overflows", FormatShape(shape)))
	}
	if dt == BYTES {
		count := int64(0)
		for rest := data; len(rest) > 0; count++ {
			var ok bool
			if _, rest, ok = nextBytesElement(rest); !ok {
				return dataError(fmt.Sprintf("ends inside BYTES element %d: %s", count, truncatedElement(rest)))
			}
		}
		if count != n {
			return dataError(fmt.Sprintf("holds %s but shape %s needs %d", plural(count, "BYTES element"), FormatShape(shape), n))
		}
		return nil
	}
	size := int64(dt.Size())
	if size == 0 {
		return dataError(fmt.Sprintf("cannot be checked for datatype %s", dt))
	}
	if n > math.MaxInt64/size {
		// n*size would wrap, and might then match a short body.
		return dataError(fmt.Sprintf("has %d bytes but shape %s of %s needs more than any request can hold", len(data), FormatShape(shape), dt))
	}
	if int64(len(data)) != n*size {
		return dataError(fmt.Sprintf("has %d bytes but shape %s of %s needs %d", len(data), FormatShape(shape), dt, n*size))
	}
	if dt == BOOL {
		for i, b := range data {
			if b > 1 {
				return dataError(fmt.Sprintf("has BOOL element %d of value %d; BOOL elements must be 0 or 1", i, b))
			}
		}
	}
	return nil
}

// truncatedElement describes a BYTES element that the data end inside.
func truncatedElement(rest []byte) string {
	if len(rest) < 4 {
		return fmt.Sprintf("only %d of the 4 bytes of its length %s left", len(rest), isAre(len(rest)))
	}
	return fmt.Sprintf("its length is %d but only %s left", binary.LittleEndian.Uint32(rest), plural(int64(len(rest)-4), "byte")+" "+isAre(len(rest)-4))
}

// isAre returns the verb for n things.
func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
