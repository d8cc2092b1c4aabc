package onnx

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Activation is the function a Dense layer applies to each output.
type Activation uint8

// The activations of a Dense layer.
const (
	None Activation = iota
	Relu
	Sigmoid
)

// String returns the activation's lower-case name, such as "relu".
func (a Activation) String() string {
	switch a {
	case None:
		return "none"
	case Relu:
		return "relu"
	case Sigmoid:
		return "sigmoid"
	}
	return fmt.Sprintf("Activation(%d)", uint8(a))
}

// Dense is a fully connected layer: y = Act(x·W + B) for a row x of In
// values. W is row-major [In][Out] (W[k*Out+j] weighs input k for output j)
// and B has Out values.
type Dense struct {
	In, Out int
	W       []float32
	B       []float32
	Act     Activation
}

// MLP is a multi-layer perceptron: Layers applied in order to rows of
// Layers[0].In float32 features. Its ONNX form (Model) has one input named
// InputName of shape [batch, In] and one output named OutputName of shape
// [batch, Out]. DocString and Metadata are copied into that Model. An MLP is
// not safe for concurrent use while it is being changed; Forward, Model and
// Validate only read it.
type MLP struct {
	InputName  string
	OutputName string
	Layers     []Dense
	DocString  string
	Metadata   map[string]string
}

// Metadata keys that NewMLP, MLP.Model and the demo models write into a
// model's metadata_props.
const (
	// MetaModel names a demo model, such as "ctr".
	MetaModel = "infergate.model"
	// MetaInitSeed is the seed NewMLP drew the initial weights from.
	MetaInitSeed = "infergate.init_seed"
	// MetaLayers lists the layer sizes, such as "64-256-256-1".
	MetaLayers = "infergate.layers"
	// MetaActivations lists the layers' activations, such as
	// "relu-relu-sigmoid".
	MetaActivations = "infergate.activations"
)

// Default tensor names of the MLPs that NewMLP returns.
const (
	DefaultInputName  = "features"
	DefaultOutputName = "score"
)

// pcgStream is the second PCG seed word of NewMLP: a constant, so the seed
// alone picks the weights.
const pcgStream = 0x696e6665_72676174 // "infergat"

// biasScale bounds the initial biases of NewMLP.
const biasScale = 0.05

// NewMLP returns an MLP with sizes[0] inputs, a Dense layer from each size to
// the next, and weights drawn deterministically from seed. Hidden layers use
// the activation hidden, the last layer final. Weights are uniform in
// ±sqrt(6/In) for Relu layers (He) and ±sqrt(6/(In+Out)) otherwise
// (Xavier); biases are uniform in ±0.05. The numbers come straight from a
// math/rand/v2 PCG source, whose sequence is fixed for a seed, so the weights
// are the same on every platform and Go release. Inputs are named
// DefaultInputName and outputs DefaultOutputName. NewMLP panics when sizes
// has fewer than two entries or one that is not positive.
func NewMLP(seed uint64, sizes []int, hidden, final Activation) *MLP {
	if len(sizes) < 2 {
		panic(fmt.Sprintf("onnx.NewMLP: sizes %v: need at least an input and an output size", sizes))
	}
	for _, s := range sizes {
		if s <= 0 {
			panic(fmt.Sprintf("onnx.NewMLP: sizes %v: sizes must be positive", sizes))
		}
	}
	src := rand.NewPCG(seed, pcgStream)
	// uniform returns a number in [-limit, limit).
	uniform := func(limit float64) float32 {
		u := float64(src.Uint64()>>11) * 0x1p-53 // [0, 1) with 53 random bits
		return float32((2*u - 1) * limit)
	}
	m := &MLP{
		InputName:  DefaultInputName,
		OutputName: DefaultOutputName,
		Layers:     make([]Dense, len(sizes)-1),
		Metadata:   map[string]string{MetaInitSeed: strconv.FormatUint(seed, 10)},
	}
	for i := range m.Layers {
		l := Dense{In: sizes[i], Out: sizes[i+1], Act: hidden}
		if i == len(m.Layers)-1 {
			l.Act = final
		}
		limit := math.Sqrt(6 / float64(l.In+l.Out))
		if l.Act == Relu {
			limit = math.Sqrt(6 / float64(l.In))
		}
		l.W = make([]float32, l.In*l.Out)
		for k := range l.W {
			l.W[k] = uniform(limit)
		}
		l.B = make([]float32, l.Out)
		for k := range l.B {
			l.B[k] = uniform(biasScale)
		}
		m.Layers[i] = l
	}
	return m
}

// NewLogisticRegression returns a logistic regression over in features as an
// MLP: one Dense layer from in to 1 with Sigmoid, initialized by NewMLP.
func NewLogisticRegression(seed uint64, in int) *MLP {
	return NewMLP(seed, []int{in, 1}, None, Sigmoid)
}

// In returns the number of input features, or 0 when m has no layers.
func (m *MLP) In() int {
	if len(m.Layers) == 0 {
		return 0
	}
	return m.Layers[0].In
}

// Out returns the number of outputs per row, or 0 when m has no layers.
func (m *MLP) Out() int {
	if len(m.Layers) == 0 {
		return 0
	}
	return m.Layers[len(m.Layers)-1].Out
}

// Validate reports the first problem of m: no layers, empty or equal tensor
// names, a non-positive size, a layer whose In is not the previous layer's
// Out, a W or B of the wrong length, an unknown activation, or a weight that
// is NaN or infinite. Errors wrap ErrInvalid.
func (m *MLP) Validate() error {
	if err := m.validateShape(); err != nil {
		return err
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		for _, p := range []struct {
			name string
			v    []float32
		}{{"W", l.W}, {"B", l.B}} {
			for k, v := range p.v {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("layer %d: %s[%d] = %v; want a finite number: %w", i, p.name, k, v, ErrInvalid)
				}
			}
		}
	}
	return nil
}

// validateShape is Validate without the O(weights) scan for non-finite
// values, cheap enough for every Forward call.
// internalName matches the names Model gives the graph's own values: the
// layers' initializers and intermediate outputs.
var internalName = regexp.MustCompile(`^layer[0-9]+\.(weight|bias|gemm|relu|sigmoid)$`)

func (m *MLP) validateShape() error {
	if m.InputName == "" || m.OutputName == "" {
		return fmt.Errorf("input name %q, output name %q: both must be set: %w", m.InputName, m.OutputName, ErrInvalid)
	}
	if m.InputName == m.OutputName {
		return fmt.Errorf("input and output are both named %q: %w", m.InputName, ErrInvalid)
	}
	for _, name := range []string{m.InputName, m.OutputName} {
		if internalName.MatchString(name) {
			return fmt.Errorf("%q names a value Model makes itself (layer<N>.weight, .bias, .gemm or an activation); choose another: %w", name, ErrInvalid)
		}
	}
	if len(m.Layers) == 0 {
		return fmt.Errorf("no layers: %w", ErrInvalid)
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		if l.In <= 0 || l.Out <= 0 {
			return fmt.Errorf("layer %d: In = %d, Out = %d; both must be positive: %w", i, l.In, l.Out, ErrInvalid)
		}
		if i > 0 && l.In != m.Layers[i-1].Out {
			return fmt.Errorf("layer %d: In = %d, but layer %d has Out = %d: %w", i, l.In, i-1, m.Layers[i-1].Out, ErrInvalid)
		}
		if len(l.W) != l.In*l.Out {
			return fmt.Errorf("layer %d: W has %d values; want In*Out = %d*%d = %d: %w", i, len(l.W), l.In, l.Out, l.In*l.Out, ErrInvalid)
		}
		if len(l.B) != l.Out {
			return fmt.Errorf("layer %d: B has %d values; want Out = %d: %w", i, len(l.B), l.Out, ErrInvalid)
		}
		if l.Act > Sigmoid {
			return fmt.Errorf("layer %d: unknown activation %s: %w", i, l.Act, ErrInvalid)
		}
	}
	return nil
}

// Forward runs m in pure Go on rows rows of In float32 features (x is
// row-major, rows*In values) and returns rows*Out outputs, row-major. It
// computes in float32 like ONNX Runtime, so the two agree to about 1e-6.
// Forward panics when len(x) != rows*In or when m's sizes disagree (see
// Validate).
func (m *MLP) Forward(x []float32, rows int) []float32 {
	if err := m.validateShape(); err != nil {
		panic(fmt.Sprintf("onnx: Forward on an invalid MLP: %v", err))
	}
	if in := m.In(); rows < 0 || len(x) != rows*in {
		panic(fmt.Sprintf("onnx: Forward: len(x) = %d; want rows*In = %d*%d = %d", len(x), rows, in, rows*in))
	}
	cur := x
	for i := range m.Layers {
		l := &m.Layers[i]
		next := make([]float32, rows*l.Out)
		for r := range rows {
			src := cur[r*l.In : (r+1)*l.In]
			dst := next[r*l.Out : (r+1)*l.Out]
			copy(dst, l.B)
			for k, xk := range src {
				w := l.W[k*l.Out : (k+1)*l.Out]
				for j, wkj := range w {
					dst[j] += xk * wkj
				}
			}
			activate(dst, l.Act)
		}
		cur = next
	}
	return cur
}

func activate(v []float32, act Activation) {
	switch act {
	case Relu:
		for j, y := range v {
			if y < 0 {
				v[j] = 0
			}
		}
	case Sigmoid:
		for j, y := range v {
			v[j] = float32(1 / (1 + math.Exp(-float64(y))))
		}
	}
}

// Model returns m as an ONNX model: input InputName FLOAT [batch, In], per
// layer i a Gemm node reading initializers "layer<i>.weight" [In, Out] and
// "layer<i>.bias" [Out] followed by a Relu or Sigmoid node, and output
// OutputName FLOAT [batch, Out]. The model holds copies of the weights. Its
// Metadata is m.Metadata plus MetaLayers and MetaActivations, which describe
// the layers as they are now. Model does not check m; call Validate first
// when m is not known to be good.
func (m *MLP) Model() *Model {
	g := Graph{
		Name:    "infergate_mlp",
		Inputs:  []ValueInfo{{Name: m.InputName, Type: Float, Dims: []int64{-1, int64(m.In())}}},
		Outputs: []ValueInfo{{Name: m.OutputName, Type: Float, Dims: []int64{-1, int64(m.Out())}}},
	}
	sizes := make([]string, 0, len(m.Layers)+1)
	acts := make([]string, 0, len(m.Layers))
	if len(m.Layers) > 0 {
		sizes = append(sizes, strconv.Itoa(m.Layers[0].In))
	}
	cur := m.InputName
	for i := range m.Layers {
		l := &m.Layers[i]
		last := i == len(m.Layers)-1
		sizes = append(sizes, strconv.Itoa(l.Out))
		acts = append(acts, l.Act.String())

		prefix := "layer" + strconv.Itoa(i)
		weight, bias := prefix+".weight", prefix+".bias"
		g.Initializers = append(g.Initializers,
			Tensor{Name: weight, Type: Float, Dims: []int64{int64(l.In), int64(l.Out)}, Floats: slices.Clone(l.W)},
			Tensor{Name: bias, Type: Float, Dims: []int64{int64(l.Out)}, Floats: slices.Clone(l.B)},
		)
		gemmOut := prefix + ".gemm"
		if last && l.Act == None {
			gemmOut = m.OutputName
		}
		g.Nodes = append(g.Nodes, Node{
			OpType:  "Gemm",
			Name:    prefix + "/Gemm",
			Inputs:  []string{cur, weight, bias},
			Outputs: []string{gemmOut},
		})
		cur = gemmOut
		if l.Act == None {
			continue
		}
		op := "Relu"
		if l.Act == Sigmoid {
			op = "Sigmoid"
		}
		actOut := prefix + "." + l.Act.String()
		if last {
			actOut = m.OutputName
		}
		g.Nodes = append(g.Nodes, Node{
			OpType:  op,
			Name:    prefix + "/" + op,
			Inputs:  []string{cur},
			Outputs: []string{actOut},
		})
		cur = actOut
	}

	md := maps.Clone(m.Metadata)
	if md == nil {
		md = make(map[string]string, 2)
	}
	md[MetaLayers] = strings.Join(sizes, "-")
	md[MetaActivations] = strings.Join(acts, "-")
	return &Model{Graph: g, DocString: m.DocString, Metadata: md}
}
