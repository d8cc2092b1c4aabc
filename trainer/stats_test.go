package trainer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// near reports whether got is within tol of want, NaN matching NaN and an
// infinity matching itself.
func near(got, want, tol float64) bool {
	switch {
	case math.IsNaN(want):
		return math.IsNaN(got)
	case math.IsInf(want, 0):
		return got == want
	}
	return math.Abs(got-want) <= tol
}

// evenTCDF is Student's t CDF for an even number of degrees of freedom nu
// by its closed form: 1/2 + t/(2 sqrt(nu+t²)) · sum over j < nu/2 of
// C(2j, j)/4^j · (nu/(nu+t²))^j.
func evenTCDF(t float64, nu int) float64 {
	x := float64(nu) / (float64(nu) + t*t)
	sum, term := 0.0, 1.0
	for j := range nu / 2 {
		if j > 0 {
			term *= float64(2*j-1) / float64(2*j) * x // C(2j,j)/4^j from j-1 to j
		}
		sum += term
	}
	return 0.5 + t/(2*math.Sqrt(float64(nu)+t*t))*sum
}

// simpsonTCDF is Student's t CDF by Simpson's rule on the density
// Γ((ν+1)/2)/(sqrt(νπ) Γ(ν/2)) (1+x²/ν)^(-(ν+1)/2) from 0 to t.
func simpsonTCDF(t, nu float64) float64 {
	c := math.Gamma((nu+1)/2) / (math.Sqrt(nu*math.Pi) * math.Gamma(nu/2))
	pdf := func(x float64) float64 { return c * math.Pow(1+x*x/nu, -(nu+1)/2) }
	const n = 20000
	h := t / n
	sum := pdf(0) + pdf(t)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * pdf(float64(i)*h)
	}
	return 0.5 + sum*h/3
}

func TestStudentTCDF(t *testing.T) {
	f := func(x, df, want, tol float64) {
		t.Helper()
		if got := StudentTCDF(x, df); !near(got, want, tol) {
			t.Fatalf("StudentTCDF(%v, %v) = %.17g; want %.17g (± %g)", x, df, got, want, tol)
		}
	}
	// Tables: the two-sided 5% critical value for 10 degrees of freedom,
	// and other classic quantiles (six decimals: the density there times
	// 5e-7 bounds the error).
	f(2.228139, 10, 0.975, 1e-7)
	f(2.570582, 5, 0.975, 1e-7)
	f(2.042272, 30, 0.975, 1e-7)
	f(1.979930, 120, 0.975, 1e-7)
	f(2.527977, 20, 0.99, 1e-7)
	f(4.032143, 5, 0.995, 1e-7)
	f(6.313752, 1, 0.95, 1e-7)
	f(-6.313752, 1, 0.05, 1e-7)
	// The normal, above 1e7 degrees of freedom: Φ(1.96) = 0.9750021.
	f(1.96, 1e9, 0.9750021, 1e-7)
	f(-1.96, math.Inf(1), 0.0249979, 1e-7)
	// Across the switch to the normal the CDF barely moves.
	f(1.96, 0.999e7, StudentTCDF(1.96, 1.001e7), 1e-7)
	f(1, 0.999e7, StudentTCDF(1, 1.001e7), 1e-7)

	// The centre and the ends.
	for _, df := range []float64{0.3, 1, 2.5, 10, 1e5, 1e9} {
		f(0, df, 0.5, 0)
		f(math.Inf(-1), df, 0, 0)
		f(math.Inf(1), df, 1, 0)
		f(1e-200, df, 0.5, 0)
	}
	f(math.NaN(), 5, math.NaN(), 0)
	f(1, 0, math.NaN(), 0)
	f(1, -2, math.NaN(), 0)
	f(1, math.NaN(), math.NaN(), 0)

	// df = 1 is Cauchy; df = 2 and other even df have closed forms.
	for _, x := range []float64{-1e6, -30, -3, -1, -0.25, 0.001, 0.25, 1, 3, 30, 1e6} {
		f(x, 1, 0.5+math.Atan(x)/math.Pi, 1e-14)
		f(x, 2, 0.5+x/(2*math.Sqrt(2+x*x)), 1e-14)
		f(x, 4, evenTCDF(x, 4), 1e-14)
		f(x, 10, evenTCDF(x, 10), 1e-14)
		f(x, 50, evenTCDF(x, 50), 1e-13)
	}
	// Far tails keep their relative precision: P(T < -x) = atan(1/x)/π
	// for Cauchy, and 1/(π x) below 1e-150.
	for _, x := range []float64{1e3, 1e8, 1e140, 1e200, 1e300} {
		want := math.Atan(1/x) / math.Pi
		f(-x, 1, want, want*1e-12)
	}
	// Fractional degrees of freedom, against the density's integral.
	for _, df := range []float64{0.7, 2.5, 6.972, 41.3} {
		for _, x := range []float64{-4, -1.5, 0.3, 2.2} {
			f(x, df, simpsonTCDF(x, df), 1e-10)
		}
	}
	// Symmetry and monotony.
	for _, df := range []float64{0.5, 1, 3.7, 12, 1e4, 1e8} {
		prev := 0.0
		for x := -20.0; x <= 20; x += 0.125 {
			c := StudentTCDF(x, df)
			if c < prev {
				t.Fatalf("StudentTCDF(%v, %v) = %v, below %v at %v", x, df, c, prev, x-0.125)
			}
			prev = c
			f(-x, df, 1-c, 1e-15)
		}
	}
}

func TestStudentTQuantile(t *testing.T) {
	f := func(p, df, want, relTol float64) {
		t.Helper()
		got := studentTQuantile(p, df)
		if !near(got, want, relTol*math.Abs(want)) {
			t.Fatalf("studentTQuantile(%v, %v) = %.17g; want %.17g", p, df, got, want)
		}
	}
	// Tables (six decimals).
	f(0.975, 10, 2.228139, 3e-7)
	f(0.975, 5, 2.570582, 3e-7)
	f(0.975, 30, 2.042272, 3e-7)
	f(0.995, 5, 4.032143, 3e-7)
	f(0.05, 1, -6.313752, 3e-7)
	f(0.975, 1e9, 1.959964, 3e-7)
	// Closed forms: Cauchy, tan(π(p-1/2)), which is -1/tan(πp) (without
	// the rounding of p-1/2 for a small p); df = 2, (2p-1)/sqrt(2p(1-p)).
	for _, p := range []float64{1e-9, 0.001, 0.025, 0.2, 0.49, 0.51, 0.9, 0.975, 0.999999} {
		cauchy := -1 / math.Tan(math.Pi*p)
		if p > 0.5 {
			cauchy = 1 / math.Tan(math.Pi*(1-p))
		}
		f(p, 1, cauchy, 1e-9)
		f(p, 2, (2*p-1)/math.Sqrt(2*p*(1-p)), 1e-9)
	}
	// Ends and nonsense.
	f(0, 3, math.Inf(-1), 0)
	f(1, 3, math.Inf(1), 0)
	f(0.5, 3, 0, 0)
	f(-0.1, 3, math.NaN(), 0)
	f(1.1, 3, math.NaN(), 0)
	f(math.NaN(), 3, math.NaN(), 0)
	f(0.3, 0, math.NaN(), 0)

	// Round trips: the CDF of the quantile is p, to rounding.
	g := func(p, df float64) {
		t.Helper()
		q := studentTQuantile(p, df)
		if c := StudentTCDF(q, df); !near(c, p, 1e-11*min(p, 1-p)) {
			t.Fatalf("StudentTCDF(studentTQuantile(%v, %v) = %v) = %.17g; want p", p, df, q, c)
		}
		if p != 0.5 && math.Signbit(q) != (p < 0.5) {
			t.Fatalf("studentTQuantile(%v, %v) = %v: wrong side of 0", p, df, q)
		}
	}
	for _, df := range []float64{0.3, 1, 2, 2.5, 6.972, 10, 1e3, 1e6, 1e9} {
		for _, p := range []float64{1e-12, 1e-6, 0.01, 0.025, 0.3, 0.5, 0.7, 0.975, 0.999, 1 - 1e-9} {
			g(p, df)
		}
	}
}

// sameTest fails unless every field of got is within tol of want's.
func sameTest(t *testing.T, got, want Test, tol float64) {
	t.Helper()
	if got.N1 != want.N1 || got.N2 != want.N2 {
		t.Fatalf("n = %d, %d; want %d, %d", got.N1, got.N2, want.N1, want.N2)
	}
	fields := []struct {
		name      string
		got, want float64
	}{
		{"Mean1", got.Mean1, want.Mean1}, {"Mean2", got.Mean2, want.Mean2}, {"Diff", got.Diff, want.Diff},
		{"StdErr", got.StdErr, want.StdErr}, {"T", got.T, want.T}, {"DF", got.DF, want.DF},
		{"P", got.P, want.P}, {"Low", got.Low, want.Low}, {"High", got.High, want.High},
	}
	for _, fl := range fields {
		if !near(fl.got, fl.want, tol*max(1, math.Abs(fl.want))) {
			t.Fatalf("%s = %.17g; want %.17g\ngot  %v\nwant %v", fl.name, fl.got, fl.want, got, want)
		}
	}
}

// q2 is the 0.975 quantile of Student's t with 2 degrees of freedom, by
// its closed form (2p-1)/sqrt(2p(1-p)) (4.302653 in the tables).
var q2 = 0.95 / math.Sqrt(2*0.975*0.025)

func TestWelch(t *testing.T) {
	f := func(a, b []float64, want Test) {
		t.Helper()
		sameTest(t, Welch(a, b, 0.95), want, 1e-12)
	}
	// Hand-computed: means 3 and 7, variances 10/4 and 70/5, the larger
	// in the larger sample: Welch's standard error is below the pooled
	// one, which the test takes.
	{
		s1, s2 := 10.0/4/5, 70.0/5/6
		if welch := math.Sqrt(s1 + s2); !near(welch, 1.6832508230603465, 1e-12) {
			t.Fatalf("Welch's standard error %v", welch)
		}
		df := 9.0
		se := math.Sqrt((4*10.0/4 + 5*70.0/5) / df * (1.0/5 + 1.0/6))
		tt := 4 / se
		q := -studentTQuantile(0.025, df)
		if c := StudentTCDF(q, df); !near(c, 0.975, 1e-12) {
			t.Fatalf("quantile for df %v: CDF %v", df, c)
		}
		f([]float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10, 12}, Test{N1: 5, N2: 6, Mean1: 3, Mean2: 7, Diff: 4,
			StdErr: se, T: tt, DF: df, P: 2 * StudentTCDF(-tt, df), Low: 4 - q*se, High: 4 + q*se})
	}
	// The larger variance in the smaller sample (10 in 5 values, 3.5 in
	// 6): Welch's own.
	{
		s1, s2 := 10.0/5, 3.5/6
		se := math.Sqrt(s1 + s2)
		tt := -2.5 / se
		df := (s1 + s2) * (s1 + s2) / (s1*s1/4 + s2*s2/5)
		q := -studentTQuantile(0.025, df)
		f([]float64{2, 4, 6, 8, 10}, []float64{1, 2, 3, 4, 5, 6}, Test{N1: 5, N2: 6, Mean1: 6, Mean2: 3.5, Diff: -2.5,
			StdErr: se, T: tt, DF: df, P: 2 * StudentTCDF(tt, df), Low: -2.5 - q*se, High: -2.5 + q*se})
	}
	// Two values each, equal variances 2: DF is exactly 2, where
	// P = 1 - |t|/sqrt(2+t²) in closed form.
	{
		se := math.Sqrt(2.0/2 + 2.0/2)
		tt := 5 / se
		f([]float64{0, 2}, []float64{5, 7}, Test{N1: 2, N2: 2, Mean1: 1, Mean2: 6, Diff: 5,
			StdErr: se, T: tt, DF: 2, P: 1 - tt/math.Sqrt(2+tt*tt), Low: 5 - q2*se, High: 5 + q2*se})
		f([]float64{5, 7}, []float64{0, 2}, Test{N1: 2, N2: 2, Mean1: 6, Mean2: 1, Diff: -5,
			StdErr: se, T: -tt, DF: 2, P: 1 - tt/math.Sqrt(2+tt*tt), Low: -5 - q2*se, High: -5 + q2*se})
	}
	// One constant sample: Welch's standard error would be the other's
	// alone (DF its n - 1); the pooled one is larger, and taken.
	{
		if welch := math.Sqrt(3.5 / 6); !(welch < 0.77) { // var(1..6) = 3.5
			t.Fatalf("Welch's standard error %v", welch)
		}
		se := math.Sqrt(3.5 * 5 / 8 * (1.0/4 + 1.0/6))
		tt := -1.5 / se
		f([]float64{5, 5, 5, 5}, []float64{1, 2, 3, 4, 5, 6}, Test{N1: 4, N2: 6, Mean1: 5, Mean2: 3.5, Diff: -1.5,
			StdErr: se, T: tt, DF: 8, P: 2 * StudentTCDF(tt, 8), Low: -1.5 - 2.3060041352041662*se, High: -1.5 + 2.3060041352041662*se})
	}
	// Identical samples: no difference at all.
	{
		a := []float64{1, 2, 3, 4}
		se := math.Sqrt(2 * (5.0 / 3) / 4)
		q := -studentTQuantile(0.025, 6)
		f(a, a, Test{N1: 4, N2: 4, Mean1: 2.5, Mean2: 2.5, StdErr: se, DF: 6, P: 1, Low: -q * se, High: q * se})
	}
	// Degenerate samples.
	inf, nan := math.Inf(1), math.NaN()
	f([]float64{1, 1, 1}, []float64{2, 2}, Test{N1: 3, N2: 2, Mean1: 1, Mean2: 2, Diff: 1, T: inf, P: 0, Low: 1, High: 1})
	f([]float64{2, 2}, []float64{1, 1, 1}, Test{N1: 2, N2: 3, Mean1: 2, Mean2: 1, Diff: -1, T: -inf, P: 0, Low: -1, High: -1})
	f([]float64{4, 4}, []float64{4, 4, 4}, Test{N1: 2, N2: 3, Mean1: 4, Mean2: 4, P: 1})
	f([]float64{3}, []float64{1, 2, 3}, Test{N1: 1, N2: 3, Mean1: 3, Mean2: 2, Diff: -1, T: -inf, P: 0, Low: -1, High: -1})
	f([]float64{2}, []float64{1, 2, 3}, Test{N1: 1, N2: 3, Mean1: 2, Mean2: 2, P: 1})
	f(nil, []float64{1, 2, 3}, Test{N2: 3, Mean1: nan, Mean2: 2, Diff: nan, T: nan, P: nan, Low: nan, High: nan})
	f([]float64{1, nan}, []float64{1, 2, 3}, Test{N1: 2, N2: 3, Mean1: nan, Mean2: 2, Diff: nan, StdErr: nan, T: nan, DF: nan, P: nan, Low: nan, High: nan})

	// The level sets the interval's width; 0 gives a point, nonsense NaN.
	a, b := []float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10, 12}
	w90, w95, w99 := Welch(a, b, 0.90), Welch(a, b, 0.95), Welch(a, b, 0.99)
	if !(w90.High-w90.Low < w95.High-w95.Low && w95.High-w95.Low < w99.High-w99.Low) {
		t.Fatalf("interval widths at 90, 95, 99%%: %v, %v, %v; want increasing", w90.High-w90.Low, w95.High-w95.Low, w99.High-w99.Low)
	}
	if w := Welch(a, b, 0); w.Low != w.Diff || w.High != w.Diff {
		t.Fatalf("level 0: [%v, %v]; want [Diff, Diff] = %v", w.Low, w.High, w.Diff)
	}
	if w := Welch(a, b, 1.5); !math.IsNaN(w.Low) || !math.IsNaN(w.High) || w.P != w95.P {
		t.Fatalf("level 1.5: [%v, %v], P %v; want NaN bounds and P %v", w.Low, w.High, w.P, w95.P)
	}
	if s := w95.String(); !strings.Contains(s, "diff 4 ") || !strings.Contains(s, "n 5 vs 6") {
		t.Fatalf("String() = %q", s)
	}
}

func TestPaired(t *testing.T) {
	f := func(a, b []float64, want Test) {
		t.Helper()
		sameTest(t, Paired(a, b, 0.95), want, 1e-12)
	}
	// Differences 1, 2, 3: mean 2, variance 1, DF 2.
	{
		se := 1 / math.Sqrt(3)
		tt := 2 / se
		f([]float64{10, 20, 30}, []float64{11, 22, 33}, Test{N1: 3, N2: 3, Mean1: 20, Mean2: 22, Diff: 2,
			StdErr: se, T: tt, DF: 2, P: 1 - tt/math.Sqrt(2+tt*tt), Low: 2 - q2*se, High: 2 + q2*se})
	}
	// Degenerate: constant differences, one pair, none.
	inf, nan := math.Inf(1), math.NaN()
	f([]float64{1, 5, 9}, []float64{1.5, 5.5, 9.5}, Test{N1: 3, N2: 3, Mean1: 5, Mean2: 5.5, Diff: 0.5, T: inf, P: 0, Low: 0.5, High: 0.5})
	f([]float64{1, 5, 9}, []float64{1, 5, 9}, Test{N1: 3, N2: 3, Mean1: 5, Mean2: 5, P: 1})
	f([]float64{4}, []float64{3}, Test{N1: 1, N2: 1, Mean1: 4, Mean2: 3, Diff: -1, T: -inf, P: 0, Low: -1, High: -1})
	f(nil, nil, Test{Mean1: nan, Mean2: nan, Diff: nan, T: nan, P: nan, Low: nan, High: nan})

	// Large spread between rows hides a small, steady improvement from
	// Welch; pairing the rows shows it.
	r := rand.New(rand.NewPCG(7, 11))
	a, b := make([]float64, 20), make([]float64, 20)
	for i := range a {
		a[i] = 50 + 10*r.NormFloat64()
		b[i] = a[i] + 0.1 + 0.01*r.NormFloat64()
	}
	w, p := Welch(a, b, 0.95), Paired(a, b, 0.95)
	if !(w.P > 0.5) || w.Low > 0 {
		t.Fatalf("Welch: %v; want p > 0.5 and 0 in the interval", w)
	}
	if !(p.P < 1e-6) || !(p.Low > 0.09 && p.High < 0.11) {
		t.Fatalf("Paired: %v; want p < 1e-6 and an interval within [0.09, 0.11]", p)
	}
	if !near(w.Diff, p.Diff, 1e-12) || !near(p.Diff, 0.1, 0.01) {
		t.Fatalf("Welch diff %v, paired diff %v; want the same, near 0.1", w.Diff, p.Diff)
	}

	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "3 and 2") {
			t.Fatalf("Paired of 3 and 2 values: panic %q; want one naming the lengths", msg)
		}
	}()
	Paired([]float64{1, 2, 3}, []float64{1, 2}, 0.95)
}

// TestTestsUnderTheNull checks the tests' calibration by simulation: with
// equal means, p < 0.05 about 5% of the time, and the 95% interval holds
// the true difference about 95% of the time.
func TestTestsUnderTheNull(t *testing.T) {
	const reps = 2000
	r := rand.New(rand.NewPCG(2024, 5))
	normal := func(n int, mean, sd float64) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = mean + sd*r.NormFloat64()
		}
		return xs
	}
	f := func(name string, share, lo, hi float64) {
		t.Helper()
		if share < lo || share > hi {
			t.Fatalf("%s: share %v; want %v to %v", name, share, lo, hi)
		}
		t.Logf("%s: share %v", name, share)
	}
	var welch, unequal, covered, paired int
	for range reps {
		// Same normal, n = 20 against n = 30.
		if Welch(normal(20, 3, 2), normal(30, 3, 2), 0.95).P < 0.05 {
			welch++
		}
		// Equal means, unequal variances and sizes: Welch's case.
		if Welch(normal(10, 0, 1), normal(40, 0, 3), 0.95).P < 0.05 {
			unequal++
		}
		// A true difference of 0.5 inside the interval.
		if w := Welch(normal(10, 0, 1), normal(40, 0.5, 3), 0.95); w.Low <= 0.5 && 0.5 <= w.High {
			covered++
		}
		// Paired rows with a shared row effect and no difference.
		a, noise := normal(15, 0, 5), normal(15, 0, 1)
		b := make([]float64, len(a))
		for i := range a {
			b[i] = a[i] + noise[i]
		}
		if Paired(a, b, 0.95).P < 0.05 {
			paired++
		}
	}
	f("Welch, same normal, p < 0.05", float64(welch)/reps, 0.03, 0.07)
	// The larger variance in the larger sample: the pooled standard
	// error, larger than Welch's, makes the test cautious there.
	f("Welch, unequal variances, p < 0.05", float64(unequal)/reps, 0, 0.07)
	f("Welch, 95% interval holds the difference", float64(covered)/reps, 0.93, 1)
	f("Paired, p < 0.05", float64(paired)/reps, 0.03, 0.07)
}

func TestMeanVar(t *testing.T) {
	f := func(xs []float64, wantMean, wantVar float64) {
		t.Helper()
		m, v := meanVar(xs)
		if !near(m, wantMean, 1e-12*max(1, math.Abs(wantMean))) || !near(v, wantVar, 1e-9*max(1, wantVar)) {
			t.Fatalf("meanVar(%v...) = %v, %v; want %v, %v", xs[:min(len(xs), 3)], m, v, wantMean, wantVar)
		}
	}
	f(nil, math.NaN(), math.NaN())
	f([]float64{7}, 7, 0)
	f([]float64{1, 2, 3, 4}, 2.5, 5.0/3)
	// A large offset that a sum of squares would cancel away: the
	// variance of 1e9 + {4, 7, 13, 16} is that of {4, 7, 13, 16}, 30.
	f([]float64{1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16}, 1e9+10, 30)
}

func TestLnGammaRatio(t *testing.T) {
	f := func(a, b, want, tol float64) {
		t.Helper()
		if got := lnGammaRatio(a, b); !near(got, want, tol) {
			t.Fatalf("lnGammaRatio(%v, %v) = %.17g; want %.17g (± %g)", a, b, got, want, tol)
		}
	}
	// Γ(a+1) = aΓ(a) and Γ(a+2) = a(a+1)Γ(a), on both sides of 100.
	for _, a := range []float64{0.5, 3, 99.9, 100, 1234.5, 5e5, 1e9} {
		f(a, 1, -math.Log(a), 1e-13)
		f(a, 2, -math.Log(a)-math.Log(a+1), 1e-13)
	}
	// Against math.Lgamma where that is still precise, and across the
	// switch at 100.
	lg := func(z float64) float64 { v, _ := math.Lgamma(z); return v }
	for _, a := range []float64{100, 150.5, 1000} {
		for _, b := range []float64{0.5, 3.25} {
			f(a, b, lg(a)-lg(a+b), 1e-11)
		}
	}
	f(math.Nextafter(100, 0), 0.5, lnGammaRatio(100, 0.5), 1e-13)
}

// TestAlwaysValidUnderPeeking: under the null (both arms drawn from one
// normal), a rule that looks at Welch's test 25 times as the samples grow
// and stops at the first 95% interval that excludes 0 is fooled far more
// often than 5%; the always-valid interval at 5% is fooled at most about
// 5% of the time, and still finds a real difference.
func TestAlwaysValidUnderPeeking(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const sims, looks, step = 400, 25, 40
	fixed, valid := 0, 0
	for range sims {
		var a, b []float64
		fixedHit, validHit := false, false
		for range looks {
			for range step {
				a, b = append(a, r.NormFloat64()), append(b, r.NormFloat64())
			}
			tt := Welch(a, b, 0.95)
			if tt.Low > 0 || tt.High < 0 {
				fixedHit = true
			}
			if lo, hi := AlwaysValid(tt, 0.05, 0.1); lo > 0 || hi < 0 {
				validHit = true
			}
		}
		if fixedHit {
			fixed++
		}
		if validHit {
			valid++
		}
	}
	if f, v := float64(fixed)/sims, float64(valid)/sims; f < 0.15 || v > 0.07 {
		t.Fatalf("false discoveries over %d looks: fixed 95%% intervals %.3f (want well over 0.05), always valid %.3f (want at most about 0.05)", looks, f, v)
	} else {
		t.Logf("false discoveries over %d looks: fixed 95%% intervals %.3f, always valid %.3f", looks, f, v)
	}
	// A real difference of 0.3 standard deviations is found.
	var a, b []float64
	for range 1000 {
		a, b = append(a, r.NormFloat64()), append(b, r.NormFloat64()-0.3)
	}
	if _, hi := AlwaysValid(Welch(a, b, 0.95), 0.05, 0.1); !(hi < 0) {
		t.Fatalf("a difference of -0.3 over 1,000 samples each: always-valid upper bound %v; want below 0", hi)
	}
	// Degenerate tests keep their bounds.
	if lo, hi := AlwaysValid(Test{Diff: 2, Low: 2, High: 2, T: math.Inf(1)}, 0.05, 0.1); lo != 2 || hi != 2 {
		t.Fatalf("degenerate: [%v, %v]; want [2, 2]", lo, hi)
	}
}

// WelchOf over the summaries that counters' sums and sums of squares
// give (SummaryOf) agrees with Welch over the values; MeanInterval is
// Student's t interval of one mean.
func TestWelchOfSums(t *testing.T) {
	sums := func(xs []float64) Summary {
		var sum, sq float64
		for _, x := range xs {
			sum += x
			sq += x * x
		}
		return SummaryOf(uint64(len(xs)), sum, sq)
	}
	f := func(a, b []float64) {
		t.Helper()
		sameTest(t, WelchOf(sums(a), sums(b), 0.95), Welch(a, b, 0.95), 1e-9)
	}
	f([]float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10, 12})
	f([]float64{0, 1, 1, 0, 1, 0, 0, 0}, []float64{1, 1, 0, 1, 1, 1, 0})
	f([]float64{-2.5, 3, 0.25}, []float64{7, 7, 7})
	f([]float64{3}, []float64{1, 2, 3})
	f(nil, []float64{1, 2, 3})

	if s := SummaryOf(1, 4, 16); s.N != 1 || s.Mean != 4 || s.Var != 0 {
		t.Fatalf("one value: %+v; want n 1, mean 4, variance 0", s)
	}
	// 1..5: mean 3, variance 2.5; t(4) at 0.975 is 2.7764451051977987.
	low, high := MeanInterval(sums([]float64{1, 2, 3, 4, 5}), 0.95)
	half := 2.7764451051977987 * math.Sqrt(2.5/5)
	if !near(low, 3-half, 1e-12) || !near(high, 3+half, 1e-12) {
		t.Fatalf("MeanInterval(1..5) = [%v, %v]; want [%v, %v]", low, high, 3-half, 3+half)
	}
	if low, high := MeanInterval(sums([]float64{2}), 0.95); !math.IsNaN(low) || !math.IsNaN(high) {
		t.Fatalf("MeanInterval of one value = [%v, %v]; want NaN", low, high)
	}
	if low, high := MeanInterval(sums([]float64{2, 2, 2}), 0.95); low != 2 || high != 2 {
		t.Fatalf("MeanInterval of constant values = [%v, %v]; want [2, 2]", low, high)
	}
}

// ProportionInterval is the Wilson score interval: values worked out by
// hand from its formula with z = 1.959963984540054.
func TestProportionInterval(t *testing.T) {
	f := func(k, n uint64, wantLow, wantHigh float64) {
		t.Helper()
		low, high := ProportionInterval(k, n, 0.95)
		if !near(low, wantLow, 1e-9) || !near(high, wantHigh, 1e-9) {
			t.Fatalf("ProportionInterval(%d, %d) = [%.12g, %.12g]; want [%.12g, %.12g]", k, n, low, high, wantLow, wantHigh)
		}
	}
	z := 1.959963984540054
	wilson := func(k, n float64) (float64, float64) {
		p, z2n := k/n, z*z/n
		c := (p + z2n/2) / (1 + z2n)
		h := z / (1 + z2n) * math.Sqrt(p*(1-p)/n+z2n/(4*n))
		return max(c-h, 0), min(c+h, 1)
	}
	l, h := wilson(40, 400)
	f(40, 400, l, h)
	if !near(l, 0.074297, 1e-5) || !near(h, 0.133309, 1e-5) {
		t.Fatalf("Wilson(40, 400) = [%v, %v]; want [0.074297, 0.133309], worked out by hand", l, h)
	}
	l, h = wilson(0, 30) // no success: [0, about 3.7/n]
	f(0, 30, l, h)
	if l != 0 || h < 0.1 || h > 0.12 {
		t.Fatalf("Wilson(0, 30) = [%v, %v]; want [0, ~0.114]", l, h)
	}
	l, h = wilson(30, 30)
	f(30, 30, l, h)
	if low, high := ProportionInterval(0, 0, 0.95); !math.IsNaN(low) || !math.IsNaN(high) {
		t.Fatalf("no trials: [%v, %v]; want NaN", low, high)
	}
}
