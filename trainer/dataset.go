package trainer

import (
	"encoding/binary"
	"hash/fnv"
	"math"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// Example is one labeled prediction: the features the model got, the
// label the client reported, and the score the version that answered
// gave (its first output value), to compare a candidate with.
type Example struct {
	ID       string
	Features []float32
	Label    float32
	Live     float32
	Version  int64
}

// JoinStats says what Join made of the events.
type JoinStats struct {
	Predictions, Feedback int // events of the model
	Joined                int // predictions with a usable label
	// Why the others were left out.
	Unlabeled, MultiRow, WrongInput, BadLabel, Orphans int
}

// Joiner pairs a model's logged predictions with their feedback labels.
// Add events in any order; Examples returns the pairs.
type Joiner struct {
	model, input string
	width        int
	preds        map[string]*Example
	order        []string
	labels       map[string]float64
	stats        JoinStats
}

// NewJoiner returns a Joiner for model's predictions whose input named
// input is FP32 [1, width].
func NewJoiner(model, input string, width int) *Joiner {
	return &Joiner{model: model, input: input, width: width, preds: map[string]*Example{}, labels: map[string]float64{}}
}

// Add takes one event of the log; events of other models are ignored. A
// later label for an id replaces an earlier one.
func (j *Joiner) Add(e *trafficlog.Event) {
	if e.Model != j.model {
		return
	}
	switch e.Kind {
	case trafficlog.Feedback:
		j.stats.Feedback++
		if e.HasLabel {
			j.labels[e.ID] = e.Label
		}
	case trafficlog.Prediction:
		j.stats.Predictions++
		x, ok := j.features(e)
		if !ok {
			return
		}
		if len(e.Outputs) == 0 || e.Outputs[0].Datatype != oip.FP32 || len(e.Outputs[0].Data) < 4 {
			j.stats.WrongInput++
			return
		}
		live := math.Float32frombits(binary.LittleEndian.Uint32(e.Outputs[0].Data))
		if _, seen := j.preds[e.ID]; !seen {
			j.order = append(j.order, e.ID)
		}
		j.preds[e.ID] = &Example{ID: e.ID, Features: x, Live: live, Version: e.Version}
	}
}

// features returns e's input as a row of width values, if it is one.
func (j *Joiner) features(e *trafficlog.Event) ([]float32, bool) {
	for i := range e.Inputs {
		t := &e.Inputs[i]
		if t.Name != j.input {
			continue
		}
		if len(t.Shape) != 2 || t.Shape[1] != int64(j.width) || t.Datatype != oip.FP32 {
			j.stats.WrongInput++
			return nil, false
		}
		if t.Shape[0] != 1 {
			// One id, one label: a request of several rows has one
			// outcome for all of them, which says nothing of each.
			j.stats.MultiRow++
			return nil, false
		}
		if len(t.Data) != 4*j.width {
			j.stats.WrongInput++
			return nil, false
		}
		x := make([]float32, j.width)
		for k := range x {
			x[k] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*k:]))
		}
		return x, true
	}
	j.stats.WrongInput++
	return nil, false
}

// Examples returns the predictions that have a label from 0 to 1, in the
// order they were first seen, and what was left out.
func (j *Joiner) Examples() ([]Example, JoinStats) {
	st := j.stats
	var out []Example
	for _, id := range j.order {
		ex := j.preds[id]
		y, ok := j.labels[id]
		switch {
		case !ok:
			st.Unlabeled++
		case !(y >= 0 && y <= 1):
			st.BadLabel++
		default:
			ex.Label = float32(y)
			out = append(out, *ex)
		}
	}
	for id := range j.labels {
		if j.preds[id] == nil {
			st.Orphans++
		}
	}
	st.Joined = len(out)
	return out, st
}

// Split puts about one example in holdoutEvery into the holdout, by a
// hash of its id: the same example lands on the same side in every run,
// however the log was read.
func Split(exs []Example, holdoutEvery int) (train, holdout []Example) {
	for _, ex := range exs {
		h := fnv.New64a()
		h.Write([]byte(ex.ID))
		if h.Sum64()%uint64(holdoutEvery) == 0 {
			holdout = append(holdout, ex)
		} else {
			train = append(train, ex)
		}
	}
	return train, holdout
}
