package trainer

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
	"github.com/infergate/infergate/trainer/onnx"
)

// synthetic returns n examples of in features (normal) labeled by rule:
// label 1 with probability rule(x).
func synthetic(seed uint64, n, in int, rule func(x []float32) float64) []Example {
	r := rand.New(rand.NewPCG(seed, 3))
	exs := make([]Example, n)
	for i := range exs {
		x := make([]float32, in)
		for k := range x {
			x[k] = float32(r.NormFloat64())
		}
		y := float32(0)
		if r.Float64() < rule(x) {
			y = 1
		}
		exs[i] = Example{ID: fmt.Sprint("ex-", i), Features: x, Label: y, Live: 0.5}
	}
	return exs
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// TestGradients checks the backward pass against central differences of
// the loss, for every weight and bias of a small MLP.
func TestGradients(t *testing.T) {
	exs := synthetic(1, 8, 3, func(x []float32) float64 { return sigmoid(float64(x[0] - x[1])) })
	for _, hidden := range [][]int{nil, {4}, {5, 3}} {
		cfg := DefaultConfig()
		cfg.Hidden = hidden
		m := onnx.NewMLP(7, append(append([]int{3}, hidden...), 1), onnx.Relu, onnx.Sigmoid)
		tr := newTrainer(m, cfg)
		batch := []int{0, 1, 2, 3, 4, 5, 6, 7}
		tr.gradients(exs, batch)
		const h = 1e-3
		for li := range m.Layers {
			l := &m.Layers[li]
			check := func(what string, p *float32, got float64) {
				t.Helper()
				orig := *p
				*p = orig + h
				up := tr.gradients(exs, batch)
				*p = orig - h
				down := tr.gradients(exs, batch)
				*p = orig
				want := (up - down) / (2 * h)
				if math.Abs(got-want) > 2e-3*math.Max(1, math.Abs(want)) {
					t.Fatalf("hidden %v, layer %d %s: gradient %g; numerically %g", hidden, li, what, got, want)
				}
			}
			tr.gradients(exs, batch)
			gW := append([]float64(nil), tr.gW[li]...)
			gB := append([]float64(nil), tr.gB[li]...)
			for k := range l.W {
				check(fmt.Sprint("W", k), &l.W[k], gW[k])
			}
			for k := range l.B {
				check(fmt.Sprint("B", k), &l.B[k], gB[k])
			}
		}
	}
}

// TestTrainLearnsTheRule: a logistic regression learns a linear rule
// about as well as the rule itself predicts its labels, and an MLP learns
// one a logistic regression cannot.
func TestTrainLearnsTheRule(t *testing.T) {
	linear := func(x []float32) float64 { return sigmoid(2*float64(x[0]) - float64(x[2]) + 0.5) }
	train, holdout := Split(synthetic(2, 6000, 8, linear), 5)
	m, losses, err := Train(DefaultConfig(), train)
	if err != nil {
		t.Fatal(err)
	}
	if losses[len(losses)-1] >= losses[0] {
		t.Fatalf("training loss went from %v to %v", losses[0], losses[len(losses)-1])
	}
	c := Compare(m, holdout)
	labels := make([]float32, len(holdout))
	truth := make([]float32, len(holdout))
	for i, ex := range holdout {
		labels[i] = ex.Label
		truth[i] = float32(linear(ex.Features))
	}
	best := Score(truth, labels)
	if !c.Better() || c.Candidate.AUC < best.AUC-0.01 || c.Candidate.LogLoss > best.LogLoss+0.01 {
		t.Fatalf("logistic regression on a linear rule: %v; the rule itself: %v; live (0.5): %v", c.Candidate, best, c.Live)
	}

	xor := func(x []float32) float64 {
		if x[0]*x[1] > 0 {
			return 0.95
		}
		return 0.05
	}
	train, holdout = Split(synthetic(3, 6000, 4, xor), 5)
	lr, _, _ := Train(DefaultConfig(), train)
	cfg := DefaultConfig()
	cfg.Hidden = []int{16}
	mlp, _, err := Train(cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := Compare(lr, holdout).Candidate.AUC, Compare(mlp, holdout).Candidate.AUC; a > 0.65 || b < 0.9 {
		t.Fatalf("on x0*x1 > 0: logistic regression AUC %.3f (want at most 0.65), MLP of 16 AUC %.3f (want 0.9 or more)", a, b)
	}
}

func TestTrainIsDeterministic(t *testing.T) {
	exs := synthetic(4, 500, 5, func(x []float32) float64 { return sigmoid(float64(x[1])) })
	cfg := DefaultConfig()
	cfg.Hidden = []int{6}
	a, _, _ := Train(cfg, exs)
	b, _, _ := Train(cfg, exs)
	if !reflect.DeepEqual(a.Layers, b.Layers) {
		t.Fatal("the same seed and examples gave two models")
	}
	cfg.Seed = 2
	c, _, _ := Train(cfg, exs)
	if reflect.DeepEqual(a.Layers, c.Layers) {
		t.Fatal("another seed gave the same model")
	}
}

func TestScore(t *testing.T) {
	f := func(scores, labels []float32, auc, acc float64) {
		t.Helper()
		m := Score(scores, labels)
		if !(m.AUC == auc || math.IsNaN(auc) && math.IsNaN(m.AUC)) || m.Accuracy != acc {
			t.Fatalf("Score(%v, %v): AUC %v, accuracy %v; want %v, %v", scores, labels, m.AUC, m.Accuracy, auc, acc)
		}
	}
	f([]float32{0.1, 0.4, 0.6, 0.9}, []float32{0, 0, 1, 1}, 1, 1)
	f([]float32{0.9, 0.6, 0.4, 0.1}, []float32{0, 0, 1, 1}, 0, 0)
	f([]float32{0.5, 0.5, 0.5, 0.5}, []float32{0, 1, 0, 1}, 0.5, 0.5)
	f([]float32{0.2, 0.7, 0.7, 0.9}, []float32{0, 1, 0, 1}, 0.875, 0.75)
	f([]float32{0.2, 0.7}, []float32{1, 1}, math.NaN(), 0.5)
	if m := Score([]float32{1}, []float32{1}); m.LogLoss > 1e-6 {
		t.Fatalf("a sure right answer costs %v", m.LogLoss)
	}
}

func fp32Row(name string, vals ...float32) oip.Tensor {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return oip.Tensor{Name: name, Datatype: oip.FP32, Shape: []int64{1, int64(len(vals))}, Data: b}
}

func TestJoiner(t *testing.T) {
	j := NewJoiner("ctr", "features", 2, 0)
	pred := func(id, model string, in oip.Tensor, score float32) {
		j.Add(&trafficlog.Event{Kind: trafficlog.Prediction, ID: id, Model: model, Version: 3,
			Inputs: []oip.Tensor{in}, Outputs: []oip.Tensor{fp32Row("score", score)}})
	}
	label := func(id, model string, y float64) {
		j.Add(&trafficlog.Event{Kind: trafficlog.Feedback, ID: id, Model: model, Label: y, HasLabel: true})
	}
	label("a", "ctr", 0) // before its prediction: still joined
	pred("a", "ctr", fp32Row("features", 1, 2), 0.25)
	pred("b", "ctr", fp32Row("features", 3, 4), 0.75)
	label("b", "ctr", 0)
	label("b", "ctr", 1)                             // the later label wins
	pred("c", "ctr", fp32Row("features", 5, 6), 0.5) // no label
	two := fp32Row("features", 1, 2, 3, 4)
	two.Shape = []int64{2, 2}
	pred("d", "ctr", two, 0.5) // two rows, one label
	label("d", "ctr", 1)
	pred("e", "ctr", fp32Row("features", 1, 2, 3), 0.5) // wrong width
	pred("f", "ctr", fp32Row("features", 7, 8), 0.5)
	label("f", "ctr", 3) // not a probability
	label("g", "ctr", 1) // no prediction
	pred("h", "ranker", fp32Row("features", 1, 2), 0.5)
	label("h", "ranker", 1)
	j.Add(&trafficlog.Event{Kind: trafficlog.Feedback, ID: "a", Model: "ctr", Reward: 5, HasReward: true}) // no label: keeps a's
	exs, st := j.Examples()
	want := []Example{
		{ID: "a", Features: []float32{1, 2}, Label: 0, HasLabel: true, Reward: 5, HasReward: true, Live: 0.25, Version: 3},
		{ID: "b", Features: []float32{3, 4}, Label: 1, HasLabel: true, Live: 0.75, Version: 3},
	}
	if !reflect.DeepEqual(exs, want) {
		t.Fatalf("examples %+v; want %+v", exs, want)
	}
	wantStats := JoinStats{Predictions: 6, Feedback: 7, Joined: 2, Unlabeled: 1, MultiRow: 1, WrongInput: 1, BadLabel: 1, Orphans: 2}
	if st != wantStats {
		t.Fatalf("stats %+v; want %+v", st, wantStats)
	}
}

// TestJoinerKeepsTheLatest: with a limit, the Joiner keeps the latest
// predictions with their outcomes and shadow scores, drops the oldest
// with theirs, and forgets outcomes of predictions it never saw once
// they pile up.
func TestJoinerKeepsTheLatest(t *testing.T) {
	j := NewJoiner("ctr", "features", 1, 3)
	for i := range 5 {
		id := fmt.Sprint("p-", i)
		j.Add(&trafficlog.Event{Kind: trafficlog.Prediction, ID: id, Model: "ctr", Version: 1, Arm: "a",
			Inputs: []oip.Tensor{fp32Row("features", float32(i))}, Outputs: []oip.Tensor{fp32Row("score", 0.5)}})
		j.Add(&trafficlog.Event{Kind: trafficlog.Feedback, ID: id, Model: "ctr", Label: 1, HasLabel: true, Reward: float64(i), HasReward: true})
		j.Add(&trafficlog.Event{Kind: trafficlog.Shadow, ID: id, Model: "ctr", Version: 2, Outputs: []oip.Tensor{fp32Row("score", 0.25)}})
	}
	all := j.All()
	if len(all) != 3 {
		t.Fatalf("kept %d predictions; want the latest 3", len(all))
	}
	for k, ex := range all {
		i := k + 2
		want := Example{ID: fmt.Sprint("p-", i), Features: []float32{float32(i)}, Live: 0.5, Version: 1, Arm: "a",
			Label: 1, HasLabel: true, Reward: float64(i), HasReward: true, Shadow: 0.25, ShadowVersion: 2}
		if !reflect.DeepEqual(ex, want) {
			t.Fatalf("kept %+v; want %+v", ex, want)
		}
	}
	for i := range 100 { // outcomes of predictions the log did not sample
		j.Add(&trafficlog.Event{Kind: trafficlog.Feedback, ID: fmt.Sprint("x-", i), Model: "ctr", Label: 0, HasLabel: true})
	}
	if n := len(j.labels) + len(j.rewards) + len(j.shadows); n > 6*3+1 {
		t.Fatalf("%d outcomes kept with a limit of 3 predictions", n)
	}
	if _, st := j.Examples(); st.Evicted != 2 || st.Joined != 3 {
		t.Fatalf("stats %+v; want 2 evicted, 3 joined", st)
	}
}
