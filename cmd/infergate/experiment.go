package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/infergate/infergate/gateway/route"
)

// armFlags collects the --arm flags of "models experiment".
type armFlags []route.Arm

func (a *armFlags) String() string { return "" }

// Set parses ARM=VERSION:WEIGHT.
func (a *armFlags) Set(s string) error {
	name, rest, ok := strings.Cut(s, "=")
	version, weight, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return fmt.Errorf("%q is not ARM=VERSION:WEIGHT, like control=1:90", s)
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 {
		return fmt.Errorf("%q: version %q is not a positive integer", s, version)
	}
	w, err := strconv.Atoi(weight)
	if err != nil || w < 0 {
		return fmt.Errorf("%q: weight %q is not an integer of 0 or more", s, weight)
	}
	*a = append(*a, route.Arm{Name: name, Version: v, Weight: w})
	return nil
}

func modelsExperiment(out adminOutput, args []string) error {
	fs := out.flagSet("models experiment", "[flags] NAME EXPERIMENT --arm ARM=VERSION:WEIGHT --arm ...",
		`Start A/B experiment EXPERIMENT on model NAME, or change the one it runs: its
unversioned requests split among the arms, each a version with a weight (two
to 16 arms; weights are relative, from 0 to 1000000, and 0 pauses an arm). A request carrying the
header X-Unit-Id gets the arm its unit hashes to, the same on every node for
as long as the salt and the arms stay the same; one without it gets an arm at
random. Responses name the arm in X-Experiment-Arm. Requests that name a
version get that version. Growing the share of the first or the last arm keeps
every unit it had, so list the arm you ramp up last:

  infergate models experiment ranker new-ranker --arm control=1:90 --arm treatment=2:10
  infergate models experiment ranker new-ranker --arm control=1:50 --arm treatment=2:50

The arms' versions cannot be retired while it runs; "models end-experiment"
ends it, and "models show" shows it.`)
	cfg := adminFlags(fs, false)
	var arms armFlags
	fs.Var(&arms, "arm", "an arm: `ARM=VERSION:WEIGHT` (repeat for each arm, in order)")
	salt := fs.String("salt", "", "hashed with each unit id (default: the experiment's name); a new salt reassigns every unit")
	force := fs.Bool("force", false, "start it even when an arm's version takes other inputs or gives other outputs than production (the server refuses otherwise, with 409, when it has both loaded)")
	pos, err := parseArgs(fs, args, "NAME", "EXPERIMENT")
	if err != nil {
		return err
	}
	e := route.Experiment{Name: pos[1], Salt: *salt, Arms: arms}
	if len(arms) < 2 || len(arms) > route.MaxArms {
		fmt.Fprintf(fs.Output(), "%d --arm flags; give 2 to %d, one per arm, like --arm control=1:90 --arm treatment=2:10\n", len(arms), route.MaxArms)
		fs.Usage()
		return errUsage
	}
	if err := e.Validate(); err != nil {
		fmt.Fprintf(fs.Output(), "%v\n", err)
		fs.Usage()
		return errUsage
	}
	body, _ := json.Marshal(e)
	var q url.Values
	if *force {
		q = url.Values{"force": {"true"}}
	}
	ans, err := cfg.call(http.MethodPut, modelPath(pos[0], "experiment"), q, "application/json", body)
	if err != nil {
		return err
	}
	var res struct {
		Model      string            `json:"model"`
		Experiment *route.Experiment `json:"experiment"`
		NewPhase   *bool             `json:"new_phase"`
	}
	return out.report(cfg.json, ans, "the experiment", &res, func() string {
		if res.Experiment == nil {
			return fmt.Sprintf("%s runs no experiment", res.Model)
		}
		line := fmt.Sprintf("%s runs experiment %s", res.Model, res.Experiment)
		switch {
		case res.NewPhase == nil: // a node of an earlier release, or a write that raced
		case *res.NewPhase:
			line += "\na new phase began: the arms' counts (infergate models show) start at 0"
		case !res.Experiment.Started.IsZero():
			line += "\nits split is unchanged: the phase since " + res.Experiment.Started.UTC().Format("2006-01-02 15:04:05 MST") + " goes on"
		}
		return line
	})
}

func modelsEndExperiment(out adminOutput, args []string) error {
	fs := out.flagSet("models end-experiment", "[flags] NAME",
		`End the A/B experiment of model NAME: its unversioned requests go to production
again, and the arms' versions can be retired.`)
	cfg := adminFlags(fs, false)
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	ans, err := cfg.call(http.MethodDelete, modelPath(pos[0], "experiment"), nil, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Model string `json:"model"`
	}
	return out.report(cfg.json, ans, "the end of the experiment", &res, func() string {
		return fmt.Sprintf("ended %s's experiment: its unversioned requests go to production", res.Model)
	})
}

func modelsShadow(out adminOutput, args []string) error {
	fs := out.flagSet("models shadow", "[flags] NAME VERSION --percent P",
		`Copy a sample of model NAME's requests to VERSION, a shadow: each node runs the
copies after answering, on two workers of its own, each only while no client's
request is in flight on VERSION, and compares the shadow's outputs with the ones the
client got, which never change.
infergate_shadow_requests_total counts the copies (compared, failed, dropped
when the node's queue of 64 copies is full, not_ready), and
infergate_shadow_max_abs_diff and infergate_shadow_disagreements_total say how
far the shadow's values are from the client's. Requests the response cache
answers are copied too; those VERSION answered itself (naming it, or as an
experiment's arm) are not. The version cannot be
retired while it shadows; "models end-shadow" stops it.

  infergate models shadow ranker 2 --percent 10`)
	cfg := adminFlags(fs, false)
	percent := fs.Float64("percent", 0, "share of the model's requests to copy, more than 0 and at most 100")
	tolerance := fs.Float64("tolerance", 0, "largest absolute difference of an output value that still agrees (0 means the default, 0.001; for an all but exact comparison give a tiny one, like 1e-12)")
	pos, err := parseArgs(fs, args, "NAME", "VERSION")
	if err != nil {
		return err
	}
	v, err := parseVersion(fs, pos[1])
	if err != nil {
		return err
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "percent" })
	if !given {
		fmt.Fprintf(fs.Output(), "--percent is missing: give the share of the model's requests to copy, more than 0 and at most 100, like --percent 10\n")
		fs.Usage()
		return errUsage
	}
	sh := route.Shadow{Version: v, Percent: *percent, Tolerance: *tolerance}
	if err := sh.Validate(); err != nil {
		fmt.Fprintf(fs.Output(), "%v\n", err)
		fs.Usage()
		return errUsage
	}
	body, _ := json.Marshal(sh)
	ans, err := cfg.call(http.MethodPut, modelPath(pos[0], "shadow"), nil, "application/json", body)
	if err != nil {
		return err
	}
	var res struct {
		Model  string        `json:"model"`
		Shadow *route.Shadow `json:"shadow"`
	}
	return out.report(cfg.json, ans, "the shadow", &res, func() string {
		if res.Shadow == nil {
			return fmt.Sprintf("%s has no shadow", res.Model)
		}
		return fmt.Sprintf("%s: %s", res.Model, res.Shadow)
	})
}

func modelsEndShadow(out adminOutput, args []string) error {
	fs := out.flagSet("models end-shadow", "[flags] NAME",
		`Stop copying model NAME's requests to its shadow version.`)
	cfg := adminFlags(fs, false)
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	ans, err := cfg.call(http.MethodDelete, modelPath(pos[0], "shadow"), nil, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Model string `json:"model"`
	}
	return out.report(cfg.json, ans, "the end of the shadow", &res, func() string {
		return fmt.Sprintf("ended %s's shadow: its requests are copied nowhere now", res.Model)
	})
}
