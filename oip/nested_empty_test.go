package oip

import "testing"

// The nested form of a tensor whose shape has a 0 stops at the first 0
// dimension: numpy's zeros((1,0,2)).tolist() is [[]], and the KServe v2
// spec lets "data" be nested as the shape is. Such data holds exactly the
// 0 elements the shape needs, so it must be accepted, as [[],[]] already is
// for shape [2,0] and [] for [0,2].
func TestNestedEmptyDataStopsAtZeroDimension(t *testing.T) {
	for _, c := range []struct{ shape, data string }{
		{"[1,0,2]", "[[]]"},
		{"[2,0,3]", "[[],[]]"},
		{"[2,3,0,5]", "[[[],[],[]],[[],[],[]]]"},
	} {
		body := `{"inputs":[{"name":"x","datatype":"FP32","shape":` + c.shape + `,"data":` + c.data + `}]}`
		var req InferRequest
		if err := DecodeRequest(&req, []byte(body), -1); err != nil {
			t.Errorf("DecodeRequest(%s): %v; want it accepted with 0 elements", body, err)
			continue
		}
		if len(req.Inputs[0].Data) != 0 {
			t.Errorf("DecodeRequest(%s): %d data bytes; want 0", body, len(req.Inputs[0].Data))
		}
	}
	// The nested form must still follow the shape up to its first 0.
	for _, c := range []struct{ shape, data string }{
		{"[2,0,2]", "[[]]"},   // 1 row for a shape of 2
		{"[1,0,2]", "[[[]]]"}, // an array below the 0 dimension
		{"[1,1,0]", "[[]]"},   // stops before the 0 dimension
		{"[1,0]", "[[[[]]]]"}, // as edge_test.go
	} {
		body := `{"inputs":[{"name":"x","datatype":"FP32","shape":` + c.shape + `,"data":` + c.data + `}]}`
		var req InferRequest
		if err := DecodeRequest(&req, []byte(body), -1); err == nil {
			t.Errorf("DecodeRequest(%s): accepted; want an error", body)
		}
	}
}
