package onnx

import (
	"fmt"
	"slices"
)

// DataType is an ONNX TensorProto.DataType: the element type of a tensor.
type DataType int32

// The TensorProto.DataType values that the package names. Other values may
// be used as long as ONNX Runtime knows them, but Validate refuses them.
const (
	Float   DataType = 1
	Uint8   DataType = 2
	Int8    DataType = 3
	Uint16  DataType = 4
	Int16   DataType = 5
	Int32   DataType = 6
	Int64   DataType = 7
	String  DataType = 8
	Bool    DataType = 9
	Float16 DataType = 10
	Double  DataType = 11
	Uint32  DataType = 12
	Uint64  DataType = 13
)

var dataTypeNames = [...]string{
	Float: "FLOAT", Uint8: "UINT8", Int8: "INT8", Uint16: "UINT16",
	Int16: "INT16", Int32: "INT32", Int64: "INT64", String: "STRING",
	Bool: "BOOL", Float16: "FLOAT16", Double: "DOUBLE", Uint32: "UINT32",
	Uint64: "UINT64",
}

var dataTypeSizes = [...]int{
	Float: 4, Uint8: 1, Int8: 1, Uint16: 2, Int16: 2, Int32: 4, Int64: 8,
	String: 0, Bool: 1, Float16: 2, Double: 8, Uint32: 4, Uint64: 8,
}

// String returns the name onnx.proto gives t, such as "FLOAT".
func (t DataType) String() string {
	if t.known() {
		return dataTypeNames[t]
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// Size returns the number of bytes of one element of type t in raw_data, or
// 0 for String and for types the package does not name.
func (t DataType) Size() int {
	if t.known() {
		return dataTypeSizes[t]
	}
	return 0
}

func (t DataType) known() bool {
	return t >= Float && t <= Uint64
}

// BatchDim is the symbolic dimension (dim_param) that a negative dimension
// of a ValueInfo is written as.
const BatchDim = "batch"

// ValueInfo is a graph input or output: a tensor's name, element type and
// shape. A negative dimension is written as the symbolic dimension BatchDim
// (dim_param); the others as fixed sizes (dim_value). Empty Dims means a
// scalar.
type ValueInfo struct {
	Name string
	Type DataType
	Dims []int64
}

// Attr is one attribute of a Node. Build it with AttrInt, AttrFloat,
// AttrInts, AttrFloats or AttrString; the zero Attr is invalid.
type Attr struct {
	name   string
	typ    attrType
	f      float32
	i      int64
	s      string
	floats []float32
	ints   []int64
}

// AttrInt returns an INT attribute.
func AttrInt(name string, v int64) Attr {
	return Attr{name: name, typ: attrTypeInt, i: v}
}

// AttrFloat returns a FLOAT attribute.
func AttrFloat(name string, v float32) Attr {
	return Attr{name: name, typ: attrTypeFloat, f: v}
}

// AttrInts returns an INTS attribute holding a copy of v.
func AttrInts(name string, v []int64) Attr {
	return Attr{name: name, typ: attrTypeInts, ints: slices.Clone(v)}
}

// AttrFloats returns a FLOATS attribute holding a copy of v.
func AttrFloats(name string, v []float32) Attr {
	return Attr{name: name, typ: attrTypeFloats, floats: slices.Clone(v)}
}

// AttrString returns a STRING attribute.
func AttrString(name, v string) Attr {
	return Attr{name: name, typ: attrTypeString, s: v}
}

// Name returns the attribute's name.
func (a Attr) Name() string {
	return a.name
}

// Node is one operator of a graph, in the default ONNX domain. An empty
// string in Inputs is an omitted optional input.
type Node struct {
	OpType string
	Name   string
	// Inputs and Outputs name the values the node reads and writes.
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Tensor is a constant of a graph (an initializer). Exactly one of Floats
// (Type Float), Int64s (Type Int64) and Raw (any type but String, elements
// little-endian, one byte per Bool) is non-nil. Marshal writes all three
// forms as raw_data, little-endian.
type Tensor struct {
	Name   string
	Type   DataType
	Dims   []int64
	Floats []float32
	Int64s []int64
	Raw    []byte
}

// Graph is an ONNX graph. Nodes must be in topological order: a node reads
// only graph inputs, initializers and outputs of earlier nodes. Name ""
// is written as "main".
type Graph struct {
	Name         string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	Nodes        []Node
	Initializers []Tensor
}

func (g *Graph) name() string {
	if g.Name == "" {
		return "main"
	}
	return g.Name
}

// sizeHint returns a little more than the length of g's encoding, so that
// marshalling a large model does not grow its buffer again and again.
func (g *Graph) sizeHint() int {
	n := 4096
	for i := range g.Initializers {
		n += tensorSize(&g.Initializers[i]) + 16
	}
	for i := range g.Nodes {
		n += 64 * (1 + len(g.Nodes[i].Inputs) + len(g.Nodes[i].Outputs) + len(g.Nodes[i].Attrs))
	}
	return n
}

// Defaults that Model writes in place of zero fields.
const (
	DefaultOpset        = 17
	DefaultIRVersion    = 8
	DefaultProducerName = "infergate"
)

// Model is an ONNX model: one graph, the default-domain opset it imports and
// model-level metadata. The zero values of Opset, IRVersion and ProducerName
// mean DefaultOpset, DefaultIRVersion and DefaultProducerName. Metadata is
// written as metadata_props, sorted by key.
type Model struct {
	Graph        Graph
	Opset        int64
	IRVersion    int64
	ProducerName string
	DocString    string
	Metadata     map[string]string
}

func (m *Model) opset() int64 {
	if m.Opset == 0 {
		return DefaultOpset
	}
	return m.Opset
}

func (m *Model) irVersion() int64 {
	if m.IRVersion == 0 {
		return DefaultIRVersion
	}
	return m.IRVersion
}

func (m *Model) producerName() string {
	if m.ProducerName == "" {
		return DefaultProducerName
	}
	return m.ProducerName
}

// Marshal returns the model as the bytes of a .onnx file (a ModelProto).
// The same Model always gives the same bytes. Marshal does not check the
// model; call Validate first when the model is not known to be good.
func (m *Model) Marshal() []byte {
	return appendModel(make([]byte, 0, m.Graph.sizeHint()+1024), m)
}

// Validate reports the first problem that would make ONNX Runtime refuse the
// model or read it differently than meant: missing or duplicate names, values
// used before they are produced, unknown element types, and tensors whose
// data length disagrees with their type and dims. It does not check operator
// semantics. Errors wrap ErrInvalid.
func (m *Model) Validate() error {
	if m.Opset < 0 || m.IRVersion < 0 {
		return fmt.Errorf("opset %d, ir_version %d: negative version: %w", m.Opset, m.IRVersion, ErrInvalid)
	}
	for k := range m.Metadata {
		if k == "" {
			return fmt.Errorf("metadata has an empty key: %w", ErrInvalid)
		}
	}
	if err := m.Graph.validate(); err != nil {
		return fmt.Errorf("graph %q: %w", m.Graph.name(), err)
	}
	return nil
}

func (g *Graph) validate() error {
	if len(g.Outputs) == 0 {
		return fmt.Errorf("no outputs: %w", ErrInvalid)
	}
	// defined maps a value name to what defines it, for messages.
	defined := make(map[string]string)
	define := func(name, what string) error {
		if name == "" {
			return fmt.Errorf("%s has an empty name: %w", what, ErrInvalid)
		}
		if prev, ok := defined[name]; ok {
			return fmt.Errorf("%s: name %q is already used by %s: %w", what, name, prev, ErrInvalid)
		}
		defined[name] = what
		return nil
	}
	for i := range g.Inputs {
		in := &g.Inputs[i]
		what := fmt.Sprintf("input %d", i)
		if err := define(in.Name, what); err != nil {
			return err
		}
		if !in.Type.known() || in.Type == String {
			return fmt.Errorf("%s %q: unsupported element type %s: %w", what, in.Name, in.Type, ErrInvalid)
		}
	}
	for i := range g.Initializers {
		t := &g.Initializers[i]
		what := fmt.Sprintf("initializer %d", i)
		if err := define(t.Name, what); err != nil {
			return err
		}
		if err := t.validate(); err != nil {
			return fmt.Errorf("%s %q: %w", what, t.Name, err)
		}
	}
	nodeNames := make(map[string]int, len(g.Nodes)) // ONNX Runtime refuses a name twice; any number may be empty
	for i := range g.Nodes {
		n := &g.Nodes[i]
		what := fmt.Sprintf("node %d (%s %q)", i, n.OpType, n.Name)
		if n.OpType == "" {
			return fmt.Errorf("%s: empty op type: %w", what, ErrInvalid)
		}
		if n.Name != "" {
			if j, ok := nodeNames[n.Name]; ok {
				return fmt.Errorf("%s: node name %q is already node %d's: %w", what, n.Name, j, ErrInvalid)
			}
			nodeNames[n.Name] = i
		}
		for _, in := range n.Inputs {
			if _, ok := defined[in]; !ok && in != "" {
				return fmt.Errorf("%s: input %q is not a graph input, an initializer or an earlier node's output: %w", what, in, ErrInvalid)
			}
		}
		if len(n.Outputs) == 0 {
			return fmt.Errorf("%s: no outputs: %w", what, ErrInvalid)
		}
		for _, out := range n.Outputs {
			if err := define(out, what+" output"); err != nil {
				return err
			}
		}
		seen := make(map[string]bool, len(n.Attrs))
		for _, a := range n.Attrs {
			if a.name == "" || a.typ == 0 {
				return fmt.Errorf("%s: attribute %q was not built by an Attr function: %w", what, a.name, ErrInvalid)
			}
			if seen[a.name] {
				return fmt.Errorf("%s: attribute %q is set twice: %w", what, a.name, ErrInvalid)
			}
			seen[a.name] = true
		}
	}
	for i := range g.Outputs {
		out := &g.Outputs[i]
		what := fmt.Sprintf("output %d", i)
		if out.Name == "" {
			return fmt.Errorf("%s has an empty name: %w", what, ErrInvalid)
		}
		if _, ok := defined[out.Name]; !ok {
			return fmt.Errorf("%s %q is not produced by any node, input or initializer: %w", what, out.Name, ErrInvalid)
		}
		if !out.Type.known() || out.Type == String {
			return fmt.Errorf("%s %q: unsupported element type %s: %w", what, out.Name, out.Type, ErrInvalid)
		}
	}
	return nil
}

// maxElements bounds a tensor's element count, far above what a .onnx file
// without external data can hold (2 GiB), so the product of dims cannot
// overflow.
const maxElements = 1 << 40

func (t *Tensor) validate() error {
	if !t.Type.known() || t.Type == String {
		return fmt.Errorf("unsupported element type %s: %w", t.Type, ErrInvalid)
	}
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("dims %v: negative dimension: %w", t.Dims, ErrInvalid)
		}
		if d > 0 && n > maxElements/d {
			return fmt.Errorf("dims %v: more than %d elements: %w", t.Dims, int64(maxElements), ErrInvalid)
		}
		n *= d
	}
	set := 0
	for _, ok := range []bool{t.Floats != nil, t.Int64s != nil, t.Raw != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("%d of Floats, Int64s and Raw are set; want exactly 1: %w", set, ErrInvalid)
	}
	switch {
	case t.Floats != nil:
		if t.Type != Float {
			return fmt.Errorf("type is %s but Floats is set; want FLOAT: %w", t.Type, ErrInvalid)
		}
		if int64(len(t.Floats)) != n {
			return fmt.Errorf("dims %v need %d values; Floats has %d: %w", t.Dims, n, len(t.Floats), ErrInvalid)
		}
	case t.Int64s != nil:
		if t.Type != Int64 {
			return fmt.Errorf("type is %s but Int64s is set; want INT64: %w", t.Type, ErrInvalid)
		}
		if int64(len(t.Int64s)) != n {
			return fmt.Errorf("dims %v need %d values; Int64s has %d: %w", t.Dims, n, len(t.Int64s), ErrInvalid)
		}
	default:
		if want := n * int64(t.Type.Size()); int64(len(t.Raw)) != want {
			return fmt.Errorf("dims %v of %s need %d raw bytes; Raw has %d: %w", t.Dims, t.Type, want, len(t.Raw), ErrInvalid)
		}
	}
	return nil
}
