package gateway

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/testenv"
)

// TestREADMEMetricsTables checks the tables of README's "## Metrics"
// against helpTexts, which TestEveryFamilyOnMetricsHasHelp holds to what
// /metrics exposes: every infergate_ and nv_ family has a row, and every
// name a row gives is a family, so that neither the manual nor the
// server drifts from the other unseen.
func TestREADMEMetricsTables(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatalf("cannot read README.md: %v", err)
	}
	_, after, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatalf("README.md has no \"## Metrics\" section")
	}
	section, _, _ := strings.Cut(after, "\n## ")

	name := regexp.MustCompile(`\b(?:infergate|nv)_[a-z_]+`)
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue // prose also names series it leaves out
		}
		for _, n := range name.FindAllString(line, -1) {
			if !strings.HasSuffix(n, "_") { // "infergate_inference_*"
				documented[n] = true
			}
		}
	}
	if len(documented) < 50 {
		t.Fatalf("found %d metric names in README's Metrics tables; want at least 50 (did the tables' form change?)", len(documented))
	}

	var missing, unknown []string
	for family := range helpTexts {
		if (strings.HasPrefix(family, "infergate_") || strings.HasPrefix(family, "nv_")) && !documented[family] {
			missing = append(missing, family)
		}
	}
	for n := range documented {
		if _, ok := helpTexts[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("families on /metrics with no row in README's Metrics tables: %s", strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		t.Errorf("README's Metrics tables name series that /metrics does not have: %s", strings.Join(unknown, ", "))
	}
}
