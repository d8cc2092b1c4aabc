package trainer

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy is what a Loop demands of a candidate version at each stage
// before it takes more traffic, and when it gives up on it.
type Policy struct {
	// Level is the confidence of the intervals that decide: a stage
	// passes when the interval of the candidate's log loss minus the live
	// version's lies below 0, and fails when it lies above. The intervals
	// are always valid (AlwaysValid): the loop looks at them at every
	// step, and the chance that noise ever passes or fails a stage stays
	// within 1 - Level however long it runs. Log losses that have not
	// varied yet (no standard error) decide nothing: the stage waits.
	Level float64
	// Effect is the size of log-loss difference the always-valid
	// intervals are tuned for (their mixture's scale): they are
	// narrowest for differences about that large.
	Effect float64
	// MinShadowPairs is how many labeled requests the shadow must have
	// scored beside the live version before the shadow stage is judged.
	MinShadowPairs int
	// MinCanaryExamples is how many units (X-Unit-Id: users, sessions;
	// a request without one is a unit of its own) with labeled requests
	// each arm of the canary must have before it is judged: a unit's
	// requests are one sample, their mean.
	MinCanaryExamples int
	// MaxShadow and MaxCanary bound how long a stage runs without a
	// verdict: then the candidate is rolled back, for want of evidence
	// that it is better.
	MaxShadow, MaxCanary time.Duration
	// MaxFailureRate is the share of the candidate's runs (the shadow's
	// copies, the canary arm's requests) that may fail; judged once
	// MinRuns ran.
	MaxFailureRate float64
	MinRuns        int
}

// DefaultPolicy returns settings for a model of a few requests a second
// with feedback on most of them.
func DefaultPolicy() Policy {
	return Policy{Level: 0.99, Effect: 0.05, MinShadowPairs: 200, MinCanaryExamples: 200,
		MaxShadow: time.Hour, MaxCanary: 24 * time.Hour, MaxFailureRate: 0.01, MinRuns: 100}
}

// Validate reports settings that cannot judge.
func (p *Policy) Validate() error {
	switch {
	case !(p.Level >= 0.5 && p.Level < 1):
		return fmt.Errorf("confidence level %v: use 0.5 or more and less than 1 (0.99, say)", p.Level)
	case !(p.Effect > 0 && p.Effect < 10):
		return fmt.Errorf("effect %v: use a log-loss difference above 0 (0.05, say)", p.Effect)
	case p.MinShadowPairs < 2 || p.MinCanaryExamples < 2:
		return fmt.Errorf("minimum samples %d (shadow) and %d (canary): use 2 or more", p.MinShadowPairs, p.MinCanaryExamples)
	case p.MaxShadow <= 0 || p.MaxCanary <= 0:
		return errors.New("the stages' longest durations must be positive")
	case !(p.MaxFailureRate >= 0 && p.MaxFailureRate <= 1):
		return fmt.Errorf("failure rate %v: use 0 to 1", p.MaxFailureRate)
	case p.MinRuns < 1:
		return fmt.Errorf("minimum runs %d: use 1 or more", p.MinRuns)
	}
	return nil
}

// Verdict is what a stage's evidence says so far.
type Verdict int

// The verdicts.
const (
	// Wait: not enough evidence yet.
	Wait Verdict = iota
	// Pass: the candidate is better; it goes on to the next stage.
	Pass
	// Fail: the candidate is worse, fails, or found no evidence in time;
	// it is rolled back.
	Fail
)

func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	}
	return "wait"
}

// Judgement is a Verdict with its reason and evidence.
type Judgement struct {
	Verdict Verdict
	Reason  string
	// Loss compares the log losses: sample 1 the live version's, sample
	// 2 the candidate's (Diff < 0: the candidate is better).
	Loss Test
	// Reward compares the canary arms' rewards (N1 or N2 0 when none).
	Reward Test
}

// Runs is how many times the candidate ran in a stage and how many of
// those failed, summed over the nodes.
type Runs struct{ Ran, Failed float64 }

// failing returns why runs break the policy, if they do.
func (p *Policy) failing(r Runs, series string) string {
	if r.Ran >= float64(p.MinRuns) && r.Failed > p.MaxFailureRate*r.Ran {
		return fmt.Sprintf("%.0f of its %.0f runs failed, over %.3g%% (see the gateways' logs and %s)", r.Failed, r.Ran, 100*p.MaxFailureRate, series)
	}
	return ""
}

// JudgeShadow judges a candidate running as a shadow since since: on the
// labeled requests production answered and the shadow scored (exs with
// Version production and ShadowVersion candidate),
// its log loss against the live version's on the same requests.
func (p *Policy) JudgeShadow(exs []Example, production, candidate int64, since, now time.Time, runs Runs) Judgement {
	var live, cand []float64
	for i := range exs {
		ex := &exs[i]
		// Requests that named another version are copied too: they
		// compare the candidate with that version, not production.
		if ex.ShadowVersion != candidate || ex.Version != production || !ex.HasLabel || ex.Time.Before(since) {
			continue
		}
		live = append(live, bce(float64(ex.Live), float64(ex.Label)))
		cand = append(cand, bce(float64(ex.Shadow), float64(ex.Label)))
	}
	j := Judgement{Loss: Paired(live, cand, p.Level)}
	if why := p.failing(runs, `infergate_shadow_requests_total{result="failed"|"not_ready"}`); why != "" {
		j.Verdict, j.Reason = Fail, "the shadow fails: "+why
		return j
	}
	return p.verdict(j, len(live), p.MinShadowPairs, "labeled requests shadowed", "production's on the same requests", "requests", since, now, p.MaxShadow)
}

// JudgeCanary judges a candidate answering the arm named candidate of an
// experiment against the arm control (version controlVersion) since
// since: the log loss of each arm on its own labeled requests, and the
// rewards, which must not be worse.
func (p *Policy) JudgeCanary(exs []Example, control string, controlVersion int64, candidate string, candidateVersion int64, since, now time.Time, runs Runs) Judgement {
	// Arms are assigned by unit: the requests of one unit are not
	// independent, so each unit is one sample (its mean), and a request
	// without a unit is a unit of its own.
	var liveU, candU, liveRU, candRU units
	for i := range exs {
		ex := &exs[i]
		if ex.Time.Before(since) {
			continue
		}
		// A request whose arm's version was not ready on its node fell
		// back to production: it is evidence of neither arm.
		var loss, reward *units
		switch {
		case ex.Arm == control && ex.Version == controlVersion:
			loss, reward = &liveU, &liveRU
		case ex.Arm == candidate && ex.Version == candidateVersion:
			loss, reward = &candU, &candRU
		default:
			continue
		}
		if ex.HasLabel {
			loss.add(ex.Unit, bce(float64(ex.Live), float64(ex.Label)))
		}
		if ex.HasReward {
			reward.add(ex.Unit, ex.Reward)
		}
	}
	live, cand, liveR, candR := liveU.means(), candU.means(), liveRU.means(), candRU.means()
	j := Judgement{Loss: Welch(live, cand, p.Level), Reward: Welch(liveR, candR, p.Level)}
	if why := p.failing(runs, "infergate_inference_request_failure_total and infergate_experiment_fallback_total"); why != "" {
		j.Verdict, j.Reason = Fail, "the canary fails: "+why
		return j
	}
	if r := j.Reward; min(r.N1, r.N2) >= p.MinCanaryExamples {
		// Rewards come in the model's own units.
		if low, high := AlwaysValidInOwnUnits(r, 1-p.Level); high < 0 {
			j.Verdict = Fail
			j.Reason = fmt.Sprintf("the canary's mean reward %.4g is below control's %.4g (difference in [%.3g, %.3g] at %g%%, always valid; %s at this look alone)",
				r.Mean2, r.Mean1, low, high, 100*p.Level, pValue(r.P))
			return j
		}
	}
	return p.verdict(j, min(len(live), len(cand)), p.MinCanaryExamples, "units with labels in the smaller arm", "the control arm's", "units", since, now, p.MaxCanary)
}

// units gathers values by unit; values without a unit are units of their
// own.
type units struct {
	sum   map[string]float64
	n     map[string]int
	alone []float64
}

func (u *units) add(unit string, v float64) {
	if unit == "" {
		u.alone = append(u.alone, v)
		return
	}
	if u.sum == nil {
		u.sum, u.n = map[string]float64{}, map[string]int{}
	}
	u.sum[unit] += v
	u.n[unit]++
}

// means returns each unit's mean value.
func (u *units) means() []float64 {
	out := slices.Clone(u.alone)
	for k, s := range u.sum {
		out = append(out, s/float64(u.n[k]))
	}
	return out
}

// verdict decides on the log loss evidence in j: n samples of the min
// needed, what they are, whose loss the candidate's is compared with,
// what a sample is, a stage that started at since and may run max.
func (p *Policy) verdict(j Judgement, n, min int, what, against, samples string, since, now time.Time, max time.Duration) Judgement {
	t := j.Loss
	low, high := AlwaysValid(t, 1-p.Level, p.Effect)
	ci := fmt.Sprintf("log loss %.4f against %s %.4f; the difference is in [%.3g, %.3g] at %g%%, always valid (%s at this look alone, %d and %d %s)",
		t.Mean2, against, t.Mean1, low, high, 100*p.Level, pValue(t.P), t.N1, t.N2, samples)
	late := now.Sub(since) >= max
	// flat: the log losses compared have not varied yet (StdErr 0), and
	// there is no standard error to judge their difference by. It is
	// not evidence of none: a confident model loses about 0.001 on each
	// right answer and 6.9 on a misprediction (a score of 0.001), which
	// may be one in thousands. Taken as certain, the difference of two
	// such arms' small losses promoted a candidate that mispredicted
	// twice as often (TestCanaryOverconfidentCandidate).
	flat := n >= min && t.StdErr == 0
	if flat {
		ci = fmt.Sprintf("log loss %.4f against %s %.4f, and the log losses compared have not varied yet (%d and %d %s): no standard error to judge the difference by until a misprediction comes",
			t.Mean2, against, t.Mean1, t.N1, t.N2, samples)
	}
	switch {
	case n >= min && !flat && high < 0:
		j.Verdict, j.Reason = Pass, "better: "+ci
	case n >= min && !flat && low > 0:
		j.Verdict, j.Reason = Fail, "worse: "+ci
	case late && n < min:
		j.Verdict, j.Reason = Fail, fmt.Sprintf("no verdict after %s: %d %s, fewer than the %d needed", max, n, what, min)
	case late:
		j.Verdict, j.Reason = Fail, fmt.Sprintf("no better after %s: %s", max, ci)
	case n < min:
		j.Verdict, j.Reason = Wait, fmt.Sprintf("%d %s so far; %d needed", n, what, min)
	default:
		j.Verdict, j.Reason = Wait, "no verdict yet: "+ci
	}
	return j
}

// pValue formats a p-value; below the precision of the test's arithmetic
// it says so rather than print 0.
func pValue(p float64) string {
	if p < 1e-15 {
		return "p<1e-15"
	}
	return fmt.Sprintf("p=%.2g", p)
}
