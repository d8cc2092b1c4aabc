package bench

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// collectEnv records the machine and build a run measures on; version is
// Options.Version. The ONNX Runtime version, target and server fields are
// filled in later.
func collectEnv(command, version string) Env {
	host, _ := os.Hostname()
	return Env{
		StartedAt:      time.Now().UTC().Format(time.RFC3339),
		Host:           host,
		OS:             runtime.GOOS,
		Arch:           runtime.GOARCH,
		CPUModel:       cpuModel(),
		CPUs:           runtime.NumCPU(),
		ThreadsPerCore: threadsPerCore(),
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		GoVersion:      runtime.Version(),
		Commit:         buildCommit(version),
		Command:        command,
	}
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// buildCommit returns the commit this binary was built from, with
// "-dirty" when its tree had changes, from the build information Go
// stamps; for a binary without it (built with -buildvcs=false, or a
// test), version when set, else the working directory's head, which may
// not be what was built.
func buildCommit(version string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return versionOrGit(version)
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return versionOrGit(version)
	}
	rev = rev[:min(len(rev), 7)]
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// versionOrGit returns version, or without one the working directory's
// git head.
func versionOrGit(version string) string {
	if version != "" {
		return version
	}
	return gitCommit()
}

// gitCommit returns `git rev-parse --short HEAD` in the working directory,
// or "" when that fails.
func gitCommit() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// isLoopback reports whether the host of a base URL is this machine's
// loopback: a server there shares this machine's cores.
func isLoopback(baseURL string) bool {
	host, _, err := splitBaseURL(baseURL)
	if err != nil {
		return false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
