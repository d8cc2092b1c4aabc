package oip

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// DecodeRequest decodes the body of an infer request into req, which it
// resets first. headerLen is the value of the Inference-Header-Content-Length
// header, or -1 when the request has none: then the whole body is JSON;
// otherwise the first headerLen bytes are, and the rest holds the binary
// tensors, in the order of the inputs that have a "binary_data_size"
// parameter, whose sizes must add up to exactly the rest.
//
// The tensors' Data are copies: req never aliases body, which the caller may
// reuse at once. DecodeRequest reuses the slices of req, so a pooled request
// decodes without allocating once its buffers have grown, apart from the
// "id" and "unit_id" strings.
//
// Every error is an *Error naming the value at fault; req then holds part of
// the request, and must be decoded again or Reset before use.
func DecodeRequest(req *InferRequest, body []byte, headerLen int) error {
	req.Reset()
	var d decoder
	if err := d.init(body, headerLen, "input", &req.names, req.scratch); err != nil {
		return err
	}
	err := d.request(req)
	req.scratch = d.scratch[:0]
	if err != nil {
		return err
	}
	return d.finish()
}

// DecodeResponse decodes the body of an infer response into resp, which it
// resets first, as DecodeRequest decodes a request. Outputs that came as
// binary tensors have Binary set.
func DecodeResponse(resp *InferResponse, body []byte, headerLen int) error {
	resp.Reset()
	var d decoder
	if err := d.init(body, headerLen, "output", &resp.names, resp.scratch); err != nil {
		return err
	}
	err := d.response(resp)
	resp.scratch = d.scratch[:0]
	if err != nil {
		return err
	}
	return d.finish()
}

// decoder reads one request or response: a scanner over its JSON header,
// and the binary tensors that follow it.
type decoder struct {
	scanner
	body []byte
	// headerLen is the length of the JSON header, or -1 when the body is
	// all JSON.
	headerLen int
	// bin is the offset in body of the next binary tensor.
	bin int
	// kind names the tensors: "input" in requests, "output" in responses.
	tkind string
	names *internTable
	// nest is the structure of the last "data" array read.
	nest nesting
}

// nesting records the structure of a nested "data" array, level 1 being
// the outermost array, so that it can be checked against the shape: rows
// of different lengths must not be accepted just because the total count
// happens to match.
type nesting struct {
	leafLevel int // level of the elements; 0 when there are none
	maxLevel  int // deepest level opened
	dims      [MaxDepth + 2]int
	items     [MaxDepth + 2]int
}

// open starts an array at level l.
func (n *nesting) open(l int) {
	if l > n.maxLevel {
		n.maxLevel = l
		n.dims[l] = -1
	}
	n.items[l] = 0
}

// close ends the array at level l; an array of another length than the
// earlier ones at its level makes the data ragged.
func (n *nesting) close(l int, w *where) error {
	switch {
	case n.dims[l] < 0:
		n.dims[l] = n.items[l]
	case n.dims[l] != n.items[l]:
		return errorf("%s is ragged: an array at depth %d has %s, an earlier one %d; every row must have the same length", w.String(), l, plural(int64(n.items[l]), "element"), n.dims[l])
	}
	n.items[l-1]++
	return nil
}

// leaves counts k elements at level l.
func (n *nesting) leaves(l, k int, w *where) error {
	if n.leafLevel == 0 {
		n.leafLevel = l
	} else if n.leafLevel != l {
		return errorf("%s mixes values and arrays at the same depth; nest it as the shape says or send it flat", w.String())
	}
	n.items[l] += k
	return nil
}

// check compares nested data with shape; flat data fits any shape. Data
// of empty arrays only is as deep as its deepest array, which for a shape
// with a 0 dimension is that dimension's depth ([[]] for [1,0,2]).
func (n *nesting) check(shape []int64, w *where) error {
	if n.maxLevel <= 1 {
		return nil
	}
	depth := n.leafLevel
	if depth == 0 {
		depth = n.maxLevel
	}
	if depth != n.maxLevel {
		// Values beside arrays that hold none ([1,[],2]).
		return errorf("%s mixes values and arrays at the same depth; nest it as the shape says or send it flat", w.String())
	}
	rank := len(shape)
	if n.leafLevel == 0 && depth < rank && shape[depth-1] == 0 {
		// Nested data stops at the first 0 dimension: [[]] for [1,0,2].
		rank = depth
	}
	if depth != rank {
		return errorf("%s is nested %d deep but shape %s has %d dimensions; nest it as the shape says or send it flat", w.String(), depth, FormatShape(shape), len(shape))
	}
	for l := 1; l <= depth; l++ {
		if int64(n.dims[l]) != shape[l-1] {
			return errorf("%s has %s at depth %d but shape %s says %d there", w.String(), plural(int64(n.dims[l]), "element"), l, FormatShape(shape), shape[l-1])
		}
	}
	return nil
}

// init prepares d to read body with the given header length.
func (d *decoder) init(body []byte, headerLen int, kind string, names *internTable, scratch []byte) error {
	d.body, d.headerLen, d.tkind, d.names = body, headerLen, kind, names
	d.scratch = scratch[:0]
	switch {
	case headerLen == -1:
		d.buf = body
		d.bin = len(body)
	case headerLen < 0:
		return errorf("Inference-Header-Content-Length is %d; it must be the length of the JSON at the start of the body", headerLen)
	case headerLen > len(body):
		return errorf("Inference-Header-Content-Length is %d but the body has only %d bytes", headerLen, len(body))
	default:
		d.buf = body[:headerLen]
		d.bin = headerLen
	}
	return nil
}

// finish checks that the binary tensors used up the body.
func (d *decoder) finish() error {
	if d.bin != len(d.body) {
		return errorf("%d bytes follow the JSON header but the binary_data_size parameters of the %ss add up to %d",
			len(d.body)-d.headerLen, d.tkind, d.bin-d.headerLen)
	}
	return nil
}

// where names the value a message is about.
type where struct {
	// kind is "input" or "output" for a tensor, "" at the top level.
	kind  string
	index int
	// name is the tensor's name once read.
	name string
	// field is the member, such as `"shape"`.
	field string
}

// tensor names the tensor: by its name once known, else by its index.
func (w *where) tensor() string {
	if w.name != "" {
		return w.kind + " " + strconv.Quote(w.name)
	}
	return w.kind + "s[" + strconv.Itoa(w.index) + "]"
}

// String names the value for a message.
func (w *where) String() string {
	switch {
	case w.kind == "":
		return w.field
	case w.field == "":
		return w.tensor()
	}
	return w.tensor() + ": " + w.field
}

// internTable keeps recent tensor and model names, so that decoding a stream
// of requests for the same model reuses the strings instead of allocating
// them. The zero value is empty and ready.
type internTable struct {
	names []string
	next  int
}

const (
	internSize   = 16  // names kept
	internMaxLen = 128 // longer names are not kept
)

// get returns b as a string, reusing a kept one when equal.
func (t *internTable) get(b []byte) string {
	for _, s := range t.names {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	switch {
	case len(s) > internMaxLen:
	case len(t.names) < internSize:
		t.names = append(t.names, s)
	default:
		t.names[t.next] = s
		t.next = (t.next + 1) % internSize
	}
	return s
}

// once records that the member bit of an object was seen, refusing a second.
func once(seen *uint8, bit uint8, w *where, key string) error {
	if *seen&bit != 0 {
		if w.kind == "" {
			return errorf("%s has two %q members", w.field, key)
		}
		return errorf("%s has two %q members", w.tensor(), key)
	}
	*seen |= bit
	return nil
}

// request reads the JSON of an infer request.
func (d *decoder) request(req *InferRequest) error {
	top := where{field: "the request"}
	if err := d.openObject(&top); err != nil {
		return err
	}
	const (
		fID = 1 << iota
		fParams
		fInputs
		fOutputs
		fInstances // not a member of the protocol's; noted for the message
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "id":
			if err := once(&seen, fID, &top, "id"); err != nil {
				return err
			}
			if d.isNull() {
				continue
			}
			w := where{field: `"id"`}
			b, err := d.readStringValue(&w)
			if err != nil {
				return err
			}
			req.ID = string(b)
		case "parameters":
			if err := once(&seen, fParams, &top, "parameters"); err != nil {
				return err
			}
			if err := d.requestParams(req); err != nil {
				return err
			}
		case "inputs":
			if err := once(&seen, fInputs, &top, "inputs"); err != nil {
				return err
			}
			if err := d.inputs(req); err != nil {
				return err
			}
		case "outputs":
			if err := once(&seen, fOutputs, &top, "outputs"); err != nil {
				return err
			}
			if d.isNull() {
				continue
			}
			if err := d.requestedOutputs(req); err != nil {
				return err
			}
		default:
			if string(key) == "instances" {
				seen |= fInstances
			}
			if err := d.skipValue(); err != nil {
				return err
			}
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	if seen&fInputs == 0 {
		if seen&fInstances != 0 {
			return errorf(`the request has no "inputs" but has "instances", as KServe's v1 protocol does: send it to POST /v1/models/{name}:predict`)
		}
		return errorf(`the request has no "inputs"`)
	}
	if name, ok := duplicate(len(req.Inputs), func(i int) string { return req.Inputs[i].Name }); ok {
		return errorf("the request has two inputs named %q", name)
	}
	if name, ok := duplicate(len(req.Outputs), func(i int) string { return req.Outputs[i].Name }); ok {
		return errorf("the request asks twice for output %q", name)
	}
	return nil
}

// requestParams reads the "parameters" of a request.
func (d *decoder) requestParams(req *InferRequest) error {
	if d.isNull() {
		return nil
	}
	w := where{field: `"parameters"`}
	if err := d.openObject(&w); err != nil {
		return err
	}
	const (
		fBinary = 1 << iota
		fTimeout
		fPriority
		fCache
		fUnit
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		var bit uint8
		switch string(key) {
		case "binary_data_output":
			bit, w.field = fBinary, `parameter "binary_data_output"`
		case "timeout":
			bit, w.field = fTimeout, `parameter "timeout"`
		case "priority":
			bit, w.field = fPriority, `parameter "priority"`
		case "cache_bypass":
			bit, w.field = fCache, `parameter "cache_bypass"`
		case "unit_id":
			bit, w.field = fUnit, `parameter "unit_id"`
		default:
			if err := d.skipValue(); err != nil {
				return err
			}
			continue
		}
		if seen&bit != 0 {
			return errorf("the request has two %s", w.field)
		}
		seen |= bit
		switch bit {
		case fBinary:
			req.BinaryDataOutput, err = d.readBool(&w)
		case fTimeout:
			req.TimeoutMicros, err = d.readInt(&w, 0, math.MaxInt64)
		case fPriority:
			req.Priority, err = d.readInt(&w, 0, math.MaxInt64)
		case fCache:
			req.CacheBypass, err = d.readBool(&w)
		case fUnit:
			var b []byte
			b, err = d.readStringValue(&w)
			req.UnitID = string(b)
		}
		if err != nil {
			return err
		}
	}
}

// v1Columns ends the message for a v2 request whose "inputs" holds
// tensors' values, as KServe's v1 protocol's does.
const v1Columns = `; if it holds the tensors' values, as KServe's v1 protocol does, send it to POST /v1/models/{name}:predict`

// inputs reads the "inputs" array of a request.
func (d *decoder) inputs(req *InferRequest) error {
	w := where{field: `"inputs"`}
	if err := d.openArray(&w); err != nil {
		if d.peek() == '{' {
			return errorf("%s%s", err, v1Columns)
		}
		return err
	}
	for n := 0; ; {
		ok, err := d.nextElement(&n)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		// Values, not tensor objects: KServe's v1 columnar form.
		c := d.peek()
		v1 := c == '[' || c == '-' || ('0' <= c && c <= '9')
		if len(req.Inputs) == MaxTensors {
			return errorf("the request has more than %d inputs", MaxTensors)
		}
		var t *Tensor
		req.Inputs, t = nextTensor(req.Inputs)
		var ref SharedMemoryRef
		if _, err := d.tensor(t, len(req.Inputs)-1, &ref); err != nil {
			if v1 {
				return errorf("%s%s", err, v1Columns)
			}
			return err
		}
		if ref.Region != "" {
			req.SharedInputs = append(req.SharedInputs, SharedInput{Index: len(req.Inputs) - 1, Ref: ref})
		}
	}
}

// nextTensor extends ts by one empty tensor, reusing the buffers of an
// earlier one beyond len(ts) when there is one.
func nextTensor(ts []Tensor) ([]Tensor, *Tensor) {
	if len(ts) < cap(ts) {
		ts = ts[:len(ts)+1]
	} else {
		ts = append(ts, Tensor{})
	}
	t := &ts[len(ts)-1]
	t.Name, t.Datatype = "", InvalidType
	t.Shape, t.Data = t.Shape[:0], t.Data[:0]
	return ts, t
}

// requestedOutputs reads the "outputs" array of a request.
func (d *decoder) requestedOutputs(req *InferRequest) error {
	w := where{field: `"outputs"`}
	if err := d.openArray(&w); err != nil {
		return err
	}
	for n := 0; ; {
		ok, err := d.nextElement(&n)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if len(req.Outputs) == MaxTensors {
			return errorf("the request asks for more than %d outputs", MaxTensors)
		}
		req.Outputs = append(req.Outputs, RequestedOutput{})
		if err := d.requestedOutput(&req.Outputs[len(req.Outputs)-1], len(req.Outputs)-1); err != nil {
			return err
		}
	}
}

// requestedOutput reads one element of the "outputs" of a request.
func (d *decoder) requestedOutput(o *RequestedOutput, index int) error {
	w := where{kind: "output", index: index}
	if err := d.openObject(&w); err != nil {
		return err
	}
	const (
		fName = 1 << iota
		fParams
		fBinary
		fClassification
	)
	var seen, shm uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			if err := once(&seen, fName, &w, "name"); err != nil {
				return err
			}
			w.field = `"name"`
			b, err := d.readStringValue(&w)
			if err != nil {
				return err
			}
			if len(b) == 0 {
				return errorf("%s has an empty name", w.tensor())
			}
			o.Name = d.names.get(b)
			w.name = o.Name
		case "parameters":
			if err := once(&seen, fParams, &w, "parameters"); err != nil {
				return err
			}
			if d.isNull() {
				continue
			}
			w.field = `"parameters"`
			if err := d.openObject(&w); err != nil {
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
				switch string(key) {
				case "binary_data":
					if err := once(&seen, fBinary, &w, "binary_data"); err != nil {
						return err
					}
					w.field = `parameter "binary_data"`
					if o.Binary, err = d.readBool(&w); err != nil {
						return err
					}
					o.HasBinary = true
				case "classification":
					if err := once(&seen, fClassification, &w, "classification"); err != nil {
						return err
					}
					w.field = `parameter "classification"`
					if o.Classification, err = d.readInt(&w, 0, MaxClassification); err != nil {
						return err
					}
				default:
					if ok, err := d.sharedMemoryParam(key, &o.SharedMemory, &shm, &w); ok || err != nil {
						if err != nil {
							return err
						}
						continue
					}
					if err := d.skipValue(); err != nil {
						return err
					}
				}
			}
		default:
			if err := d.skipValue(); err != nil {
				return err
			}
		}
		w.field = ""
	}
	if seen&fName == 0 {
		return errorf(`%s has no "name"`, w.tensor())
	}
	if err := checkSharedMemory(shm, &w); err != nil {
		return err
	}
	if o.SharedMemory.Region != "" && o.Classification > 0 {
		return errorf("%s asks for classification into shared memory; ask for one or the other", w.tensor())
	}
	return nil
}

// The shared memory parameters a tensor may carry, as bits of a set.
const (
	shmRegion = 1 << iota
	shmOffset
	shmByteSize
)

// shmParamBit returns the bit of shared memory parameter key, 0 for
// another key.
func shmParamBit(key []byte) uint8 {
	switch string(key) {
	case "shared_memory_region":
		return shmRegion
	case "shared_memory_offset":
		return shmOffset
	case "shared_memory_byte_size":
		return shmByteSize
	}
	return 0
}

// sharedMemoryParam reads the value of parameter key into ref when key is
// one of the shared memory parameters (ok), recording it in seen.
func (d *decoder) sharedMemoryParam(key []byte, ref *SharedMemoryRef, seen *uint8, w *where) (ok bool, err error) {
	bit := shmParamBit(key)
	if bit == 0 {
		return false, nil
	}
	if *seen&bit != 0 {
		return true, errorf("%s has two %q parameters", w.tensor(), key)
	}
	*seen |= bit
	w.field = "parameter " + strconv.Quote(string(key))
	switch bit {
	case shmRegion:
		b, err := d.readStringValue(w)
		if err != nil {
			return true, err
		}
		if len(b) == 0 {
			return true, errorf("%s is empty; name a registered shared memory region", w.String())
		}
		ref.Region = string(b)
	case shmOffset:
		ref.Offset, err = d.readInt(w, 0, math.MaxInt64)
	default:
		ref.ByteSize, err = d.readInt(w, 0, math.MaxInt64)
	}
	return true, err
}

// checkSharedMemory checks that the shared memory parameters seen go
// together: a region and its byte size, or neither (nor an offset).
func checkSharedMemory(seen uint8, w *where) error {
	const both = shmRegion | shmByteSize
	if seen == 0 || seen&both == both {
		return nil
	}
	have := `"shared_memory_offset"`
	switch {
	case seen&shmRegion != 0:
		have = `"shared_memory_region"`
	case seen&shmByteSize != 0:
		have = `"shared_memory_byte_size"`
	}
	return errorf("%s has parameter %s alone; give shared_memory_region and shared_memory_byte_size together (and shared_memory_offset if not 0)", w.tensor(), have)
}

// response reads the JSON of an infer response.
func (d *decoder) response(resp *InferResponse) error {
	top := where{field: "the response"}
	if err := d.openObject(&top); err != nil {
		return err
	}
	const (
		fModel = 1 << iota
		fVersion
		fID
		fOutputs
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "model_name":
			if err := once(&seen, fModel, &top, "model_name"); err != nil {
				return err
			}
			w := where{field: `"model_name"`}
			b, err := d.readStringValue(&w)
			if err != nil {
				return err
			}
			resp.ModelName = d.names.get(b)
		case "model_version":
			if err := once(&seen, fVersion, &top, "model_version"); err != nil {
				return err
			}
			if d.isNull() {
				continue // as KServe writes a model without versions
			}
			w := where{field: `"model_version"`}
			b, err := d.readStringValue(&w)
			if err != nil {
				return err
			}
			resp.ModelVersion = d.names.get(b)
		case "id":
			if err := once(&seen, fID, &top, "id"); err != nil {
				return err
			}
			if d.isNull() {
				continue
			}
			w := where{field: `"id"`}
			b, err := d.readStringValue(&w)
			if err != nil {
				return err
			}
			resp.ID = string(b)
		case "outputs":
			if err := once(&seen, fOutputs, &top, "outputs"); err != nil {
				return err
			}
			if err := d.outputs(resp); err != nil {
				return err
			}
		default:
			if err := d.skipValue(); err != nil {
				return err
			}
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	if seen&fOutputs == 0 {
		return errorf(`the response has no "outputs"`)
	}
	if name, ok := duplicate(len(resp.Outputs), func(i int) string { return resp.Outputs[i].Name }); ok {
		return errorf("the response has two outputs named %q", name)
	}
	return nil
}

// outputs reads the "outputs" array of a response.
func (d *decoder) outputs(resp *InferResponse) error {
	w := where{field: `"outputs"`}
	if err := d.openArray(&w); err != nil {
		return err
	}
	for n := 0; ; {
		ok, err := d.nextElement(&n)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if len(resp.Outputs) == MaxTensors {
			return errorf("the response has more than %d outputs", MaxTensors)
		}
		if len(resp.Outputs) < cap(resp.Outputs) {
			resp.Outputs = resp.Outputs[:len(resp.Outputs)+1]
		} else {
			resp.Outputs = append(resp.Outputs, OutputTensor{})
		}
		o := &resp.Outputs[len(resp.Outputs)-1]
		o.reset()
		if o.Binary, err = d.tensor(&o.Tensor, len(resp.Outputs)-1, &o.SharedMemory); err != nil {
			return err
		}
	}
}

// tensor reads one tensor object, an element of the "inputs" of a request
// or of the "outputs" of a response, into the empty t, and its shared
// memory parameters into ref: a tensor with a region has no data. It
// reports whether the data came as a binary tensor.
func (d *decoder) tensor(t *Tensor, index int, ref *SharedMemoryRef) (binaryData bool, err error) {
	w := where{kind: d.tkind, index: index}
	if err := d.openObject(&w); err != nil {
		return false, err
	}
	const (
		fName = 1 << iota
		fType
		fShape
		fData
		fParams
	)
	var seen uint8
	dataPos := -1 // where "data" starts, when it came before "datatype"
	count := 0    // elements in "data"
	binSize := int64(-1)
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			if err := once(&seen, fName, &w, "name"); err != nil {
				return false, err
			}
			w.field = `"name"`
			b, err := d.readStringValue(&w)
			if err != nil {
				return false, err
			}
			if len(b) == 0 {
				return false, errorf("%s has an empty name", w.tensor())
			}
			t.Name = d.names.get(b)
			w.name = t.Name
		case "datatype":
			if err := once(&seen, fType, &w, "datatype"); err != nil {
				return false, err
			}
			w.field = `"datatype"`
			b, err := d.readStringValue(&w)
			if err != nil {
				return false, err
			}
			if t.Datatype = lookupDataType(b); t.Datatype == InvalidType {
				return false, errorf("%s: unknown datatype %q; use one of %s", w.tensor(), b, typeList)
			}
		case "shape":
			if err := once(&seen, fShape, &w, "shape"); err != nil {
				return false, err
			}
			if err := d.shape(t, &w); err != nil {
				return false, err
			}
		case "data":
			if err := once(&seen, fData, &w, "data"); err != nil {
				return false, err
			}
			if seen&fType == 0 {
				// Convert once the datatype is known; check the JSON now.
				dataPos = d.pos
				d.inData = true
				err := d.skipValue()
				d.inData = false
				if err != nil {
					return false, err
				}
				continue
			}
			w.field = `"data"`
			if count, err = d.data(t, &w, seen&fShape != 0); err != nil {
				return false, err
			}
		case "parameters":
			if err := once(&seen, fParams, &w, "parameters"); err != nil {
				return false, err
			}
			if binSize, err = d.tensorParams(&w, ref); err != nil {
				return false, err
			}
		default:
			if err := d.skipValue(); err != nil {
				return false, err
			}
		}
		w.field = ""
	}
	switch {
	case seen&fName == 0:
		return false, errorf(`%s has no "name"`, w.tensor())
	case seen&fType == 0:
		return false, errorf(`%s has no "datatype"`, w.tensor())
	case seen&fShape == 0:
		return false, errorf(`%s has no "shape"`, w.tensor())
	case seen&fData != 0 && binSize >= 0:
		return false, errorf(`%s has both "data" and a binary_data_size parameter; send one of them`, w.tensor())
	case ref.Region != "" && (seen&fData != 0 || binSize >= 0):
		return false, errorf(`%s has parameter "shared_memory_region" and also "data" or a binary_data_size parameter; send its data one way`, w.tensor())
	case ref.Region != "":
		// Its data is in the region: the server reads it, a client
		// finds it there.
		return false, nil
	case seen&fData == 0 && binSize < 0:
		return false, errorf(`%s has no "data" and no binary_data_size parameter`, w.tensor())
	case binSize >= 0:
		return true, d.binaryTensor(t, binSize, &w)
	}
	if dataPos >= 0 {
		end := d.pos
		d.pos = dataPos
		w.field = `"data"`
		if count, err = d.data(t, &w, true); err != nil {
			return false, err
		}
		d.pos = end
	}
	if want := t.NumElements(); int64(count) != want {
		return false, errorf("%s: data has %s but shape %s needs %d", w.tensor(), plural(int64(count), "element"), FormatShape(t.Shape), want)
	}
	w.field = `"data"`
	return false, d.nest.check(t.Shape, &w)
}

// shape reads a "shape": at most MaxRank dimensions, each in
// [0, MaxElements], whose product is at most MaxElements.
func (d *decoder) shape(t *Tensor, w *where) error {
	w.field = `"shape"`
	if err := d.openArray(w); err != nil {
		return err
	}
	t.Shape = t.Shape[:0]
	for n := 0; ; {
		ok, err := d.nextElement(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if len(t.Shape) == MaxRank {
			return errorf("%s has more than %d dimensions", w.String(), MaxRank)
		}
		if c := d.peek(); c != '-' && (c < '0' || c > '9') {
			if d.kind() == "invalid JSON" {
				return d.syntaxError("a value")
			}
			return errorf("%s must be an array of integers, but dimension %d is %s", w.String(), len(t.Shape), d.kind())
		}
		num, err := d.scanNumber()
		if err != nil {
			return err
		}
		neg, mag, st := d.parseInt(num)
		switch {
		case st == intFraction:
			return errorf("%s: dimension %d is %s, not an integer", w.String(), len(t.Shape), d.shortText(num))
		case neg:
			return errorf("%s: dimension %d is %s; dimensions must not be negative", w.String(), len(t.Shape), d.shortText(num))
		case st == intRange || mag > MaxElements:
			return errorf("%s: dimension %d is %s; at most %d is allowed", w.String(), len(t.Shape), d.shortText(num), MaxElements)
		}
		t.Shape = append(t.Shape, int64(mag))
	}
	if n := ShapeElements(t.Shape); n < 0 || n > MaxElements {
		return errorf("%s: %s has more than %d elements", w.String(), FormatShape(t.Shape), MaxElements)
	}
	return nil
}

// tensorParams reads the "parameters" of a tensor and returns its
// binary_data_size, or -1 when it has none, and its shared memory
// parameters into ref.
func (d *decoder) tensorParams(w *where, ref *SharedMemoryRef) (int64, error) {
	size := int64(-1)
	if d.isNull() {
		return size, nil
	}
	w.field = `"parameters"`
	if err := d.openObject(w); err != nil {
		return 0, err
	}
	var shm uint8
	for n := 0; ; {
		key, ok, err := d.nextMember(&n)
		if err != nil {
			return 0, err
		}
		if !ok {
			return size, checkSharedMemory(shm, w)
		}
		if ok, err := d.sharedMemoryParam(key, ref, &shm, w); ok || err != nil {
			if err != nil {
				return 0, err
			}
			continue
		}
		if string(key) != "binary_data_size" {
			if err := d.skipValue(); err != nil {
				return 0, err
			}
			continue
		}
		if size >= 0 {
			return 0, errorf(`%s has two "binary_data_size" parameters`, w.tensor())
		}
		w.field = `parameter "binary_data_size"`
		if size, err = d.readInt(w, 0, math.MaxInt64); err != nil {
			return 0, err
		}
	}
}

// binaryTensor takes the next size bytes of the binary part of the body as
// the data of t.
func (d *decoder) binaryTensor(t *Tensor, size int64, w *where) error {
	if d.headerLen < 0 && size > 0 {
		// (With no bytes to take, where the JSON ends does not matter.)
		return errorf("%s has a binary_data_size parameter but there is no Inference-Header-Content-Length header to say where the JSON ends", w.tensor())
	}
	if rest := int64(len(d.body) - d.bin); size > rest {
		if d.bin == d.headerLen {
			return errorf("binary_data_size of %s is %d but only %d bytes follow the JSON header", w.tensor(), size, rest)
		}
		return errorf("binary_data_size of %s is %d but only %d bytes follow the binary tensors before it", w.tensor(), size, rest)
	}
	data := d.body[d.bin : d.bin+int(size)]
	if err := checkBinary(t.Datatype, t.Shape, data, w); err != nil {
		return err
	}
	t.Data = append(t.Data[:0], data...)
	d.bin += int(size)
	return nil
}

// data reads a "data" array, flat or nested, into t.Data as t.Datatype
// says, and returns the number of elements; d.nest then holds its
// structure. haveShape says whether t.Shape is known, to reserve room for
// the elements it says. w names the array (its field is the member's).
func (d *decoder) data(t *Tensor, w *where, haveShape bool) (int, error) {
	if d.peek() != '[' {
		if d.kind() == "invalid JSON" {
			return 0, d.syntaxError("an array")
		}
		return 0, errorf("%s must be an array, not %s", w.String(), d.kind())
	}
	dt := t.Datatype
	dst := t.Data[:0]
	if haveShape {
		// Reserve what the shape says, unless the text left cannot hold
		// that many elements: each takes at least 2 bytes ("0,").
		if n := t.NumElements(); n <= int64(len(d.buf)-d.pos)/2+1 {
			size := int64(dt.Size())
			if dt == BYTES {
				size = 4
			}
			if need := int(n * size); cap(dst) < need {
				dst = make([]byte, 0, need)
			}
		}
	}
	d.pos++
	if err := d.enter(); err != nil {
		return 0, err
	}
	outer := d.depth - 1
	count := 0
	nest := &d.nest
	nest.leafLevel, nest.maxLevel = 0, 0
	nest.open(1)
	if d.peek() == ']' {
		d.pos++
		d.depth--
		t.Data = dst
		return 0, nil
	}
	for {
		c := d.peek()
		switch {
		case c == '[':
			d.pos++
			if err := d.enter(); err != nil {
				return 0, err
			}
			nest.open(d.depth - outer)
			if d.peek() != ']' {
				continue
			}
			d.pos++
			if err := nest.close(d.depth-outer, w); err != nil {
				return 0, err
			}
			d.depth--
		case dt == FP32 && (c == '-' || ('0' <= c && c <= '9')):
			// The common case: a run of plain numbers.
			var n int
			var atValue bool
			dst, n, atValue = d.fp32Run(dst)
			count += n
			if n > 0 {
				if err := nest.leaves(d.depth-outer, n, w); err != nil {
					return 0, err
				}
			}
			if atValue && n > 0 {
				continue
			}
			if n > 0 {
				break
			}
			if f, k := d.nonFinite(); k > 0 {
				// -Infinity, bare.
				d.pos += k
				dst = appendFloat64As(dst, dt, f)
			} else {
				num, err := d.scanNumber()
				if err != nil {
					return 0, err
				}
				f, ok := d.parseFloat32(num)
				if !ok {
					return 0, d.outOfRange(w, count, num, dt)
				}
				dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
			}
			count++
			if err := nest.leaves(d.depth-outer, 1, w); err != nil {
				return 0, err
			}
		default:
			var err error
			if dst, err = d.element(dst, dt, c, w, count); err != nil {
				return 0, err
			}
			count++
			if err := nest.leaves(d.depth-outer, 1, w); err != nil {
				return 0, err
			}
		}
		// After an element or a nested array: ',' or ']'.
		for {
			c := d.peek()
			if c == ',' {
				d.pos++
				break
			}
			if c != ']' {
				return 0, d.syntaxError("',' or ']' after an array element")
			}
			d.pos++
			if err := nest.close(d.depth-outer, w); err != nil {
				return 0, err
			}
			d.depth--
			if d.depth == outer {
				t.Data = dst
				return count, nil
			}
		}
	}
}

// fp32Run decodes FP32 elements at d.pos, a run of numbers separated by
// commas, as long as they take the fast path: no exponent, at most 19
// digits, decided by fastFloat32. It works in locals, which makes 4,096
// elements decode about 1.5 times as fast as through scanNumber and
// parseFloat32 one by one. It stops before the
// first element it leaves to them (atValue) or after the last element of
// the run, before what follows it, and returns the elements decoded.
func (d *decoder) fp32Run(dst []byte) (out []byte, n int, atValue bool) {
	b := d.buf
	i := d.pos
	for {
		start := i
		neg := false
		if i < len(b) && b[i] == '-' {
			neg = true
			i++
		}
		first := i
		var mant uint64
		for i < len(b) {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c)
			i++
		}
		nd := i - first
		if nd == 0 || (nd > 1 && b[first] == '0') {
			d.pos = start
			return dst, n, true
		}
		exp := 0
		if i < len(b) && b[i] == '.' {
			i++
			frac := i
			for i < len(b) {
				c := b[i] - '0'
				if c > 9 {
					break
				}
				mant = mant*10 + uint64(c)
				i++
			}
			exp = frac - i
			nd += i - frac
			if exp == 0 {
				d.pos = start
				return dst, n, true
			}
		}
		if nd > 19 || (i < len(b) && (b[i] == 'e' || b[i] == 'E')) {
			d.pos = start
			return dst, n, true
		}
		f, ok := fastFloat32(mant, exp, neg, false)
		if !ok {
			d.pos = start
			return dst, n, true
		}
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
		n++
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != ',' {
			d.pos = i
			return dst, n, false
		}
		i++
		for i < len(b) && isSpace(b[i]) {
			i++
		}
	}
}

// element reads one element of "data", the count'th, whose first byte is
// c, and appends it to dst as dt says.
func (d *decoder) element(dst []byte, dt DataType, c byte, w *where, count int) ([]byte, error) {
	isNum := c == '-' || ('0' <= c && c <= '9')
	if _, n := d.nonFinite(); n > 0 && c == '-' {
		isNum = false // -Infinity: only float types take it
	}
	switch dt {
	case BOOL:
		switch c {
		case 't':
			if err := d.literal("true"); err != nil {
				return nil, err
			}
			return append(dst, 1), nil
		case 'f':
			if err := d.literal("false"); err != nil {
				return nil, err
			}
			return append(dst, 0), nil
		}
	case BYTES:
		if c == '"' {
			b, err := d.readString()
			if err != nil {
				return nil, err
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
			return append(dst, b...), nil
		}
	case FP16, FP32, FP64:
		if c == '"' {
			return d.specialFloat(dst, dt, w, count)
		}
		if c == 'N' || c == 'I' || c == '-' {
			if f, n := d.nonFinite(); n > 0 {
				d.pos += n
				return appendFloat64As(dst, dt, f), nil
			}
		}
		if !isNum {
			break
		}
		num, err := d.scanNumber()
		if err != nil {
			return nil, err
		}
		switch dt {
		case FP16:
			h, ok := d.parseFloat16(num)
			if !ok {
				return nil, d.outOfRange(w, count, num, dt)
			}
			return binary.LittleEndian.AppendUint16(dst, h), nil
		case FP32:
			f, ok := d.parseFloat32(num)
			if !ok {
				return nil, d.outOfRange(w, count, num, dt)
			}
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(f)), nil
		default:
			f, ok := d.parseFloat64(num)
			if !ok {
				return nil, d.outOfRange(w, count, num, dt)
			}
			return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
		}
	default: // integers
		if !isNum {
			break
		}
		num, err := d.scanNumber()
		if err != nil {
			return nil, err
		}
		neg, mag, st := d.parseInt(num)
		r := intRanges[dt]
		switch {
		case st == intFraction:
			return nil, errorf("%s: data element %d is %s, not an integer as %s needs", w.tensor(), count, d.shortText(num), dt)
		case st == intRange || (!neg && mag > r.max) || (neg && mag > uint64(-(r.min+1))+1):
			return nil, errorf("%s: data element %d is %s, out of the range of %s (%d to %d)", w.tensor(), count, d.shortText(num), dt, r.min, r.max)
		}
		v := mag
		if neg {
			v = -mag
		}
		switch dt.Size() {
		case 1:
			return append(dst, byte(v)), nil
		case 2:
			return binary.LittleEndian.AppendUint16(dst, uint16(v)), nil
		case 4:
			return binary.LittleEndian.AppendUint32(dst, uint32(v)), nil
		default:
			return binary.LittleEndian.AppendUint64(dst, v), nil
		}
	}
	if d.kind() == "invalid JSON" {
		return nil, d.syntaxError("a value")
	}
	return nil, errorf("%s: data element %d is %s but %s needs %s", w.tensor(), count, d.kind(), dt, elementKind[dt])
}

// specialFloat reads one of the strings that stand for floats JSON cannot
// write: "NaN", "Infinity", "-Infinity" (element takes them bare too).
func (d *decoder) specialFloat(dst []byte, dt DataType, w *where, count int) ([]byte, error) {
	b, err := d.readString()
	if err != nil {
		return nil, err
	}
	var f float64
	switch string(b) {
	case "NaN":
		f = math.NaN()
	case "Infinity":
		f = math.Inf(1)
	case "-Infinity":
		f = math.Inf(-1)
	default:
		if len(b) > 40 {
			b = append(b[:37:37], "..."...)
		}
		return nil, errorf(`%s: data element %d is the string %q but %s needs numbers (or "NaN", "Infinity", "-Infinity")`, w.tensor(), count, b, dt)
	}
	return appendFloat64As(dst, dt, f), nil
}

// appendFloat64As appends f as an element of float type dt.
func appendFloat64As(dst []byte, dt DataType, f float64) []byte {
	switch dt {
	case FP16:
		return binary.LittleEndian.AppendUint16(dst, halfFromFloat64(f))
	case FP32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f)))
	}
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// outOfRange reports a number too large for a float type.
func (d *decoder) outOfRange(w *where, count int, num number, dt DataType) error {
	return errorf("%s: data element %d is %s, out of the range of %s", w.tensor(), count, d.shortText(num), dt)
}

// intRanges holds the range of each integer type.
var intRanges = [numTypes]struct {
	min int64
	max uint64
}{
	UINT8:  {0, math.MaxUint8},
	UINT16: {0, math.MaxUint16},
	UINT32: {0, math.MaxUint32},
	UINT64: {0, math.MaxUint64},
	INT8:   {math.MinInt8, math.MaxInt8},
	INT16:  {math.MinInt16, math.MaxInt16},
	INT32:  {math.MinInt32, math.MaxInt32},
	INT64:  {math.MinInt64, math.MaxInt64},
}

// elementKind says what JSON each type takes, for messages.
var elementKind = [numTypes]string{
	BOOL: "true or false", BYTES: "strings",
	UINT8: "integers", UINT16: "integers", UINT32: "integers", UINT64: "integers",
	INT8: "integers", INT16: "integers", INT32: "integers", INT64: "integers",
	FP16: "numbers", FP32: "numbers", FP64: "numbers",
}

// typeList lists the datatypes for messages.
var typeList = func() string {
	names := make([]string, 0, numTypes-1)
	for dt := BOOL; dt < numTypes; dt++ {
		names = append(names, dt.String())
	}
	return strings.Join(names, ", ")
}()

// lookupDataType returns the DataType named b, or InvalidType; unlike
// ParseDataType it does not allocate.
func lookupDataType(b []byte) DataType {
	switch string(b) {
	case "BOOL":
		return BOOL
	case "UINT8":
		return UINT8
	case "UINT16":
		return UINT16
	case "UINT32":
		return UINT32
	case "UINT64":
		return UINT64
	case "INT8":
		return INT8
	case "INT16":
		return INT16
	case "INT32":
		return INT32
	case "INT64":
		return INT64
	case "FP16":
		return FP16
	case "FP32":
		return FP32
	case "FP64":
		return FP64
	case "BYTES":
		return BYTES
	}
	return InvalidType
}

// formatShape writes a shape as JSON, for messages: [1,64].
func FormatShape(shape []int64) string {
	b := make([]byte, 0, 2+len(shape)*4)
	return string(appendShape(b, shape))
}

// plural writes n and the word, in the plural unless n is 1.
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}

// duplicate returns a name that two of the n names given by name share.
func duplicate(n int, name func(int) string) (string, bool) {
	if n <= 16 {
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if name(i) == name(j) {
					return name(i), true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		if _, ok := seen[name(i)]; ok {
			return name(i), true
		}
		seen[name(i)] = struct{}{}
	}
	return "", false
}
