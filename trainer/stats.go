package trainer

import (
	"fmt"
	"math"
)

// This file holds the significance tests that the shadow and canary stages
// use to promote a model version or roll it back: Welch's t-test for two
// independent samples (say, the log losses of the live version's and the
// candidate's traffic) and the paired t-test for two scores of the same
// rows, whose statistics AlwaysValid turns into intervals that stay valid
// however often the stages look. Student's t distribution is computed
// from the regularized incomplete beta function.

// Test is the outcome of comparing two samples' means.
//
// Degenerate samples: when a sample has fewer than 2 values, or when
// neither sample varies (both variances are 0, or for Paired the
// differences do not vary), StdErr is 0 and there is no t distribution:
// DF is 0, Low = High = Diff, and either Diff is 0, and then T is 0 and P
// is 1, or it is not, and then T is ±Inf (Diff's sign) and P is 0. An
// empty sample has a NaN mean; a NaN mean or a NaN among the values
// (which is the caller's to avoid) makes Diff, T, P, Low and High NaN.
type Test struct {
	N1, N2       int
	Mean1, Mean2 float64
	// Diff is Mean2 - Mean1 (or the mean of the paired differences).
	Diff float64
	// StdErr is the standard error of Diff; T = Diff/StdErr; DF the
	// degrees of freedom (for Welch, Welch–Satterthwaite's, possibly
	// fractional, or Student's when the pooled standard error is the
	// larger and taken).
	StdErr, T, DF float64
	// P is the two-sided p-value: the chance of a |T| at least as large
	// when the means are equal. Low and High bound Diff's confidence
	// interval at the level asked (NaN for a level outside [0, 1]).
	P, Low, High float64
}

// String formats the test on one line.
func (t Test) String() string {
	return fmt.Sprintf("diff %.6g (%.6g vs %.6g, n %d vs %d), t %.4g, df %.4g, p %.4g, CI [%.6g, %.6g]",
		t.Diff, t.Mean1, t.Mean2, t.N1, t.N2, t.T, t.DF, t.P, t.Low, t.High)
}

// Welch compares the means of two independent samples that need not have
// the same variance (Welch's unequal-variances t-test): Diff is
// mean(b) - mean(a), StdErr = sqrt(var(a)/len(a) + var(b)/len(b)) with
// the sample variances (n-1 in the denominator), and DF the
// Welch–Satterthwaite approximation. level (say 0.95) is the confidence
// level of [Low, High]. See Test for degenerate samples.
//
// StdErr is never below the pooled one of Student's test,
// sqrt(s²(1/len(a) + 1/len(b))) with s² the variances pooled (DF
// len(a)+len(b)-2 then). Where the outcome is rare and one arm small (a
// 10% canary, conversions of 2%), the small arm often holds none of the
// rare values: its variance reads near 0, Welch's standard error rests
// on the large arm's alone, and arms that do not differ were told apart
// several times as often as the level allows (in 1000 simulated equal
// canaries at a 2% rate, 5.5% were called better where 1% were allowed;
// with confident scores, 15%). Under equal arms the pooled variance is
// sound and steady; where the variances really differ, the larger of
// the two is the cautious one.
func Welch(a, b []float64, level float64) Test {
	m1, v1 := meanVar(a)
	m2, v2 := meanVar(b)
	return WelchOf(Summary{N: len(a), Mean: m1, Var: v1}, Summary{N: len(b), Mean: m2, Var: v2}, level)
}

// Summary is a sample as its size, mean and variance (n-1 in the
// denominator) give it: what WelchOf needs of it.
type Summary struct {
	N         int
	Mean, Var float64
}

// SummaryOf returns the summary of n values whose sum is sum and whose
// squares sum to squares, as counters that only add up give them: the
// mean NaN for no values, the variance 0 for one. The variance loses
// precision where it is tiny beside the squared mean; it is never below 0.
func SummaryOf(n uint64, sum, squares float64) Summary {
	if n == 0 {
		return Summary{Mean: math.NaN(), Var: math.NaN()}
	}
	fn := float64(n)
	s := Summary{N: int(n), Mean: sum / fn}
	if n > 1 {
		s.Var = max(squares-sum*sum/fn, 0) / (fn - 1)
	}
	return s
}

// WelchOf is Welch over two samples' summaries.
func WelchOf(a, b Summary, level float64) Test {
	r := Test{N1: a.N, N2: b.N, Mean1: a.Mean, Mean2: b.Mean, Diff: b.Mean - a.Mean}
	if a.N < 2 || b.N < 2 {
		return r.degenerate()
	}
	n1, n2 := float64(a.N), float64(b.N)
	s1, s2 := a.Var/n1, b.Var/n2
	r.StdErr = math.Sqrt(s1 + s2)
	if r.StdErr == 0 {
		return r.degenerate()
	}
	r.DF = (s1 + s2) * (s1 + s2) / (s1*s1/(n1-1) + s2*s2/(n2-1))
	pooled := ((n1-1)*a.Var + (n2-1)*b.Var) / (n1 + n2 - 2)
	if se := math.Sqrt(pooled * (1/n1 + 1/n2)); se > r.StdErr {
		r.StdErr, r.DF = se, n1+n2-2
	}
	return r.finish(level)
}

// Paired compares two samples of the same rows (a[i] and b[i] measure row
// i two ways): the one-sample t-test of the differences b[i] - a[i], whose
// mean is Diff, with StdErr = sd/sqrt(n) and DF = n - 1. It panics when a
// and b differ in length. level (say 0.95) is the confidence level of
// [Low, High]. See Test for degenerate samples.
func Paired(a, b []float64, level float64) Test {
	if len(a) != len(b) {
		panic(fmt.Sprintf("trainer.Paired: samples of %d and %d values; want the same length", len(a), len(b)))
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = b[i] - a[i]
	}
	m1, _ := meanVar(a)
	m2, _ := meanVar(b)
	md, vd := meanVar(d)
	r := Test{N1: len(a), N2: len(b), Mean1: m1, Mean2: m2, Diff: md}
	if len(d) < 2 {
		return r.degenerate()
	}
	r.StdErr = math.Sqrt(vd / float64(len(d)))
	if r.StdErr == 0 {
		return r.degenerate()
	}
	r.DF = float64(len(d) - 1)
	return r.finish(level)
}

// finish fills in T, P, Low and High from Diff, StdErr and DF.
func (r Test) finish(level float64) Test {
	r.T = r.Diff / r.StdErr
	r.P = 2 * StudentTCDF(-math.Abs(r.T), r.DF)
	// q is the quantile 1 - (1-level)/2, found on the lower side, where
	// (1-level)/2 is exact and the tail keeps its precision.
	q := -studentTQuantile((1-level)/2, r.DF)
	r.Low, r.High = r.Diff-q*r.StdErr, r.Diff+q*r.StdErr
	return r
}

// degenerate fills in a Test whose StdErr is 0 (see Test).
func (r Test) degenerate() Test {
	r.StdErr, r.DF = 0, 0
	switch {
	case math.IsNaN(r.Diff):
		r.T, r.P, r.Low, r.High = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	case r.Diff == 0:
		r.T, r.P, r.Low, r.High = 0, 1, 0, 0
	default:
		r.T, r.P, r.Low, r.High = math.Inf(int(math.Copysign(1, r.Diff))), 0, r.Diff, r.Diff
	}
	return r
}

// meanVar returns the mean and the sample variance (n-1 in the
// denominator) of xs, in two passes, the second corrected by the rounding
// error of the first: NaN and NaN for no values, the value and 0 for one.
func meanVar(xs []float64) (mean, variance float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	n := float64(len(xs))
	mean = sum / n
	if len(xs) == 1 {
		return mean, 0
	}
	ss, s := 0.0, 0.0
	for _, x := range xs {
		d := x - mean
		ss += d * d
		s += d
	}
	// s would be 0 but for the rounding of mean; this takes its share
	// out of ss (the "corrected two-pass" algorithm).
	mean += s / n
	return mean, max(ss-s*s/n, 0) / (n - 1)
}

// normalDF is the number of degrees of freedom above which StudentTCDF
// and studentTQuantile use the standard normal distribution: the
// difference in the CDF is below about 2e-8 there.
const normalDF = 1e7

// StudentTCDF returns P(T <= t) for Student's t distribution with df
// degrees of freedom, which may be fractional: 0 and 1 at -Inf and +Inf,
// NaN for a NaN t or a df that is not positive. It computes
// I_x(df/2, 1/2) with x = df/(df+t²), the regularized incomplete beta
// function, and uses the standard normal above 1e7 degrees of freedom
// (which is within 2e-8 there). Below that it is within about 1e-14 of
// the exact value (the far tails to a like relative precision), the
// error growing to about 1e-11 towards 1e7 degrees of freedom.
func StudentTCDF(t, df float64) float64 {
	switch {
	case math.IsNaN(t) || math.IsNaN(df) || df <= 0:
		return math.NaN()
	case t == 0:
		return 0.5
	case df > normalDF:
		return 0.5 * math.Erfc(-t/math.Sqrt2)
	}
	// The tail beyond |t|, P(T < -|t|), is I_x(df/2, 1/2)/2.
	a := df / 2
	r := math.Abs(t) / math.Sqrt(df) // t²/df = r², kept from overflow
	var tail float64
	switch {
	case r < 1e-150:
		return 0.5 // the tail is 0.5 less about r, which rounds away
	case r > 1e150:
		// x = 1/(1+r²) is below 1e-300 (and may underflow), where
		// I_x(a, b) is x^a / (a B(a, b)) to double precision.
		tail = 0.5 * math.Exp(-2*a*math.Log(r)-lnBeta(a, 0.5)) / a
	default:
		r2 := r * r
		tail = 0.5 * betaInc(a, 0.5, 1/(1+r2), r2/(1+r2))
	}
	if t < 0 {
		return tail
	}
	return 1 - tail
}

// studentTPDF returns the density of Student's t distribution with df
// degrees of freedom at t.
func studentTPDF(t, df float64) float64 {
	if df > normalDF {
		return math.Exp(-t*t/2) / math.Sqrt(2*math.Pi)
	}
	r := math.Abs(t) / math.Sqrt(df)
	var ln1r2 float64 // ln(1 + r²)
	if r > 1e150 {
		ln1r2 = 2 * math.Log(r)
	} else {
		ln1r2 = math.Log1p(r * r)
	}
	// Γ((df+1)/2) / Γ(df/2) / sqrt(df π) (1 + t²/df)^(-(df+1)/2)
	return math.Exp(-lnGammaRatio(df/2, 0.5) - 0.5*math.Log(df*math.Pi) - (df+1)/2*ln1r2)
}

// studentTQuantile returns the t with StudentTCDF(t, df) = p: -Inf for
// p = 0, +Inf for p = 1, NaN for p outside [0, 1], a NaN p or a df that
// is not positive. It solves for the lower tail (using the symmetry for
// p > 0.5) by Newton's method, falling back to bisection whenever a step
// leaves the bracket, to a relative precision of about 1e-13.
func studentTQuantile(p, df float64) float64 {
	switch {
	case math.IsNaN(p) || math.IsNaN(df) || df <= 0 || p < 0 || p > 1:
		return math.NaN()
	case p == 0:
		return math.Inf(-1)
	case p == 1:
		return math.Inf(1)
	case p == 0.5:
		return 0
	case p > 0.5:
		return -studentTQuantile(1-p, df) // 1-p is exact for p >= 0.5
	}
	// Bracket the root below 0, where StudentTCDF(0) = 0.5 > p.
	lo, hi := -1.0, 0.0
	for StudentTCDF(lo, df) > p {
		hi = lo
		lo *= 2
		if math.IsInf(lo, -1) {
			return lo // p is below what a float64 t can reach
		}
	}
	t := (lo + hi) / 2
	for range 2000 {
		f := StudentTCDF(t, df) - p
		switch {
		case f == 0:
			return t
		case f < 0:
			lo = t
		default:
			hi = t
		}
		next := t - f/studentTPDF(t, df)
		if !(next > lo && next < hi) {
			next = lo + (hi-lo)/2
		}
		tol := 1e-14 * max(1, math.Abs(next))
		if math.Abs(next-t) <= tol || hi-lo <= tol {
			return next
		}
		t = next
	}
	return t
}

// lnBeta returns ln B(a, b) = ln Γ(a) + ln Γ(b) - ln Γ(a+b) for a, b > 0.
func lnBeta(a, b float64) float64 {
	big, small := max(a, b), min(a, b)
	ls, _ := math.Lgamma(small)
	return ls + lnGammaRatio(big, small)
}

// lnGammaRatio returns ln Γ(a) - ln Γ(a+b) for a, b > 0. For a of 100 or
// more it uses Stirling's series, whose leading terms cancel by hand:
// with ln Γ(z) = (z-1/2) ln z - z + ln(2π)/2 + s(z),
//
//	ln Γ(a) - ln Γ(a+b) = -b ln a - (a+b-1/2) ln(1+b/a) + b + s(a) - s(a+b),
//
// where two math.Lgamma values of millions would lose the difference's
// last digits (1e-9 of it at a = 5e5, t's CDF at a million degrees of
// freedom).
func lnGammaRatio(a, b float64) float64 {
	if a < 100 {
		la, _ := math.Lgamma(a)
		lab, _ := math.Lgamma(a + b)
		return la - lab
	}
	return -b*math.Log(a) - (a+b-0.5)*math.Log1p(b/a) + b + stirling(a) - stirling(a+b)
}

// stirling returns s(z) = ln Γ(z) - ((z-1/2) ln z - z + ln(2π)/2) for
// z >= 100 by its asymptotic series 1/(12z) - 1/(360z³) + 1/(1260z⁵) -
// 1/(1680z⁷), whose next term is below 1e-21 there.
func stirling(z float64) float64 {
	w := 1 / (z * z)
	return (1.0/12 - w*(1.0/360-w*(1.0/1260-w/1680))) / z
}

// betaInc returns the regularized incomplete beta function I_x(a, b) for
// a, b > 0 and x in [0, 1], given x and xc = 1 - x (each computed
// directly, so that neither loses precision to the other). It evaluates
//
//	I_x(a, b) = x^a (1-x)^b / (a B(a, b)) / (1 + d1/(1 + d2/(1 + ...)))
//	d(2m+1) = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1))
//	d(2m)   = m(b-m) x / ((a+2m-1)(a+2m))
//
// by the modified Lentz method. The fraction converges quickly for
// x < (a+1)/(a+b+2); above that it uses I_x(a, b) = 1 - I_(1-x)(b, a).
func betaInc(a, b, x, xc float64) float64 {
	switch {
	case x <= 0:
		return 0
	case xc <= 0:
		return 1
	case x > (a+1)/(a+b+2):
		return 1 - betaInc(b, a, xc, x)
	}
	lnx, lnxc := math.Log(x), math.Log(xc)
	if x > 0.5 {
		lnx = math.Log1p(-xc)
	} else {
		lnxc = math.Log1p(-x)
	}
	front := math.Exp(a*lnx + b*lnxc - lnBeta(a, b))
	return front / (a * betaFraction(a, b, x))
}

// betaFraction evaluates the continued fraction 1 + d1/(1 + d2/(1 + ...))
// of betaInc by the modified Lentz method: with f the running value and
// C, D the ratios of successive numerators and denominators,
//
//	D ← 1/(1 + d_j D),  C ← 1 + d_j/C,  f ← f C D,
//
// starting from f = C = 1, D = 0, with zeros nudged to a tiny number, until
// C D stays within a rounding error of 1.
func betaFraction(a, b, x float64) float64 {
	const (
		tiny    = 1e-300
		eps     = 4e-16
		maxTerm = 100000
	)
	nudge := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	f, c, d := 1.0, 1.0, 0.0
	settled := 0 // successive terms that changed f by less than eps
	for j := 1; j <= maxTerm; j++ {
		var dj float64
		if m := float64(j / 2); j%2 == 1 {
			dj = -(a + m) * (a + b + m) * x / ((a + 2*m) * (a + 2*m + 1))
		} else {
			dj = m * (b - m) * x / ((a + 2*m - 1) * (a + 2*m))
		}
		d = 1 / nudge(1+dj*d)
		c = nudge(1 + dj/c)
		delta := c * d
		f *= delta
		if math.Abs(delta-1) < eps {
			settled++
			if settled == 2 {
				break
			}
		} else {
			settled = 0
		}
	}
	return f
}

// AlwaysValid returns the bounds of an always-valid confidence interval
// for t's difference: a confidence sequence, whose chance of ever
// excluding the true difference, however often it is looked at as the
// samples grow, is at most alpha. It is the mixture sequential
// probability ratio test for a normal mean, with a normal mixture of
// scale tau over the differences (tune tau to the size of difference
// worth finding), and t's standard error as the known one: sound once
// each sample holds some dozens of values. Degenerate tests (StdErr 0)
// give Diff for both bounds, as Test does; values that have not varied
// yet are no evidence that they will not, and the trainer's stages wait
// on such tests rather than decide (see Policy).
func AlwaysValid(t Test, alpha, tau float64) (low, high float64) {
	v := t.StdErr * t.StdErr
	if v == 0 || math.IsInf(t.T, 0) {
		return t.Low, t.High
	}
	t2 := tau * tau
	half := math.Sqrt(2 * v * (v + t2) / t2 * math.Log(math.Sqrt((v+t2)/v)/alpha))
	return t.Diff - half, t.Diff + half
}

// MeanInterval returns the bounds of the confidence interval at level
// (say 0.95) of the mean of the population s is a sample of: Student's t
// interval, NaN for fewer than 2 values, the mean for values that do not
// vary.
func MeanInterval(s Summary, level float64) (low, high float64) {
	if s.N < 2 {
		return math.NaN(), math.NaN()
	}
	se := math.Sqrt(s.Var / float64(s.N))
	if se == 0 {
		return s.Mean, s.Mean
	}
	q := -studentTQuantile((1-level)/2, float64(s.N-1))
	return s.Mean - q*se, s.Mean + q*se
}

// AlwaysValidInOwnUnits is AlwaysValid with the mixture's scale a tenth
// of the values' standard deviation (pooled from t's standard error):
// for a difference in the values' own units, such as rewards, where no
// size of difference worth finding is given.
func AlwaysValidInOwnUnits(t Test, alpha float64) (low, high float64) {
	sd := t.StdErr / math.Sqrt(1/float64(t.N1)+1/float64(t.N2))
	return AlwaysValid(t, alpha, 0.1*sd)
}

// ProportionInterval returns the bounds of the Wilson score interval at
// level (say 0.95) of a proportion of which k of n trials succeeded:
// within [0, 1], and sound near 0 and 1 and for small n, where Student's
// interval of the mean of 0s and 1s is not (it gives [0, 0] for no
// success, and bounds below 0). NaN for no trials.
func ProportionInterval(k, n uint64, level float64) (low, high float64) {
	if n == 0 || k > n {
		return math.NaN(), math.NaN()
	}
	z := -studentTQuantile((1-level)/2, math.Inf(1))
	fn := float64(n)
	p := float64(k) / fn
	z2n := z * z / fn
	center := (p + z2n/2) / (1 + z2n)
	half := z / (1 + z2n) * math.Sqrt(p*(1-p)/fn+z2n/(4*fn))
	return max(center-half, 0), min(center+half, 1)
}
