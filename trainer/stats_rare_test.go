package trainer

import (
	"math/rand/v2"
	"testing"
)

// Arms that do not differ, a 10% arm, and a rare outcome: the canary's
// always-valid intervals, looked at every 500 requests, tell them apart
// about as rarely as their level allows. The small arm often holds none
// of the rare values, and Welch's standard error alone (resting on the
// large arm's variance) called them apart 3 to 5 times too often.
func TestRareOutcomesInASmallArm(t *testing.T) {
	p := DefaultPolicy()
	const sims, looks, perLook = 400, 20, 500
	f := func(name string, judge func(a, b Summary) bool, draw func(r *rand.Rand) float64, most float64) {
		t.Helper()
		r := rand.New(rand.NewPCG(7, 11))
		told := 0
		for range sims {
			var a, b sums
			for range looks {
				for range perLook {
					if v := draw(r); r.Float64() < 0.1 {
						b.add(v)
					} else {
						a.add(v)
					}
				}
				if min(a.n, b.n) >= uint64(p.MinCanaryExamples) && judge(a.summary(), b.summary()) {
					told++
					break
				}
			}
		}
		t.Logf("%s: equal arms told apart in %d of %d runs", name, told, sims)
		if share := float64(told) / sims; share > most {
			t.Errorf("%s: equal arms told apart in %.1f%% of %d runs; want %.1f%% at most", name, 100*share, sims, 100*most)
		}
	}
	// The log loss of a constant score of 0.02 at a 2% base rate.
	loss := func(r *rand.Rand) float64 {
		y := 0.0
		if r.Float64() < 0.02 {
			y = 1
		}
		return bce(0.02, y)
	}
	byLoss := func(a, b Summary) bool {
		low, high := AlwaysValid(WelchOf(a, b, p.Level), 1-p.Level, p.Effect)
		return low > 0 || high < 0
	}
	f("log loss at a 2% base rate", byLoss, loss, 0.02)
	// Conversions of 2% as rewards, as the reward guard judges them.
	conversion := func(r *rand.Rand) float64 {
		if r.Float64() < 0.02 {
			return 1
		}
		return 0
	}
	byReward := func(a, b Summary) bool {
		low, high := AlwaysValidInOwnUnits(WelchOf(a, b, p.Level), 1-p.Level)
		return low > 0 || high < 0
	}
	f("rewards converting 2%", byReward, conversion, 0.02)
}

// sums keeps a sample as counters do: its size, sum and sum of squares.
type sums struct {
	n            uint64
	sum, squares float64
}

func (s *sums) add(v float64) { s.n, s.sum, s.squares = s.n+1, s.sum+v, s.squares+v*v }

func (s *sums) summary() Summary { return SummaryOf(s.n, s.sum, s.squares) }
