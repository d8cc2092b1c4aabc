// Package onnx writes ONNX models in pure Go, for the graphs the trainer makes
// (multi-layer perceptrons and logistic regression) and for small hand-built
// graphs in tests.
//
// No Python and no ONNX tooling exist on infergate's machines, so the package
// hand-encodes the few onnx.proto messages it needs (ModelProto, GraphProto,
// NodeProto, AttributeProto, ValueInfoProto with its TypeProto and
// TensorShapeProto, TensorProto, OperatorSetIdProto and
// StringStringEntryProto) with google.golang.org/protobuf/encoding/protowire;
// there is no generated protobuf code. The field numbers live in proto.go.
//
// The package has two layers:
//
//   - Model, Graph, Node, Tensor, ValueInfo and Attr describe any ONNX graph
//     of the default operator domain. Model.Marshal turns one into the bytes
//     of a .onnx file; Model.Validate checks it first.
//   - MLP is a stack of Dense layers with a pure-Go forward pass (Forward)
//     and an export (MLP.Model) as Gemm, Relu and Sigmoid nodes. The trainer
//     compares Forward with ONNX Runtime before it publishes a version.
//     DemoCTR and DemoRanker build the deterministic demo models of
//     DESIGN.md.
//
// Every output is deterministic: the same Model marshals to the same bytes,
// and the same seed gives the same weights on every platform and Go release,
// so a demo model's digest is stable. The package imports no cgo; only its
// tests load ONNX Runtime.
package onnx
