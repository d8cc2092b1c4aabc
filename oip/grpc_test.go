package oip_test

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/oip"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fp32Bytes(xs ...float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestDecodeModelInferRequest(t *testing.T) {
	m := pbtest.InferRequest("ctr", "3", "req-1",
		[]pbtest.Tensor{
			{Name: "features", Datatype: "FP32", Shape: []int64{2, 2}, FP32: []float32{1, -2.5, 3, 4}},
			{Name: "ids", Datatype: "INT8", Shape: []int64{3}, Int: []int32{-128, 0, 127}},
			{Name: "words", Datatype: "BYTES", Shape: []int64{2}, Bytes: [][]byte{[]byte("a"), {}}},
		}, nil,
		map[string]pbtest.Param{
			"timeout": {Int64: ptr[int64](1500)}, "priority": {Uint64: ptr[uint64](2)},
			"cache_bypass": {Bool: ptr(true)}, "unit_id": {String: ptr("user-7")}, "sequence_id": {Int64: ptr[int64](9)},
		},
		map[string]map[string]pbtest.Param{"score": {"classification": {Int64: ptr[int64](2)}}})
	var req oip.InferRequest
	model, version, err := oip.DecodeModelInferRequest(&req, marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if string(model) != "ctr" || string(version) != "3" || req.ID != "req-1" {
		t.Fatalf("got model %q version %q id %q; want ctr, 3, req-1", model, version, req.ID)
	}
	if req.TimeoutMicros != 1500 || req.Priority != 2 || !req.CacheBypass || req.UnitID != "user-7" {
		t.Fatalf("got timeout %d priority %d cache_bypass %v unit %q; want 1500, 2, true, user-7", req.TimeoutMicros, req.Priority, req.CacheBypass, req.UnitID)
	}
	want := []oip.Tensor{
		{Name: "features", Datatype: oip.FP32, Shape: []int64{2, 2}, Data: fp32Bytes(1, -2.5, 3, 4)},
		{Name: "ids", Datatype: oip.INT8, Shape: []int64{3}, Data: []byte{0x80, 0, 0x7f}},
		{Name: "words", Datatype: oip.BYTES, Shape: []int64{2}, Data: []byte{1, 0, 0, 0, 'a', 0, 0, 0, 0}},
	}
	if !reflect.DeepEqual(req.Inputs, want) {
		t.Fatalf("got inputs %+v; want %+v", req.Inputs, want)
	}
	if len(req.Outputs) != 1 || req.Outputs[0].Name != "score" || req.Outputs[0].Classification != 2 {
		t.Fatalf("got outputs %+v; want score with classification 2", req.Outputs)
	}

	// The same request again with its data raw, into the used request:
	// nothing of the first may remain.
	req.Reset()
	raw := pbtest.InferRequest("ctr", "", "",
		[]pbtest.Tensor{{Name: "features", Datatype: "FP16", Shape: []int64{1, 2}}},
		[][]byte{{1, 2, 3, 4}}, nil, nil)
	model, version, err = oip.DecodeModelInferRequest(&req, marshal(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	want = []oip.Tensor{{Name: "features", Datatype: oip.FP16, Shape: []int64{1, 2}, Data: []byte{1, 2, 3, 4}}}
	if string(model) != "ctr" || len(version) != 0 || !reflect.DeepEqual(req.Inputs, want) || req.Priority != 0 || len(req.Outputs) != 0 {
		t.Fatalf("got model %q version %q inputs %+v priority %d outputs %v; want ctr, none, %+v, 0, none", model, version, req.Inputs, req.Priority, req.Outputs, want)
	}
	if err := oip.CheckInputs(req.Inputs, []oip.TensorMetadata{{Name: "features", Datatype: oip.FP16, Shape: []int64{-1, 2}}}, 0); err != nil {
		t.Fatalf("a raw FP16 input of the right size fails its check: %v", err)
	}
}

func TestDecodeModelInferRequestUnpacked(t *testing.T) {
	// Encoders may send repeated scalars unpacked, one tag each; a
	// decoder must take both.
	var in []byte
	in = protowireString(in, 1, "x")
	in = protowireString(in, 2, "INT64")
	in = append(in, 3<<3|0, 2) // shape 2, unpacked
	var contents []byte
	contents = append(contents, 3<<3|0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01) // -1
	contents = append(contents, 3<<3|0, 5)
	in = append(in, 5<<3|2, byte(len(contents)))
	in = append(in, contents...)
	var b []byte
	b = protowireString(b, 1, "m")
	b = append(b, 5<<3|2, byte(len(in)))
	b = append(b, in...)
	var req oip.InferRequest
	if _, _, err := oip.DecodeModelInferRequest(&req, b); err != nil {
		t.Fatal(err)
	}
	want := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), 5)
	if got := req.Inputs[0]; !reflect.DeepEqual(got.Shape, []int64{2}) || string(got.Data) != string(want) {
		t.Fatalf("got shape %v data %x; want [2] and %x", got.Shape, got.Data, want)
	}
}

func protowireString(b []byte, num byte, s string) []byte {
	b = append(b, num<<3|2, byte(len(s)))
	return append(b, s...)
}

func TestDecodeModelInferRequestErrors(t *testing.T) {
	f := func(m protoreflect.ProtoMessage, want string) {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var req oip.InferRequest
		_, _, err = oip.DecodeModelInferRequest(&req, b)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got error %v; want one with %q", err, want)
		}
		if _, ok := err.(*oip.Error); !ok {
			t.Fatalf("got a %T; want an *oip.Error, which answers 400", err)
		}
	}
	fp := func(shape []int64, xs ...float32) []pbtest.Tensor {
		return []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: shape, FP32: xs}}
	}
	f(pbtest.InferRequest("", "", "", fp([]int64{1}, 1), nil, nil, nil), "names no model")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "FP32", Shape: []int64{1}}, {Name: "b", Datatype: "FP32", Shape: []int64{1}}},
		[][]byte{fp32Bytes(1)}, nil, nil), "1 raw_input_contents for 2 inputs")
	f(pbtest.InferRequest("m", "", "", fp([]int64{1}, 1), [][]byte{fp32Bytes(1)}, nil, nil), "send every input's data one way")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "FP32", Shape: []int64{1}, Int: []int32{1}}}, nil, nil, nil),
		"data goes in contents.fp32_contents, not int_contents")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "FP16", Shape: []int64{1}, Int: []int32{1}}}, nil, nil, nil),
		"only in raw_input_contents")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "INT8", Shape: []int64{1}, Int: []int32{200}}}, nil, nil, nil),
		"value 200 is out of range for INT8")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "FP32", Shape: []int64{1}}}, nil, nil, nil),
		"has no data")
	f(pbtest.InferRequest("m", "", "", []pbtest.Tensor{{Name: "a", Datatype: "FLOAT", Shape: []int64{1}, FP32: []float32{1}}}, nil, nil, nil),
		`datatype "FLOAT"`)
	f(pbtest.InferRequest("m", "", "", fp([]int64{-1}, 1), nil, nil, nil), "negative dimension")
	f(pbtest.InferRequest("m", "", "", fp([]int64{1}, 1), nil, map[string]pbtest.Param{"priority": {Int64: ptr[int64](-1)}}, nil),
		`parameter "priority" is int64_param -1`)
	f(pbtest.InferRequest("m", "", "", fp([]int64{1}, 1), nil, map[string]pbtest.Param{"timeout": {String: ptr("1s")}}, nil),
		`parameter "timeout" is a string_param`)
	f(pbtest.InferRequest("m", "", "", fp([]int64{1}, 1), nil, nil, map[string]map[string]pbtest.Param{"score": {"classification": {Int64: ptr[int64](0)}}}),
		`"classification" is int64_param 0`)

	var req oip.InferRequest
	for _, b := range [][]byte{{0x0a, 5, 'a'}, {0x0b}, {0x08}, {0x2a, 1, 0xff}} {
		if _, _, err := oip.DecodeModelInferRequest(&req, b); err == nil {
			t.Fatalf("%x: got no error; want one for a malformed message", b)
		}
	}
}

func TestAppendModelInferResponse(t *testing.T) {
	resp := &oip.InferResponse{ModelName: "ctr", ModelVersion: "2", ID: "abc", Outputs: []oip.OutputTensor{
		{Tensor: oip.Tensor{Name: "score", Datatype: oip.FP32, Shape: []int64{2, 1}, Data: fp32Bytes(0.25, 0.75)}},
		{Tensor: oip.Tensor{Name: "label", Datatype: oip.BYTES, Shape: []int64{1}, Data: oip.AppendBytesElement(nil, []byte("x"))}},
	}}
	got, err := pbtest.DecodeInferResponse(oip.AppendModelInferResponse(nil, resp))
	if err != nil {
		t.Fatal(err)
	}
	want := &pbtest.Response{Model: "ctr", Version: "2", ID: "abc", Outputs: []pbtest.Output{
		{Name: "score", Datatype: "FP32", Shape: []int64{2, 1}, Raw: fp32Bytes(0.25, 0.75)},
		{Name: "label", Datatype: "BYTES", Shape: []int64{1}, Raw: []byte{1, 0, 0, 0, 'x'}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v; want %+v", got, want)
	}
}

func TestAppendModelMetadataResponse(t *testing.T) {
	md := &oip.ModelMetadata{Name: "ctr", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:  []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, 64}}},
		Outputs: []oip.TensorMetadata{{Name: "score", Datatype: oip.FP32, Shape: []int64{-1, 1}}}}
	m := pbtest.New("ModelMetadataResponse")
	if err := proto.Unmarshal(oip.AppendModelMetadataResponse(nil, md), m); err != nil {
		t.Fatal(err)
	}
	fs := m.Descriptor().Fields()
	in := m.Get(fs.ByName("inputs")).List().Get(0).Message()
	ifs := in.Descriptor().Fields()
	shape := in.Get(ifs.ByName("shape")).List()
	if m.Get(fs.ByName("name")).String() != "ctr" || m.Get(fs.ByName("versions")).List().Len() != 2 ||
		m.Get(fs.ByName("platform")).String() != "onnxruntime_onnx" || in.Get(ifs.ByName("name")).String() != "features" ||
		in.Get(ifs.ByName("datatype")).String() != "FP32" || shape.Len() != 2 || shape.Get(0).Int() != -1 || shape.Get(1).Int() != 64 {
		t.Fatalf("got %v", m)
	}

	sm := pbtest.New("ServerMetadataResponse")
	if err := proto.Unmarshal(oip.AppendServerMetadataResponse(nil, &oip.ServerMetadata{Name: "infergate", Version: "v1", Extensions: []string{"a", "b"}}), sm); err != nil {
		t.Fatal(err)
	}
	if sfs := sm.Descriptor().Fields(); sm.Get(sfs.ByName("name")).String() != "infergate" || sm.Get(sfs.ByName("extensions")).List().Len() != 2 {
		t.Fatalf("got %v", sm)
	}
	for _, v := range []bool{false, true} {
		r := pbtest.New("ServerReadyResponse")
		if err := proto.Unmarshal(oip.AppendBoolMessage(nil, v), r); err != nil {
			t.Fatal(err)
		}
		if got := r.Get(r.Descriptor().Fields().ByName("ready")).Bool(); got != v {
			t.Fatalf("got ready %v; want %v", got, v)
		}
	}
	name, version, err := oip.DecodeModelRequest(marshal(t, func() proto.Message {
		r := pbtest.New("ModelReadyRequest")
		r.Set(r.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("ranker"))
		r.Set(r.Descriptor().Fields().ByName("version"), protoreflect.ValueOfString("4"))
		return r
	}()))
	if err != nil || string(name) != "ranker" || string(version) != "4" {
		t.Fatalf("got %q %q %v; want ranker 4", name, version, err)
	}
}

func FuzzDecodeModelInferRequest(f *testing.F) {
	f.Add(marshalF(pbtest.InferRequest("ctr", "1", "x",
		[]pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 2}, FP32: []float32{1, 2}}}, nil,
		map[string]pbtest.Param{"priority": {Int64: ptr[int64](1)}}, map[string]map[string]pbtest.Param{"score": nil})))
	f.Add(marshalF(pbtest.InferRequest("ctr", "", "",
		[]pbtest.Tensor{{Name: "w", Datatype: "BYTES", Shape: []int64{1}}}, [][]byte{{1, 0, 0, 0, 'a'}}, nil, nil)))
	var req oip.InferRequest
	f.Fuzz(func(t *testing.T, b []byte) {
		req.Reset()
		_, _, err := oip.DecodeModelInferRequest(&req, b)
		if err != nil {
			if _, ok := err.(*oip.Error); !ok {
				t.Fatalf("got a %T (%v); every decoding error must be an *oip.Error", err, err)
			}
			return
		}
		// What decodes must be safe to check, as the gateway does next.
		_ = oip.CheckInputs(req.Inputs, []oip.TensorMetadata{{Name: "features", Datatype: oip.FP32, Shape: []int64{-1, 2}}}, 0)
	})
}

func marshalF(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestModelInferRequestRoundTrip(t *testing.T) {
	req := &oip.InferRequest{ID: "r1", TimeoutMicros: 2500, Priority: 3, CacheBypass: true, UnitID: "u9",
		Inputs:  []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{2, 2}, Data: fp32Bytes(1, 2, 3, 4)}},
		Outputs: []oip.RequestedOutput{{Name: "score", Classification: 1}}}
	b := oip.AppendModelInferRequest(nil, "ctr", "2", req)

	// The protobuf library reads what it wrote...
	m := pbtest.New("ModelInferRequest")
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	fs := m.Descriptor().Fields()
	params := m.Get(fs.ByName("parameters")).Map()
	pri := params.Get(protoreflect.ValueOfString("priority").MapKey()).Message()
	if m.Get(fs.ByName("model_name")).String() != "ctr" || params.Len() != 4 ||
		pri.Get(pri.Descriptor().Fields().ByName("int64_param")).Int() != 3 ||
		m.Get(fs.ByName("raw_input_contents")).List().Len() != 1 {
		t.Fatalf("the protobuf library reads %v", m)
	}
	// ...and so does the decoder.
	var got oip.InferRequest
	model, version, err := oip.DecodeModelInferRequest(&got, b)
	if err != nil {
		t.Fatal(err)
	}
	if string(model) != "ctr" || string(version) != "2" || got.ID != "r1" || got.TimeoutMicros != 2500 || got.Priority != 3 ||
		!got.CacheBypass || got.UnitID != "u9" || !reflect.DeepEqual(got.Inputs, req.Inputs) ||
		len(got.Outputs) != 1 || got.Outputs[0].Classification != 1 {
		t.Fatalf("got %+v; want %+v", got, req)
	}
}

func TestDecodeModelInferResponse(t *testing.T) {
	resp := &oip.InferResponse{ModelName: "ctr", ModelVersion: "2", ID: "abc", Outputs: []oip.OutputTensor{
		{Tensor: oip.Tensor{Name: "score", Datatype: oip.FP32, Shape: []int64{2, 1}, Data: fp32Bytes(0.25, 0.75)}},
	}}
	var got oip.InferResponse
	if err := oip.DecodeModelInferResponse(&got, oip.AppendModelInferResponse(nil, resp)); err != nil {
		t.Fatal(err)
	}
	resp.Outputs[0].Binary = true
	if got.ModelName != "ctr" || got.ModelVersion != "2" || got.ID != "abc" || !reflect.DeepEqual(got.Outputs, resp.Outputs) {
		t.Fatalf("got %+v; want %+v", got, resp)
	}
	// Typed contents, as some servers answer.
	m := pbtest.New("ModelInferResponse")
	fs := m.Descriptor().Fields()
	m.Set(fs.ByName("model_name"), protoreflect.ValueOfString("m"))
	outs := m.Mutable(fs.ByName("outputs")).List()
	o := outs.NewElement().Message()
	ofs := o.Descriptor().Fields()
	o.Set(ofs.ByName("name"), protoreflect.ValueOfString("y"))
	o.Set(ofs.ByName("datatype"), protoreflect.ValueOfString("INT64"))
	o.Mutable(ofs.ByName("shape")).List().Append(protoreflect.ValueOfInt64(2))
	c := o.Mutable(ofs.ByName("contents")).Message()
	l := c.Mutable(c.Descriptor().Fields().ByName("int64_contents")).List()
	l.Append(protoreflect.ValueOfInt64(-7))
	l.Append(protoreflect.ValueOfInt64(8))
	outs.Append(protoreflect.ValueOfMessage(o))
	if err := oip.DecodeModelInferResponse(&got, marshal(t, m)); err != nil {
		t.Fatal(err)
	}
	want := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(1<<64-7)), 8)
	if len(got.Outputs) != 1 || got.Outputs[0].Name != "y" || string(got.Outputs[0].Data) != string(want) {
		t.Fatalf("got %+v; want y = [-7, 8]", got.Outputs)
	}
}

func TestPeekModelInferRequest(t *testing.T) {
	m := pbtest.InferRequest("ctr", "4", "", []pbtest.Tensor{{Name: "features", Datatype: "FP32", Shape: []int64{1}, FP32: []float32{1}}},
		nil, map[string]pbtest.Param{"unit_id": {String: ptr("user-3")}, "priority": {Int64: ptr[int64](1)}}, nil)
	model, version, unit, err := oip.PeekModelInferRequest(marshal(t, m))
	if err != nil || string(model) != "ctr" || string(version) != "4" || string(unit) != "user-3" {
		t.Fatalf("got %q %q %q %v; want ctr 4 user-3", model, version, unit, err)
	}
	if _, _, _, err := oip.PeekModelInferRequest(marshal(t, pbtest.InferRequest("", "", "", nil, nil, nil, nil))); err == nil || !strings.Contains(err.Error(), "names no model") {
		t.Fatalf("got %v; want the model asked for", err)
	}
}
