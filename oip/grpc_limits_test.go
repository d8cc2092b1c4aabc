package oip_test

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
	"google.golang.org/protobuf/encoding/protowire"
)

// limitsInput is an InferInputTensor message: name, datatype, packed shape.
func limitsInput(name, dt string, shape []int64) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, dt)
	var packed []byte
	for _, d := range shape {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, packed)
}

func limitsRequest(inputs ...[]byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "ctr")
	for _, in := range inputs {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, in)
	}
	return b
}

// decodeAllocs decodes msg and returns the error and the bytes allocated.
func decodeAllocs(msg []byte) (error, uint64) {
	var req oip.InferRequest
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := oip.DecodeModelInferRequest(&req, msg)
	runtime.ReadMemStats(&after)
	return err, after.TotalAlloc - before.TotalAlloc
}

// TestDecodeModelInferRequestLimits: the gRPC decoder holds a request to
// the bounds the JSON decoder does (MaxRank, MaxTensors, MaxElements),
// refusing before it holds what they bound: a message never makes it
// allocate much more than its own size.
func TestDecodeModelInferRequestLimits(t *testing.T) {
	f := func(name string, msg []byte, want string) {
		t.Helper()
		err, alloc := decodeAllocs(msg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v; want an error with %q", name, err, want)
		}
		// Beyond twice its size, a constant: MaxTensors tensors of their
		// own (a few hundred KiB) at most.
		if alloc > uint64(2*len(msg))+512<<10 {
			t.Fatalf("%s: a %d-byte message made the decoder allocate %d bytes", name, len(msg), alloc)
		}
		if len(err.Error()) > 4096 {
			t.Fatalf("%s: a %d-byte error message; want it short whatever the request", name, len(err.Error()))
		}
	}
	ones := func(n int) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = 1
		}
		return s
	}
	f("33 dimensions", limitsRequest(limitsInput("features", "FP32", ones(oip.MaxRank+1))), "more than 32 dimensions")
	f("4 Mi dimensions", limitsRequest(limitsInput("features", "FP32", ones(4<<20))), "more than 32 dimensions")
	f("too many elements", limitsRequest(limitsInput("features", "FP32", []int64{1 << 20, 1 << 20})), "elements")

	var ins [][]byte
	for range oip.MaxTensors + 1 {
		ins = append(ins, limitsInput("features", "FP32", []int64{1}))
	}
	f("inputs", limitsRequest(ins...), "more than 1024 inputs")

	msg := limitsRequest(limitsInput("features", "FP32", []int64{1}))
	for range oip.MaxTensors + 1 {
		var o []byte
		o = protowire.AppendTag(o, 1, protowire.BytesType)
		o = protowire.AppendString(o, "score")
		msg = protowire.AppendTag(msg, 6, protowire.BytesType)
		msg = protowire.AppendBytes(msg, o)
	}
	f("outputs", msg, "more than 1024 outputs")

	msg = limitsRequest(limitsInput("features", "FP32", []int64{1}))
	for len(msg) < 4<<20 {
		msg = protowire.AppendTag(msg, 7, protowire.BytesType)
		msg = protowire.AppendBytes(msg, nil)
	}
	f("raw entries", msg, "more than 1024 raw_input_contents")
}

// TestDecodeModelInferRequestScalars reads typed contents as protobuf
// does: an int32 from a varint cut to 32 bits (a 5-byte 0xffffffff is
// -1), a uint32 likewise, a bool true for any value but 0; then each
// narrower type takes what fits it.
func TestDecodeModelInferRequestScalars(t *testing.T) {
	f := func(dt string, field protowire.Number, x uint64, want []byte, wantErr string) {
		t.Helper()
		var contents []byte
		contents = protowire.AppendTag(contents, field, protowire.VarintType)
		contents = protowire.AppendVarint(contents, x)
		in := limitsInput("v", dt, []int64{1})
		in = protowire.AppendTag(in, 5, protowire.BytesType)
		in = protowire.AppendBytes(in, contents)
		var req oip.InferRequest
		_, _, err := oip.DecodeModelInferRequest(&req, limitsRequest(in))
		switch {
		case wantErr != "":
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%s %#x: got %v; want an error with %q", dt, x, err, wantErr)
			}
		case err != nil:
			t.Fatalf("%s %#x: %v", dt, x, err)
		case string(req.Inputs[0].Data) != string(want):
			t.Fatalf("%s %#x: got % x; want % x", dt, x, req.Inputs[0].Data, want)
		}
	}
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	f("INT32", 2, 0xffffffff, le32(0xffffffff), "")
	f("INT32", 2, 1<<64-1, le32(0xffffffff), "")
	f("INT8", 2, 0xffffff80, []byte{0x80}, "")
	f("INT8", 2, 200, nil, "value 200 is out of range for INT8")
	f("UINT32", 4, 0x1_0000_0005, le32(5), "")
	f("UINT8", 4, 256, nil, "out of range for UINT8")
	f("BOOL", 1, 7, []byte{1}, "")
	f("BOOL", 1, 0, []byte{0}, "")
	f("FP16", 6, 0, nil, "only in raw_input_contents")
}

// TestModelFieldsBounded: a model name over 256 bytes is refused by every
// decoder that reads one, before anything echoes it; an empty version
// field, which proto3 takes for unset, comes back nil.
func TestModelFieldsBounded(t *testing.T) {
	long := strings.Repeat("m", 257)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, long)
	if _, _, _, err := oip.PeekModelInferRequest(b); err == nil || !strings.Contains(err.Error(), "model_name has 257 bytes") {
		t.Fatalf("peek: got %v; want the long name refused", err)
	}
	var req oip.InferRequest
	if _, _, err := oip.DecodeModelInferRequest(&req, b); err == nil || !strings.Contains(err.Error(), "model_name has 257 bytes") {
		t.Fatalf("decode: got %v; want the long name refused", err)
	}
	if _, _, err := oip.DecodeModelRequest(b); err == nil || !strings.Contains(err.Error(), "name has 257 bytes") {
		t.Fatalf("model request: got %v; want the long name refused", err)
	}
	b = protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "ctr")
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "")
	if _, v, _, err := oip.PeekModelInferRequest(b); err != nil || v != nil {
		t.Fatalf("peek of an empty version: got %q (nil %v), %v; want nil", v, v == nil, err)
	}
	if _, v, err := oip.DecodeModelRequest(b); err != nil || v != nil {
		t.Fatalf("model request with an empty version: got %q (nil %v), %v; want nil", v, v == nil, err)
	}
}

// TestContentsHeldToTheShape: typed contents are refused as soon as they
// hold more elements than the input's shape says, before they are held:
// a message of one-byte INT64 varints would otherwise make eight times
// its size of data.
func TestContentsHeldToTheShape(t *testing.T) {
	f := func(dt string, field protowire.Number, packed []byte, elements int, want string) {
		t.Helper()
		var contents []byte
		contents = protowire.AppendTag(contents, field, protowire.BytesType)
		contents = protowire.AppendBytes(contents, packed)
		in := limitsInput("v", dt, []int64{int64(elements)})
		in = protowire.AppendTag(in, 5, protowire.BytesType)
		in = protowire.AppendBytes(in, contents)
		msg := limitsRequest(in)
		err, alloc := decodeAllocs(msg)
		if want == "" {
			if err != nil {
				t.Fatalf("%s: %v", dt, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v; want an error with %q", dt, err, want)
		}
		if alloc > uint64(2*len(msg))+512<<10 {
			t.Fatalf("%s: a %d-byte message made the decoder allocate %d bytes", dt, len(msg), alloc)
		}
	}
	ones := make([]byte, 4<<20) // 4 Mi one-byte varints of 0
	f("INT64", 3, ones[:8], 8, "")
	f("INT64", 3, ones, 1, "contents.int64_contents holds more than the 1 elements of shape [1]")
	f("FP32", 6, make([]byte, 8), 1, "holds more than the 1 elements")
	f("FP32", 6, make([]byte, 8), 2, "")
}
