package onnx

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// tinyMLP is 2-2-1 with hand-picked weights: for x = [1, 1] the hidden layer
// is relu([1+3+0.5, 2+4-10]) = [4.5, 0] and the output sigmoid(4.5*1 + 0*-1 + 0.25).
func tinyMLP() *MLP {
	return &MLP{
		InputName:  "in",
		OutputName: "out",
		Layers: []Dense{
			{In: 2, Out: 2, W: []float32{1, 2, 3, 4}, B: []float32{0.5, -10}, Act: Relu},
			{In: 2, Out: 1, W: []float32{1, -1}, B: []float32{0.25}, Act: Sigmoid},
		},
	}
}

func TestForward(t *testing.T) {
	sigmoid := func(x float64) float32 { return float32(1 / (1 + math.Exp(-x))) }
	f := func(m *MLP, x []float32, rows int, want []float32) {
		t.Helper()
		got := m.Forward(x, rows)
		if len(got) != len(want) {
			t.Fatalf("Forward returned %d values; want %d", len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("Forward(%v)[%d] = %v; want %v", x, i, got[i], want[i])
			}
		}
	}
	f(tinyMLP(), []float32{1, 1}, 1, []float32{sigmoid(4.75)})
	// Row 2: hidden relu([-1+0.5, -2-10]) = [0, 0], output sigmoid(0.25).
	f(tinyMLP(), []float32{1, 1, -1, 0}, 2, []float32{sigmoid(4.75), sigmoid(0.25)})
	f(tinyMLP(), nil, 0, []float32{})

	linear := tinyMLP()
	linear.Layers = linear.Layers[:1]
	linear.Layers[0].Act = None
	f(linear, []float32{1, 1}, 1, []float32{4.5, -4})
	f(linear, []float32{2, -1}, 1, []float32{2 - 3 + 0.5, 4 - 4 - 10})

	x := []float32{0.5, -0.5}
	f(tinyMLP(), x, 1, tinyMLP().Forward(x, 1))
	if !slices.Equal(x, []float32{0.5, -0.5}) {
		t.Fatalf("Forward changed its input to %v", x)
	}
}

func TestForwardPanics(t *testing.T) {
	f := func(m *MLP, x []float32, rows int, wantPanic string) {
		t.Helper()
		defer func() {
			t.Helper()
			r := recover()
			if s, _ := r.(string); !strings.Contains(s, wantPanic) {
				t.Fatalf("panic %v; want one containing %q", r, wantPanic)
			}
		}()
		m.Forward(x, rows)
	}
	f(tinyMLP(), []float32{1, 2, 3}, 2, "len(x) = 3; want rows*In = 2*2 = 4")
	f(tinyMLP(), []float32{1, 2, 3}, 1, "len(x) = 3; want rows*In = 1*2 = 2")
	f(&MLP{InputName: "a", OutputName: "b"}, nil, 0, "no layers")
}

func TestMLPValidate(t *testing.T) {
	f := func(m *MLP, wantErr string) {
		t.Helper()
		err := m.Validate()
		if wantErr == "" {
			if err != nil {
				t.Fatalf("unexpected error: %s", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got error %v; want one containing %q", err, wantErr)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %q does not wrap ErrInvalid", err)
		}
	}
	change := func(fn func(m *MLP)) *MLP {
		m := tinyMLP()
		fn(m)
		return m
	}
	f(tinyMLP(), "")
	f(DemoCTR(), "")
	f(NewLogisticRegression(1, 3), "")
	f(change(func(m *MLP) { m.Layers[0].W = m.Layers[0].W[:3] }), "layer 0: W has 3 values; want In*Out = 2*2 = 4")
	f(change(func(m *MLP) { m.Layers[1].W = append(m.Layers[1].W, 1) }), "layer 1: W has 3 values; want In*Out = 2*1 = 2")
	f(change(func(m *MLP) { m.Layers[0].B = nil }), "layer 0: B has 0 values; want Out = 2")
	f(change(func(m *MLP) { m.Layers[1].In = 3 }), "layer 1: In = 3, but layer 0 has Out = 2")
	f(change(func(m *MLP) { m.Layers[0].Out = 0 }), "layer 0: In = 2, Out = 0; both must be positive")
	f(change(func(m *MLP) { m.Layers[1].Act = 7 }), "layer 1: unknown activation Activation(7)")
	f(change(func(m *MLP) { m.Layers[1].W[1] = float32(math.NaN()) }), "layer 1: W[1] = NaN; want a finite number")
	f(change(func(m *MLP) { m.Layers[0].B[0] = float32(math.Inf(-1)) }), "layer 0: B[0] = -Inf; want a finite number")
	f(change(func(m *MLP) { m.Layers = nil }), "no layers")
	f(change(func(m *MLP) { m.InputName = "" }), `input name "", output name "out": both must be set`)
	f(change(func(m *MLP) { m.OutputName = "in" }), `input and output are both named "in"`)
}

func TestNewMLP(t *testing.T) {
	m := NewMLP(42, []int{10, 20, 3}, Relu, None)
	if err := m.Validate(); err != nil {
		t.Fatalf("NewMLP gave an invalid MLP: %s", err)
	}
	if m.In() != 10 || m.Out() != 3 || len(m.Layers) != 2 {
		t.Fatalf("In %d, Out %d, %d layers; want 10, 3, 2", m.In(), m.Out(), len(m.Layers))
	}
	if m.Layers[0].Act != Relu || m.Layers[1].Act != None {
		t.Fatalf("activations %s, %s; want relu, none", m.Layers[0].Act, m.Layers[1].Act)
	}
	if m.InputName != "features" || m.OutputName != "score" {
		t.Fatalf("names %q, %q; want features, score", m.InputName, m.OutputName)
	}
	// Weights are uniform within the He (Relu) or Xavier (otherwise) limit,
	// and fill it: the largest magnitude is above 90% of the limit.
	f := func(v []float32, limit float64) {
		t.Helper()
		maxAbs := 0.0
		for _, w := range v {
			maxAbs = max(maxAbs, math.Abs(float64(w)))
		}
		if maxAbs > limit || maxAbs < 0.9*limit {
			t.Fatalf("largest |value| = %v; want in [%v, %v]", maxAbs, 0.9*limit, limit)
		}
	}
	f(m.Layers[0].W, math.Sqrt(6.0/10))
	f(m.Layers[1].W, math.Sqrt(6.0/23))
	f(m.Layers[0].B, biasScale)

	again := NewMLP(42, []int{10, 20, 3}, Relu, None)
	other := NewMLP(43, []int{10, 20, 3}, Relu, None)
	for i := range m.Layers {
		if !slices.Equal(m.Layers[i].W, again.Layers[i].W) || !slices.Equal(m.Layers[i].B, again.Layers[i].B) {
			t.Fatalf("layer %d: seed 42 gave different weights twice", i)
		}
		if slices.Equal(m.Layers[i].W, other.Layers[i].W) {
			t.Fatalf("layer %d: seeds 42 and 43 gave the same weights", i)
		}
	}
	if got := m.Metadata[MetaInitSeed]; got != "42" {
		t.Fatalf("metadata %s = %q; want 42", MetaInitSeed, got)
	}

	lr := NewLogisticRegression(1, 5)
	if len(lr.Layers) != 1 || lr.In() != 5 || lr.Out() != 1 || lr.Layers[0].Act != Sigmoid {
		t.Fatalf("logistic regression: %d layers, In %d, Out %d, %s; want 1, 5, 1, sigmoid",
			len(lr.Layers), lr.In(), lr.Out(), lr.Layers[0].Act)
	}
}

func TestNewMLPPanics(t *testing.T) {
	f := func(sizes []int, wantPanic string) {
		t.Helper()
		defer func() {
			t.Helper()
			r := recover()
			if s, _ := r.(string); !strings.Contains(s, wantPanic) {
				t.Fatalf("NewMLP(%v): panic %v; want one containing %q", sizes, r, wantPanic)
			}
		}()
		NewMLP(1, sizes, Relu, Sigmoid)
	}
	f(nil, "need at least an input and an output size")
	f([]int{3}, "need at least an input and an output size")
	f([]int{3, 0, 1}, "sizes must be positive")
	f([]int{-1, 1}, "sizes must be positive")
}

func TestMLPModel(t *testing.T) {
	f := func(m *MLP, wantOps, wantOutputs []string, wantLayers, wantActs string) {
		t.Helper()
		model := m.Model()
		if err := model.Validate(); err != nil {
			t.Fatalf("Model() is invalid: %s", err)
		}
		var ops, outs []string
		for _, n := range model.Graph.Nodes {
			ops = append(ops, n.OpType)
			outs = append(outs, n.Outputs...)
		}
		if !slices.Equal(ops, wantOps) {
			t.Fatalf("ops %q; want %q", ops, wantOps)
		}
		if !slices.Equal(outs, wantOutputs) {
			t.Fatalf("node outputs %q; want %q", outs, wantOutputs)
		}
		if got := model.Metadata[MetaLayers]; got != wantLayers {
			t.Fatalf("metadata %s = %q; want %q", MetaLayers, got, wantLayers)
		}
		if got := model.Metadata[MetaActivations]; got != wantActs {
			t.Fatalf("metadata %s = %q; want %q", MetaActivations, got, wantActs)
		}
	}
	f(tinyMLP(), []string{"Gemm", "Relu", "Gemm", "Sigmoid"},
		[]string{"layer0.gemm", "layer0.relu", "layer1.gemm", "out"}, "2-2-1", "relu-sigmoid")
	f(NewMLP(1, []int{4, 3, 2}, None, None), []string{"Gemm", "Gemm"},
		[]string{"layer0.gemm", "score"}, "4-3-2", "none-none")

	// The model holds copies: changing the MLP afterwards leaves it alone,
	// and Model does not write into the MLP's metadata.
	m := tinyMLP()
	m.Metadata = map[string]string{"k": "v"}
	model := m.Model()
	m.Layers[0].W[0] = 100
	if got := model.Graph.Initializers[0].Floats[0]; got != 1 {
		t.Fatalf("model weight changed with the MLP: %v; want 1", got)
	}
	if len(m.Metadata) != 1 || model.Metadata["k"] != "v" {
		t.Fatalf("MLP metadata %v, model metadata %v; want the MLP's untouched and copied", m.Metadata, model.Metadata)
	}
}
