package oip

import (
	"strconv"
	"strings"
)

// CheckInputs checks decoded inputs against the inputs a model declares:
// every model input is present exactly once and no other; each has the
// model's datatype and rank; each fixed dimension is equal to the model's,
// and each variable (negative) one may be any size, except that a variable
// first dimension, the batch size, may not exceed maxBatch when maxBatch > 0;
// when every model input has a variable first dimension, all inputs must
// agree on it, unless maxBatch < 0, which says the model has no batch
// dimension (Triton's max_batch_size 0): its first dimensions are the
// inputs' own.
// Finally each input's Data must hold exactly the elements its shape says.
//
// The error is an *Error for the person who sent the request, such as
// `input "features": shape [2,63] does not match the model's [-1,64]:
// dimension 1 must be 64`. CheckInputs does not allocate unless it fails.
func CheckInputs(inputs []Tensor, want []TensorMetadata, maxBatch int64) error {
	for i := range inputs {
		in := &inputs[i]
		m := findMetadata(want, in.Name)
		if m == nil {
			return errorf("unknown input %q; the model's inputs are %s", in.Name, metadataNames(want))
		}
		for j := 0; j < i; j++ {
			if inputs[j].Name == in.Name {
				return errorf("input %q is given twice", in.Name)
			}
		}
		if in.Datatype != m.Datatype {
			return errorf("input %q is %s but the model takes %s", in.Name, in.Datatype, m.Datatype)
		}
		if len(in.Shape) != len(m.Shape) {
			return errorf("input %q: shape %s has %s but the model's %s has %d",
				in.Name, FormatShape(in.Shape), plural(int64(len(in.Shape)), "dimension"), FormatShape(m.Shape), len(m.Shape))
		}
		for k, d := range in.Shape {
			if d < 0 {
				return errorf("input %q: shape %s has a negative dimension", in.Name, FormatShape(in.Shape))
			}
			if md := m.Shape[k]; md >= 0 && d != md {
				return errorf("input %q: shape %s does not match the model's %s: dimension %d must be %d",
					in.Name, FormatShape(in.Shape), FormatShape(m.Shape), k, md)
			}
		}
		if maxBatch > 0 && len(m.Shape) > 0 && m.Shape[0] < 0 && in.Shape[0] > maxBatch {
			return errorf("input %q: batch size %d (the first dimension of shape %s) exceeds the model's maximum of %d; split the request",
				in.Name, in.Shape[0], FormatShape(in.Shape), maxBatch)
		}
		if err := checkData(in.Datatype, in.Shape, in.Data); err != nil {
			return errorf("input %q: data %s", in.Name, err.Error())
		}
	}
	for i := range want {
		if findTensor(inputs, want[i].Name) == nil {
			return errorf("missing input %q; the model's inputs are %s", want[i].Name, metadataNames(want))
		}
	}
	if maxBatch < 0 || !batched(want) || len(inputs) == 0 {
		return nil
	}
	batch := inputs[0].Shape[0]
	for i := range inputs {
		in := &inputs[i]
		if in.Shape[0] != batch {
			return errorf("inputs disagree on the batch size (the first dimension): %q has %d, %q has %d",
				inputs[0].Name, batch, in.Name, in.Shape[0])
		}
	}
	return nil
}

// batched reports whether every input of want has a variable first
// dimension, the batch dimension.
func batched(want []TensorMetadata) bool {
	if len(want) == 0 {
		return false
	}
	for i := range want {
		if len(want[i].Shape) == 0 || want[i].Shape[0] >= 0 {
			return false
		}
	}
	return true
}

// CheckOutputs checks the outputs a request asks for against those a model
// has: each must be one of them, asked for once.
func CheckOutputs(requested []RequestedOutput, have []TensorMetadata) error {
	for i := range requested {
		name := requested[i].Name
		md := findMetadata(have, name)
		if md == nil {
			return errorf("unknown output %q; the model's outputs are %s", name, metadataNames(have))
		}
		if requested[i].Classification > 0 && !Classifiable(md.Datatype) {
			return errorf("output %q is %s: the classification parameter needs an integer, FP16, FP32 or FP64 output", name, md.Datatype)
		}
		for j := 0; j < i; j++ {
			if requested[j].Name == name {
				return errorf("output %q is asked for twice", name)
			}
		}
	}
	return nil
}

// CheckData checks that t.Data holds exactly the elements that t.Shape
// declares for t.Datatype: len(Data) is the number of elements times the
// element size, BOOL elements are 0 or 1, and BYTES elements are whole and
// as many as the shape says. It returns an *Error naming the tensor.
func (t *Tensor) CheckData() error {
	if err := checkData(t.Datatype, t.Shape, t.Data); err != nil {
		return errorf("tensor %q: data %s", t.Name, err.Error())
	}
	return nil
}

// findMetadata returns the entry of ms named name, or nil.
func findMetadata(ms []TensorMetadata, name string) *TensorMetadata {
	for i := range ms {
		if ms[i].Name == name {
			return &ms[i]
		}
	}
	return nil
}

// findTensor returns the tensor of ts named name, or nil.
func findTensor(ts []Tensor, name string) *Tensor {
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i]
		}
	}
	return nil
}

// metadataNames lists the names of ms for a message: "a", "b" (FP32 [-1,64]).
func metadataNames(ms []TensorMetadata) string {
	if len(ms) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(ms[i].Name))
		b.WriteString(" (")
		b.WriteString(ms[i].Datatype.String())
		b.WriteByte(' ')
		b.WriteString(FormatShape(ms[i].Shape))
		b.WriteByte(')')
	}
	return b.String()
}
