package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// errUsage is returned after a flag error has been printed with usage.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if err == errUsage {
		return 2
	}
	return 1
}

// newFlagSet returns a flag set whose usage text leads with the command's
// synopsis and description.
func newFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: infergate %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags is fs.Parse, with a message a person can act on for a
// duration without its unit (--request-timeout 10), where the flag
// package says only "parse error". As fs.Parse, it prints an error and
// the usage, and the usage for --help (flag.ErrHelp).
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package names a flag's type in the usage by the type of
	// its value, so durations are wrapped only while parsing, and the
	// usage is printed once they are back.
	var wrapped []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, ok := g.Get().(time.Duration); ok {
				f.Value = durationValue{f.Value}
				wrapped = append(wrapped, f)
			}
		}
	})
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	for _, f := range wrapped {
		f.Value = f.Value.(durationValue).Value
	}
	fs.SetOutput(out)
	fs.Usage = usage
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(out, err)
		}
		fs.Usage()
	}
	return err
}

// durationValue is a duration flag's value that says what a duration
// looks like when it is given none.
type durationValue struct{ flag.Value }

func (d durationValue) Set(s string) error {
	if _, err := time.ParseDuration(s); err != nil {
		return errors.New("want a duration with its unit, like 10s, 500ms or 2m")
	}
	return d.Value.Set(s)
}

// parse parses args; --help prints usage and exits 0.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
