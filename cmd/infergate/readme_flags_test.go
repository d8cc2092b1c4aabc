package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// readmeSection returns the lines of README.md from the heading that
// starts with heading to the next heading of the same level.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatalf("cannot read README.md: %v", err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.HasPrefix(line, heading)
		}
		if in {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	return out
}

// flagRow matches a row of a README flags table: | `--name` | default | meaning |.
var flagRow = regexp.MustCompile("^\\| `--([a-z0-9-]+)` \\| ([^|]*) \\|")

// TestREADMEServeFlags checks the README's tables of serve's flags
// against the flags serve defines: every flag a table names exists, with
// the default the table gives, and every flag of serve is named somewhere
// in the README, so that neither drifts from the other unseen.
func TestREADMEServeFlags(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	serveFlags(fs)

	rows := 0
	for _, section := range []string{"## `infergate serve`", "## Cluster"} {
		for _, line := range readmeSection(t, section) {
			m := flagRow.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			rows++
			name, doc := m[1], strings.TrimSpace(m[2])
			f := fs.Lookup(name)
			if f == nil {
				t.Errorf("README (%s) lists --%s, which serve does not define", section, name)
				continue
			}
			if !sameDefault(doc, f.DefValue) {
				t.Errorf("README (%s) gives --%s the default %q; serve's is %q", section, name, doc, f.DefValue)
			}
		}
	}
	if rows < 20 {
		t.Fatalf("found %d flag rows in README's serve and cluster tables; want at least 20 (did the tables' form change?)", rows)
	}

	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatalf("cannot read README.md: %v", err)
	}
	readme := string(b)
	fs.VisitAll(func(f *flag.Flag) {
		if !regexp.MustCompile(`--` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(readme) {
			t.Errorf("serve --%s is named nowhere in README.md; add it to the flags table of `infergate serve`", f.Name)
		}
	})
}

// sameDefault reports whether doc, a default as a README table gives it,
// says def, a flag's default as the flag package prints it. Defaults that
// the README states in words (an environment variable, "stored in
// --data") are not compared.
func sameDefault(doc, def string) bool {
	doc = strings.ReplaceAll(doc, "`", "")
	if i := strings.Index(doc, " ("); i > 0 {
		doc = doc[:i] // "0 (off)"
	}
	switch {
	case strings.Contains(doc, "$") || strings.Contains(doc, "<") || strings.Contains(doc, " "):
		if n, ok := bytesValue(doc); ok {
			return strconv.FormatInt(n, 10) == def
		}
		return true
	case doc == "" || doc == "off":
		return def == "" || def == "false" || def == "0" || def == "0s"
	}
	if d, err := time.ParseDuration(doc); err == nil {
		if dd, err := time.ParseDuration(def); err == nil {
			return d == dd
		}
	}
	if doc == "0" && def == "0s" {
		return true
	}
	return doc == def
}

// bytesValue reads "256 MiB" or "64 KiB".
func bytesValue(s string) (int64, bool) {
	num, unit, ok := strings.Cut(s, " ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false
	}
	switch unit {
	case "KiB":
		return n << 10, true
	case "MiB":
		return n << 20, true
	case "GiB":
		return n << 30, true
	}
	return 0, false
}

// backupFlagRow matches a row of the README's tables of the backup and
// restore commands' flags: | `backup --name` | default | meaning |.
var backupFlagRow = regexp.MustCompile("^\\| `(backup|restore) --([a-z0-9-]+)` \\| ([^|]*) \\|")

// TestREADMEBackupFlags checks the README's tables of `cluster backup`
// and `cluster restore` flags against the flags the commands define
// (their --help), and that every flag of restore has a row.
func TestREADMEBackupFlags(t *testing.T) {
	help := map[string]string{}
	for _, cmd := range []string{"backup", "restore"} {
		var stdout, stderr strings.Builder
		if code := clusterGroup.main([]string{cmd, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("cluster %s --help: exit %d: %s", cmd, code, stderr.String())
		}
		help[cmd] = stdout.String() + stderr.String()
	}
	rows := map[string]bool{}
	for _, line := range readmeSection(t, "## Cluster") {
		m := backupFlagRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cmd, name := m[1], m[2]
		rows[cmd+" "+name] = true
		if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(name) + `\b`).MatchString(help[cmd]) {
			t.Errorf("README lists `%s --%s`, which cluster %s does not define", cmd, name, cmd)
		}
	}
	for _, name := range []string{"from", "data", "cluster", "node-id"} {
		if !rows["restore "+name] {
			t.Errorf("README has no row for `restore --%s`", name)
		}
	}
	if !rows["backup out"] || !rows["backup gzip"] {
		t.Errorf("README lacks rows for `backup --out` or `backup --gzip`; found %v", rows)
	}
}

// TestREADMEFlagsExist checks that every --flag the README names is a
// flag of some infergate command or subcommand, as their --help lists
// them: a flag renamed, or misspelled in prose, shows here.
func TestREADMEFlagsExist(t *testing.T) {
	help := func(args ...string) string {
		out, _ := exec.Command(binPath, append(args, "--help")...).CombinedOutput()
		return string(out)
	}
	known := map[string]bool{
		"help": true,
		// Other tools' flags in the README's examples: curl, tar; and
		// Triton's and perf_analyzer's, named beside infergate's.
		"cacert": true, "strip-components": true,
		"allow-client-shm": true, "collect-metrics": true, "async": true, "streaming": true, "input-data": true,
		// Prometheus' (--storage.tsdb.path, --web.listen-address), in
		// Metrics' Alerting.
		"storage": true, "web": true,
	}
	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	subLine := regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\s`)
	add := func(text string) {
		for _, m := range flagLine.FindAllStringSubmatch(text, -1) {
			known[m[1]] = true
		}
	}
	for _, c := range commands {
		text := help(c.name)
		add(text)
		subs := []string{}
		if _, after, ok := strings.Cut(text, "\nCommands:\n"); ok {
			block, _, _ := strings.Cut(after, "\n\n")
			for _, m := range subLine.FindAllStringSubmatch(block, -1) {
				subs = append(subs, m[1])
			}
		}
		if c.name == "bench" {
			subs = append(subs, "suite", "report", "neighbors", "floor-server")
		}
		for _, s := range subs {
			add(help(c.name, s))
		}
	}
	if !known["grpc"] || !known["slow-request-log"] || !known["server-cpus"] {
		t.Fatalf("the flags read from --help miss some: %d known", len(known))
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(b), -1) {
		if !known[m[1]] && !seen[m[1]] {
			seen[m[1]] = true
			t.Errorf("README.md names --%s, which no infergate command has", m[1])
		}
	}
}
