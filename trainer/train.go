package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/infergate/infergate/trainer/onnx"
)

// Config says what Train trains and how.
type Config struct {
	// Hidden lists the hidden layers' sizes (ReLU); none trains a
	// logistic regression.
	Hidden []int
	// Epochs is how many passes over the examples; BatchSize how many
	// examples one step of Adam averages.
	Epochs, BatchSize int
	// LearningRate is Adam's step size; L2 the weight decay added to the
	// gradient of every weight (not the biases).
	LearningRate, L2 float64
	// Seed picks the initial weights and the order of the examples: the
	// same seed and examples give the same model.
	Seed uint64
	// InputName and OutputName name the model's tensors, as the served
	// version names them.
	InputName, OutputName string
}

// DefaultConfig returns a logistic regression's settings.
func DefaultConfig() Config {
	return Config{Epochs: 20, BatchSize: 64, LearningRate: 0.01, L2: 1e-4, Seed: 1,
		InputName: onnx.DefaultInputName, OutputName: onnx.DefaultOutputName}
}

// Validate reports settings that cannot train.
func (c *Config) Validate() error {
	switch {
	case c.Epochs < 1 || c.Epochs > 10000:
		return fmt.Errorf("epochs %d: use 1 to 10000", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size %d: use 1 or more", c.BatchSize)
	case !(c.LearningRate > 0 && c.LearningRate < 10):
		return fmt.Errorf("learning rate %v: use more than 0 and less than 10", c.LearningRate)
	case !(c.L2 >= 0 && c.L2 < 1):
		return fmt.Errorf("L2 %v: use 0 or more and less than 1", c.L2)
	case c.InputName == "" || c.OutputName == "":
		return errors.New("the model's input and output need names")
	}
	for _, h := range c.Hidden {
		if h < 1 || h > 4096 {
			return fmt.Errorf("hidden layer of %d units: use 1 to 4096", h)
		}
	}
	return nil
}

// Train trains a model on exs, whose Features all have the same length,
// and returns it with the mean training loss of each epoch.
func Train(cfg Config, exs []Example) (*onnx.MLP, []float64, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if len(exs) == 0 {
		return nil, nil, errors.New("no examples to train on")
	}
	in := len(exs[0].Features)
	sizes := append(append([]int{in}, cfg.Hidden...), 1)
	m := onnx.NewMLP(cfg.Seed, sizes, onnx.Relu, onnx.Sigmoid)
	m.InputName, m.OutputName = cfg.InputName, cfg.OutputName
	t := newTrainer(m, cfg)
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x747261696e)) // "train"
	var losses []float64
	for range cfg.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		sum := 0.0
		for start := 0; start < len(order); start += cfg.BatchSize {
			batch := order[start:min(start+cfg.BatchSize, len(order))]
			sum += t.step(exs, batch) * float64(len(batch))
		}
		losses = append(losses, sum/float64(len(exs)))
	}
	return m, losses, nil
}

// trainer holds Adam's state and the buffers of one step.
type trainer struct {
	m    *onnx.MLP
	cfg  Config
	t    int
	mW   [][]float64 // Adam's moments, per layer: weights then biases
	vW   [][]float64
	mB   [][]float64
	vB   [][]float64
	acts [][]float32 // per layer's output (index 0: the input), batch × units
	zs   [][]float32 // pre-activations, per layer
	gW   [][]float64
	gB   [][]float64
}

func newTrainer(m *onnx.MLP, cfg Config) *trainer {
	t := &trainer{m: m, cfg: cfg}
	for _, l := range m.Layers {
		t.mW = append(t.mW, make([]float64, len(l.W)))
		t.vW = append(t.vW, make([]float64, len(l.W)))
		t.mB = append(t.mB, make([]float64, len(l.B)))
		t.vB = append(t.vB, make([]float64, len(l.B)))
		t.gW = append(t.gW, make([]float64, len(l.W)))
		t.gB = append(t.gB, make([]float64, len(l.B)))
	}
	return t
}

// step runs one step of Adam on exs[batch] and returns the batch's mean
// loss before the step.
func (t *trainer) step(exs []Example, batch []int) float64 {
	loss := t.gradients(exs, batch)
	t.t++
	layers := t.m.Layers
	for li := range layers {
		l := &layers[li]
		for k := range l.W {
			g := t.gW[li][k] + t.cfg.L2*float64(l.W[k])
			l.W[k] -= float32(t.adam(&t.mW[li][k], &t.vW[li][k], g))
		}
		for k := range l.B {
			l.B[k] -= float32(t.adam(&t.mB[li][k], &t.vB[li][k], t.gB[li][k]))
		}
	}
	return loss
}

// gradients computes the mean loss of exs[batch] and its gradients (the
// L2 term left out) into gW and gB.
func (t *trainer) gradients(exs []Example, batch []int) float64 {
	layers := t.m.Layers
	n := len(batch)
	in := layers[0].In
	// Forward, keeping what the backward pass needs.
	t.acts = t.acts[:0]
	t.zs = t.zs[:0]
	x := make([]float32, n*in)
	for r, i := range batch {
		copy(x[r*in:], exs[i].Features)
	}
	t.acts = append(t.acts, x)
	for li := range layers {
		l := &layers[li]
		prev := t.acts[li]
		z := make([]float32, n*l.Out)
		for r := range n {
			row := z[r*l.Out : (r+1)*l.Out]
			copy(row, l.B)
			for k, xk := range prev[r*l.In : (r+1)*l.In] {
				if xk == 0 {
					continue
				}
				w := l.W[k*l.Out : (k+1)*l.Out]
				for j, wkj := range w {
					row[j] += xk * wkj
				}
			}
		}
		a := make([]float32, len(z))
		for j, v := range z {
			switch l.Act {
			case onnx.Relu:
				a[j] = max(v, 0)
			case onnx.Sigmoid:
				a[j] = float32(1 / (1 + math.Exp(-float64(v))))
			default:
				a[j] = v
			}
		}
		t.zs = append(t.zs, z)
		t.acts = append(t.acts, a)
	}
	// The loss, and its gradient at the last pre-activation: for a
	// sigmoid and the binary cross-entropy, p - y.
	out := t.acts[len(layers)]
	dz := make([]float64, n)
	loss := 0.0
	for r, i := range batch {
		p := float64(out[r])
		y := float64(exs[i].Label)
		loss += bce(p, y)
		dz[r] = (p - y) / float64(n)
	}
	loss /= float64(n)
	// Backward.
	for li := len(layers) - 1; li >= 0; li-- {
		l := &layers[li]
		prev := t.acts[li]
		gW, gB := t.gW[li], t.gB[li]
		clear(gW)
		clear(gB)
		for r := range n {
			d := dz[r*l.Out : (r+1)*l.Out]
			for j, dj := range d {
				gB[j] += dj
			}
			for k, xk := range prev[r*l.In : (r+1)*l.In] {
				if xk == 0 {
					continue
				}
				g := gW[k*l.Out : (k+1)*l.Out]
				for j, dj := range d {
					g[j] += float64(xk) * dj
				}
			}
		}
		if li > 0 {
			// The gradient at the previous layer's pre-activation, with
			// the weights before this step.
			below := &layers[li-1]
			zPrev := t.zs[li-1]
			next := make([]float64, n*l.In)
			for r := range n {
				d := dz[r*l.Out : (r+1)*l.Out]
				for k := range l.In {
					if below.Act == onnx.Relu && zPrev[r*l.In+k] <= 0 {
						continue
					}
					w := l.W[k*l.Out : (k+1)*l.Out]
					s := 0.0
					for j, dj := range d {
						s += float64(w[j]) * dj
					}
					next[r*l.In+k] = s
				}
			}
			dz = next
		}
	}
	return loss
}

// adam updates one parameter's moments with gradient g and returns its
// step.
func (t *trainer) adam(m, v *float64, g float64) float64 {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	*m = b1**m + (1-b1)*g
	*v = b2**v + (1-b2)*g*g
	mh := *m / (1 - math.Pow(b1, float64(t.t)))
	vh := *v / (1 - math.Pow(b2, float64(t.t)))
	return t.cfg.LearningRate * mh / (math.Sqrt(vh) + eps)
}

// bce is the binary cross-entropy of predicting p for label y, with p
// kept within [1e-7, 1-1e-7]; a NaN p costs what the surest wrong answer
// does (about 16.1): a version that answers NaN is as wrong as can be.
func bce(p, y float64) float64 {
	const eps = 1e-7
	if math.IsNaN(p) {
		p = 1 - eps
		if y >= 0.5 {
			p = eps
		}
	}
	p = min(max(p, eps), 1-eps)
	return -(y*math.Log(p) + (1-y)*math.Log(1-p))
}
