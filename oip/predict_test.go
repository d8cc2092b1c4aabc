package oip

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

var (
	oneInput = []TensorMetadata{{Name: "x", Datatype: FP32, Shape: shape(-1, 2)}}
	twoInput = []TensorMetadata{
		{Name: "a", Datatype: INT64, Shape: shape(-1, 2)},
		{Name: "b", Datatype: BOOL, Shape: shape(-1)},
	}
)

func TestDecodePredictRequest(t *testing.T) {
	f := func(inputs []TensorMetadata, body string, wantFormat PredictFormat, want ...Tensor) {
		t.Helper()
		var got InferRequest
		format, err := DecodePredictRequest(&got, []byte(body), inputs)
		if err != nil {
			t.Fatalf("DecodePredictRequest(%s): %s", body, err)
		}
		if format != wantFormat {
			t.Fatalf("DecodePredictRequest(%s): format %d; want %d", body, format, wantFormat)
		}
		if d := diffRequests(&got, &InferRequest{Inputs: want}, false); d != "" {
			t.Fatalf("DecodePredictRequest(%s): %s", body, d)
		}
	}
	x := func(sh []int64, vals ...any) Tensor { return tensor("x", FP32, sh, vals...) }

	// Rows of the one input, stacked.
	f(oneInput, `{"instances":[[1,2],[3,4],[5,6]]}`, PredictRows, x(shape(3, 2), 1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
	f(oneInput, ` { "signature_name" : "serving_default" , "instances" : [ [ 1 , 2 ] ] } `, PredictRows, x(shape(1, 2), 1.0, 2.0))
	var req InferRequest
	if _, err := DecodePredictRequest(&req, []byte(`{"id":"imp-7","instances":[[1,2]]}`), oneInput); err != nil || req.ID != "imp-7" {
		t.Fatalf(`"id": got %q, %v; want "imp-7"`, req.ID, err)
	}
	// The same rows by name, as TensorFlow Serving takes them too.
	f(oneInput, `{"instances":[{"x":[1,2]},{"x":[3,4]}]}`, PredictRows, x(shape(2, 2), 1.0, 2.0, 3.0, 4.0))
	// Rows of a rank-1 input are values.
	f([]TensorMetadata{{Name: "x", Datatype: FP32, Shape: shape(-1)}}, `{"instances":[1,2.5,"NaN"]}`, PredictRows, x(shape(3), 1.0, 2.5, math.NaN()))
	// Rows of several dimensions.
	f([]TensorMetadata{{Name: "x", Datatype: FP32, Shape: shape(-1, 2, 1)}}, `{"instances":[[[1],[2]],[[3],[4]]]}`, PredictRows,
		x(shape(2, 2, 1), 1.0, 2.0, 3.0, 4.0))
	// Two inputs, by name, members in any order.
	f(twoInput, `{"instances":[{"a":[1,2],"b":true},{"b":false,"a":[-3,4]}]}`, PredictRows,
		tensor("a", INT64, shape(2, 2), 1, 2, -3, 4), tensor("b", BOOL, shape(2), true, false))

	// Whole tensors.
	f(oneInput, `{"inputs":[[1,2],[3,4]]}`, PredictColumns, x(shape(2, 2), 1.0, 2.0, 3.0, 4.0))
	f(oneInput, `{"inputs":{"x":[[1,2]]}}`, PredictColumns, x(shape(1, 2), 1.0, 2.0))
	// No rows: decoded, for the caller's checks to refuse.
	f(oneInput, `{"inputs":[]}`, PredictColumns, x(shape(0)))
	f(twoInput, `{"inputs":{"b":[true],"a":[[5,6]]}}`, PredictColumns,
		tensor("b", BOOL, shape(1), true), tensor("a", INT64, shape(1, 2), 5, 6))
	f([]TensorMetadata{{Name: "s", Datatype: BYTES, Shape: shape(-1)}}, `{"instances":["hi","\u00e9"]}`, PredictRows,
		tensor("s", BYTES, shape(2), "hi", "é"))
}

// A predict request decodes to the tensors of the equivalent infer
// request of protocol v2.
func TestDecodePredictRequestAgreesWithV2(t *testing.T) {
	in := []TensorMetadata{{Name: "features", Datatype: FP32, Shape: shape(-1, 3)}}
	var v1, v2 InferRequest
	if _, err := DecodePredictRequest(&v1, []byte(`{"instances":[[0.1,-2e-3,7],[1e30,0,-0]]}`), in); err != nil {
		t.Fatal(err)
	}
	if err := DecodeRequest(&v2, []byte(`{"inputs":[{"name":"features","datatype":"FP32","shape":[2,3],"data":[0.1,-2e-3,7,1e30,0,-0]}]}`), -1); err != nil {
		t.Fatal(err)
	}
	if d := diffRequests(&v1, &v2, false); d != "" {
		t.Fatal(d)
	}
}

func TestDecodePredictRequestErrors(t *testing.T) {
	f := func(inputs []TensorMetadata, body string, fragments ...string) {
		t.Helper()
		var req InferRequest
		_, err := DecodePredictRequest(&req, []byte(body), inputs)
		wantError(t, err, fragments...)
	}
	f(oneInput, `{}`, `neither "instances" (rows) nor "inputs" (whole tensors)`)
	f(oneInput, `{"signature_name":"s"}`, `neither "instances"`)
	f(oneInput, `[]`, "the request must be an object")
	f(oneInput, `{"instances":[[1,2]],"inputs":[[1,2]]}`, `both "instances" and "inputs"`)
	f(oneInput, `{"instances":[[1,2]],"instances":[[1,2]]}`, `two "instances" members`)
	f(oneInput, `{"instances":[]}`, `"instances" is empty`)
	f(oneInput, `{"instances":{"x":[1,2]}}`, `"instances" must be an array, not an object`)
	f(oneInput, `{"instances":[[1,2],[3]]}`, `input "x": "instances" is ragged`)
	f(oneInput, `{"instances":[[1,2],3]}`, `mixes values and arrays`)
	f(oneInput, `{"instances":[1,2]}`, `input "x" has shape [-1,2], so each row of "instances" must be a value of shape [2]; these are of shape []`)
	f(oneInput, `{"instances":[["a","b"]]}`, `input "x": data element 0 is the string "a" but FP32 needs numbers`)
	f(oneInput, `{"instances":[[1,2]]} x`, "follows the end of the top-level object")
	f(oneInput, `{"instances":[[1,2]`, "invalid JSON")
	f(oneInput, `{"signature_name":3,"instances":[[1,2]]}`, `"signature_name" must be a string`)
	f(oneInput, `{"id":3,"instances":[[1,2]]}`, `"id" must be a string`)
	f(oneInput, `{"id":"a","instances":[[1,2]],"id":"b"}`, `the request has two "id" members`)
	f(oneInput, `{"signature_name":"a","signature_name":"b","instances":[[1,2]]}`, `the request has two "signature_name" members`)
	f(twoInput, `{"instances":[[1,2]]}`, `the model has 2 inputs, "a"`, `each element of "instances" must be an object`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":true},[1]]}`, `instances[1] must be an object, not an array`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":true,"c":1}]}`, `instances[0] has "c", which is not an input of the model; its inputs are "a"`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":true,"b":false}]}`, `instances[0] has two "b" members`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":true},{"a":[1,2]}]}`, `instances[1] has no "b"; every row must give each input`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":true},{"a":[1,2,3],"b":true}]}`,
		`instances[1] gives input "a" a value of shape [3], but instances[0] one of [2]; every row must have the same shape`)
	f(twoInput, `{"instances":[{"a":1,"b":true}]}`, `input "a" has shape [-1,2], so each row of "instances" must be a value of shape [2]; these are of shape []`)
	f(twoInput, `{"instances":[{"a":[1.5,2],"b":true}]}`, `input "a": data element 0 is 1.5, not an integer`)
	f(twoInput, `{"instances":[{"a":[1,2],"b":1}]}`, `input "b": data element 0 is a number but BOOL needs`)
	f(oneInput, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, `"inputs" holds objects, as in the v2 protocol`, "POST /v2/models/{name}/infer")
	f(twoInput, `{"inputs":[[1,2]]}`, `the model has 2 inputs`, `"inputs" must be an object of their tensors by name`)
	f(twoInput, `{"inputs":{"a":[[1,2]]}}`, `"inputs" has no "b"`)
	f(twoInput, `{"inputs":{"a":[[1,2]],"b":[true],"z":[1]}}`, `"inputs" has "z", which is not an input of the model`)
	f(twoInput, `{"inputs":{"a":[[1,2]],"a":[[1,2]],"b":[true]}}`, `"inputs" has two "a" members`)
	f(twoInput, `{"inputs":{"a":7,"b":[true]}}`, `input "a": "inputs" must be an array, not a number`)
}

func TestAppendPredictResponse(t *testing.T) {
	f := func(format PredictFormat, id string, want string, outs ...Tensor) {
		t.Helper()
		got, err := AppendPredictResponse([]byte("x"), format, outs, id)
		if err != nil {
			t.Fatalf("AppendPredictResponse: %s", err)
		}
		if string(got) != "x"+want {
			t.Fatalf("got %s; want %s", got[1:], want)
		}
	}
	score := tensor("score", FP32, shape(3, 1), 0.5, 0.25, 1.0)
	f(PredictRows, "", `{"predictions":[[0.5],[0.25],[1]]}`, score)
	f(PredictColumns, "", `{"outputs":[[0.5],[0.25],[1]]}`, score)
	flat := tensor("label", INT64, shape(2), -1, 7)
	f(PredictRows, "", `{"predictions":[-1,7]}`, flat)
	f(PredictRows, "r-1", `{"predictions":[-1,7],"id":"r-1"}`, flat)
	probs := tensor("probs", FP16, shape(2, 2), 0.25, 0.75, 1.0, 0.0)
	f(PredictRows, "", `{"predictions":[{"label":-1,"probs":[0.25,0.75]},{"label":7,"probs":[1,0]}]}`, flat, probs)
	f(PredictColumns, "", `{"outputs":{"label":[-1,7],"probs":[[0.25,0.75],[1,0]]}}`, flat, probs)
	words := tensor("w", BYTES, shape(2, 1), "a\"b", "")
	f(PredictRows, "", `{"predictions":[["a\"b"],[""]]}`, words)
	f(PredictRows, "", `{"predictions":[[],[]]}`, tensor("e", FP32, shape(2, 0)))
	f(PredictRows, "", `{"predictions":[]}`, tensor("e", FP32, shape(0, 3)))

	g := func(format PredictFormat, fragment string, outs ...Tensor) error {
		t.Helper()
		got, err := AppendPredictResponse([]byte("x"), format, outs, "")
		if err == nil || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("got error %v; want one containing %q", err, fragment)
		}
		if string(got) != "x" {
			t.Fatalf("failed, it left %q in dst; want it as it was", got)
		}
		return err
	}
	// The client's to mend: an *Error, which the gateway answers 400.
	wantError(t, g(PredictRows, `outputs "score" and "label" have 3 and 2 rows; send "inputs" to have whole tensors back`, score, flat), "")
	// The server's fault: a plain error, answered 500.
	if err := g(PredictColumns, "BUG: output", tensor("short", FP32, shape(2), 1.0)); errors.As(err, new(*Error)) {
		t.Fatalf("got *Error %q for data that does not fit its shape; want a plain error", err)
	}
}

// FuzzDecodePredictRequest decodes bodies for a few models' inputs: any
// body gets an *Error or tensors that fit their shapes, never aliasing the
// body; and what decodes, encoded as a response of the same format and
// sent back as a request, decodes to the same tensors.
func FuzzDecodePredictRequest(f *testing.F) {
	models := [][]TensorMetadata{
		oneInput,
		twoInput,
		{{Name: "s", Datatype: BYTES, Shape: shape(-1)}},
		{{Name: "h", Datatype: FP16, Shape: shape(-1, 2, 2)}, {Name: "u", Datatype: UINT8, Shape: shape(3)}},
		{{Name: "z", Datatype: FP32, Shape: []int64{}}}, // a scalar: no rows
	}
	f.Add(uint8(0), []byte(`{"instances":[[1,2],[3,4]]}`))
	f.Add(uint8(0), []byte(`{"inputs":{"x":[[1,2]]},"signature_name":"a"}`))
	f.Add(uint8(1), []byte(`{"instances":[{"a":[1,2],"b":true},{"b":false,"a":[-3,4]}]}`))
	f.Add(uint8(1), []byte(`{"inputs":{"b":[true],"a":[[5,6]]}}`))
	f.Add(uint8(2), []byte(`{"instances":["a","\u00e9\n"]}`))
	f.Add(uint8(3), []byte(`{"instances":[{"h":[[1,2],[3,"NaN"]],"u":7}]}`))
	f.Add(uint8(4), []byte(`{"instances":[1,2]}`))
	f.Add(uint8(4), []byte(`{"instances":[{"z":1}]}`))
	f.Fuzz(func(t *testing.T, m uint8, body []byte) {
		inputs := models[int(m)%len(models)]
		own := bytes.Clone(body)
		var req InferRequest
		format, err := DecodePredictRequest(&req, own, inputs)
		if err != nil {
			if e := (*Error)(nil); !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %s", err, err)
			}
			return
		}
		if len(req.Inputs) != len(inputs) {
			t.Fatalf("decoded %d inputs; the model has %d", len(req.Inputs), len(inputs))
		}
		for i := range req.Inputs {
			if err := req.Inputs[i].CheckData(); err != nil {
				t.Fatalf("decoded input %d does not fit its shape: %s", i, err)
			}
		}
		want := cloneRequest(&req)
		clear(own)
		if d := diffRequests(&req, want, false); d != "" {
			t.Fatalf("the request aliases the body: %s", d)
		}

		enc, err := AppendPredictResponse(nil, format, want.Inputs, "")
		if err != nil {
			t.Fatalf("encoding the decoded tensors: %s", err)
		}
		member := []byte(`{"predictions":`)
		if format == PredictColumns {
			member = []byte(`{"outputs":`)
		}
		if !bytes.HasPrefix(enc, member) {
			t.Fatalf("response %q does not start with %s", enc, member)
		}
		back := append([]byte(`{"instances":`), enc[len(member):]...)
		if format == PredictColumns {
			back = append([]byte(`{"inputs":`), enc[len(member):]...)
		}
		var again InferRequest
		if _, err := DecodePredictRequest(&again, back, inputs); err != nil {
			t.Fatalf("decoding %s back: %s", back, err)
		}
		if d := diffRequests(&again, want, true); d != "" {
			t.Fatalf("%s decodes back to other tensors: %s", back, d)
		}
	})
}

// BenchmarkDecodePredictRequest decodes 64 rows of ctr's 64 features in
// each format of KServe's v1 protocol; BenchmarkDecodeRequest/json/fp32x4096
// is the same tensor in a v2 request.
//
//	go test -run='^$' -bench='DecodePredictRequest|DecodeRequest/json/fp32x4096' -benchmem ./oip/
func BenchmarkDecodePredictRequest(b *testing.B) {
	t := benchRequest(4096).Inputs[0]
	rows, _ := AppendPredictResponse(nil, PredictRows, []Tensor{t}, "")
	cols, _ := AppendPredictResponse(nil, PredictColumns, []Tensor{t}, "")
	named := []byte(`{"instances":[`)
	for r := range 64 {
		if r > 0 {
			named = append(named, ',')
		}
		named = append(named, `{"features":`...)
		named = appendData(named, FP32, t.Data[r*256:(r+1)*256])
		named = append(named, '}')
	}
	named = append(named, "]}"...)
	meta := []TensorMetadata{{Name: "features", Datatype: FP32, Shape: []int64{-1, 64}}}
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"instances", append([]byte(`{"instances":`), rows[len(`{"predictions":`):]...)},
		{"instances_named", named},
		{"inputs", append([]byte(`{"inputs":`), cols[len(`{"outputs":`):]...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			var req InferRequest
			for b.Loop() {
				if _, err := DecodePredictRequest(&req, c.body, meta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendPredictResponse encodes 64 rows of ctr's score in each
// format; BenchmarkAppendResponse/json/fp32x64 is the v2 response.
func BenchmarkAppendPredictResponse(b *testing.B) {
	score := Tensor{Name: "score", Datatype: FP32, Shape: []int64{64, 1}, Data: benchRequest(64).Inputs[0].Data}
	for _, f := range []PredictFormat{PredictRows, PredictColumns} {
		b.Run(map[PredictFormat]string{PredictRows: "predictions", PredictColumns: "outputs"}[f], func(b *testing.B) {
			b.ReportAllocs()
			buf, _ := AppendPredictResponse(nil, f, []Tensor{score}, "")
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				buf, _ = AppendPredictResponse(buf[:0], f, []Tensor{score}, "")
			}
		})
	}
}
