package onnx

import (
	"errors"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// MLP.Validate refuses input and output names that Model gives values of
// its own, which would make a model ONNX Runtime refuses; any other name
// makes one it loads.
func TestMLPValidateNames(t *testing.T) {
	startORT(t)
	f := func(in, out string) {
		t.Helper()
		m := NewMLP(1, []int{4, 3, 1}, Relu, Sigmoid)
		m.InputName, m.OutputName = in, out
		if err := m.Validate(); err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "names a value Model makes itself") {
				t.Errorf("in %q, out %q: Validate: %v; want ErrInvalid naming the clash", in, out, err)
			}
			return
		}
		model := m.Model()
		verr := model.Validate()
		s, oerr := ort.NewDynamicAdvancedSessionWithONNXData(model.Marshal(), []string{in}, []string{out}, nil)
		if oerr == nil {
			s.Destroy()
		}
		if verr != nil || oerr != nil {
			t.Errorf("in %q, out %q: MLP.Validate = nil, but Model().Validate = %v; ONNX Runtime: %v", in, out, verr, oerr)
		}
	}
	f("layer0.weight", "score")
	f("layer0.relu", "score")
	f("features", "layer0.gemm")
	f("features", "layer1.bias")
	f("layer0", "layer0.score") // near, but not the same: accepted, and ORT loads it
}
