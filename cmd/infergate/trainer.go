package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/trainer"
	"github.com/infergate/infergate/trainer/onnx"
)

// runTrainer is `infergate trainer`: the sidecar that looks after one
// model until stopped (SIGINT, SIGTERM).
func runTrainer(args []string) error {
	fs := newFlagSet("trainer", "[flags] MODEL", `Look after MODEL until stopped: every --interval, read the traffic logs of
the gateway nodes (serve --traffic-percent), or their Kafka topic
(--kafka-brokers), and

  - watching: compare production's recent inputs and scores with a
    reference window of its own (the population stability index, PSI); when
    the score or a feature drifted by --drift-threshold or more (or
    --retrain-every passed), train a candidate on the labeled traffic, as
    "infergate train" does, and upload it when it beats production on the
    holdout and ONNX Runtime agrees with it;
  - shadow: once the candidate is ready on every node, copy --shadow-percent
    of the requests to it; on the labeled ones, compare its log loss with
    production's on the same requests (a paired test); better at
    --confidence: on to the canary; worse, failing (--max-failure-rate) or
    undecided after --max-shadow: roll back;
  - canary: an experiment sends --canary-percent of the units to it and
    the rest to production; compare each arm's log loss on its own labeled
    requests (Welch's test), and its rewards, which must not be worse;
    better: promote it; worse, failing or undecided after --max-canary:
    roll back.

Rolling back ends the shadow or experiment and retires the candidate; the
loop then waits --cooldown before training again. What it decides, and
why, is logged and kept in --state, where a restarted trainer goes on. It
never touches a shadow or experiment it did not start.

  infergate trainer ctr --addr http://10.0.0.5:8080,http://10.0.0.6:8080 --state /var/lib/infergate/ctr-trainer.json`)
	gf := addGatewayFlags(fs, "base URLs of the nodes whose traffic logs to read, comma-separated: every member of the cluster (it warns of one left out); the cluster's calls go to the first that answers")
	cfg := trainer.DefaultLoopConfig()
	state := fs.String("state", "", "the trainer's state file (default infergate-trainer-MODEL.json in the working directory)")
	hidden := fs.String("hidden", "", "hidden layer sizes of the candidates, comma-separated (e.g. 32,16); empty trains a logistic regression")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "how often to read the logs and act")
	fs.IntVar(&cfg.Train.Epochs, "epochs", cfg.Train.Epochs, "passes over the training examples")
	fs.Uint64Var(&cfg.Train.Seed, "seed", cfg.Train.Seed, "seed of the initial weights and of the examples' order")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "keep the latest this many logged predictions, to train on and to measure drift")
	fs.IntVar(&cfg.MinExamples, "min-examples", cfg.MinExamples, "train only on this many labeled examples or more")
	fs.IntVar(&cfg.HoldoutEvery, "holdout-every", cfg.HoldoutEvery, "hold one example in this many out, to compare the candidate with production")
	fs.IntVar(&cfg.DriftRows, "drift-rows", cfg.DriftRows, "predictions in the drift reference, and recent ones compared with it")
	fs.Float64Var(&cfg.DriftThreshold, "drift-threshold", cfg.DriftThreshold, "retrain when the PSI of the score or of a feature reaches this (below 0.1 is stable, above 0.25 a large shift)")
	fs.DurationVar(&cfg.RetrainEvery, "retrain-every", cfg.RetrainEvery, "also retrain this long after the last training, drift or not (0: on drift only)")
	fs.DurationVar(&cfg.Cooldown, "cooldown", cfg.Cooldown, "after a candidate that did not make it, wait this long before training again")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "roll back a candidate not ready on every node this long after its upload")
	fs.IntVar(&cfg.KeepVersions, "keep-versions", cfg.KeepVersions, "versions the trainer promoted that stay in the cluster, production and the one \"infergate models rollback\" goes back to among them: older ones are retired, so that the nodes do not keep every past production loaded (0 keeps them all; versions people uploaded are never retired)")
	fs.Float64Var(&cfg.ShadowPercent, "shadow-percent", cfg.ShadowPercent, "share of the requests copied to the candidate in the shadow stage")
	fs.IntVar(&cfg.CanaryPercent, "canary-percent", cfg.CanaryPercent, "share of the units the candidate answers in the canary stage")
	fs.Float64Var(&cfg.Policy.Level, "confidence", cfg.Policy.Level, "confidence of the always-valid intervals that pass or fail a stage (looked at every step: noise passes or fails one at most 1 - this of the time)")
	fs.Float64Var(&cfg.Policy.Effect, "effect", cfg.Policy.Effect, "the log-loss difference the always-valid intervals are tuned for: they are narrowest for differences about that large")
	fs.IntVar(&cfg.Policy.MinShadowPairs, "min-shadow-examples", cfg.Policy.MinShadowPairs, "labeled requests the shadow must score before it is judged")
	fs.IntVar(&cfg.Policy.MinCanaryExamples, "min-canary-examples", cfg.Policy.MinCanaryExamples, "units (X-Unit-Id; a request without one is its own) with labeled requests each canary arm must have before it is judged: a unit's requests count as one sample")
	fs.DurationVar(&cfg.Policy.MaxShadow, "max-shadow", cfg.Policy.MaxShadow, "roll back a candidate the shadow stage has not passed after this long")
	fs.DurationVar(&cfg.Policy.MaxCanary, "max-canary", cfg.Policy.MaxCanary, "roll back a candidate the canary stage has not passed after this long")
	fs.Float64Var(&cfg.Policy.MaxFailureRate, "max-failure-rate", cfg.Policy.MaxFailureRate, "roll back a candidate when more than this share of its runs fail")
	once := fs.Bool("once", false, "take one step and exit (for a scheduler that runs the trainer now and then)")
	timeout := fs.Duration("timeout", 15*time.Second, "give up one call to a node after this long (a node that hangs delays each step by as much)")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so, which checks each candidate (default: $INFERGATE_ORT_LIB, else lib/libonnxruntime.so.1 from \"make setup\")")
	pos, err := parseArgs(fs, args, "MODEL")
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Model = pos[0]
	if cfg.Train.Hidden, err = parseHidden(*hidden); err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", *timeout)
	}
	if *state == "" {
		*state = "infergate-trainer-" + cfg.Model + ".json"
	}
	cfg.StateFile = *state
	if cfg.Gateway, err = gf.gateway(*timeout); err != nil {
		return err
	}
	logger := cliLog
	cfg.Logf = logger.Logf
	cfg.Check = func(data []byte, m *onnx.MLP, holdout []trainer.Example) error {
		_, err := checkParity(*ortLib, data, m, holdout)
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := interruptContext()
	defer stop()
	if r, err := gf.kafkaReader(ctx); err != nil {
		return err
	} else if r != nil {
		defer r.Close()
		cfg.Source = r
	} else if err := cfg.Gateway.CheckLogs(ctx); err != nil {
		return err
	}
	// The loop names the members --addr leaves out, at its first step and
	// whenever one joins.
	// Before the state is read.
	unlock, err := lockStateFile(cfg.StateFile)
	if err != nil {
		return err
	}
	defer unlock()
	l, err := trainer.NewLoop(ctx, cfg)
	if err != nil {
		return err
	}
	st := l.State()
	logger.Logf("trainer: looking after %s on %s; stage %s%s; state in %s", cfg.Model, strings.Join(cfg.Gateway.Nodes, ","), st.Stage, candidateNote(st), cfg.StateFile)
	if *once {
		return l.Step(ctx)
	}
	err = l.Run(ctx)
	logger.Logf("trainer: stopped")
	return err
}

// lockStateFile takes an exclusive lock on the file beside the state
// file named as it with ".lock" (the state file itself is replaced at
// each save), so that two trainers never share one state: each would
// overwrite the other's with its own. The lock goes with the process.
func lockStateFile(state string) (unlock func(), err error) {
	path := state + ".lock"
	unlock, err = durable.Lock(path)
	switch {
	case errors.Is(err, durable.ErrLocked):
		return nil, fmt.Errorf("state file %s is in use by another trainer (lock %s held): one trainer per model; stop the other, or give this one its own --state", state, path)
	case err != nil:
		return nil, fmt.Errorf("--state %s: cannot open its lock file: %w", state, err)
	}
	return unlock, nil
}

func candidateNote(st trainer.State) string {
	if st.Candidate == 0 {
		return ""
	}
	return fmt.Sprintf(" (version %d)", st.Candidate)
}

// splitAddrs splits a comma-separated list of base URLs.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimRight(strings.TrimSpace(a), "/"); a != "" {
			out = append(out, a)
		}
	}
	return out
}
