package oip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// tensor returns a tensor of dt with the given shape and elements, laid out
// as Tensor.Data says. Elements are float64 for floats, int64 or uint64
// for integers, bool for BOOL and string for BYTES.
func tensor(name string, dt DataType, shape []int64, elems ...any) Tensor {
	t := Tensor{Name: name, Datatype: dt, Shape: shape, Data: []byte{}}
	for _, e := range elems {
		t.Data = appendElem(t.Data, dt, e)
	}
	return t
}

// appendElem appends one element for tensor.
func appendElem(dst []byte, dt DataType, e any) []byte {
	le := binary.LittleEndian
	switch dt {
	case BOOL:
		if e.(bool) {
			return append(dst, 1)
		}
		return append(dst, 0)
	case BYTES:
		return AppendBytesElement(dst, []byte(e.(string)))
	case FP16:
		return le.AppendUint16(dst, halfFromFloat64(e.(float64)))
	case FP32:
		return le.AppendUint32(dst, math.Float32bits(float32(e.(float64))))
	case FP64:
		return le.AppendUint64(dst, math.Float64bits(e.(float64)))
	}
	var v uint64
	switch x := e.(type) {
	case int:
		v = uint64(x)
	case int64:
		v = uint64(x)
	case uint64:
		v = x
	default:
		panic(fmt.Sprintf("element %v of %T for %s", e, e, dt))
	}
	switch dt.Size() {
	case 1:
		return append(dst, byte(v))
	case 2:
		return le.AppendUint16(dst, uint16(v))
	case 4:
		return le.AppendUint32(dst, uint32(v))
	}
	return le.AppendUint64(dst, v)
}

// shape is shorthand for a shape literal.
func shape(dims ...int64) []int64 { return dims }

// diffRequests describes how two requests differ, or returns "". Float
// elements compare NaN equal to NaN when nanEqual is set.
func diffRequests(got, want *InferRequest, nanEqual bool) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q != %q", got.ID, want.ID))
	}
	if got.BinaryDataOutput != want.BinaryDataOutput || got.TimeoutMicros != want.TimeoutMicros ||
		got.Priority != want.Priority || got.CacheBypass != want.CacheBypass || got.UnitID != want.UnitID {
		d = append(d, fmt.Sprintf("parameters {%v %d %d %v %q} != {%v %d %d %v %q}",
			got.BinaryDataOutput, got.TimeoutMicros, got.Priority, got.CacheBypass, got.UnitID,
			want.BinaryDataOutput, want.TimeoutMicros, want.Priority, want.CacheBypass, want.UnitID))
	}
	if len(got.Inputs) != len(want.Inputs) {
		d = append(d, fmt.Sprintf("%d inputs != %d", len(got.Inputs), len(want.Inputs)))
	} else {
		for i := range got.Inputs {
			if s := diffTensors(&got.Inputs[i], &want.Inputs[i], nanEqual); s != "" {
				d = append(d, fmt.Sprintf("input %d: %s", i, s))
			}
		}
	}
	if !slices.Equal(got.Outputs, want.Outputs) {
		d = append(d, fmt.Sprintf("outputs %+v != %+v", got.Outputs, want.Outputs))
	}
	if !slices.Equal(got.SharedInputs, want.SharedInputs) {
		d = append(d, fmt.Sprintf("shared inputs %+v != %+v", got.SharedInputs, want.SharedInputs))
	}
	return strings.Join(d, "; ")
}

// diffTensors describes how two tensors differ, or returns "".
func diffTensors(got, want *Tensor, nanEqual bool) string {
	switch {
	case got.Name != want.Name:
		return fmt.Sprintf("name %q != %q", got.Name, want.Name)
	case got.Datatype != want.Datatype:
		return fmt.Sprintf("datatype %s != %s", got.Datatype, want.Datatype)
	case !slices.Equal(got.Shape, want.Shape):
		return fmt.Sprintf("shape %v != %v", got.Shape, want.Shape)
	case !dataEqual(got.Datatype, got.Data, want.Data, nanEqual):
		return fmt.Sprintf("data %x != %x", got.Data, want.Data)
	}
	return ""
}

// dataEqual compares tensor data, optionally with any NaN equal to any NaN.
func dataEqual(dt DataType, a, b []byte, nanEqual bool) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if !nanEqual || len(a) != len(b) {
		return false
	}
	size := dt.Size()
	for i := 0; i+size <= len(a) && size > 0; i += size {
		x, y := a[i:i+size], b[i:i+size]
		if bytes.Equal(x, y) {
			continue
		}
		switch dt {
		case FP16:
			if halfIsNaN(binary.LittleEndian.Uint16(x)) && halfIsNaN(binary.LittleEndian.Uint16(y)) {
				continue
			}
		case FP32:
			if math.IsNaN(float64(math.Float32frombits(binary.LittleEndian.Uint32(x)))) &&
				math.IsNaN(float64(math.Float32frombits(binary.LittleEndian.Uint32(y)))) {
				continue
			}
		case FP64:
			if math.IsNaN(math.Float64frombits(binary.LittleEndian.Uint64(x))) &&
				math.IsNaN(math.Float64frombits(binary.LittleEndian.Uint64(y))) {
				continue
			}
		}
		return false
	}
	return true
}

// wantError fails t unless err is an *Error whose message contains every
// fragment.
func wantError(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one containing %q", fragments)
	}
	if _, ok := err.(*Error); !ok {
		t.Fatalf("got error %T %q; want an *Error", err, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("got error %q; want it to contain %q", err, f)
		}
	}
}
