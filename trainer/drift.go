package trainer

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// This file watches whether the inputs or the scores of a served model
// drifted from a reference window (the traffic a version was trained or
// accepted on), by the population stability index (PSI) of each feature
// and of the score: the values are binned at the reference's quantiles,
// and PSI compares the shares of the reference and of the current window
// in those bins. The usual reading (an industry rule of thumb, not a
// test of significance): below 0.1 the population is stable, from 0.1 to
// 0.25 it shifted moderately, above 0.25 it shifted a lot. With no drift
// at all, sampling noise alone gives a PSI of about
// (bins-1)·(1/N + 1/RefN), so small windows need a higher threshold.

// PSIModerate and PSILarge are the rule of thumb's thresholds: a PSI of
// PSIModerate or more is a moderate shift, PSILarge or more a large one.
const (
	PSIModerate = 0.1
	PSILarge    = 0.25
)

// DefaultBins is how many bins NewReference cuts when asked for 0.
const DefaultBins = 10

// psiFloor is the smallest share PSI uses for a bin: an empty bin's share
// would make the logarithm infinite.
const psiFloor = 1e-4

// ErrWindow is the error NewReference and Compare wrap when they cannot
// use the rows they were given.
var ErrWindow = errors.New("unusable drift window")

// Bins are the cut points of a reference sample's quantiles: value v
// falls in bin i where Cuts[i-1] < v <= Cuts[i] (the first bin is
// (-Inf, Cuts[0]], the last (Cuts[len-1], +Inf)), so there are
// len(Cuts)+1 bins. Cuts are strictly increasing. Values are ordered as
// by cmp.Compare: NaN is below every number, so it falls in the first
// bin (and drift to NaN shows as drift to the bottom).
type Bins struct {
	Cuts []float64 `json:"cuts"`
}

// NewBins returns the bins of ref cut at its quantiles j/n for j = 1 to
// n-1. The cut for j/n is the smallest value of ref that at least j/n of
// ref is less than or equal to (with 0..999 and n = 10: 99, 199, ...,
// 899, 100 values to a bin). Equal cuts, from ties, are merged, so a
// heavily tied reference has fewer bins. When the reference's minimum is
// itself a cut (ties at the minimum hold at least 1/n of ref), a cut just
// below it (math.Nextafter) is added, so that values below the reference
// get a bin of their own, as values above its maximum always do. The
// rule gives at most n bins, or n+1 with that extra cut; a constant
// reference c gets three: below c, c itself, and above c, so the same
// constant gives a PSI of 0 and a moved one a large PSI. An empty ref,
// or n < 2, gives a single bin (no cuts). ref is not modified.
func NewBins(ref []float64, n int) Bins {
	if len(ref) == 0 || n < 2 {
		return Bins{}
	}
	sorted := slices.Clone(ref)
	slices.Sort(sorted)
	var cuts []float64
	for j := 1; j < n; j++ {
		// The smallest k with k+1 >= j*len/n, i.e. ceil(j*len/n) - 1.
		k := (j*len(sorted)+n-1)/n - 1
		c := sorted[k]
		if len(cuts) == 0 || cmp.Compare(cuts[len(cuts)-1], c) != 0 {
			cuts = append(cuts, c)
		}
	}
	if lo := sorted[0]; cmp.Compare(cuts[0], lo) == 0 {
		if below := math.Nextafter(lo, math.Inf(-1)); below < lo {
			cuts = slices.Insert(cuts, 0, below)
		}
	}
	return Bins{Cuts: cuts}
}

// Len returns the number of bins, len(b.Cuts)+1.
func (b Bins) Len() int { return len(b.Cuts) + 1 }

// Counts returns how many of xs fall in each bin (b.Len() counts).
func (b Bins) Counts(xs []float64) []int {
	counts := make([]int, b.Len())
	for _, x := range xs {
		// The first cut >= x (cmp.Compare's order, as the cuts are).
		i, _ := slices.BinarySearch(b.Cuts, x)
		counts[i]++
	}
	return counts
}

// PSI returns the population stability index of current against
// reference counts of the same bins: the sum over the bins of
// (c_i - r_i)·ln(c_i/r_i), where r_i and c_i are the bins' shares of the
// reference's and the current's totals, each share floored at 1e-4 so
// that an empty bin keeps the sum finite. It is 0 for the same shares
// and grows with the shift (see the reading in this file's comment); it
// is symmetric in ref and cur. It returns NaN when either has no counts,
// and panics when they differ in length.
func PSI(ref, cur []int) float64 {
	if len(ref) != len(cur) {
		panic(fmt.Sprintf("trainer.PSI: %d reference bins and %d current ones; want the same", len(ref), len(cur)))
	}
	var rn, cn int
	for i := range ref {
		rn += ref[i]
		cn += cur[i]
	}
	if rn == 0 || cn == 0 {
		return math.NaN()
	}
	psi := 0.0
	for i := range ref {
		r := max(float64(ref[i])/float64(rn), psiFloor)
		c := max(float64(cur[i])/float64(cn), psiFloor)
		psi += (c - r) * math.Log(c/r)
	}
	return psi
}

// DriftReport is how a window of rows (features plus score) compares
// with a reference window.
type DriftReport struct {
	Features []float64 // PSI per feature
	Score    float64   // PSI of the model's score
	Worst    int       // index of the feature with the largest PSI (-1 when none)
	N, RefN  int       // rows in the window and in the reference
}

// Drifted reports whether the score's or any feature's PSI is at least
// threshold (say PSIModerate or PSILarge).
func (d DriftReport) Drifted(threshold float64) bool {
	if d.Score >= threshold {
		return true
	}
	for _, p := range d.Features {
		if p >= threshold {
			return true
		}
	}
	return false
}

// String formats the report on one line: the score's PSI and the worst
// feature's.
func (d DriftReport) String() string {
	worst := "no features"
	if d.Worst >= 0 {
		worst = fmt.Sprintf("worst feature %d: PSI %.4f", d.Worst, d.Features[d.Worst])
	}
	return fmt.Sprintf("score PSI %.4f, %s (%d rows against %d)", d.Score, worst, d.N, d.RefN)
}

// Reference holds a reference window's bins and counts per feature and
// for the score.
type Reference struct {
	features   []Bins
	featCounts [][]int
	score      Bins
	scoreCount []int
	n          int
}

// NewReference builds a Reference from rows of features (each of the same
// width; 0 is allowed) and their scores, with bins bins per feature and
// for the score (0 asks for DefaultBins). It returns an error wrapping
// ErrWindow when bins is below 2, when there are fewer than 10*bins rows,
// when scores and rows differ in number, or when rows differ in width.
func NewReference(features [][]float32, scores []float32, bins int) (*Reference, error) {
	if bins == 0 {
		bins = DefaultBins
	}
	if bins < 2 {
		return nil, fmt.Errorf("%d bins: want 2 or more: %w", bins, ErrWindow)
	}
	if len(features) < 10*bins {
		return nil, fmt.Errorf("%d reference rows: want at least 10*bins = %d: %w", len(features), 10*bins, ErrWindow)
	}
	width, err := checkWindow(features, scores, len(features[0]))
	if err != nil {
		return nil, err
	}
	r := &Reference{n: len(features)}
	col := make([]float64, len(features))
	for j := range width {
		column(col, features, j)
		b := NewBins(col, bins)
		r.features = append(r.features, b)
		r.featCounts = append(r.featCounts, b.Counts(col))
	}
	column32(col, scores)
	r.score = NewBins(col, bins)
	r.scoreCount = r.score.Counts(col)
	return r, nil
}

// Width returns the number of features per row.
func (r *Reference) Width() int { return len(r.features) }

// N returns the number of rows of the reference window.
func (r *Reference) N() int { return r.n }

// Compare computes the report for a current window: rows of features, of
// the reference's width, and their scores. It returns an error wrapping
// ErrWindow when there are no rows, when scores and rows differ in
// number, or when a row's width is not the reference's.
func (r *Reference) Compare(features [][]float32, scores []float32) (DriftReport, error) {
	if len(features) == 0 {
		return DriftReport{}, fmt.Errorf("no rows to compare with the reference's %d: %w", r.n, ErrWindow)
	}
	if _, err := checkWindow(features, scores, r.Width()); err != nil {
		return DriftReport{}, err
	}
	d := DriftReport{Features: make([]float64, r.Width()), Worst: -1, N: len(features), RefN: r.n}
	col := make([]float64, len(features))
	for j, b := range r.features {
		column(col, features, j)
		d.Features[j] = PSI(r.featCounts[j], b.Counts(col))
		if d.Worst < 0 || d.Features[j] > d.Features[d.Worst] {
			d.Worst = j
		}
	}
	column32(col, scores)
	d.Score = PSI(r.scoreCount, r.score.Counts(col))
	return d, nil
}

// checkWindow checks that there is a score per row and that every row has
// width features, and returns width.
func checkWindow(features [][]float32, scores []float32, width int) (int, error) {
	if len(scores) != len(features) {
		return 0, fmt.Errorf("%d rows but %d scores: want one score per row: %w", len(features), len(scores), ErrWindow)
	}
	for i, row := range features {
		if len(row) != width {
			return 0, fmt.Errorf("row %d has %d features; want %d: %w", i, len(row), width, ErrWindow)
		}
	}
	return width, nil
}

// column copies feature j of rows into col (len(rows) long).
func column(col []float64, rows [][]float32, j int) {
	for i, row := range rows {
		col[i] = float64(row[j])
	}
}

// column32 copies xs into col (len(xs) long).
func column32(col []float64, xs []float32) {
	for i, x := range xs {
		col[i] = float64(x)
	}
}

// referenceJSON is a Reference as its JSON has it.
type referenceJSON struct {
	Features   []Bins  `json:"features"`
	FeatCounts [][]int `json:"feature_counts"`
	Score      Bins    `json:"score"`
	ScoreCount []int   `json:"score_counts"`
	N          int     `json:"n"`
}

// MarshalJSON makes a Reference JSON, to be kept across restarts. A
// reference with an infinite cut (made of infinite values) cannot be.
func (r *Reference) MarshalJSON() ([]byte, error) {
	return json.Marshal(referenceJSON{r.features, r.featCounts, r.score, r.scoreCount, r.n})
}

// UnmarshalJSON reads what MarshalJSON wrote, and checks that it holds
// together.
func (r *Reference) UnmarshalJSON(b []byte) error {
	var j referenceJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ok := len(j.Features) == len(j.FeatCounts) && len(j.ScoreCount) == j.Score.Len() && j.N > 0
	for i := range j.Features {
		ok = ok && len(j.FeatCounts[i]) == j.Features[i].Len()
	}
	if !ok {
		return fmt.Errorf("%w: a saved reference whose bins and counts do not match", ErrWindow)
	}
	*r = Reference{features: j.Features, featCounts: j.FeatCounts, score: j.Score, scoreCount: j.ScoreCount, n: j.N}
	return nil
}
