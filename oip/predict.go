package oip

import (
	"fmt"
	"strconv"
)

// PredictFormat is how a predict request of KServe's v1 protocol (the REST
// API of TensorFlow Serving) lays out its tensors; its response follows
// the same layout.
type PredictFormat uint8

const (
	// PredictRows is the row format: "instances" holds one element per
	// row, and the response's "predictions" one per row of the outputs.
	PredictRows PredictFormat = iota + 1
	// PredictColumns is the columnar format: "inputs" holds the tensors
	// whole, and so does the response's "outputs".
	PredictColumns
)

// DecodePredictRequest decodes the JSON body of a predict request of
// KServe's v1 protocol, for a model whose inputs are inputs, into req,
// which it resets first, and returns the request's format. The protocol
// has no shapes or datatypes: each tensor takes its input's datatype, and
// its shape from how its JSON arrays nest.
//
//   - "instances" (PredictRows) is an array of rows, stacked along a
//     first dimension: for a model of one input each row is that input's
//     value for the row, else an object of the inputs' values by name.
//     Every row of an input must have the same shape.
//   - "inputs" (PredictColumns) is the one input's tensor, first
//     dimension included, or an object of the tensors by name.
//
// A request must give every input, and one of "instances" and "inputs";
// TensorFlow Serving's "signature_name" is taken and ignored, and an "id"
// is taken as a v2 request's (not part of the v1 protocol). The shapes
// are left for the caller to check against the model's (CheckInputs).
// Errors are *Error, as DecodeRequest's.
func DecodePredictRequest(req *InferRequest, body []byte, inputs []TensorMetadata) (PredictFormat, error) {
	req.Reset()
	var d decoder
	if err := d.init(body, -1, "input", &req.names, req.scratch); err != nil {
		return 0, err
	}
	f, err := d.predictRequest(req, inputs)
	req.scratch = d.scratch[:0]
	return f, err
}

// predictRequest reads the object of a predict request.
func (d *decoder) predictRequest(req *InferRequest, inputs []TensorMetadata) (PredictFormat, error) {
	top := where{field: "the request"}
	if err := d.openObject(&top); err != nil {
		return 0, err
	}
	var f PredictFormat
	const (
		fID = 1 << iota
		fSignature
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "instances", "inputs":
			this := PredictRows
			if string(key) == "inputs" {
				this = PredictColumns
			}
			switch f {
			case this:
				return 0, errorf("the request has two %q members", key)
			case 0:
			default:
				return 0, errorf(`the request has both "instances" and "inputs"; send one: "instances" holds rows, "inputs" whole tensors`)
			}
			f = this
			if f == PredictRows {
				err = d.instances(req, inputs)
			} else {
				err = d.columns(req, inputs)
			}
			if err != nil {
				return 0, err
			}
		case "id":
			// infergate's own, as in v2: the id feedback names the
			// prediction by.
			if err := once(&seen, fID, &top, "id"); err != nil {
				return 0, err
			}
			if d.isNull() {
				continue
			}
			w := where{field: `"id"`}
			b, err := d.readStringValue(&w)
			if err != nil {
				return 0, err
			}
			req.ID = string(b)
		case "signature_name":
			// TensorFlow Serving's; an ONNX model has one signature.
			if err := once(&seen, fSignature, &top, "signature_name"); err != nil {
				return 0, err
			}
			w := where{field: `"signature_name"`}
			if _, err := d.readStringValue(&w); err != nil {
				return 0, err
			}
		default:
			if err := d.skipValue(); err != nil {
				return 0, err
			}
		}
	}
	if err := d.end(); err != nil {
		return 0, err
	}
	if f == 0 {
		return 0, errorf(`the request has neither "instances" (rows) nor "inputs" (whole tensors)`)
	}
	return f, nil
}

// instances reads "instances": an array of values of the one input, or of
// objects of every input's value.
func (d *decoder) instances(req *InferRequest, inputs []TensorMetadata) error {
	w := where{field: `"instances"`}
	if d.peek() != '[' {
		return d.openArray(&w) // fails, saying what is there instead
	}
	// An object as first element means rows of named inputs.
	if !d.firstElementIs('{') {
		if len(inputs) != 1 {
			return errorf(`the model has %d inputs, %s; each element of "instances" must be an object of their values by name`, len(inputs), metadataNames(inputs))
		}
		in := &inputs[0]
		var t *Tensor
		req.Inputs, t = nextTensor(req.Inputs)
		t.Name, t.Datatype = in.Name, in.Datatype
		w = where{kind: "input", name: in.Name, field: `"instances"`}
		count, err := d.data(t, &w, false)
		if err != nil {
			return err
		}
		if t.Shape, err = d.nest.shape(t.Shape[:0], count, &w); err != nil {
			return err
		}
		if t.Shape[0] == 0 {
			return errorf(`"instances" is empty; send at least one row`)
		}
		return checkRowRank(in, t.Shape[1:], `"instances"`)
	}

	// Rows of named inputs: each input's values are appended row after
	// row, and each row's shape must be the first row's.
	first := len(req.Inputs)
	for i := range inputs {
		var t *Tensor
		req.Inputs, t = nextTensor(req.Inputs)
		t.Name, t.Datatype = inputs[i].Name, inputs[i].Datatype
	}
	ts := req.Inputs[first:]
	rowShapes := make([][]int64, len(inputs))
	seen := make([]int, len(inputs)) // the last row that gave each input, plus 1
	var row Tensor                   // one value, before it is appended
	if err := d.openArray(&w); err != nil {
		return err
	}
	rows := 0
	var field []byte // "instances[N]", reused row after row
	for n := 0; ; {
		ok, err := d.nextElement(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		field = strconv.AppendInt(append(field[:0], "instances["...), int64(rows), 10)
		field = append(field, ']')
		// Messages copy it: it may alias field, which the next row rewrites.
		rw := where{field: unsafeString(field)}
		if err := d.openObject(&rw); err != nil {
			return err
		}
		for m := 0; ; {
			key, ok, err := d.nextMember(&m)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			j, err := inputIndex(inputs, key, rw.field)
			if err != nil {
				return err
			}
			if seen[j] == rows+1 {
				return errorf("%s has two %q members", rw.field, key)
			}
			seen[j] = rows + 1
			vw := where{kind: "input", name: inputs[j].Name, field: rw.field}
			row.Datatype = inputs[j].Datatype
			shape, err := d.value(&row, &vw)
			if err != nil {
				return err
			}
			if rows == 0 {
				rowShapes[j] = append([]int64(nil), shape...)
				if err := checkRowRank(&inputs[j], shape, `"instances"`); err != nil {
					return err
				}
			} else if !equalShapes(shape, rowShapes[j]) {
				return errorf("%s gives input %q a value of shape %s, but instances[0] one of %s; every row must have the same shape", rw.field, inputs[j].Name, FormatShape(shape), FormatShape(rowShapes[j]))
			}
			ts[j].Data = append(ts[j].Data, row.Data...)
		}
		for j := range inputs {
			if seen[j] != rows+1 {
				return errorf("%s has no %q; every row must give each input of the model: %s", rw.field, inputs[j].Name, metadataNames(inputs))
			}
		}
		rows++
	}
	if rows == 0 {
		return errorf(`"instances" is empty; send at least one row`)
	}
	for j := range ts {
		ts[j].Shape = append(append(ts[j].Shape[:0], int64(rows)), rowShapes[j]...)
		if n := ShapeElements(ts[j].Shape); n < 0 || n > MaxElements {
			return errorf("input %q of shape %s has more than %d elements", ts[j].Name, FormatShape(ts[j].Shape), MaxElements)
		}
	}
	return nil
}

// columns reads "inputs": the one input's tensor, or an object of every
// input's tensor by name.
func (d *decoder) columns(req *InferRequest, inputs []TensorMetadata) error {
	w := where{field: `"inputs"`}
	if d.peek() == '[' {
		if d.firstElementIs('{') {
			return errorf(`"inputs" holds objects, as in the v2 protocol; in KServe's v1 protocol it holds the tensors' values (send a v2 request to POST /v2/models/{name}/infer)`)
		}
	}
	if d.peek() != '{' {
		if len(inputs) != 1 {
			return errorf(`the model has %d inputs, %s; "inputs" must be an object of their tensors by name`, len(inputs), metadataNames(inputs))
		}
		return d.column(req, &inputs[0], &w)
	}
	if err := d.openObject(&w); err != nil {
		return err
	}
	first := len(req.Inputs)
	for m := 0; ; {
		key, ok, err := d.nextMember(&m)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		j, err := inputIndex(inputs, key, `"inputs"`)
		if err != nil {
			return err
		}
		for _, t := range req.Inputs[first:] {
			if t.Name == inputs[j].Name {
				return errorf(`"inputs" has two %q members`, key)
			}
		}
		if err := d.column(req, &inputs[j], &where{field: `"inputs"`}); err != nil {
			return err
		}
	}
	for j := range inputs {
		if findTensor(req.Inputs[first:], inputs[j].Name) == nil {
			return errorf(`"inputs" has no %q; give each input of the model: %s`, inputs[j].Name, metadataNames(inputs))
		}
	}
	return nil
}

// firstElementIs reports whether the first element of the array at d.pos
// starts with c, leaving d.pos where it was.
func (d *decoder) firstElementIs(c byte) bool {
	at := d.pos
	d.pos++
	is := d.peek() == c
	d.pos = at
	return is
}

// inputIndex returns the index in inputs of the input named key, a
// member of the object that field names.
func inputIndex(inputs []TensorMetadata, key []byte, field string) (int, error) {
	for k := range inputs {
		if inputs[k].Name == string(key) {
			return k, nil
		}
	}
	return -1, errorf("%s has %q, which is not an input of the model; its inputs are %s", field, key, metadataNames(inputs))
}

// column reads the whole tensor of input in, an array, whose nesting
// gives its shape.
func (d *decoder) column(req *InferRequest, in *TensorMetadata, w *where) error {
	var t *Tensor
	req.Inputs, t = nextTensor(req.Inputs)
	t.Name, t.Datatype = in.Name, in.Datatype
	w.kind, w.name = "input", in.Name
	count, err := d.data(t, w, false)
	if err != nil {
		return err
	}
	t.Shape, err = d.nest.shape(t.Shape[:0], count, w)
	return err
}

// value reads one row's value of an input into t.Data, which it resets:
// an array, whose nesting gives the shape it returns, or a single element
// (shape []). The shape is valid until the next read.
func (d *decoder) value(t *Tensor, w *where) ([]int64, error) {
	if c := d.peek(); c != '[' {
		var err error
		t.Data, err = d.element(t.Data[:0], t.Datatype, c, w, 0)
		return t.Shape[:0], err
	}
	count, err := d.data(t, w, false)
	if err != nil {
		return nil, err
	}
	t.Shape, err = d.nest.shape(t.Shape[:0], count, w)
	return t.Shape, err
}

// shape appends to dst the shape of the array just read by data, of count
// elements, which must nest evenly (as data checks) with its values all
// at one depth: [2,3] for [[1,2,3],[4,5,6]].
func (n *nesting) shape(dst []int64, count int, w *where) ([]int64, error) {
	if n.maxLevel <= 1 {
		return append(dst, int64(count)), nil
	}
	depth := n.leafLevel
	if depth == 0 {
		depth = n.maxLevel // arrays only, the deepest empty: [[],[]]
	}
	if depth != n.maxLevel {
		return nil, errorf("%s mixes values and arrays at the same depth; nest each dimension's values evenly", w.String())
	}
	if depth > MaxRank {
		return nil, errorf("%s nests %d deep; a tensor has at most %d dimensions", w.String(), depth, MaxRank)
	}
	for l := 1; l <= depth; l++ {
		dst = append(dst, int64(n.dims[l]))
	}
	if e := ShapeElements(dst); e < 0 || e > MaxElements {
		return nil, errorf("%s: %s has more than %d elements", w.String(), FormatShape(dst), MaxElements)
	}
	return dst, nil
}

// checkRowRank checks that rows of shape row fit input in, whose first
// dimension they are stacked along; field names where the rows are.
func checkRowRank(in *TensorMetadata, row []int64, field string) error {
	if len(in.Shape) == 0 {
		return errorf("input %q has shape [], no first dimension to stack the rows of %s along; send it to POST /v2/models/{name}/infer as a tensor of shape []", in.Name, field)
	}
	if len(row) == len(in.Shape)-1 {
		return nil
	}
	return errorf("input %q has shape %s, so each row of %s must be a value of shape %s; these are of shape %s",
		in.Name, FormatShape(in.Shape), field, FormatShape(in.Shape[1:]), FormatShape(row))
}

// equalShapes reports whether a and b are the same shape.
func equalShapes(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// AppendPredictResponse appends to dst the JSON response to a predict
// request of format f whose outputs are outs, all of the model's in its
// order.
//
//   - PredictRows: {"predictions": [...]}, one element per row (the
//     outputs' first dimension): the row of the one output, else an
//     object of the outputs' rows by name. The outputs must have the same
//     number of rows.
//   - PredictColumns: {"outputs": ...}, the one output's tensor, else an
//     object of the tensors by name.
//
// Each value nests as its shape says. A non-empty id is added as "id", for
// the feedback that refers to the prediction. Outputs that cannot be
// split into rows give an *Error; data that does not fit its shape, a
// plain error.
func AppendPredictResponse(dst []byte, f PredictFormat, outs []Tensor, id string) ([]byte, error) {
	for i := range outs {
		if err := checkNestable(&outs[i]); err != nil {
			return dst, err
		}
	}
	start := len(dst)
	if f == PredictColumns {
		dst = append(dst, `{"outputs":`...)
		if len(outs) == 1 {
			dst, _ = appendNested(dst, outs[0].Datatype, outs[0].Shape, outs[0].Data)
		} else {
			dst = append(dst, '{')
			for i := range outs {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, outs[i].Name)
				dst = append(dst, ':')
				dst, _ = appendNested(dst, outs[i].Datatype, outs[i].Shape, outs[i].Data)
			}
			dst = append(dst, '}')
		}
		return appendPredictID(dst, id), nil
	}
	rows := int64(-1)
	for i := range outs {
		o := &outs[i]
		if len(o.Shape) == 0 {
			return dst[:start], errorf(`output %q has no dimensions to split into rows; send "inputs" to have whole tensors back`, o.Name)
		}
		if rows >= 0 && o.Shape[0] != rows {
			return dst[:start], errorf(`outputs %q and %q have %d and %d rows; send "inputs" to have whole tensors back`, outs[0].Name, o.Name, rows, o.Shape[0])
		}
		rows = o.Shape[0]
	}
	var restBuf [8][]byte
	rest := restBuf[:0]
	for i := range outs {
		rest = append(rest, outs[i].Data)
	}
	dst = append(dst, `{"predictions":[`...)
	for r := int64(0); r < rows; r++ {
		if r > 0 {
			dst = append(dst, ',')
		}
		if len(outs) == 1 {
			dst, rest[0] = appendNested(dst, outs[0].Datatype, outs[0].Shape[1:], rest[0])
			continue
		}
		dst = append(dst, '{')
		for i := range outs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, outs[i].Name)
			dst = append(dst, ':')
			dst, rest[i] = appendNested(dst, outs[i].Datatype, outs[i].Shape[1:], rest[i])
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	return appendPredictID(dst, id), nil
}

// appendPredictID ends a predict response, with its "id" if it has one.
func appendPredictID(dst []byte, id string) []byte {
	if id != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, id)
	}
	return append(dst, '}')
}

// checkNestable checks that t's data holds what its shape says, which
// appendNested relies on; its error is a plain one, the server's fault.
func checkNestable(t *Tensor) error {
	n := ShapeElements(t.Shape)
	if t.Datatype == BYTES {
		data := t.Data
		for i := int64(0); i < n; i++ {
			var ok bool
			if _, data, ok = nextBytesElement(data); !ok {
				return fmt.Errorf("BUG: output %q of shape %s has %d elements", t.Name, FormatShape(t.Shape), i)
			}
		}
		return nil
	}
	if size := t.Datatype.Size(); size == 0 || int64(len(t.Data)) != n*int64(size) {
		return fmt.Errorf("BUG: output %q of %s and shape %s has %d bytes", t.Name, t.Datatype, FormatShape(t.Shape), len(t.Data))
	}
	return nil
}

// appendNested appends the elements of type dt at the start of data as
// JSON arrays nested as shape says (a single element for shape []), and
// returns the data after them. data must hold them (checkNestable).
func appendNested(dst []byte, dt DataType, shape []int64, data []byte) ([]byte, []byte) {
	if len(shape) == 0 {
		if dt == BYTES {
			elem, rest, _ := nextBytesElement(data)
			return appendString(dst, unsafeString(elem)), rest
		}
		size := dt.Size()
		return appendElement(dst, dt, data[:size]), data[size:]
	}
	dst = append(dst, '[')
	for i := int64(0); i < shape[0]; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst, data = appendNested(dst, dt, shape[1:], data)
	}
	return append(dst, ']'), data
}
