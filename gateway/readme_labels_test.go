package gateway_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/testenv"
)

// readmeMetricLabels reads README's table of infergate's series (the
// first table of "## Metrics", "| metric | labels |") into the label
// names each family's row gives. The labels column names them first,
// with their values in parentheses: "model, version, reason (`ok`, ...)".
// Rows whose labels column is prose (it holds a colon) are left out.
func readmeMetricLabels(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatalf("cannot read README.md: %v", err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal(`README.md has no "## Metrics" section`)
	}
	_, table, ok := strings.Cut(section, "| metric | labels |\n|---|---|\n")
	if !ok {
		t.Fatal(`README's Metrics section has no "| metric | labels |" table`)
	}
	name := regexp.MustCompile(`infergate_[a-z_]+[a-z]`)
	label := regexp.MustCompile(`^[a-z_]+$`)
	out := map[string][]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 2 {
			t.Fatalf("README's Metrics table: row %q has %d cells; want 2", line, len(cells))
		}
		metricCell, labelCell := withoutParens(cells[0]), withoutParens(cells[1])
		if strings.Contains(labelCell, ":") {
			continue
		}
		var labels []string
		for _, l := range strings.Split(labelCell, ",") {
			l = strings.Trim(strings.TrimSpace(l), "`")
			if label.MatchString(l) {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		for _, n := range name.FindAllString(metricCell, -1) {
			out[n] = labels
		}
	}
	return out
}

// withoutParens drops the parenthesized parts of s, nested ones too.
func withoutParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestREADMEMetricLabels checks the labels column of README's table of
// infergate's series against /metrics of a server with every part that
// exports series in-process: each family there has the labels its row
// names, no more and no fewer (le of histograms aside).
func TestREADMEMetricLabels(t *testing.T) {
	documented := readmeMetricLabels(t)
	if len(documented) < 40 {
		t.Fatalf("read %d families from README's Metrics table; want at least 40 (did its form change?)", len(documented))
	}
	text := everyPartMetrics(t)

	series := regexp.MustCompile(`(?m)^(infergate_[a-z_]+?)(_bucket|_sum|_count)?(?:\{([^}]*)\})? `)
	labelName := regexp.MustCompile(`([a-z_]+)="`)
	live := map[string]map[string]bool{}
	for _, m := range series.FindAllStringSubmatch(text, -1) {
		family := m[1]
		if _, ok := documented[family+m[2]]; ok {
			family += m[2] // a family named so, not a histogram's part
		}
		if live[family] == nil {
			live[family] = map[string]bool{}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[3], -1) {
			if l[1] != "le" {
				live[family][l[1]] = true
			}
		}
	}
	checked := 0
	for family, labels := range live {
		want, ok := documented[family]
		if !ok {
			continue // TestREADMEMetricsTables holds the names
		}
		checked++
		got := slices.Sorted(func(yield func(string) bool) {
			for l := range labels {
				if !yield(l) {
					return
				}
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("%s has the labels %v on /metrics; README's Metrics table gives it %v", family, got, want)
		}
	}
	if checked < 30 {
		t.Fatalf("checked the labels of %d families; want at least 30 (did the server above lose a part?)", checked)
	}
	t.Logf("labels of %d families checked", checked)
}
