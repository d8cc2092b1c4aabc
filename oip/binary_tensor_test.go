package oip

import (
	"strconv"
	"testing"
)

func TestDecodeRequestBinary(t *testing.T) {
	f := func(header string, binary string, want InferRequest) {
		t.Helper()
		body := []byte(header + binary)
		var got InferRequest
		if err := DecodeRequest(&got, body, len(header)); err != nil {
			t.Fatalf("DecodeRequest(%q): %s", body, err)
		}
		if d := diffRequests(&got, &want, false); d != "" {
			t.Fatalf("DecodeRequest(%q): %s", body, d)
		}
	}
	bin := func(name, dt, shape string, size int) string {
		return `{"name":"` + name + `","datatype":"` + dt + `","shape":` + shape +
			`,"parameters":{"binary_data_size":` + strconv.Itoa(size) + `}}`
	}
	// JSON only, with the header given.
	f(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, "",
		InferRequest{Inputs: []Tensor{tensor("x", FP32, shape(1), 1.0)}})
	// Trailing whitespace inside the header.
	f(`{"inputs":[`+bin("x", "UINT8", "[2]", 2)+`]}  `, "\x07\x08",
		InferRequest{Inputs: []Tensor{tensor("x", UINT8, shape(2), 7, 8)}})
	// Several binary tensors in order, mixed with JSON ones, of size zero
	// too; "parameters" before "shape".
	f(`{"inputs":[`+
		bin("a", "INT16", "[2]", 4)+`,`+
		`{"name":"j","datatype":"INT8","shape":[1],"data":[5]},`+
		`{"parameters":{"binary_data_size":0},"name":"e","datatype":"FP64","shape":[0]},`+
		bin("s", "BYTES", "[2]", 9)+`,`+
		bin("b", "BOOL", "[3]", 3)+`,`+
		bin("z", "BYTES", "[0]", 0)+`]}`,
		"\x01\x00\xff\xff"+"\x01\x00\x00\x00a\x00\x00\x00\x00"+"\x01\x00\x01",
		InferRequest{Inputs: []Tensor{
			tensor("a", INT16, shape(2), 1, -1),
			tensor("j", INT8, shape(1), 5),
			tensor("e", FP64, shape(0)),
			tensor("s", BYTES, shape(2), "a", ""),
			tensor("b", BOOL, shape(3), true, false, true),
			tensor("z", BYTES, shape(0)),
		}})
	// NaN payloads and any bits pass through binary tensors unchanged.
	f(`{"inputs":[`+bin("f", "FP32", "[1]", 4)+`]}`, "\x01\x00\xc0\x7f",
		InferRequest{Inputs: []Tensor{{Name: "f", Datatype: FP32, Shape: shape(1), Data: []byte{1, 0, 0xc0, 0x7f}}}})
}

func TestDecodeResponseBinary(t *testing.T) {
	header := `{"model_name":"m","model_version":"2","outputs":[` +
		`{"name":"y","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}},` +
		`{"name":"z","datatype":"INT8","shape":[2],"data":[1,-1]}]}`
	body := []byte(header + "\x00\x00\x80\x3f")
	var resp InferResponse
	if err := DecodeResponse(&resp, body, len(header)); err != nil {
		t.Fatal(err)
	}
	wantY, wantZ := tensor("y", FP32, shape(1), 1.0), tensor("z", INT8, shape(2), 1, -1)
	if resp.ModelName != "m" || resp.ModelVersion != "2" || len(resp.Outputs) != 2 ||
		diffTensors(&resp.Outputs[0].Tensor, &wantY, false) != "" || !resp.Outputs[0].Binary ||
		diffTensors(&resp.Outputs[1].Tensor, &wantZ, false) != "" || resp.Outputs[1].Binary {
		t.Fatalf("got %+v", resp)
	}
	wantError(t, DecodeResponse(&resp, body[:len(body)-1], len(header)),
		`binary_data_size of output "y" is 4 but only 3 bytes follow the JSON header`)
	wantError(t, DecodeResponse(&resp, []byte(`{"model_name":"m"}`), -1), `the response has no "outputs"`)
	wantError(t, DecodeResponse(&resp, []byte(`{"outputs":[{"name":"a","datatype":"FP32","shape":[0],"data":[]},{"name":"a","datatype":"FP32","shape":[0],"data":[]}]}`), -1),
		`the response has two outputs named "a"`)
	wantError(t, DecodeResponse(&resp, []byte(`{"model_name":1,"outputs":[]}`), -1), `"model_name" must be a string, not a number`)
}

// TestDecodeRequestCopies checks that decoded tensors do not alias the
// body, which a server reuses.
func TestDecodeRequestCopies(t *testing.T) {
	header := `{"id":"abc","parameters":{"unit_id":"u"},"inputs":[` +
		`{"name":"j","datatype":"BYTES","shape":[1],"data":["xyz"]},` +
		`{"name":"b","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}}]}`
	body := []byte(header + "\x01\x02")
	var req InferRequest
	if err := DecodeRequest(&req, body, len(header)); err != nil {
		t.Fatal(err)
	}
	want := InferRequest{ID: "abc", UnitID: "u", Inputs: []Tensor{
		tensor("j", BYTES, shape(1), "xyz"),
		tensor("b", UINT8, shape(2), 1, 2),
	}}
	for i := range body {
		body[i] = '#'
	}
	if d := diffRequests(&req, &want, false); d != "" {
		t.Fatalf("after overwriting the body: %s", d)
	}
}

// TestDecodeRequestReuse decodes requests of several sizes into one
// InferRequest, as a pool does, and checks that nothing of an earlier one
// shows through and that the steady state does not allocate.
func TestDecodeRequestReuse(t *testing.T) {
	big, _ := floatBody(4096, 5)
	small := []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[1,2],"data":[1,2]}],"outputs":[{"name":"score"}]}`)
	two := []byte(`{"inputs":[{"name":"a","datatype":"INT64","shape":[1],"data":[7]},{"name":"b","datatype":"BYTES","shape":[1],"data":["q"]}]}`)
	bad := []byte(`{"inputs":[{"name":"a","datatype":"INT64","shape":[3],"data":[7,8,"x"]}]}`)
	var req InferRequest
	check := func(body []byte, want InferRequest) {
		t.Helper()
		if err := DecodeRequest(&req, body, -1); err != nil {
			t.Fatal(err)
		}
		if d := diffRequests(&req, &want, false); d != "" {
			t.Fatalf("DecodeRequest(%.60s...): %s", body, d)
		}
	}
	wantSmall := InferRequest{Inputs: []Tensor{tensor("features", FP32, shape(1, 2), 1.0, 2.0)}, Outputs: []RequestedOutput{{Name: "score"}}}
	wantTwo := InferRequest{Inputs: []Tensor{tensor("a", INT64, shape(1), 7), tensor("b", BYTES, shape(1), "q")}}
	for range 3 {
		if err := DecodeRequest(&req, big, -1); err != nil {
			t.Fatal(err)
		}
		check(small, wantSmall)
		check(two, wantTwo)
		if err := DecodeRequest(&req, bad, -1); err == nil {
			t.Fatal("bad request decoded")
		}
		check(small, wantSmall)
	}
	for name, body := range map[string][]byte{"small": small, "two": two, "big": big} {
		if name == "big" {
			// Its "id" is the one allocation.
			body = append([]byte(`{"inputs"`), body[len(`{"id":"bench","inputs"`):]...)
		}
		if n := testing.AllocsPerRun(50, func() {
			if err := DecodeRequest(&req, body, -1); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("decoding %s again allocates %v times; want 0", name, n)
		}
	}
}
