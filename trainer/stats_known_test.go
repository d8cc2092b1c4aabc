package trainer

import (
	"math"
	"testing"
)

// TestStudentTKnownValues checks the t distribution and the tests
// against values integrated numerically apart (Simpson's rule).
func TestStudentTKnownValues(t *testing.T) {
	for _, c := range []struct{ t, df, want float64 }{
		{2, 10, 0.9633059826146},
		{-1.5, 3, 0.1152919326224},
		{0.7, 1.5, 0.7117808795587},
		{3, 200, 0.9984784764430},
	} {
		if got := StudentTCDF(c.t, c.df); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("StudentTCDF(%v, %v) = %v; want %v", c.t, c.df, got, c.want)
		}
	}
	for _, c := range []struct{ p, df, want float64 }{
		{0.975, 10, 2.228138851986},
		{0.995, 4, 4.604094871},
		{0.005, 29, -2.756385904},
	} {
		if got := studentTQuantile(c.p, c.df); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("studentTQuantile(%v, %v) = %v; want %v", c.p, c.df, got, c.want)
		}
	}
	// Worked by hand: var(a) 2.5, var(b) 8.25; the differences' var 1.75.
	a := []float64{1, 2, 3, 4, 5}
	b := []float64{2, 4, 5, 7, 9.5}
	w := Welch(a, b, 0.95)
	if math.Abs(w.Diff-2.5) > 1e-12 || math.Abs(w.T-2.5/math.Sqrt(2.15)) > 1e-9 || math.Abs(w.DF-2.15*2.15/(0.25/4+1.65*1.65/4)) > 1e-9 {
		t.Errorf("Welch = %v; want diff 2.5, t 1.7050, df 6.2203", w)
	}
	p := Paired(a, b, 0.95)
	if math.Abs(p.Diff-2.5) > 1e-12 || math.Abs(p.DF-4) > 1e-12 || math.Abs(p.T-4.2258) > 1e-3 || math.Abs(p.Low-0.8575) > 1e-3 || math.Abs(p.High-4.1425) > 1e-3 {
		t.Errorf("Paired = %v; want diff 2.5, t 4.2258, CI [0.8575, 4.1425]", p)
	}
}
