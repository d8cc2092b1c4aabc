// Command infergate serves ONNX models over the Open Inference Protocol v2
// and carries the tools around it. Run `infergate help` for the commands.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/infergate/infergate/internal/logging"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// cliLog is the log of the commands other than serve (whose log's
// settings change while it runs): on standard error, each line with its
// level, as serve's.
var cliLog = logging.New(os.Stderr, logging.DefaultSettings())

// init keeps the main thread for the main goroutine (main runs on it, and
// no other goroutine does): a goroutine that binds its thread to other
// CPUs, as serve --runtime-cpus's batch workers do, never lands on it.
// Tools such as taskset -p read a process's CPUs from its main thread.
func init() { runtime.LockOSThread() }

type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = []command{
	{"serve", "serve the models of a repository over OIP v2 (HTTP, and gRPC with --grpc) and KServe v1", runServe},
	{"demo-models", "write the demo models (ctr, ranker) in Triton layout", runDemoModels},
	{"models", "manage the cluster's models: list, show, upload, promote, alias, rollback, retire, experiments, shadows, remove", runModels},
	{"cluster", "show the cluster's leader and members, remove a member, back up and restore, or recover a group that lost its majority", runCluster},
	{"traffic", "read a node's traffic log: sampled predictions and feedback", runTraffic},
	{"train", "train a new version of a model from its logged traffic and feedback", runTrain},
	{"trainer", "the sidecar trainer: watch a model for drift, retrain, shadow, canary, promote or roll back", runTrainer},
	{"bench", "load-test a gateway, with floors and the standard suite (bench suite)", runBench},
	{"version", "print the version", runVersion},
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(os.Stdout)
		return
	}
	for _, c := range commands {
		if c.name == name {
			if err := c.run(args); err != nil {
				if err != errUsage {
					fmt.Fprintf(os.Stderr, "infergate %s: %s\n", name, err)
				}
				os.Exit(exitCode(err))
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "infergate: unknown command %q\n\n", name)
	usage(os.Stderr)
	os.Exit(2)
}

func usage(w *os.File) {
	fmt.Fprintf(w, "infergate %s: an inference gateway for ONNX models\n\nUsage: infergate <command> [flags]\n\nCommands:\n", version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `infergate <command> --help` for a command's flags.\n")
}
