package oip

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestFloat64At(t *testing.T) {
	f := func(d DataType, data []byte, i int, want float64, wantOK bool) {
		t.Helper()
		got, ok := Float64At(d, data, i)
		if ok != wantOK || got != want {
			t.Fatalf("Float64At(%s, %x, %d) = %v, %t; want %v, %t", d, data, i, got, ok, want, wantOK)
		}
	}
	le := binary.LittleEndian
	f(BOOL, []byte{0, 1}, 1, 1, true)
	f(UINT8, []byte{7, 200}, 1, 200, true)
	f(INT8, []byte{0xff}, 0, -1, true)
	f(UINT16, le.AppendUint16(le.AppendUint16(nil, 1), 65535), 1, 65535, true)
	f(INT16, le.AppendUint16(nil, 0xfffe), 0, -2, true)
	f(UINT32, le.AppendUint32(nil, 4e9), 0, 4e9, true)
	f(INT32, le.AppendUint32(nil, 0xfffffffd), 0, -3, true)
	f(UINT64, le.AppendUint64(nil, 1<<40), 0, 1<<40, true)
	f(INT64, le.AppendUint64(nil, math.MaxUint64), 0, -1, true)
	f(FP16, le.AppendUint16(nil, 0x3c00), 0, 1, true) // 1.0
	f(FP16, le.AppendUint16(nil, 0xc000), 0, -2, true)
	f(FP32, le.AppendUint32(le.AppendUint32(nil, 0), math.Float32bits(0.25)), 1, 0.25, true)
	f(FP64, le.AppendUint64(nil, math.Float64bits(-1.5)), 0, -1.5, true)
	f(BYTES, []byte("abcd"), 0, 0, false)
}
