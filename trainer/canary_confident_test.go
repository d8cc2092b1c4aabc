package trainer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// skipUnderRace skips t, a seeded simulation on one goroutine that takes
// seconds, in a build with the race detector, which has no data race to
// find in it and makes it take minutes: `make test` runs these again
// without the detector (SIMULATIONS in the Makefile).
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceDetector {
		t.Skip("a simulation on one goroutine; make test runs it without -race")
	}
}

// confidentCanary runs sims seeded canaries of a 10% arm through
// JudgeCanary, as the loop does: a look every perLook labeled requests
// (each its own unit) up to looks looks, stopping at the first verdict.
// Each request's label is 1; control scores it 0.999 and mispredicts it
// (scores 0.001: a log loss of 6.9 against 0.001) with chance miss, the
// candidate scores it candScore and mispredicts it with chance candMiss.
// It returns how many canaries passed and failed, and the requests each
// took to its verdict.
func confidentCanary(p Policy, seed uint64, sims, looks, perLook int, miss float64, candScore float32, candMiss float64) (pass, fail int, took []int) {
	r := rand.New(rand.NewPCG(seed, 11))
	since := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	now := since.Add(time.Hour)
	for range sims {
		exs := make([]Example, 0, looks*perLook)
		for look := range looks {
			for range perLook {
				ex := Example{Time: since, Label: 1, HasLabel: true, Arm: "control", Version: 1, Live: 0.999}
				if r.Float64() < 0.1 {
					ex.Arm, ex.Version, ex.Live = "candidate", 2, candScore
					if r.Float64() < candMiss {
						ex.Live = 0.001
					}
				} else if r.Float64() < miss {
					ex.Live = 0.001
				}
				exs = append(exs, ex)
			}
			j := p.JudgeCanary(exs, "control", 1, "candidate", 2, since, now, Runs{})
			if j.Verdict == Wait {
				continue
			}
			if j.Verdict == Pass {
				pass++
			} else {
				fail++
			}
			took = append(took, (look+1)*perLook)
			break
		}
	}
	return pass, fail, took
}

// A confident model (scores of 0.999, a misprediction one request in a
// thousand) against itself in a 10% canary arm: a misprediction is
// expected about once in the small arm's first thousand units, and until
// one comes neither arm's log losses vary, every one -ln(0.999).
// JudgeCanary's means of equal values are exact and agree, but means of
// counters (SummaryOf: a sum over n) differ in their last bits by the
// rounding of the sums, and with no variance such a difference was
// taken as certain: at the same looks, judged by the canary's verdict,
// 25 of 400 equal canaries were promoted (6%; the level allows 1%).
func TestCanaryConfidentModelAgainstItself(t *testing.T) {
	skipUnderRace(t)
	p := DefaultPolicy()
	const sims, looks, perLook = 400, 20, 500
	most := (1 - p.Level) * sims
	pass, fail, _ := confidentCanary(p, 7, sims, looks, perLook, 0.001, 0.999, 0.001)
	t.Logf("equal confident models, JudgeCanary: %d passed and %d failed of %d canaries", pass, fail, sims)
	if float64(pass+fail) > most {
		t.Errorf("equal confident models, JudgeCanary: %d passed and %d failed of %d canaries; want %.0f at most", pass, fail, sims, most)
	}
	// The same canaries kept as counters, the arms' summaries taken
	// from their sums and sums of squares.
	r := rand.New(rand.NewPCG(7, 11))
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	right, wrong := bce(0.999, 1), bce(0.001, 1)
	told := 0
	for range sims {
		var a, b sums
		for range looks {
			for range perLook {
				v := right
				if r.Float64() < 0.001 {
					v = wrong
				}
				if r.Float64() < 0.1 {
					b.add(v)
				} else {
					a.add(v)
				}
			}
			j := p.verdict(Judgement{Loss: WelchOf(a.summary(), b.summary(), p.Level)}, int(min(a.n, b.n)), p.MinCanaryExamples,
				"units", "the control arm's", "units", now, now, p.MaxCanary)
			if j.Verdict != Wait {
				told++
				break
			}
		}
	}
	t.Logf("equal confident models, counters: told apart in %d of %d canaries", told, sims)
	if float64(told) > most {
		t.Errorf("equal confident models, counters: told apart in %d of %d canaries; want %.0f at most", told, sims, most)
	}
}

// A candidate more confident than production (it scores 0.9999 where
// production scores 0.999) but mispredicting twice as often (one request
// in 500 against one in 1,000) is worse: a mean log loss of 0.0139
// against 0.0079. Until the first misprediction neither arm's losses
// vary, and its lower loss on every right answer (0.0001 against 0.001)
// was taken as a certain difference: such a candidate was promoted in
// 32 of 400 canaries at a look every 500 requests (8%; the level
// allows 1%).
func TestCanaryOverconfidentCandidate(t *testing.T) {
	skipUnderRace(t)
	p := DefaultPolicy()
	const sims, looks, perLook = 400, 20, 500
	pass, fail, _ := confidentCanary(p, 8, sims, looks, perLook, 0.001, 0.9999, 0.002)
	t.Logf("an overconfident worse candidate: %d passed and %d failed of %d canaries", pass, fail, sims)
	if most := (1 - p.Level) * sims; float64(pass) > most {
		t.Errorf("an overconfident worse candidate: promoted in %d of %d canaries; want %.0f at most", pass, sims, most)
	}
}

// Log losses that have not varied yet wait, however far apart, and fail
// only when the stage runs out of time, saying why.
func TestCanaryFlatLossesWait(t *testing.T) {
	p := DefaultPolicy()
	since := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	f := func(after time.Duration, want Verdict, wantReason string) {
		t.Helper()
		var exs []Example
		for i := range 2400 {
			ex := Example{Time: since, Label: 1, HasLabel: true, Arm: "control", Version: 1, Live: 0.999}
			if i%10 == 0 {
				ex.Arm, ex.Version, ex.Live = "candidate", 2, 0.9999
			}
			exs = append(exs, ex)
		}
		j := p.JudgeCanary(exs, "control", 1, "candidate", 2, since, since.Add(after), Runs{})
		if j.Verdict != want || !strings.Contains(j.Reason, wantReason) {
			t.Fatalf("after %s: %v, %s; want %v, %q", after, j.Verdict, j.Reason, want, wantReason)
		}
	}
	f(time.Hour, Wait, "no verdict yet: log loss 0.0001 against the control arm's 0.0010, and the log losses compared have not varied yet (2160 and 240 units)")
	f(p.MaxCanary, Fail, "no better after 24h0m0s: log loss 0.0001")
}

// A candidate with half production's mispredictions is still found
// better, by the canary's verdict over counters (as in
// TestCanaryConfidentModelAgainstItself) with a look every 1,000
// requests, in about as many requests as before losses that have not
// varied were made to wait: where mispredictions are rare, telling half
// as many apart takes far more units than the first misprediction does.
func TestCanaryFindsFewerMispredictions(t *testing.T) {
	skipUnderRace(t)
	p := DefaultPolicy()
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	const sims, perLook, most = 100, 1000, 600_000
	f := func(miss float64, wantFound int) {
		t.Helper()
		r := rand.New(rand.NewPCG(9, uint64(1/miss)))
		right, wrong := bce(0.999, 1), bce(0.001, 1)
		var took []int
		flat := 0
		for range sims {
			var a, b sums
			for n := perLook; n <= most; n += perLook {
				for range perLook {
					cand := r.Float64() < 0.1
					m := miss
					if cand {
						m /= 2
					}
					v := right
					if r.Float64() < m {
						v = wrong
					}
					if cand {
						b.add(v)
					} else {
						a.add(v)
					}
				}
				j := p.verdict(Judgement{Loss: WelchOf(a.summary(), b.summary(), p.Level)}, int(min(a.n, b.n)), p.MinCanaryExamples,
					"units", "the control arm's", "units", now, now, p.MaxCanary)
				if j.Verdict == Fail {
					t.Fatalf("mispredictions %g against %g: failed after %d requests: %s", miss/2, miss, n, j.Reason)
				}
				if j.Verdict == Pass {
					if j.Loss.StdErr == 0 {
						flat++
					}
					took = append(took, n)
					break
				}
			}
		}
		slices.Sort(took)
		median := -1
		if len(took) > 0 {
			median = took[len(took)/2]
		}
		t.Logf("mispredictions %g against %g: found better in %d of %d canaries within %d requests (%d with losses that had not varied); those found took %d (median) requests",
			miss/2, miss, len(took), sims, most, flat, median)
		if len(took) < wantFound || flat > 0 {
			t.Errorf("mispredictions %g against %g: found better in %d of %d canaries within %d requests, %d of them with losses that had not varied; want %d at least, none such",
				miss/2, miss, len(took), sims, most, flat, wantFound)
		}
	}
	f(0.01, 90)
	f(0.004, 90)
	// One misprediction in 1,000 against one in 2,000: a difference in
	// mean log loss of 0.0035, found in about a third of the canaries
	// within 600,000 requests (more than two days at 3 a second).
	f(0.001, 25)
}

// Equal confident models at rarer and commoner mispredictions, one
// request in 5,000 to one in 200, a look every 500 requests up to
// 50,000, kept as counters: once a misprediction has come, the losses'
// skew (a sample skewness of about 1/sqrt(rate), 14 to 70 here) does not
// make the canary's verdict tell equal arms apart more often than its
// level allows; the pooled standard error (see Welch) keeps it cautious
// while the small arm has none. Before flat losses waited, the rounding
// of the counters' sums told them apart in 146, 79, 25, 4 and 0 of 400;
// now in none.
func TestCanaryEqualArmsAtRareMispredictions(t *testing.T) {
	skipUnderRace(t)
	p := DefaultPolicy()
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	const sims, perLook, requests = 400, 500, 50_000
	right, wrong := bce(0.999, 1), bce(0.001, 1)
	for _, miss := range []float64{0.0002, 0.0005, 0.001, 0.002, 0.005} {
		r := rand.New(rand.NewPCG(10, uint64(1/miss)))
		told := 0
		for range sims {
			var a, b sums
			for range requests / perLook {
				for range perLook {
					v := right
					if r.Float64() < miss {
						v = wrong
					}
					if r.Float64() < 0.1 {
						b.add(v)
					} else {
						a.add(v)
					}
				}
				j := p.verdict(Judgement{Loss: WelchOf(a.summary(), b.summary(), p.Level)}, int(min(a.n, b.n)), p.MinCanaryExamples,
					"units", "the control arm's", "units", now, now, p.MaxCanary)
				if j.Verdict != Wait {
					told++
					break
				}
			}
		}
		t.Logf("mispredictions %g: equal arms told apart in %d of %d canaries", miss, told, sims)
		if most := (1 - p.Level) * sims; float64(told) > most {
			t.Errorf("mispredictions %g: equal arms told apart in %d of %d canaries; want %.0f at most", miss, told, sims, most)
		}
	}
}

// The shadow stage's paired differences that have not varied yet wait
// too: a shadow scoring 0.9999 where production scores 0.999, on
// requests neither mispredicts.
func TestShadowFlatLossesWait(t *testing.T) {
	p := DefaultPolicy()
	since := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	var exs []Example
	for range 500 {
		exs = append(exs, Example{Time: since, Label: 1, HasLabel: true, Version: 1, Live: 0.999, Shadow: 0.9999, ShadowVersion: 2})
	}
	j := p.JudgeShadow(exs, 1, 2, since, since.Add(time.Minute), Runs{})
	if want := "the log losses compared have not varied yet (500 and 500 requests)"; j.Verdict != Wait || !strings.Contains(j.Reason, want) {
		t.Fatalf("500 pairs with the same difference: %v, %s; want a wait, %q", j.Verdict, j.Reason, want)
	}
}
