package oip

import (
	stdjson "encoding/json"
	"math"
	"strings"
	"testing"
)

func TestAppendResponse(t *testing.T) {
	f := func(resp *InferResponse, wantJSON, wantBinary string) {
		t.Helper()
		out, headerLen := AppendResponse([]byte("prefix"), resp)
		if got := string(out[6 : 6+headerLen]); got != wantJSON {
			t.Fatalf("JSON\ngot  %s\nwant %s", got, wantJSON)
		}
		if got := string(out[6+headerLen:]); got != wantBinary {
			t.Fatalf("binary part got %q; want %q", got, wantBinary)
		}
		if !stdjson.Valid(out[6 : 6+headerLen]) {
			t.Fatalf("not valid JSON: %s", out[6:6+headerLen])
		}
	}
	out := func(t Tensor, binary bool) OutputTensor { return OutputTensor{Tensor: t, Binary: binary} }

	f(&InferResponse{ModelName: "ctr", ModelVersion: "3"},
		`{"model_name":"ctr","model_version":"3","outputs":[]}`, "")
	f(&InferResponse{ModelName: "ctr", ModelVersion: "3", ID: "r\"1", Outputs: []OutputTensor{
		out(tensor("score", FP32, shape(2, 1), 0.25, 1e-7), false),
	}}, `{"model_name":"ctr","model_version":"3","id":"r\"1","outputs":[{"name":"score","datatype":"FP32","shape":[2,1],"data":[0.25,1e-07]}]}`, "")

	// FP32 is written at 32 bits: 0.1f, not 0.10000000149011612.
	f(&InferResponse{ModelName: "m", Outputs: []OutputTensor{
		out(tensor("y", FP32, shape(3), 0.1, 3.4028234663852886e38, 16777216.0), false),
	}}, `{"model_name":"m","model_version":"","outputs":[{"name":"y","datatype":"FP32","shape":[3],"data":[0.1,3.4028235e+38,1.6777216e+07]}]}`, "")

	// NaN and infinities are strings, in every float type.
	f(&InferResponse{ModelName: "m", Outputs: []OutputTensor{
		out(tensor("a", FP32, shape(3), math.NaN(), math.Inf(1), math.Inf(-1)), false),
		out(tensor("b", FP64, shape(2), math.NaN(), math.Inf(-1)), false),
		out(tensor("c", FP16, shape(3), math.NaN(), math.Inf(1), 0.5), false),
	}}, `{"model_name":"m","model_version":"","outputs":[`+
		`{"name":"a","datatype":"FP32","shape":[3],"data":["NaN","Infinity","-Infinity"]},`+
		`{"name":"b","datatype":"FP64","shape":[2],"data":["NaN","-Infinity"]},`+
		`{"name":"c","datatype":"FP16","shape":[3],"data":["NaN","Infinity",0.5]}]}`, "")

	// Binary outputs follow the JSON in order.
	f(&InferResponse{ModelName: "m", ModelVersion: "1", Outputs: []OutputTensor{
		out(tensor("a", UINT8, shape(2), 1, 2), true),
		out(tensor("b", INT32, shape(1), -1), false),
		out(tensor("c", BYTES, shape(1), "xy"), true),
	}}, `{"model_name":"m","model_version":"1","outputs":[`+
		`{"name":"a","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}},`+
		`{"name":"b","datatype":"INT32","shape":[1],"data":[-1]},`+
		`{"name":"c","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}`,
		"\x01\x02\x02\x00\x00\x00xy")

	// Every datatype as JSON.
	f(&InferResponse{Outputs: []OutputTensor{
		out(tensor("a", BOOL, shape(2), true, false), false),
		out(tensor("b", UINT64, shape(1), uint64(math.MaxUint64)), false),
		out(tensor("c", INT64, shape(1), int64(math.MinInt64)), false),
		out(tensor("d", INT8, shape(2), -128, 127), false),
		out(tensor("e", UINT16, shape(1), 65535), false),
		out(tensor("f", INT16, shape(1), -32768), false),
		out(tensor("g", UINT32, shape(1), 4294967295), false),
		out(tensor("h", BYTES, shape(3), "", "a\nb", "\xff"), false),
		out(tensor("i", FP16, shape(3), 0.1, -65504.0, 5.960464477539063e-08), false),
	}}, `{"model_name":"","model_version":"","outputs":[`+
		`{"name":"a","datatype":"BOOL","shape":[2],"data":[true,false]},`+
		`{"name":"b","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},`+
		`{"name":"c","datatype":"INT64","shape":[1],"data":[-9223372036854775808]},`+
		`{"name":"d","datatype":"INT8","shape":[2],"data":[-128,127]},`+
		`{"name":"e","datatype":"UINT16","shape":[1],"data":[65535]},`+
		`{"name":"f","datatype":"INT16","shape":[1],"data":[-32768]},`+
		`{"name":"g","datatype":"UINT32","shape":[1],"data":[4294967295]},`+
		`{"name":"h","datatype":"BYTES","shape":[3],"data":["","a\nb","\ufffd"]},`+
		`{"name":"i","datatype":"FP16","shape":[3],"data":[0.1,-6.55e+04,6e-08]}]}`, "")

	// Whole elements only, whatever the shape says.
	f(&InferResponse{Outputs: []OutputTensor{
		{Tensor: Tensor{Name: "x", Datatype: FP32, Shape: shape(2), Data: []byte{0, 0, 128, 63, 1, 2}}},
		{Tensor: Tensor{Name: "s", Datatype: BYTES, Shape: shape(2), Data: []byte{1, 0, 0, 0, 'a', 9, 0}}},
	}}, `{"model_name":"","model_version":"","outputs":[`+
		`{"name":"x","datatype":"FP32","shape":[2],"data":[1]},`+
		`{"name":"s","datatype":"BYTES","shape":[2],"data":["a"]}]}`, "")
}

func TestAppendResponseDoesNotAllocate(t *testing.T) {
	resp := &InferResponse{ModelName: "ctr", ModelVersion: "1", ID: "abc", Outputs: []OutputTensor{
		{Tensor: tensor("score", FP32, shape(4, 1), 0.1, 0.2, math.NaN(), 0.4)},
		{Tensor: tensor("raw", FP16, shape(2), 0.1, 0.2), Binary: true},
		{Tensor: tensor("half", FP16, shape(2), 0.1, 0.2)},
		{Tensor: tensor("s", BYTES, shape(1), "é\n")},
	}}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendResponse(buf[:0], resp) }); n != 0 {
		t.Fatalf("AppendResponse allocates %v times; want 0", n)
	}
	req := &InferRequest{ID: "x", UnitID: "u", TimeoutMicros: 5, Inputs: []Tensor{tensor("f", FP32, shape(2), 1.0, 2.0)},
		Outputs: []RequestedOutput{{Name: "y", Binary: true, HasBinary: true}}}
	for _, binary := range []bool{false, true} {
		if n := testing.AllocsPerRun(100, func() { buf, _ = AppendRequest(buf[:0], req, binary) }); n != 0 {
			t.Fatalf("AppendRequest(binary %v) allocates %v times; want 0", binary, n)
		}
	}
}

func TestAppendError(t *testing.T) {
	f := func(msg, want string) {
		t.Helper()
		got := string(AppendError(nil, msg))
		if got != want {
			t.Fatalf("AppendError(%q) = %s; want %s", msg, got, want)
		}
		var v struct{ Error string }
		if err := stdjson.Unmarshal([]byte(got), &v); err != nil {
			t.Fatalf("AppendError(%q) = %s: %s", msg, got, err)
		}
		if want := strings.ToValidUTF8(msg, "\uFFFD"); v.Error != want {
			t.Fatalf("AppendError(%q) decodes to %q; want %q", msg, v.Error, want)
		}
	}
	f("", `{"error":""}`)
	f(`input "x": bad`, `{"error":"input \"x\": bad"}`)
	f("a\\b\n\r\t\x00\x1f\x7f", `{"error":"a\\b\n\r\t\u0000\u001f`+"\x7f"+`"}`)
	f("é€😀", `{"error":"é€😀"}`)
	f("\u2028\u2029", `{"error":"\u2028\u2029"}`)
	f("a\xffb\xc3", `{"error":"a\ufffdb\ufffd"}`)
	f("<&>", `{"error":"<&>"}`)
}

// TestRoundTrip encodes requests and responses of every datatype, as JSON
// and as binary, and decodes them again.
func TestRoundTrip(t *testing.T) {
	inputs := []Tensor{
		tensor("bool", BOOL, shape(2, 2), true, false, false, true),
		tensor("u8", UINT8, shape(3), 0, 1, 255),
		tensor("u16", UINT16, shape(2), 0, 65535),
		tensor("u32", UINT32, shape(2), 0, 4294967295),
		tensor("u64", UINT64, shape(2), uint64(0), uint64(math.MaxUint64)),
		tensor("i8", INT8, shape(3), -128, 0, 127),
		tensor("i16", INT16, shape(2), -32768, 32767),
		tensor("i32", INT32, shape(2), -2147483648, 2147483647),
		tensor("i64", INT64, shape(3), int64(math.MinInt64), 0, int64(math.MaxInt64)),
		tensor("f16", FP16, shape(6), 0.1, -65504.0, 6e-8, math.Copysign(0, -1), math.Inf(1), math.NaN()),
		tensor("f32", FP32, shape(1, 6), 0.1, math.MaxFloat32, 1e-45, math.Copysign(0, -1), math.Inf(-1), math.NaN()),
		tensor("f64", FP64, shape(6), 0.1, math.MaxFloat64, 5e-324, -1e300, math.Inf(1), math.NaN()),
		tensor("bytes", BYTES, shape(4), "", "a", "é\"\\\n\x00", strings.Repeat("z", 300)),
		tensor("scalar", FP32, shape(), 3.5),
		tensor("empty", INT64, shape(0, 4)),
	}
	req := InferRequest{
		ID: "id-\u2028", Inputs: inputs,
		Outputs: []RequestedOutput{{Name: "a"}, {Name: "b", Binary: true, HasBinary: true}, {Name: "c", HasBinary: true},
			{Name: "d", Classification: 5}, {Name: "e", HasBinary: true, Classification: 1}},
		BinaryDataOutput: true, TimeoutMicros: 10, Priority: 1, CacheBypass: true, UnitID: "u",
	}
	var got InferRequest
	for _, binary := range []bool{false, true} {
		body, headerLen := AppendRequest(nil, &req, binary)
		if !stdjson.Valid(body[:headerLen]) {
			t.Fatalf("AppendRequest(binary %v) is not valid JSON: %s", binary, body[:headerLen])
		}
		if !binary && headerLen != len(body) {
			t.Fatalf("AppendRequest(JSON): headerLen %d; want %d", headerLen, len(body))
		}
		if err := DecodeRequest(&got, body, headerLen); err != nil {
			t.Fatalf("DecodeRequest(AppendRequest(binary %v)): %s\n%s", binary, err, body[:headerLen])
		}
		if d := diffRequests(&got, &req, !binary); d != "" {
			t.Fatalf("request round trip (binary %v): %s", binary, d)
		}
	}

	resp := InferResponse{ModelName: "m", ModelVersion: "7", ID: "r"}
	for i, in := range inputs {
		resp.Outputs = append(resp.Outputs, OutputTensor{Tensor: in, Binary: i%2 == 0})
	}
	body, headerLen := AppendResponse(nil, &resp)
	var gotResp InferResponse
	if err := DecodeResponse(&gotResp, body, headerLen); err != nil {
		t.Fatalf("DecodeResponse(AppendResponse()): %s", err)
	}
	if gotResp.ModelName != "m" || gotResp.ModelVersion != "7" || gotResp.ID != "r" || len(gotResp.Outputs) != len(inputs) {
		t.Fatalf("response round trip: got %+v", gotResp)
	}
	for i := range inputs {
		g, w := &gotResp.Outputs[i], &resp.Outputs[i]
		if d := diffTensors(&g.Tensor, &w.Tensor, !w.Binary); d != "" || g.Binary != w.Binary {
			t.Fatalf("response round trip, output %d: %s (binary %v, want %v)", i, d, g.Binary, w.Binary)
		}
	}
}
