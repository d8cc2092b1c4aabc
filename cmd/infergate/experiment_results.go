package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/trainer"
)

// printExperimentResults writes what the cluster counted for a model's
// running experiment: each arm's requests and mean label and reward with
// their intervals at level, and each arm's difference from the first
// (the control), as an always-valid interval, which stays valid however
// often it is looked at while the experiment runs.
func printExperimentResults(w io.Writer, r *cluster.ExperimentResults, level float64) error {
	from := fmt.Sprintf("%d nodes", len(r.Nodes))
	if len(r.Nodes) == 1 {
		from = "1 node"
	}
	if len(r.Missing) > 0 {
		from += "; not counted: " + strings.Join(r.Missing, ", ") + " (no answer, or not in this phase yet)"
	}
	since := ""
	if !r.Started.IsZero() {
		// A phase begins when the experiment starts or its split changes.
		since = ", since " + r.Started.UTC().Format("2006-01-02 15:04:05 MST") + " (when it started or its split last changed)"
	}
	pct := strconv.FormatFloat(100*level, 'g', -1, 64) + "%"
	fmt.Fprintf(w, "\nexperiment %s%s, as counted by %s:\n", r.Experiment, since, from)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ARM\tVERSION\tREQUESTS\tFALLBACKS\tLABELS\tMEAN LABEL (%s)\tREWARDS\tMEAN REWARD (%s)\n", pct, pct)
	for _, a := range r.Arms {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", a.Arm, a.Version, a.Requests, a.Fallbacks,
			a.Labels, meanWithInterval(a.Labels, a.LabelSum, a.LabelSquares, level),
			a.Rewards, meanWithInterval(a.Rewards, a.RewardSum, a.RewardSquares, level))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Arms) < 2 {
		return nil
	}
	feedback := false
	for _, a := range r.Arms {
		feedback = feedback || a.Labels > 0 || a.Rewards > 0
	}
	if !feedback {
		fmt.Fprintf(w, "  no feedback counted yet: clients post each prediction's outcome to POST /v2/models/{model}/feedback with the id of its response (serve --traffic-percent above 0 gives responses ids)\n")
		return nil
	}
	control := r.Arms[0]
	var lines []string
	for _, a := range r.Arms[1:] {
		for _, c := range []struct {
			what       string
			ctl, other trainer.Summary
		}{
			{"mean label", trainer.SummaryOf(control.Labels, control.LabelSum, control.LabelSquares), trainer.SummaryOf(a.Labels, a.LabelSum, a.LabelSquares)},
			{"mean reward", trainer.SummaryOf(control.Rewards, control.RewardSum, control.RewardSquares), trainer.SummaryOf(a.Rewards, a.RewardSum, a.RewardSquares)},
		} {
			if c.ctl.N == 0 && c.other.N == 0 {
				continue
			}
			lines = append(lines, fmt.Sprintf("  %s against %s, %s: %s", a.Arm, control.Arm, c.what, compareArms(c.ctl, c.other, level)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "%s\n  (each label and reward counts as one observation: where a unit gives many, the intervals are too narrow)\n", strings.Join(lines, "\n"))
	}
	return nil
}

// minArmValues is how many values each arm needs before compareArms
// gives an interval: the always-valid interval takes the standard error
// as known, which holds once a sample has some dozens.
const minArmValues = 30

// compareArms says how other's mean differs from ctl's: the difference,
// its always-valid interval at level, and whether that tells them apart.
func compareArms(ctl, other trainer.Summary, level float64) string {
	if n := min(ctl.N, other.N); n < minArmValues {
		return fmt.Sprintf("too few values yet (%d and %d; %d each at least)", ctl.N, other.N, minArmValues)
	}
	t := trainer.WelchOf(ctl, other, level)
	if t.StdErr == 0 || math.IsNaN(t.StdErr) {
		return fmt.Sprintf("no variance within either arm yet (every value so far is %.4g in the control and %.4g in this arm): no interval to judge by", t.Mean1, t.Mean2)
	}
	// As the trainer's canary judges rewards.
	low, high := trainer.AlwaysValidInOwnUnits(t, 1-level)
	verdict := "not told apart yet"
	switch {
	case low > 0:
		verdict = "higher"
	case high < 0:
		verdict = "lower"
	}
	return fmt.Sprintf("%s: %+.4g, in [%.4g, %.4g] at %g%%, always valid (p %.3g at this look alone)",
		verdict, t.Diff, low, high, 100*level, t.P)
}

// meanWithInterval formats a mean and its interval at level, "-" for no
// values: for values that are all 0 or 1 (their squares sum to their
// sum: a rate, such as conversions), the Wilson interval of the
// proportion, else Student's interval of the mean.
func meanWithInterval(n uint64, sum, squares, level float64) string {
	if n == 0 {
		return "-"
	}
	s := trainer.SummaryOf(n, sum, squares)
	var low, high float64
	if sum == squares && sum == math.Trunc(sum) && sum >= 0 && sum <= float64(n) {
		low, high = trainer.ProportionInterval(uint64(sum), n, level)
	} else {
		low, high = trainer.MeanInterval(s, level)
	}
	switch {
	case math.IsNaN(low):
		return fmt.Sprintf("%.4g", s.Mean)
	case s.Var == 0 && low == high:
		return fmt.Sprintf("%.4g (no variance yet)", s.Mean)
	}
	return fmt.Sprintf("%.4g [%.4g, %.4g]", s.Mean, low, high)
}
