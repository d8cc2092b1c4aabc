package oip

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	f := func(body string, want InferRequest) {
		t.Helper()
		var got InferRequest
		if err := DecodeRequest(&got, []byte(body), -1); err != nil {
			t.Fatalf("DecodeRequest(%s): %s", body, err)
		}
		if d := diffRequests(&got, &want, false); d != "" {
			t.Fatalf("DecodeRequest(%s): %s", body, d)
		}
	}
	x := func(vals ...any) Tensor { return tensor("x", FP32, shape(int64(len(vals))), vals...) }

	f(`{"inputs":[]}`, InferRequest{})
	f(` {"inputs" : [ { "name" : "x" , "datatype" : "FP32" , "shape" : [ 2 ] , "data" : [ 1 , -2.5 ] } ] } `,
		InferRequest{Inputs: []Tensor{x(1.0, -2.5)}})
	f(`{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`,
		InferRequest{ID: "r1", Inputs: []Tensor{x(1.0)}})
	f(`{"id":null,"parameters":null,"outputs":null,"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":null}]}`,
		InferRequest{Inputs: []Tensor{x(1.0)}})

	// Parameters, with unknown ones of every JSON type skipped.
	f(`{"parameters":{"binary_data_output":true,"timeout":1500,"priority":2,"cache_bypass":true,"unit_id":"user-7",
		"a":null,"b":[1,{"c":[]}],"d":"s","e":1.5e3,"f":false,"g":{}},
		"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"other":{"k":"v"}}}],
		"outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false,"classification":3}}]}`,
		InferRequest{
			BinaryDataOutput: true, TimeoutMicros: 1500, Priority: 2, CacheBypass: true, UnitID: "user-7",
			Inputs:  []Tensor{x(1.0)},
			Outputs: []RequestedOutput{{Name: "y"}, {Name: "z", HasBinary: true, Classification: 3}},
		})

	// Unknown members are skipped, and members come in any order: "data"
	// before "datatype" and "shape".
	f(`{"model_name":"m","inputs":[{"data":[[1,2],[3,4]],"extra":{"x":[1]},"shape":[2,2],"datatype":"FP32","name":"x"}]}`,
		InferRequest{Inputs: []Tensor{tensor("x", FP32, shape(2, 2), 1.0, 2.0, 3.0, 4.0)}})
	f(`{"inputs":[{"name":"x","data":[1,2],"datatype":"INT64","shape":[2]}]}`,
		InferRequest{Inputs: []Tensor{tensor("x", INT64, shape(2), 1, 2)}})

	// Escapes in names and strings.
	f(`{"id":"a\"b\\c\/d\u00e9\ud83d\ude00\n","inputs":[{"name":"in\u0070ut","datatype":"BYTES","shape":[2],"data":["\t","é"]}]}`,
		InferRequest{ID: "a\"b\\c/dé😀\n", Inputs: []Tensor{tensor("input", BYTES, shape(2), "\t", "é")}})
	// A lone surrogate becomes U+FFFD, as encoding/json does.
	f(`{"id":"\ud800x","inputs":[]}`, InferRequest{ID: "\uFFFDx"})

	// Scalars and empty tensors.
	f(`{"inputs":[{"name":"x","datatype":"FP32","shape":[],"data":[7]}]}`,
		InferRequest{Inputs: []Tensor{tensor("x", FP32, shape(), 7.0)}})
	f(`{"inputs":[{"name":"x","datatype":"FP32","shape":[0,3],"data":[]}]}`,
		InferRequest{Inputs: []Tensor{tensor("x", FP32, shape(0, 3))}})
	f(`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,0],"data":[[],[]]}]}`,
		InferRequest{Inputs: []Tensor{tensor("x", FP32, shape(2, 0))}})
}

func TestDecodeRequestNestedEqualsFlat(t *testing.T) {
	f := func(nested, flat string) {
		t.Helper()
		var a, b InferRequest
		if err := DecodeRequest(&a, []byte(nested), -1); err != nil {
			t.Fatalf("nested %s: %s", nested, err)
		}
		if err := DecodeRequest(&b, []byte(flat), -1); err != nil {
			t.Fatalf("flat %s: %s", flat, err)
		}
		if d := diffRequests(&a, &b, false); d != "" {
			t.Fatalf("nested %s and flat %s differ: %s", nested, flat, d)
		}
	}
	req := func(dt, shape, data string) string {
		return `{"inputs":[{"name":"x","datatype":"` + dt + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	f(req("FP32", "[2,3]", "[[1,2,3],[4,5,6]]"), req("FP32", "[2,3]", "[1,2,3,4,5,6]"))
	f(req("INT8", "[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"), req("INT8", "[2,2,2]", "[1,2,3,4,5,6,7,8]"))
	f(req("BOOL", "[2,1]", "[[true],[false]]"), req("BOOL", "[2,1]", "[true,false]"))
	f(req("BYTES", "[1,2]", `[["a","bc"]]`), req("BYTES", "[1,2]", `["a","bc"]`))
	// Deep, as deep as the rank allows.
	deep := strings.Repeat("[", MaxRank) + "1" + strings.Repeat("]", MaxRank)
	ones := "[1" + strings.Repeat(",1", MaxRank-1) + "]"
	f(req("UINT8", ones, deep), req("UINT8", ones, "[1]"))
}

func TestDecodeRequestDatatypes(t *testing.T) {
	f := func(dt DataType, data string, want ...any) {
		t.Helper()
		body := `{"inputs":[{"name":"x","datatype":"` + dt.String() + `","shape":[` +
			strconv.Itoa(len(want)) + `],"data":` + data + `}]}`
		var req InferRequest
		if err := DecodeRequest(&req, []byte(body), -1); err != nil {
			t.Fatalf("DecodeRequest(%s): %s", body, err)
		}
		w := tensor("x", dt, shape(int64(len(want))), want...)
		if d := diffTensors(&req.Inputs[0], &w, false); d != "" {
			t.Fatalf("DecodeRequest(%s): %s", body, d)
		}
	}
	f(BOOL, "[true,false]", true, false)
	f(UINT8, "[0,255,1.0,2e1,0.3e1]", 0, 255, 1, 20, 3)
	f(UINT16, "[65535]", 65535)
	f(UINT32, "[4294967295]", 4294967295)
	f(UINT64, "[18446744073709551615,1.8446744073709551615e19,10000000000000000000]",
		uint64(math.MaxUint64), uint64(math.MaxUint64), uint64(1e19))
	f(INT8, "[-128,127,-0,-0.0]", -128, 127, 0, 0)
	f(INT16, "[-32768,32767]", -32768, 32767)
	f(INT32, "[-2147483648,2147483647]", -2147483648, 2147483647)
	f(INT64, "[-9223372036854775808,9223372036854775807,-9.223372036854775808e18,9007199254740993]",
		int64(math.MinInt64), int64(math.MaxInt64), int64(math.MinInt64), int64(9007199254740993))
	f(INT64, "[100000000000000000000e-2,12.000000000000000000000000000000]", int64(1e18), 12)
	f(FP16, "[1,-2.5,65504,0.1,6e-8,\"NaN\",\"Infinity\",\"-Infinity\",-0]",
		1.0, -2.5, 65504.0, 0.1, 6e-8, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1))
	f(FP32, "[1,-2.5,3.4028235e38,1e-45,0.1,\"Infinity\",\"-Infinity\",-0,1e-50]",
		1.0, -2.5, float64(math.MaxFloat32), 1e-45, 0.1, math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0.0)
	f(FP64, "[1,-2.5,1.7976931348623157e308,5e-324,0.1,\"Infinity\",-0]",
		1.0, -2.5, math.MaxFloat64, 5e-324, 0.1, math.Inf(1), math.Copysign(0, -1))
	f(BYTES, `["", "abc", "\u0000"]`, "", "abc", "\x00")
	// Bare, as Triton's clients write them (python-rapidjson, TritonJson),
	// first in the data, after plain numbers, and nested.
	for _, dt := range []DataType{FP16, FP32, FP64} {
		f(dt, "[Infinity, -Infinity,1,-Infinity,Infinity , 2]", math.Inf(1), math.Inf(-1), 1.0, math.Inf(-1), math.Inf(1), 2.0)
		f(dt, "[-Infinity]", math.Inf(-1))
	}

	// NaN decodes to a NaN of the type, quoted or bare, and bare before
	// "datatype" (checked, then decoded).
	var req InferRequest
	for _, dt := range []DataType{FP16, FP32, FP64} {
		for _, body := range []string{
			`{"inputs":[{"name":"x","datatype":"` + dt.String() + `","shape":[1],"data":["NaN"]}]}`,
			`{"inputs":[{"name":"x","datatype":"` + dt.String() + `","shape":[1],"data":[NaN]}]}`,
			`{"inputs":[{"name":"x","data":[[NaN]],"shape":[1,1],"datatype":"` + dt.String() + `"}]}`,
		} {
			if err := DecodeRequest(&req, []byte(body), -1); err != nil {
				t.Fatalf("%s: %s", body, err)
			}
			w := tensor("x", dt, req.Inputs[0].Shape, math.NaN())
			if !dataEqual(dt, req.Inputs[0].Data, w.Data, true) {
				t.Fatalf("%s: got %x; want a NaN", body, req.Inputs[0].Data)
			}
		}
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	f := func(body string, headerLen int, fragments ...string) {
		t.Helper()
		var req InferRequest
		err := DecodeRequest(&req, []byte(body), headerLen)
		wantError(t, err, fragments...)
	}
	in := func(members string) string { return `{"inputs":[{` + members + `}]}` }
	x := func(dt, shape, data string) string {
		return in(`"name":"x","datatype":"` + dt + `","shape":` + shape + `,"data":` + data)
	}

	// Broken JSON.
	f(``, -1, "invalid JSON at byte 0", "expected an object")
	f(`{`, -1, "expected a string key, found the end of the JSON")
	f(`{"inputs":[]`, -1, "expected ',' or '}'")
	f(`{"inputs":[]}x`, -1, `'x' follows the end of the top-level object`)
	f(`{"inputs":[],}`, -1, "expected a string key")
	f(`{"inputs" []}`, -1, "expected ':'")
	f(`{"inputs":[]`+"\x00"+`}`, -1, "byte 0x0")
	f(x("FP32", "[2]", "[1,]"), -1, "expected a value, found ']'")
	f(x("FP32", "[2]", "[1 2]"), -1, "expected ',' or ']' after an array element")
	f(x("FP32", "[1]", "[01]"), -1, "no digit after a leading 0")
	f(x("FP32", "[1]", "[1.]"), -1, "a digit after '.'")
	f(x("FP32", "[1]", "[1e]"), -1, "a digit in the exponent")
	f(x("FP32", "[1]", "[+1]"), -1, "expected a value")
	f(x("FP32", "[1]", "[.5]"), -1, "expected a value")
	f(x("FP32", "[1]", "[Nan]"), -1, "expected a value")
	f(x("FP32", "[1]", "[-Inf]"), -1, "expected a digit")
	f(x("INT32", "[1]", "[NaN]"), -1, "data element 0 is a non-finite number but INT32 needs")
	f(x("BOOL", "[1]", "[tru]"), -1, "expected true")
	f(x("BYTES", "[1]", `["abc`), -1, "string is not terminated")
	f(x("BYTES", "[1]", "[\"a\tb\"]"), -1, "control character 0x09")
	f(x("BYTES", "[1]", `["\x"]`), -1, `invalid escape \x`)
	f(x("BYTES", "[1]", `["\u12"]`), -1, `\u must be followed by 4 hex digits`)
	f(x("BYTES", "[1]", "[\"\xff\"]"), -1, "byte 0xff in a string is not UTF-8")
	f(strings.Repeat("[", 100), -1, "must be an object, not an array")
	f(`{"a":`+strings.Repeat("[", MaxDepth)+strings.Repeat("]", MaxDepth)+`,"inputs":[]}`, -1, "nest deeper than 64 levels")
	f(x("FP32", "[1]", strings.Repeat("[", MaxDepth)+"1"+strings.Repeat("]", MaxDepth)), -1, "nest deeper than 64 levels")

	// Nested data must follow the shape; flat data fits any shape.
	f(x("FP32", "[2,2]", "[[1,2,3],[4]]"), -1, `"data" is ragged: an array at depth 2 has 1 element, an earlier one 3`)
	f(x("FP64", "[4]", "[[1],[2,[3]],4]"), -1, `"data" mixes values and arrays at the same depth`)
	f(x("FP32", "[4]", "[[1,2],[3,4]]"), -1, `"data" is nested 2 deep but shape [4] has 1 dimensions`)
	f(x("FP32", "[2,2]", "[[1,2,3,4]]"), -1, `"data" has 1 element at depth 1 but shape [2,2] says 2 there`)
	f(x("INT64", "[1,4]", "[[1,2],[3,4]]"), -1, `"data" has 2 elements at depth 1 but shape [1,4] says 1 there`)

	// Wrong JSON types and missing or repeated members.
	f(`[]`, -1, "the request must be an object, not an array")
	f(`{}`, -1, `the request has no "inputs"`)
	// Shared memory parameters.
	shmIn := func(params string) string {
		return in(`"name":"x","datatype":"FP32","shape":[1],"parameters":{` + params + `}`)
	}
	f(shmIn(`"shared_memory_offset":4`), -1, `input "x" has parameter "shared_memory_offset" alone`)
	f(shmIn(`"shared_memory_byte_size":4`), -1, `input "x" has parameter "shared_memory_byte_size" alone`)
	f(shmIn(`"shared_memory_region":"","shared_memory_byte_size":4`), -1, `parameter "shared_memory_region" is empty`)
	f(shmIn(`"shared_memory_region":"a","shared_memory_region":"b","shared_memory_byte_size":4`), -1, `two "shared_memory_region" parameters`)
	f(shmIn(`"shared_memory_region":"a","shared_memory_byte_size":-1`), -1, `shared_memory_byte_size`)
	f(shmIn(`"shared_memory_region":7,"shared_memory_byte_size":4`), -1, `"shared_memory_region"`, "string")
	f(shmIn(`"shared_memory_region":"a","shared_memory_byte_size":4,"binary_data_size":4`), -1, "send its data one way")
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":2,"shared_memory_region":"o","shared_memory_byte_size":8}}]}`, -1,
		`asks for classification into shared memory`)
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"shared_memory_region":"o"}}]}`, -1, `output "y" has parameter "shared_memory_region" alone`)
	f(`{"instances":[[1]]}`, -1, `the request has no "inputs" but has "instances", as KServe's v1 protocol does: send it to POST /v1/models/{name}:predict`)
	f(`{"inputs":{}}`, -1, `"inputs" must be an array, not an object`)
	f(`{"inputs":[],"inputs":[]}`, -1, `the request has two "inputs" members`)
	f(`{"id":1,"inputs":[]}`, -1, `"id" must be a string, not a number`)
	f(`{"parameters":[],"inputs":[]}`, -1, `"parameters" must be an object, not an array`)
	f(`{"parameters":{"timeout":"5"},"inputs":[]}`, -1, `parameter "timeout" must be an integer, not a string`)
	f(`{"parameters":{"timeout":1.5},"inputs":[]}`, -1, `parameter "timeout" must be an integer, not 1.5`)
	f(`{"parameters":{"timeout":-1},"inputs":[]}`, -1, `parameter "timeout" is -1; must be between 0 and`)
	f(`{"parameters":{"priority":1e30},"inputs":[]}`, -1, `parameter "priority" is 1e30; must be between 0 and`)
	f(`{"parameters":{"binary_data_output":1},"inputs":[]}`, -1, `parameter "binary_data_output" must be true or false, not a number`)
	f(`{"parameters":{"cache_bypass":null},"inputs":[]}`, -1, `parameter "cache_bypass" must be true or false, not null`)
	f(`{"parameters":{"unit_id":7},"inputs":[]}`, -1, `parameter "unit_id" must be a string, not a number`)
	f(`{"parameters":{"timeout":1,"timeout":2},"inputs":[]}`, -1, `two parameter "timeout"`)
	f(`{"inputs":[1]}`, -1, `inputs[0] must be an object, not a number`)
	f(in(`"datatype":"FP32","shape":[1],"data":[1]`), -1, `inputs[0] has no "name"`)
	f(in(`"name":"","datatype":"FP32","shape":[1],"data":[1]`), -1, `inputs[0] has an empty name`)
	f(in(`"name":"x","shape":[1],"data":[1]`), -1, `input "x" has no "datatype"`)
	f(in(`"name":"x","datatype":"FP32","data":[1]`), -1, `input "x" has no "shape"`)
	f(in(`"name":"x","datatype":"FP32","shape":[1]`), -1, `input "x" has no "data" and no binary_data_size parameter`)
	f(in(`"name":"x","name":"y"`), -1, `input "x" has two "name" members`)
	f(in(`"name":3`), -1, `inputs[0]: "name" must be a string, not a number`)
	f(in(`"name":"x","datatype":"FP31"`), -1, `input "x": unknown datatype "FP31"; use one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES`)
	f(in(`"name":"x","datatype":"fp32"`), -1, `unknown datatype "fp32"`)
	f(x("FP32", `"[1]"`, "[1]"), -1, `input "x": "shape" must be an array, not a string`)
	f(x("FP32", `[1,"2"]`, "[1]"), -1, `"shape" must be an array of integers, but dimension 1 is a string`)
	f(x("FP32", `[1,-1]`, "[1]"), -1, `dimension 1 is -1; dimensions must not be negative`)
	f(x("FP32", `[1.5]`, "[1]"), -1, `dimension 0 is 1.5, not an integer`)
	f(x("FP32", `[268435457]`, "[1]"), -1, `dimension 0 is 268435457; at most 268435456 is allowed`)
	f(x("FP32", `[99999999999999999999999]`, "[1]"), -1, `dimension 0 is 99999999999999999999999; at most`)
	f(x("FP32", `[65536,65536]`, "[1]"), -1, `[65536,65536] has more than 268435456 elements`)
	f(x("FP32", `[268435456,268435456,268435456]`, "[1]"), -1, `has more than 268435456 elements`)
	f(x("FP32", "["+strings.Repeat("1,", MaxRank)+"1]", "[1]"), -1, `has more than 32 dimensions`)
	f(x("FP32", "[1]", `{"a":1}`), -1, `input "x": "data" must be an array, not an object`)
	f(x("FP32", "[1]", `1`), -1, `"data" must be an array, not a number`)
	f(x("FP32", "[1]", `null`), -1, `"data" must be an array, not null`)

	// Data that does not fit the datatype or the shape.
	f(x("FP32", "[1,64]", "["+strings.Repeat("1,", 62)+"1]"), -1, `input "x": data has 63 elements but shape [1,64] needs 64`)
	f(x("FP32", "[1]", "[1,2]"), -1, `data has 2 elements but shape [1] needs 1`)
	f(x("FP32", "[1]", `["1"]`), -1, `input "x": data element 0 is the string "1" but FP32 needs numbers`)
	f(x("FP32", "[1]", `["nan"]`), -1, `is the string "nan"`)
	f(x("FP32", "[1]", `[true]`), -1, `data element 0 is a boolean but FP32 needs numbers`)
	f(x("FP32", "[2]", `[1,null]`), -1, `data element 1 is null but FP32 needs numbers`)
	f(x("FP32", "[1]", `[1e39]`), -1, `data element 0 is 1e39, out of the range of FP32`)
	f(x("FP64", "[1]", `[1e309]`), -1, `data element 0 is 1e309, out of the range of FP64`)
	f(x("FP16", "[1]", `[65520]`), -1, `data element 0 is 65520, out of the range of FP16`)
	f(x("INT8", "[1]", `[128]`), -1, `data element 0 is 128, out of the range of INT8 (-128 to 127)`)
	f(x("INT8", "[1]", `[-129]`), -1, `out of the range of INT8`)
	f(x("UINT8", "[1]", `[-1]`), -1, `data element 0 is -1, out of the range of UINT8 (0 to 255)`)
	f(x("UINT64", "[1]", `[18446744073709551616]`), -1, `out of the range of UINT64`)
	f(x("INT64", "[1]", `[9223372036854775808]`), -1, `out of the range of INT64`)
	f(x("INT64", "[1]", `[1e19]`), -1, `out of the range of INT64`)
	f(x("INT64", "[1]", `[1e400000000000]`), -1, `out of the range of INT64`)
	f(x("INT32", "[1]", `[1.5]`), -1, `data element 0 is 1.5, not an integer as INT32 needs`)
	f(x("INT32", "[1]", `[1e-1]`), -1, `is 1e-1, not an integer`)
	f(x("INT32", "[1]", `[1.0000000000000000000000001]`), -1, `not an integer`)
	f(x("INT32", "[1]", `["1"]`), -1, `data element 0 is a string but INT32 needs integers`)
	f(x("BOOL", "[1]", `[1]`), -1, `data element 0 is a number but BOOL needs true or false`)
	f(x("BYTES", "[1]", `[1]`), -1, `data element 0 is a number but BYTES needs strings`)

	// Several inputs and outputs.
	f(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, -1,
		`the request has two inputs named "x"`)
	f(`{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}`, -1, `the request asks twice for output "y"`)
	f(`{"inputs":[],"outputs":[{}]}`, -1, `outputs[0] has no "name"`)
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}`, -1, `output "y": parameter "binary_data" must be true or false, not a string`)
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":-1}}]}`, -1, `output "y": parameter "classification"`, "-1")
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":2.5}}]}`, -1, `output "y": parameter "classification"`)
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":"3"}}]}`, -1, `output "y": parameter "classification" must be an integer, not a string`)
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":2000000}}]}`, -1, `output "y": parameter "classification"`, "2000000")
	f(`{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":1,"classification":2}}]}`, -1, `output "y"`, `two "classification"`)
	many := make([]string, MaxTensors+1)
	for i := range many {
		many[i] = `{"name":"x` + strconv.Itoa(i) + `","datatype":"FP32","shape":[0],"data":[]}`
	}
	f(`{"inputs":[`+strings.Join(many, ",")+`]}`, -1, "more than 1024 inputs")

	// Binary framing.
	bx := func(size string) string {
		return in(`"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":` + size + `}`)
	}
	f(bx("4")+"abcd", -1, `input "x" has a binary_data_size parameter but there is no Inference-Header-Content-Length header`)
	f(bx("4"), -2, "Inference-Header-Content-Length is -2")
	f(bx("4"), 1000, "Inference-Header-Content-Length is 1000 but the body has only")
	f(bx("4"), 0, "invalid JSON at byte 0")
	f(bx("400")+"abcdefghijkl", len(bx("400")), `binary_data_size of input "x" is 400 but only 12 bytes follow the JSON header`)
	f(bx("9223372036854775807")+"abcd", len(bx("9223372036854775807")), `is 9223372036854775807 but only 4 bytes follow`)
	f(bx("-1")+"abcd", len(bx("-1")), `parameter "binary_data_size" is -1`)
	f(bx(`"4"`)+"abcd", len(bx(`"4"`)), `parameter "binary_data_size" must be an integer, not a string`)
	f(bx("8")+"abcdefgh", len(bx("8")), `input "x": binary_data_size is 8 but shape [1] of FP32 needs 4 bytes`)
	f(bx("4")+"abcdefgh", len(bx("4")), `8 bytes follow the JSON header but the binary_data_size parameters of the inputs add up to 4`)
	f(x("FP32", "[1]", "[1]")+"junk", len(x("FP32", "[1]", "[1]")), `4 bytes follow the JSON header but the binary_data_size parameters of the inputs add up to 0`)
	both := in(`"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}`)
	f(both+"abcd", len(both), `input "x" has both "data" and a binary_data_size parameter`)
	dup := in(`"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4,"binary_data_size":4}`)
	f(dup+"abcd", len(dup), `two "binary_data_size" parameters`)
	bb := in(`"name":"b","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}`)
	f(bb+"\x01\x02", len(bb), `input "b": binary data has BOOL element 1 of value 2; BOOL elements must be 0 or 1`)
	bs := func(n int) string {
		return in(`"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":` + strconv.Itoa(n) + `}`)
	}
	f(bs(5)+"\x01\x00\x00\x00a", len(bs(5)), `input "s": binary data holds 1 BYTES element but shape [2] needs 2`)
	f(bs(7)+"\x01\x00\x00\x00a\x00\x00", len(bs(7)), `ends inside BYTES element 1: only 2 of the 4 bytes of its length are left`)
	f(bs(8)+"\x09\x00\x00\x00abcd", len(bs(8)), `ends inside BYTES element 0: its length is 9 but only 4 bytes are left`)
	f(bs(8)+"\xff\xff\xff\xffabcd", len(bs(8)), `its length is 4294967295 but only 4 bytes are left`)
}
