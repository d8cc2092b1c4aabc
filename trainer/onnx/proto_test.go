package onnx

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// wireField is one decoded protobuf field: v holds varint and fixed values,
// b the payload of a length-delimited field.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// decodeWire splits one message into its fields, failing the test on
// malformed input.
func decodeWire(t *testing.T, b []byte) []wireField {
	t.Helper()
	var fs []wireField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %s", protowire.ParseError(n))
		}
		b = b[n:]
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %s", num, protowire.ParseError(n))
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs
}

// only returns the fields numbered num, checking they have wire type typ.
func only(t *testing.T, fs []wireField, num protowire.Number, typ protowire.Type) []wireField {
	t.Helper()
	var out []wireField
	for _, f := range fs {
		if f.num == num {
			if f.typ != typ {
				t.Fatalf("field %d has wire type %d; want %d", num, f.typ, typ)
			}
			out = append(out, f)
		}
	}
	return out
}

// one returns the single field numbered num.
func one(t *testing.T, fs []wireField, num protowire.Number, typ protowire.Type) wireField {
	t.Helper()
	got := only(t, fs, num, typ)
	if len(got) != 1 {
		t.Fatalf("field %d occurs %d times; want 1", num, len(got))
	}
	return got[0]
}

func TestWireModel(t *testing.T) {
	m := NewMLP(5, []int{3, 2}, None, Sigmoid)
	m.DocString = "doc"
	m.Metadata["b"] = "2"
	m.Metadata["a"] = "1"
	model := decodeWire(t, m.Model().Marshal())

	if got := one(t, model, 1, protowire.VarintType).v; got != 8 {
		t.Fatalf("ir_version = %d; want 8", got)
	}
	if got := string(one(t, model, 2, protowire.BytesType).b); got != "infergate" {
		t.Fatalf("producer_name = %q; want %q", got, "infergate")
	}
	if got := string(one(t, model, 6, protowire.BytesType).b); got != "doc" {
		t.Fatalf("doc_string = %q; want %q", got, "doc")
	}
	opset := decodeWire(t, one(t, model, 8, protowire.BytesType).b)
	if len(only(t, opset, 1, protowire.BytesType)) != 0 {
		t.Fatalf("opset_import has a domain; want the default domain (absent)")
	}
	if got := one(t, opset, 2, protowire.VarintType).v; got != 17 {
		t.Fatalf("opset version = %d; want 17", got)
	}
	var keys []string
	for _, f := range only(t, model, 14, protowire.BytesType) {
		e := decodeWire(t, f.b)
		k := string(one(t, e, 1, protowire.BytesType).b)
		keys = append(keys, k)
		if v := string(one(t, e, 2, protowire.BytesType).b); v != m.Model().Metadata[k] {
			t.Fatalf("metadata %q = %q; want %q", k, v, m.Model().Metadata[k])
		}
	}
	wantKeys := []string{"a", "b", MetaActivations, MetaInitSeed, MetaLayers}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("metadata keys %q; want %q (sorted)", keys, wantKeys)
	}

	graph := decodeWire(t, one(t, model, 7, protowire.BytesType).b)
	if got := string(one(t, graph, 2, protowire.BytesType).b); got != "infergate_mlp" {
		t.Fatalf("graph name = %q; want %q", got, "infergate_mlp")
	}
	var ops []string
	for _, f := range only(t, graph, 1, protowire.BytesType) {
		ops = append(ops, string(one(t, decodeWire(t, f.b), 4, protowire.BytesType).b))
	}
	if want := []string{"Gemm", "Sigmoid"}; !slices.Equal(ops, want) {
		t.Fatalf("node op types %q; want %q", ops, want)
	}

	// The weight initializer: dims [3, 2], FLOAT, name, raw little-endian.
	inits := only(t, graph, 5, protowire.BytesType)
	if len(inits) != 2 {
		t.Fatalf("%d initializers; want 2", len(inits))
	}
	w := decodeWire(t, inits[0].b)
	var dims []uint64
	for _, f := range only(t, w, 1, protowire.VarintType) {
		dims = append(dims, f.v)
	}
	if !slices.Equal(dims, []uint64{3, 2}) {
		t.Fatalf("weight dims %v; want [3 2]", dims)
	}
	if got := one(t, w, 2, protowire.VarintType).v; got != uint64(Float) {
		t.Fatalf("weight data_type = %d; want %d", got, Float)
	}
	if got := string(one(t, w, 8, protowire.BytesType).b); got != "layer0.weight" {
		t.Fatalf("weight name = %q; want %q", got, "layer0.weight")
	}
	raw := one(t, w, 9, protowire.BytesType).b
	if len(raw) != 4*len(m.Layers[0].W) {
		t.Fatalf("raw_data has %d bytes; want %d", len(raw), 4*len(m.Layers[0].W))
	}
	for i, want := range m.Layers[0].W {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != want {
			t.Fatalf("raw weight %d = %v; want %v", i, got, want)
		}
	}

	// The input: features, FLOAT, shape [dim_param "batch", dim_value 3].
	in := decodeWire(t, one(t, graph, 11, protowire.BytesType).b)
	if got := string(one(t, in, 1, protowire.BytesType).b); got != "features" {
		t.Fatalf("input name = %q; want %q", got, "features")
	}
	tensorType := decodeWire(t, one(t, decodeWire(t, one(t, in, 2, protowire.BytesType).b), 1, protowire.BytesType).b)
	if got := one(t, tensorType, 1, protowire.VarintType).v; got != uint64(Float) {
		t.Fatalf("input elem_type = %d; want %d", got, Float)
	}
	shape := only(t, decodeWire(t, one(t, tensorType, 2, protowire.BytesType).b), 1, protowire.BytesType)
	if len(shape) != 2 {
		t.Fatalf("input has %d dims; want 2", len(shape))
	}
	if got := string(one(t, decodeWire(t, shape[0].b), 2, protowire.BytesType).b); got != BatchDim {
		t.Fatalf("input dim 0 dim_param = %q; want %q", got, BatchDim)
	}
	if got := one(t, decodeWire(t, shape[1].b), 1, protowire.VarintType).v; got != 3 {
		t.Fatalf("input dim 1 dim_value = %d; want 3", got)
	}
	if got := string(one(t, decodeWire(t, one(t, graph, 12, protowire.BytesType).b), 1, protowire.BytesType).b); got != "score" {
		t.Fatalf("output name = %q; want %q", got, "score")
	}
}

func TestWireModelOverrides(t *testing.T) {
	m := &Model{Opset: 13, IRVersion: 7, ProducerName: "me", Graph: Graph{Name: "g"}}
	fs := decodeWire(t, m.Marshal())
	if got := one(t, fs, 1, protowire.VarintType).v; got != 7 {
		t.Fatalf("ir_version = %d; want 7", got)
	}
	if got := string(one(t, fs, 2, protowire.BytesType).b); got != "me" {
		t.Fatalf("producer_name = %q; want %q", got, "me")
	}
	if got := one(t, decodeWire(t, one(t, fs, 8, protowire.BytesType).b), 2, protowire.VarintType).v; got != 13 {
		t.Fatalf("opset = %d; want 13", got)
	}
	if n := len(only(t, fs, 6, protowire.BytesType)) + len(only(t, fs, 14, protowire.BytesType)); n != 0 {
		t.Fatalf("empty doc string and metadata wrote %d fields; want 0", n)
	}
}

func TestWireAttrs(t *testing.T) {
	f := func(a Attr, wantType uint64, check func(fs []wireField)) {
		t.Helper()
		b := appendAttr(nil, &a)
		fs := decodeWire(t, b)
		if got := string(one(t, fs, 1, protowire.BytesType).b); got != a.Name() {
			t.Fatalf("name = %q; want %q", got, a.Name())
		}
		if got := one(t, fs, 20, protowire.VarintType).v; got != wantType {
			t.Fatalf("attribute %q: type = %d; want %d", a.Name(), got, wantType)
		}
		check(fs)
	}
	f(AttrInt("i", -3), 2, func(fs []wireField) {
		if got := int64(one(t, fs, 3, protowire.VarintType).v); got != -3 {
			t.Fatalf("i = %d; want -3", got)
		}
	})
	f(AttrFloat("f", 0.25), 1, func(fs []wireField) {
		if got := math.Float32frombits(uint32(one(t, fs, 2, protowire.Fixed32Type).v)); got != 0.25 {
			t.Fatalf("f = %v; want 0.25", got)
		}
	})
	f(AttrString("s", "CRD"), 3, func(fs []wireField) {
		if got := string(one(t, fs, 4, protowire.BytesType).b); got != "CRD" {
			t.Fatalf("s = %q; want %q", got, "CRD")
		}
	})
	f(AttrInts("ints", []int64{1, -1, 0}), 7, func(fs []wireField) {
		var got []int64
		for _, x := range only(t, fs, 8, protowire.VarintType) {
			got = append(got, int64(x.v))
		}
		if !slices.Equal(got, []int64{1, -1, 0}) {
			t.Fatalf("ints = %v; want [1 -1 0]", got)
		}
	})
	f(AttrFloats("floats", []float32{1.5, -2}), 6, func(fs []wireField) {
		var got []float32
		for _, x := range only(t, fs, 7, protowire.Fixed32Type) {
			got = append(got, math.Float32frombits(uint32(x.v)))
		}
		if !slices.Equal(got, []float32{1.5, -2}) {
			t.Fatalf("floats = %v; want [1.5 -2]", got)
		}
	})
}

func TestTensorSize(t *testing.T) {
	f := func(tn Tensor) {
		t.Helper()
		if got, want := len(appendTensor(nil, &tn)), tensorSize(&tn); got != want {
			t.Fatalf("tensor %q: encoded %d bytes; tensorSize says %d", tn.Name, got, want)
		}
	}
	f(Tensor{Name: "f", Type: Float, Dims: []int64{2, 200}, Floats: make([]float32, 400)})
	f(Tensor{Name: "i", Type: Int64, Dims: []int64{3}, Int64s: []int64{-1, 0, 1 << 40}})
	f(Tensor{Name: "r", Type: Bool, Dims: []int64{0}, Raw: []byte{}})
	f(Tensor{Name: "", Type: Double, Raw: make([]byte, 8)})
}
