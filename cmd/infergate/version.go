package main

import (
	"fmt"
	"runtime"
)

func runVersion(args []string) error {
	fs := newFlagSet("version", "", "Print infergate's version and the Go version it was built with.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Printf("infergate %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// builtVersion returns version when the build set it, else "".
func builtVersion() string {
	if version == "dev" {
		return ""
	}
	return version
}
