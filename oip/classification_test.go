package oip

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// bytesElems splits BYTES data into its strings.
func bytesElems(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for len(data) > 0 {
		e, rest, ok := nextBytesElement(data)
		if !ok {
			t.Fatalf("BYTES data ends inside an element: %q", data)
		}
		out = append(out, string(e))
		data = rest
	}
	return out
}

func TestClassify(t *testing.T) {
	f := func(in Tensor, k int64, batched bool, wantShape string, want ...string) {
		t.Helper()
		var dst Tensor
		if _, err := Classify(&dst, &in, k, batched, 1<<20, nil); err != nil {
			t.Fatalf("Classify(%s %s, %d): %v", in.Datatype, FormatShape(in.Shape), k, err)
		}
		if dst.Name != in.Name || dst.Datatype != BYTES || FormatShape(dst.Shape) != wantShape {
			t.Fatalf("Classify(%s, %d): %s %s %s; want %s BYTES %s", FormatShape(in.Shape), k, dst.Name, dst.Datatype, FormatShape(dst.Shape), in.Name, wantShape)
		}
		if got := bytesElems(t, dst.Data); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("Classify(%s %s, %d): got %q; want %q", in.Datatype, FormatShape(in.Shape), k, got, want)
		}
	}
	// Triton's example: [1, 5, 10, 4], top 2 are indexes 2 and 1.
	f(tensor("p", FP32, shape(4), 1.0, 5.0, 10.0, 4.0), 2, false, "[2]", "10.000000:2", "5.000000:1")
	// Per batch entry, each entry's own indexes.
	f(tensor("p", FP32, shape(2, 3), 0.1, 0.7, 0.2, 0.5, 0.25, 0.25), 2, true, "[2,2]",
		"0.700000:1", "0.200000:2", "0.500000:0", "0.250000:1")
	// More classes asked than an entry has: all of them; equal values in
	// index order.
	f(tensor("p", FP32, shape(1, 3), 3.0, 3.0, 3.0), 10, true, "[1,3]", "3.000000:0", "3.000000:1", "3.000000:2")
	// Trailing dimensions count as one flat entry.
	f(tensor("p", FP32, shape(1, 2, 2), 0.0, 4.0, 3.0, 1.0), 2, true, "[1,2]", "4.000000:1", "3.000000:2")
	// Not batched: the whole tensor, its first dimension included.
	f(tensor("p", FP32, shape(2, 2), 0.0, 4.0, 3.0, 1.0), 1, false, "[1]", "4.000000:1")
	// NaN below every number; infinities in their place.
	f(tensor("p", FP32, shape(4), math.NaN(), math.Inf(-1), 2.0, math.Inf(1)), 4, false, "[4]",
		"inf:3", "2.000000:2", "-inf:1", "nan:0")
	// Integer types compare and print exactly, at their extremes too.
	f(tensor("p", INT64, shape(3), int64(math.MinInt64), int64(math.MaxInt64), int64(math.MaxInt64-1)), 3, false, "[3]",
		"9223372036854775807:1", "9223372036854775806:2", "-9223372036854775808:0")
	f(tensor("p", UINT64, shape(2), uint64(math.MaxUint64), uint64(1)), 1, false, "[1]", "18446744073709551615:0")
	f(tensor("p", INT8, shape(3), -128, 127, 0), 2, false, "[2]", "127:1", "0:2")
	f(tensor("p", UINT8, shape(3), 0, 255, 7), 2, false, "[2]", "255:1", "7:2")
	f(tensor("p", INT16, shape(2), -5, -3), 1, false, "[1]", "-3:1")
	f(tensor("p", UINT16, shape(2), 9, 65535), 1, false, "[1]", "65535:1")
	f(tensor("p", INT32, shape(2), -5, 3), 1, false, "[1]", "3:1")
	f(tensor("p", UINT32, shape(2), 4294967295, 3), 1, false, "[1]", "4294967295:0")
	f(tensor("p", FP16, shape(3), 0.5, -1.0, 0.25), 2, false, "[2]", "0.500000:0", "0.250000:2")
	f(tensor("p", FP64, shape(2), 1e-7, -1e300), 2, false, "[2]", "0.000000:0",
		"-"+fmt.Sprintf("%.6f", 1e300)+":1")
	// No elements: no classes.
	f(tensor("p", FP32, shape(2, 0)), 3, true, "[2,0]")
}

func TestClassifyRefuses(t *testing.T) {
	var dst Tensor
	for _, in := range []Tensor{
		tensor("b", BOOL, shape(2), true, false),
		tensor("s", BYTES, shape(1), "x"),
	} {
		_, err := Classify(&dst, &in, 1, false, 1<<20, nil)
		wantError(t, err, fmt.Sprintf("output %q is %s", in.Name, in.Datatype), "integer, FP16, FP32 or FP64")
	}
	big := tensor("p", FP32, shape(1, 1000))
	big.Data = make([]byte, 4*1000)
	_, err := Classify(&dst, &big, 1000, true, 1000, nil)
	wantError(t, err, `classification of output "p" takes more than 1000 bytes`, "fewer classes")
}

func TestCheckOutputsClassification(t *testing.T) {
	have := []TensorMetadata{{Name: "score", Datatype: FP32, Shape: []int64{-1, 3}}, {Name: "label", Datatype: BYTES, Shape: []int64{-1}}}
	if err := CheckOutputs([]RequestedOutput{{Name: "score", Classification: 2}}, have); err != nil {
		t.Fatalf("classification of an FP32 output: %v", err)
	}
	err := CheckOutputs([]RequestedOutput{{Name: "label", Classification: 2}}, have)
	wantError(t, err, `output "label" is BYTES`, "classification parameter needs")
}
