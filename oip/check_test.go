package oip

import (
	"testing"
)

func TestCheckInputs(t *testing.T) {
	ctr := []TensorMetadata{{Name: "features", Datatype: FP32, Shape: shape(-1, 64)}}
	two := []TensorMetadata{
		{Name: "ids", Datatype: INT64, Shape: shape(-1, 8)},
		{Name: "mask", Datatype: BOOL, Shape: shape(-1, 8)},
	}
	fixed := []TensorMetadata{
		{Name: "img", Datatype: UINT8, Shape: shape(3, -1, -1)},
		{Name: "k", Datatype: INT32, Shape: shape()},
	}
	feats := func(rows, cols int) Tensor {
		t := Tensor{Name: "features", Datatype: FP32, Shape: shape(int64(rows), int64(cols))}
		t.Data = make([]byte, 4*rows*cols)
		return t
	}
	ints := func(name string, dt DataType, dims ...int64) Tensor {
		t := Tensor{Name: name, Datatype: dt, Shape: dims}
		t.Data = make([]byte, int(ShapeElements(dims))*dt.Size())
		return t
	}
	ok := func(inputs []Tensor, want []TensorMetadata, maxBatch int64) {
		t.Helper()
		if err := CheckInputs(inputs, want, maxBatch); err != nil {
			t.Fatalf("CheckInputs: %s", err)
		}
	}
	bad := func(inputs []Tensor, want []TensorMetadata, maxBatch int64, fragments ...string) {
		t.Helper()
		wantError(t, CheckInputs(inputs, want, maxBatch), fragments...)
	}

	ok([]Tensor{feats(1, 64)}, ctr, 0)
	ok([]Tensor{feats(256, 64)}, ctr, 256)
	ok([]Tensor{feats(0, 64)}, ctr, 8)
	ok([]Tensor{ints("mask", BOOL, 2, 8), ints("ids", INT64, 2, 8)}, two, 0)
	ok([]Tensor{ints("k", INT32), ints("img", UINT8, 3, 5, 7)}, fixed, 1)
	ok(nil, nil, 0)

	bad([]Tensor{feats(2, 63)}, ctr, 0, `input "features": shape [2,63] does not match the model's [-1,64]: dimension 1 must be 64`)
	bad([]Tensor{feats(1, 64), feats(1, 64)}, ctr, 0, `input "features" is given twice`)
	bad([]Tensor{feats(300, 64)}, ctr, 256, `input "features": batch size 300 (the first dimension of shape [300,64]) exceeds the model's maximum of 256; split the request`)
	bad([]Tensor{ints("features", FP64, 1, 64)}, ctr, 0, `input "features" is FP64 but the model takes FP32`)
	bad([]Tensor{ints("features", FP32, 64)}, ctr, 0, `input "features": shape [64] has 1 dimension but the model's [-1,64] has 2`)
	bad([]Tensor{ints("feature", FP32, 1, 64)}, ctr, 0, `unknown input "feature"; the model's inputs are "features" (FP32 [-1,64])`)
	bad(nil, ctr, 0, `missing input "features"; the model's inputs are "features" (FP32 [-1,64])`)
	bad([]Tensor{ints("ids", INT64, 2, 8)}, two, 0, `missing input "mask"; the model's inputs are "ids" (INT64 [-1,8]), "mask" (BOOL [-1,8])`)
	bad([]Tensor{ints("ids", INT64, 2, 8), ints("mask", BOOL, 3, 8)}, two, 0,
		`inputs disagree on the batch size (the first dimension): "ids" has 2, "mask" has 3`)
	// A model without a batch dimension (maxBatch < 0): the first
	// dimensions are each input's own.
	ok([]Tensor{ints("ids", INT64, 2, 8), ints("mask", BOOL, 3, 8)}, two, -1)
	bad([]Tensor{ints("img", UINT8, 4, 5, 7), ints("k", INT32)}, fixed, 0, `dimension 0 must be 3`)
	bad([]Tensor{{Name: "features", Datatype: FP32, Shape: shape(-1, 64)}}, ctr, 0, `shape [-1,64] has a negative dimension`)
	short := feats(2, 64)
	short.Data = short.Data[:4*127]
	bad([]Tensor{short}, ctr, 0, `input "features": data has 508 bytes but shape [2,64] of FP32 needs 512`)
	mask := ints("mask", BOOL, 1, 8)
	mask.Data[3] = 7
	bad([]Tensor{ints("ids", INT64, 1, 8), mask}, two, 0, `input "mask": data has BOOL element 3 of value 7`)
	bytesMeta := []TensorMetadata{{Name: "text", Datatype: BYTES, Shape: shape(-1)}}
	ok([]Tensor{tensor("text", BYTES, shape(2), "a", "bc")}, bytesMeta, 0)
	bad([]Tensor{tensor("text", BYTES, shape(3), "a", "bc")}, bytesMeta, 0, `input "text": data holds 2 BYTES elements but shape [3] needs 3`)

	// Valid inputs do not allocate.
	inputs := []Tensor{ints("mask", BOOL, 2, 8), ints("ids", INT64, 2, 8)}
	if n := testing.AllocsPerRun(100, func() { _ = CheckInputs(inputs, two, 4) }); n != 0 {
		t.Fatalf("CheckInputs allocates %v times; want 0", n)
	}
}

func TestCheckOutputs(t *testing.T) {
	have := []TensorMetadata{{Name: "score", Datatype: FP32, Shape: shape(-1, 1)}, {Name: "emb", Datatype: FP16, Shape: shape(-1, 8)}}
	if err := CheckOutputs(nil, have); err != nil {
		t.Fatal(err)
	}
	if err := CheckOutputs([]RequestedOutput{{Name: "emb"}, {Name: "score", Binary: true, HasBinary: true}}, have); err != nil {
		t.Fatal(err)
	}
	wantError(t, CheckOutputs([]RequestedOutput{{Name: "scor"}}, have),
		`unknown output "scor"; the model's outputs are "score" (FP32 [-1,1]), "emb" (FP16 [-1,8])`)
	wantError(t, CheckOutputs([]RequestedOutput{{Name: "emb"}, {Name: "emb"}}, have), `output "emb" is asked for twice`)
	wantError(t, CheckOutputs([]RequestedOutput{{Name: "x"}}, nil), `the model's outputs are none`)
}

func TestTensorCheckData(t *testing.T) {
	f := func(tn Tensor, fragment string) {
		t.Helper()
		err := tn.CheckData()
		if fragment == "" {
			if err != nil {
				t.Fatalf("CheckData(%+v): %s", tn, err)
			}
			return
		}
		wantError(t, err, fragment)
	}
	f(tensor("a", FP32, shape(2), 1.0, 2.0), "")
	f(tensor("a", FP32, shape(), 1.0), "")
	f(tensor("a", FP32, shape(0)), "")
	f(tensor("a", BYTES, shape(0)), "")
	f(tensor("a", FP32, shape(3), 1.0, 2.0), `tensor "a": data has 8 bytes but shape [3] of FP32 needs 12`)
	f(tensor("a", FP32, shape(-1), 1.0), `tensor "a": data cannot be checked against shape [-1]`)
	// 2^61+1 FP64 elements need 2^64+8 bytes, which wrapped to 8 and
	// matched a body of one element.
	f(Tensor{Name: "a", Datatype: FP64, Shape: shape(1, 1<<61+1), Data: make([]byte, 8)}, `data has 8 bytes but shape [1,2305843009213693953] of FP64 needs more than any request can hold`)
	f(Tensor{Name: "a", Shape: shape(1)}, `cannot be checked for datatype INVALID`)
	f(tensor("s", BYTES, shape(1), "a", "b"), `holds 2 BYTES elements but shape [1] needs 1`)
	f(Tensor{Name: "s", Datatype: BYTES, Shape: shape(1), Data: []byte{5, 0, 0, 0, 'a'}}, `ends inside BYTES element 0: its length is 5 but only 1 byte is left`)
}
