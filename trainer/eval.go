package trainer

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/infergate/infergate/trainer/onnx"
)

// Metrics is how well scores predict labels.
type Metrics struct {
	N, Positives int
	// LogLoss is the mean binary cross-entropy (lower is better).
	LogLoss float64
	// AUC is the probability that a positive example scores above a
	// negative one, ties counting half (0.5 is chance; NaN without both
	// kinds). A label of 0.5 or more counts as positive.
	AUC float64
	// Accuracy is the share of examples on the label's side of 0.5.
	Accuracy float64
}

func (m Metrics) String() string {
	return fmt.Sprintf("log loss %.4f, AUC %.4f, accuracy %.4f (%d examples, %d positive)", m.LogLoss, m.AUC, m.Accuracy, m.N, m.Positives)
}

// Score computes Metrics of scores against labels, which have the same
// length.
func Score(scores, labels []float32) Metrics {
	m := Metrics{N: len(scores)}
	if m.N == 0 {
		return Metrics{LogLoss: math.NaN(), AUC: math.NaN(), Accuracy: math.NaN()}
	}
	type pair struct {
		s   float32
		pos bool
	}
	pairs := make([]pair, len(scores))
	right := 0
	for i, s := range scores {
		y := float64(labels[i])
		m.LogLoss += bce(float64(s), y)
		pos := labels[i] >= 0.5
		if pos {
			m.Positives++
		}
		if (s >= 0.5) == pos {
			right++
		}
		pairs[i] = pair{s, pos}
	}
	m.LogLoss /= float64(m.N)
	m.Accuracy = float64(right) / float64(m.N)
	neg := m.N - m.Positives
	if m.Positives == 0 || neg == 0 {
		m.AUC = math.NaN()
		return m
	}
	// Mann-Whitney: the positives' rank sum, ties at their mean rank. NaN
	// scores rank lowest, tied with each other (cmp.Compare's order).
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.s, b.s) })
	rankSum := 0.0
	for i := 0; i < len(pairs); {
		j := i
		for j < len(pairs) && cmp.Compare(pairs[j].s, pairs[i].s) == 0 {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if pairs[k].pos {
				rankSum += mean
			}
		}
		i = j
	}
	p := float64(m.Positives)
	m.AUC = (rankSum - p*(p+1)/2) / (p * float64(neg))
	return m
}

// Comparison is a candidate and the live versions scored on the same
// holdout examples.
type Comparison struct {
	Live, Candidate Metrics
}

// Better reports whether the candidate's log loss is lower than the live
// versions'.
func (c Comparison) Better() bool { return c.Candidate.LogLoss < c.Live.LogLoss }

// Compare scores m and the live versions (each example's Live score) on
// holdout.
func Compare(m *onnx.MLP, holdout []Example) Comparison {
	if len(holdout) == 0 {
		return Comparison{Live: Score(nil, nil), Candidate: Score(nil, nil)}
	}
	in := len(holdout[0].Features)
	x := make([]float32, 0, len(holdout)*in)
	labels := make([]float32, len(holdout))
	live := make([]float32, len(holdout))
	for i, ex := range holdout {
		x = append(x, ex.Features...)
		labels[i] = ex.Label
		live[i] = ex.Live
	}
	return Comparison{Live: Score(live, labels), Candidate: Score(m.Forward(x, len(holdout)), labels)}
}

// BaseRate returns the log loss on holdout of always predicting the mean
// label of train: what a model must beat to have learned anything from
// the features.
func BaseRate(train, holdout []Example) float64 {
	if len(train) == 0 || len(holdout) == 0 {
		return math.NaN()
	}
	p := 0.0
	for i := range train {
		p += float64(train[i].Label)
	}
	p /= float64(len(train))
	loss := 0.0
	for i := range holdout {
		loss += bce(p, float64(holdout[i].Label))
	}
	return loss / float64(len(holdout))
}
