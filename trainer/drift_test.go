package trainer

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestPSI(t *testing.T) {
	f := func(ref, cur []int, want float64) {
		t.Helper()
		if got := PSI(ref, cur); !near(got, want, 1e-12) {
			t.Fatalf("PSI(%v, %v) = %.17g; want %.17g", ref, cur, got, want)
		}
	}
	// The same shares, whatever the totals.
	f([]int{10, 20, 30, 40}, []int{10, 20, 30, 40}, 0)
	f([]int{10, 20, 30, 40}, []int{1, 2, 3, 4}, 0)
	f([]int{7}, []int{3}, 0)
	// Two bins by hand: shares 0.3, 0.7 against 0.6, 0.4.
	f([]int{30, 70}, []int{60, 40}, (0.6-0.3)*math.Log(0.6/0.3)+(0.4-0.7)*math.Log(0.4/0.7))
	f([]int{60, 40}, []int{30, 70}, (0.6-0.3)*math.Log(0.6/0.3)+(0.4-0.7)*math.Log(0.4/0.7))
	// An empty bin's share is floored at 1e-4.
	f([]int{100, 0}, []int{50, 50}, (0.5-1)*math.Log(0.5/1)+(0.5-1e-4)*math.Log(0.5/1e-4))
	f([]int{0, 9, 0}, []int{0, 0, 4}, 2*(1-1e-4)*math.Log(1/1e-4))
	// No counts on a side: no answer.
	f([]int{0, 0}, []int{1, 2}, math.NaN())
	f([]int{1, 2}, []int{0, 0}, math.NaN())
	f(nil, nil, math.NaN())

	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "2 reference bins and 3 current") {
			t.Fatalf("PSI of 2 and 3 bins: panic %q; want one naming the lengths", msg)
		}
	}()
	PSI([]int{1, 2}, []int{1, 2, 3})
}

func TestBinsCounts(t *testing.T) {
	f := func(cuts, xs []float64, want []int) {
		t.Helper()
		if got := (Bins{Cuts: cuts}).Counts(xs); !slices.Equal(got, want) {
			t.Fatalf("Bins%v.Counts(%v) = %v; want %v", cuts, xs, got, want)
		}
	}
	inf, nan := math.Inf(1), math.NaN()
	// A value on a cut belongs to the bin below; NaN to the first.
	f([]float64{1, 2}, []float64{0, 1, 1.5, 2, 3, -inf, inf, nan, math.Nextafter(1, 2)}, []int{4, 3, 2})
	f(nil, []float64{-inf, 0, nan, 5}, []int{4})
	f([]float64{0}, nil, []int{0, 0})
	f([]float64{0}, []float64{math.Copysign(0, -1), 0}, []int{2, 0})
}

func TestNewBins(t *testing.T) {
	f := func(ref []float64, n int, want []float64) {
		t.Helper()
		got := NewBins(ref, n)
		if !slices.Equal(got.Cuts, want) {
			t.Fatalf("NewBins(%v, %d).Cuts = %v; want %v", ref, n, got.Cuts, want)
		}
		if got.Len() != len(want)+1 {
			t.Fatalf("Len() = %d; want %d", got.Len(), len(want)+1)
		}
	}
	// Deciles of 1..10 (the smallest value with j/n of the data at or
	// below it), with the minimum a cut: a cut just below it too.
	f([]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 10, []float64{math.Nextafter(1, 0), 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f([]float64{4, 3, 2, 1}, 2, []float64{2})
	f([]float64{1, 2, 3, 4, 5}, 2, []float64{3})
	// Ties merge; half zeros keep one cut at 0 and one below it.
	f([]float64{0, 0, 0, 0, 1, 2, 3, 4}, 4, []float64{math.Nextafter(0, -1), 0, 2})
	// A constant gets below, itself, above.
	f([]float64{5, 5, 5}, 10, []float64{math.Nextafter(5, 0), 5})
	f([]float64{math.Inf(-1), math.Inf(-1), 1}, 2, []float64{math.Inf(-1)})
	// Nothing to cut.
	f(nil, 10, nil)
	f([]float64{1, 2, 3}, 1, nil)

	// 0..999 (shuffled) in 10 bins: cuts near the deciles, 100 a bin.
	r := rand.New(rand.NewPCG(1, 2))
	ref := make([]float64, 1000)
	for i := range ref {
		ref[i] = float64(i)
	}
	r.Shuffle(len(ref), func(i, j int) { ref[i], ref[j] = ref[j], ref[i] })
	kept := slices.Clone(ref)
	b := NewBins(ref, 10)
	if !slices.Equal(ref, kept) {
		t.Fatal("NewBins modified its reference")
	}
	if len(b.Cuts) != 9 {
		t.Fatalf("cuts %v; want 9", b.Cuts)
	}
	for j, c := range b.Cuts {
		if decile := float64(100 * (j + 1)); math.Abs(c-decile) > 1 {
			t.Fatalf("cut %d = %v; want within 1 of %v", j, c, decile)
		}
	}
	for i, c := range b.Counts(ref) {
		if c < 99 || c > 101 {
			t.Fatalf("bin %d holds %d of 1000; want about 100 (counts %v)", i, c, b.Counts(ref))
		}
	}
}

// TestConstantReference checks that a constant feature still gives a
// sane PSI: 0 for the same constant, large when it moved either way.
func TestConstantReference(t *testing.T) {
	ref := slices.Repeat([]float64{3}, 500)
	b := NewBins(ref, 10)
	refCounts := b.Counts(ref)
	f := func(cur []float64, lo, hi float64) {
		t.Helper()
		if got := PSI(refCounts, b.Counts(cur)); !(got >= lo && got <= hi) {
			t.Fatalf("PSI of %v... against a constant 3 = %v; want %v to %v", cur[:1], got, lo, hi)
		}
	}
	f(slices.Repeat([]float64{3}, 200), 0, 0)
	f(slices.Repeat([]float64{4}, 200), 1, math.Inf(1))
	f(slices.Repeat([]float64{2.5}, 200), 1, math.Inf(1))
	f(slices.Repeat([]float64{math.NaN()}, 200), 1, math.Inf(1))
	// Half moved: between.
	f(append(slices.Repeat([]float64{3}, 100), slices.Repeat([]float64{4}, 100)...), 1, 10)
}

// window returns n rows of width normal features (feature j scaled by
// j+1) and scores, from seed; shift[j] moves feature j by that many of
// its standard deviations, and scoreShift the scores likewise.
func window(seed uint64, n, width int, shift []float64, scoreShift float64) ([][]float32, []float32) {
	r := rand.New(rand.NewPCG(seed, 99))
	rows, scores := make([][]float32, n), make([]float32, n)
	for i := range rows {
		rows[i] = make([]float32, width)
		for j := range rows[i] {
			sd := float64(j + 1)
			x := r.NormFloat64()
			if j < len(shift) {
				x += shift[j]
			}
			rows[i][j] = float32(sd * x)
		}
		scores[i] = float32(1 / (1 + math.Exp(-(r.NormFloat64() + scoreShift))))
	}
	return rows, scores
}

func TestReferenceCompare(t *testing.T) {
	refRows, refScores := window(1, 5000, 4, nil, 0)
	ref, err := NewReference(refRows, refScores, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Width() != 4 || ref.N() != 5000 {
		t.Fatalf("Width %d, N %d; want 4, 5000", ref.Width(), ref.N())
	}
	f := func(seed uint64, shift []float64, scoreShift float64, drifted []bool, scoreDrifted bool, worst int) {
		t.Helper()
		rows, scores := window(seed, 5000, 4, shift, scoreShift)
		d, err := ref.Compare(rows, scores)
		if err != nil {
			t.Fatal(err)
		}
		if d.N != 5000 || d.RefN != 5000 || len(d.Features) != 4 {
			t.Fatalf("N %d, RefN %d, %d features; want 5000, 5000, 4", d.N, d.RefN, len(d.Features))
		}
		for j, p := range d.Features {
			if drifted[j] && !(p > PSIModerate) {
				t.Fatalf("feature %d: PSI %v; want more than %v (%v)", j, p, PSIModerate, d)
			}
			if !drifted[j] && !(p < 0.02) {
				t.Fatalf("feature %d: PSI %v; want less than 0.02 (%v)", j, p, d)
			}
		}
		if scoreDrifted && !(d.Score > PSIModerate) || !scoreDrifted && !(d.Score < 0.02) {
			t.Fatalf("score PSI %v; drift %v (%v)", d.Score, scoreDrifted, d)
		}
		t.Logf("seed %d: %v, features %.4f", seed, d, d.Features)
		if d.Worst != worst && worst >= 0 { // worst < 0: any
			t.Fatalf("Worst = %d; want %d (%v)", d.Worst, worst, d)
		}
		if d.Drifted(PSIModerate) != (scoreDrifted || slices.Contains(drifted, true)) {
			t.Fatalf("Drifted(%v) = %v (%v)", PSIModerate, d.Drifted(PSIModerate), d)
		}
		if !d.Drifted(0) {
			t.Fatalf("Drifted(0) = false; PSI is never negative (%v)", d)
		}
	}
	none := []bool{false, false, false, false}
	// Another sample of the same distributions.
	f(2, nil, 0, none, false, -1)
	f(3, nil, 0, none, false, -1)
	// Feature 2 moved by half its standard deviation: that one only.
	f(4, []float64{0, 0, 0.5}, 0, []bool{false, false, true, false}, false, 2)
	f(5, []float64{0, -0.5}, 0, []bool{false, true, false, false}, false, 1)
	// The score moved, not the features.
	f(6, nil, 0.5, none, true, -1)
	// Feature 0 moved a lot, feature 3 a little less.
	f(7, []float64{2, 0, 0, 1}, 0, []bool{true, false, false, true}, false, 0)
}

func TestDriftReport(t *testing.T) {
	f := func(d DriftReport, threshold float64, want bool) {
		t.Helper()
		if got := d.Drifted(threshold); got != want {
			t.Fatalf("%+v.Drifted(%v) = %v; want %v", d, threshold, got, want)
		}
	}
	f(DriftReport{Features: []float64{0.01, 0.3}, Score: 0.02, Worst: 1}, PSILarge, true)
	f(DriftReport{Features: []float64{0.01, 0.3}, Score: 0.02, Worst: 1}, 0.31, false)
	f(DriftReport{Features: []float64{0.01, 0.1}, Score: 0.02, Worst: 1}, 0.1, true)
	f(DriftReport{Score: 0.25, Worst: -1}, PSILarge, true)
	f(DriftReport{Score: 0.2, Worst: -1}, PSILarge, false)
	f(DriftReport{Score: math.NaN(), Worst: -1}, PSILarge, false)

	s := DriftReport{Features: []float64{0.01, 0.3}, Score: 0.02, Worst: 1, N: 10, RefN: 20}.String()
	if !strings.Contains(s, "worst feature 1: PSI 0.3000") || !strings.Contains(s, "10 rows against 20") {
		t.Fatalf("String() = %q", s)
	}
}

func TestReferenceErrors(t *testing.T) {
	rows, scores := window(1, 200, 3, nil, 0)
	f := func(err error, wants ...string) {
		t.Helper()
		if !errors.Is(err, ErrWindow) {
			t.Fatalf("error %v; want one wrapping ErrWindow", err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q; want it to say %q", err, w)
			}
		}
	}
	newRef := func(rows [][]float32, scores []float32, bins int) error {
		t.Helper()
		r, err := NewReference(rows, scores, bins)
		if (r == nil) == (err == nil) {
			t.Fatalf("NewReference: %v and %v; want one of them", r, err)
		}
		return err
	}
	// Too few rows: 10 a bin.
	f(newRef(rows[:99], scores[:99], 10), "99 reference rows", "10*bins = 100")
	f(newRef(rows[:199], scores[:199], 20), "199 reference rows", "10*bins = 200")
	f(newRef(rows[:99], scores[:99], 0), "99 reference rows", "10*bins = 100")
	f(newRef(nil, nil, 2), "0 reference rows", "10*bins = 20")
	f(newRef(rows, scores, 1), "1 bins")
	f(newRef(rows, scores, -3), "-3 bins")
	// Ragged, or a score short.
	ragged := slices.Clone(rows)
	ragged[150] = ragged[150][:2]
	f(newRef(ragged, scores, 10), "row 150 has 2 features; want 3")
	f(newRef(rows, scores[:199], 10), "200 rows but 199 scores")

	// Enough rows: 100 for 10 bins, and 0 bins is 10.
	if err := newRef(rows[:100], scores[:100], 10); err != nil {
		t.Fatal(err)
	}
	if err := newRef(rows[:100], scores[:100], 0); err != nil {
		t.Fatal(err)
	}
	ref, err := NewReference(rows, scores, 10)
	if err != nil {
		t.Fatal(err)
	}
	compare := func(rows [][]float32, scores []float32) error {
		t.Helper()
		d, err := ref.Compare(rows, scores)
		if err == nil {
			t.Fatalf("Compare: %v; want an error", d)
		}
		return err
	}
	// Wrong widths, a score short, nothing.
	wide, _ := window(2, 50, 4, nil, 0)
	f(compare(wide, scores[:50]), "row 0 has 4 features; want 3")
	narrow := slices.Clone(rows[:50])
	narrow[49] = nil
	f(compare(narrow, scores[:50]), "row 49 has 0 features; want 3")
	f(compare(rows[:50], scores[:51]), "50 rows but 51 scores")
	f(compare(nil, nil), "no rows", "reference's 200")
	// And a window that fits.
	if d, err := ref.Compare(rows[:50], scores[:50]); err != nil || d.N != 50 || d.RefN != 200 {
		t.Fatalf("Compare of 50 rows: %v, %v", d, err)
	}
}

// TestReferenceWithoutFeatures checks rows of width 0: only the score.
func TestReferenceWithoutFeatures(t *testing.T) {
	rows := make([][]float32, 100)
	_, scores := window(1, 100, 0, nil, 0)
	ref, err := NewReference(rows, scores, 10)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ref.Compare(rows[:50], scores[:50])
	if err != nil {
		t.Fatal(err)
	}
	if d.Worst != -1 || len(d.Features) != 0 || math.IsNaN(d.Score) {
		t.Fatalf("report %+v; want Worst -1, no features, a score PSI", d)
	}
	if s := d.String(); !strings.Contains(s, "no features") {
		t.Fatalf("String() = %q", s)
	}
}
