package oip

// Fuzz targets for the decoders of untrusted bytes. The seed corpus lives in
// testdata/fuzz/<Name>/: valid JSON and binary bodies, nested data, and
// malformed ones; crashers found are kept there too. Run one for a minute
// with
//
//	go test -run='^$' -fuzz=FuzzDecodeRequest -fuzztime=60s ./oip/

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		own := bytes.Clone(body)
		var req InferRequest
		err := DecodeRequest(&req, own, headerLen)
		if err != nil {
			if e := (*Error)(nil); !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %s", err, err)
			}
			return
		}
		shared := map[int]bool{}
		for _, si := range req.SharedInputs {
			shared[si.Index] = true
		}
		for i := range req.Inputs {
			in := &req.Inputs[i]
			if shared[i] {
				if len(in.Data) != 0 {
					t.Fatalf("input %d in shared memory has %d bytes of data", i, len(in.Data))
				}
				continue
			}
			if err := in.CheckData(); err != nil {
				t.Fatalf("decoded input %d does not fit its shape: %s", i, err)
			}
			if c := cap(in.Data); c > 8*len(body)+64 {
				t.Fatalf("input %d reserved %d bytes for a body of %d", i, c, len(body))
			}
		}
		want := cloneRequest(&req)
		for i := range own {
			own[i] = 0 // the decoded request must not alias the body
		}
		if d := diffRequests(&req, want, false); d != "" {
			t.Fatalf("the request aliases the body: %s", d)
		}

		// Binary tensors carry every bit; JSON carries all but NaN
		// payloads, and BYTES only when they are UTF-8.
		for _, binary := range []bool{true, false} {
			if !binary && !jsonSafeRequest(want) {
				continue
			}
			enc, hl := AppendRequest(nil, want, binary)
			var back InferRequest
			if err := DecodeRequest(&back, enc, hl); err != nil {
				t.Fatalf("decoding the re-encoded request (binary %v): %s\n%q", binary, err, enc)
			}
			if d := diffRequests(&back, want, !binary); d != "" {
				t.Fatalf("re-encoded request (binary %v) differs: %s\n%q", binary, d, enc)
			}
			// Decoding into a used request gives the same.
			if err := DecodeRequest(&req, enc, hl); err != nil {
				t.Fatalf("decoding again into a used request: %s", err)
			}
			if d := diffRequests(&req, want, !binary); d != "" {
				t.Fatalf("decoding into a used request differs: %s", d)
			}
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		var resp InferResponse
		err := DecodeResponse(&resp, body, headerLen)
		if err != nil {
			if e := (*Error)(nil); !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %s", err, err)
			}
			return
		}
		for i := range resp.Outputs {
			if resp.Outputs[i].SharedMemory.Region != "" {
				// Its data is in a region, which a response written
				// here does not name (as Triton's): no round trip.
				return
			}
			if err := resp.Outputs[i].CheckData(); err != nil {
				t.Fatalf("decoded output %d does not fit its shape: %s", i, err)
			}
		}
		for _, asDecoded := range []bool{true, false} {
			in := resp
			if !asDecoded {
				// All as JSON, when JSON can carry them.
				in.Outputs = slices.Clone(resp.Outputs)
				for i := range in.Outputs {
					in.Outputs[i].Binary = false
					if !jsonSafeTensor(&in.Outputs[i].Tensor) {
						in.Outputs[i].Binary = true
					}
				}
			}
			enc, hl := AppendResponse(nil, &in)
			var back InferResponse
			if err := DecodeResponse(&back, enc, hl); err != nil {
				t.Fatalf("decoding the re-encoded response: %s\n%q", err, enc)
			}
			if back.ModelName != in.ModelName || back.ModelVersion != in.ModelVersion || back.ID != in.ID || len(back.Outputs) != len(in.Outputs) {
				t.Fatalf("re-encoded response differs: %+v; want %+v", back, in)
			}
			for i := range in.Outputs {
				g, w := &back.Outputs[i], &in.Outputs[i]
				if d := diffTensors(&g.Tensor, &w.Tensor, !w.Binary); d != "" || g.Binary != w.Binary {
					t.Fatalf("re-encoded output %d differs: %s", i, d)
				}
			}
		}
	})
}

// cloneRequest returns a deep copy of req's exported fields.
func cloneRequest(req *InferRequest) *InferRequest {
	c := *req
	c.names, c.scratch = internTable{}, nil
	c.Inputs = make([]Tensor, len(req.Inputs))
	for i, in := range req.Inputs {
		c.Inputs[i] = Tensor{Name: in.Name, Datatype: in.Datatype, Shape: slices.Clone(in.Shape), Data: bytes.Clone(in.Data)}
	}
	c.Outputs = slices.Clone(req.Outputs)
	c.SharedInputs = slices.Clone(req.SharedInputs)
	return &c
}

// jsonSafeRequest reports whether JSON can carry every input of req.
func jsonSafeRequest(req *InferRequest) bool {
	for i := range req.Inputs {
		if !jsonSafeTensor(&req.Inputs[i]) {
			return false
		}
	}
	return true
}

// jsonSafeTensor reports whether JSON can carry t: all but BYTES elements
// that are not UTF-8.
func jsonSafeTensor(t *Tensor) bool {
	if t.Datatype != BYTES {
		return true
	}
	for rest := t.Data; len(rest) > 0; {
		elem, r, ok := nextBytesElement(rest)
		if !ok || !utf8.Valid(elem) {
			return false
		}
		rest = r
	}
	return true
}
