package trainer

import (
	"container/heap"
	"encoding/binary"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trafficlog"
)

// Example is one logged prediction of one row: the features the model
// got, the score the version that answered gave (its first output value),
// and what feedback and a shadow said of it.
type Example struct {
	ID       string
	Time     time.Time
	Features []float32
	// Live is the answering version's score; Version that version, and
	// Arm the experiment arm that answered and Unit the unit it was
	// assigned by (empty outside experiments).
	Live      float32
	Version   int64
	Arm, Unit string
	// Label is the latest label feedback gave (HasLabel), Reward the
	// latest reward (HasReward).
	Label     float32
	HasLabel  bool
	Reward    float64
	HasReward bool
	// Shadow is what the shadow version ShadowVersion scored the same
	// request (0: no shadow copy was logged).
	Shadow        float32
	ShadowVersion int64
}

// JoinStats says what Join made of the events.
type JoinStats struct {
	Predictions, Feedback int // events of the model
	Joined                int // predictions with a usable label
	// Why the others were left out (NonFinite: a feature NaN or
	// infinite, which would poison the training).
	Unlabeled, MultiRow, WrongInput, BadLabel, Orphans, NonFinite int
	// Evicted counts the predictions dropped to stay within the limit.
	Evicted int
}

// Joiner pairs a model's logged predictions with their feedback and the
// shadow copies of them. Add events in any order; Examples returns the
// labeled pairs, All every prediction kept. It keeps the latest limit
// predictions (NewJoiner's) by their time, dropping the oldest (the
// first given among equal times: the nodes' logs are read one after the
// other), and outcomes only while their prediction is kept or may still
// come.
type Joiner struct {
	model, input string
	width, limit int
	preds        map[string]*kept
	// order lists the predictions in the order they came: an entry whose
	// prediction was dropped since (or given again after that) is
	// skipped. oldest holds the kept predictions by time (with limit),
	// and entries of times since replaced, skipped when they come up.
	order   []keptAt
	oldest  byTime
	seq     uint64
	labels  map[string]float64
	rewards map[string]float64
	shadows map[string]shadowScore
	stats   JoinStats
}

// kept is a prediction the Joiner keeps; seq numbers them as they came.
type kept struct {
	Example
	seq uint64
}

// keptAt names a kept prediction at a time (the time zero in order).
type keptAt struct {
	t   time.Time
	seq uint64
	id  string
}

// byTime is a heap of predictions, the oldest first (the first given
// among equal times).
type byTime []keptAt

func (h byTime) Len() int { return len(h) }
func (h byTime) Less(i, j int) bool {
	if c := h[i].t.Compare(h[j].t); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h byTime) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *byTime) Push(x any)   { *h = append(*h, x.(keptAt)) }
func (h *byTime) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type shadowScore struct {
	version int64
	score   float32
}

// NewJoiner returns a Joiner for model's predictions whose input named
// input is FP32 [1, width], keeping the latest limit of them (0: all).
func NewJoiner(model, input string, width, limit int) *Joiner {
	return &Joiner{model: model, input: input, width: width, limit: limit, preds: map[string]*kept{},
		labels: map[string]float64{}, rewards: map[string]float64{}, shadows: map[string]shadowScore{}}
}

// Add takes one event of the log; events of other models are ignored. A
// later label or reward for an id replaces an earlier one.
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
		if e.HasReward {
			j.rewards[e.ID] = e.Reward
		}
	case trafficlog.Shadow:
		if s, ok := firstFP32(e.Outputs); ok {
			j.shadows[e.ID] = shadowScore{e.Version, s}
		}
	case trafficlog.Prediction:
		j.stats.Predictions++
		x, ok := j.features(e)
		if !ok {
			return
		}
		live, ok := firstFP32(e.Outputs)
		if !ok {
			j.stats.WrongInput++
			return
		}
		ex := Example{ID: e.ID, Time: e.Time, Features: x, Live: live, Version: e.Version, Arm: e.Arm, Unit: e.Unit}
		k, seen := j.preds[e.ID]
		if seen {
			// Given again (read again, or an id a client reused): it keeps
			// its place among those that came.
			moved := !k.Time.Equal(e.Time)
			k.Example = ex
			if moved && j.limit > 0 {
				heap.Push(&j.oldest, keptAt{e.Time, k.seq, e.ID})
			}
		} else {
			j.seq++
			j.preds[e.ID] = &kept{ex, j.seq}
			j.order = append(j.order, keptAt{seq: j.seq, id: e.ID})
			if j.limit > 0 {
				heap.Push(&j.oldest, keptAt{e.Time, j.seq, e.ID})
			}
		}
		j.evict()
	}
	if j.limit > 0 && len(j.labels)+len(j.rewards)+len(j.shadows) > 6*j.limit {
		j.forgetOrphans()
	}
}

// evict drops the oldest predictions over the limit, with their outcomes.
func (j *Joiner) evict() {
	for j.limit > 0 && len(j.preds) > j.limit {
		o := heap.Pop(&j.oldest).(keptAt)
		if !j.holds(o) || !j.preds[o.id].Time.Equal(o.t) {
			continue // dropped before, or given again at another time
		}
		delete(j.preds, o.id)
		delete(j.labels, o.id)
		delete(j.rewards, o.id)
		delete(j.shadows, o.id)
		j.stats.Evicted++
	}
	if len(j.order) > 2*len(j.preds)+1024 {
		j.order = slices.DeleteFunc(j.order, func(o keptAt) bool { return !j.holds(o) })
	}
	if len(j.oldest) > 2*len(j.preds)+1024 {
		j.oldest = slices.DeleteFunc(j.oldest, func(o keptAt) bool { return !j.holds(o) || !j.preds[o.id].Time.Equal(o.t) })
		heap.Init(&j.oldest)
	}
}

// holds reports whether o names a prediction kept now.
func (j *Joiner) holds(o keptAt) bool {
	k := j.preds[o.id]
	return k != nil && k.seq == o.seq
}

// forgetOrphans drops the outcomes and shadow scores of predictions not
// kept: outcomes come after their prediction (or just before, from
// another node's log), so these are of predictions the log did not
// sample, or that were dropped.
func (j *Joiner) forgetOrphans() {
	for _, m := range []map[string]float64{j.labels, j.rewards} {
		for id := range m {
			if j.preds[id] == nil {
				delete(m, id)
				j.stats.Orphans++
			}
		}
	}
	for id := range j.shadows {
		if j.preds[id] == nil {
			delete(j.shadows, id)
		}
	}
}

// firstFP32 returns the first value of the first output, if FP32.
func firstFP32(outs []oip.Tensor) (float32, bool) {
	if len(outs) == 0 || outs[0].Datatype != oip.FP32 || len(outs[0].Data) < 4 {
		return 0, false
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(outs[0].Data)), true
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
			if f := float64(x[k]); math.IsNaN(f) || math.IsInf(f, 0) {
				j.stats.NonFinite++
				return nil, false
			}
		}
		return x, true
	}
	j.stats.WrongInput++
	return nil, false
}

// All returns every prediction kept, in the order they came, with the
// outcomes and shadow score known for it (a label outside 0 to 1 is left
// off). The examples share their Features with the Joiner.
func (j *Joiner) All() []Example {
	out := make([]Example, 0, len(j.preds))
	for _, o := range j.order {
		if !j.holds(o) {
			continue
		}
		id := o.id
		ex := j.preds[id].Example
		if y, ok := j.labels[id]; ok && y >= 0 && y <= 1 {
			ex.Label, ex.HasLabel = float32(y), true
		}
		if r, ok := j.rewards[id]; ok {
			ex.Reward, ex.HasReward = r, true
		}
		if s, ok := j.shadows[id]; ok {
			ex.Shadow, ex.ShadowVersion = s.score, s.version
		}
		out = append(out, ex)
	}
	return out
}

// Examples returns the predictions that have a label from 0 to 1, oldest
// first, and what was left out.
func (j *Joiner) Examples() ([]Example, JoinStats) {
	st := j.stats
	var out []Example
	for _, ex := range j.All() {
		if ex.HasLabel {
			out = append(out, ex)
			continue
		}
		if _, ok := j.labels[ex.ID]; ok {
			st.BadLabel++
		} else {
			st.Unlabeled++
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
