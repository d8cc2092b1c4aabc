package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func TestWriteHelp(t *testing.T) {
	help := escapeHelp(map[string]string{
		"a_total": "Things counted",
		"b":       `A path like C:\dir` + "\nand a second line",
		"c":       "Third",
	})
	f := func(in, want string) {
		t.Helper()
		var got bytes.Buffer
		writeHelp(&got, []byte(in), help)
		if got.String() != want {
			t.Fatalf("writeHelp(%q):\ngot  %q\nwant %q", in, got.String(), want)
		}
	}
	f("", "")
	// A family in the table gets its text; its series are left alone.
	f("# HELP a_total\n# TYPE a_total counter\na_total{x=\"1\"} 2\n",
		"# HELP a_total Things counted\n# TYPE a_total counter\na_total{x=\"1\"} 2\n")
	// One not in it keeps its bare line.
	f("# HELP z\n# TYPE z gauge\nz 1\n", "# HELP z\n# TYPE z gauge\nz 1\n")
	// A line with a text of its own keeps it.
	f("# HELP a_total Said already\na_total 1\n", "# HELP a_total Said already\na_total 1\n")
	// Backslash and line feed escaped, as the text format wants.
	f("# HELP b\nb 1\n", "# HELP b A path like C:\\\\dir\\nand a second line\nb 1\n")
	// The last line without a line feed.
	f("c 1\n# HELP c", "c 1\n# HELP c Third")
	// Several families, the first and last lines among them.
	f("# HELP a_total\na_total 1\n# HELP z\nz 2\n# HELP c\nc 3\n# HELP b\n",
		"# HELP a_total Things counted\na_total 1\n# HELP z\nz 2\n# HELP c Third\nc 3\n# HELP b A path like C:\\\\dir\\nand a second line\n")
	// "# HELP " inside a line is not a HELP line.
	f("d{path=\"# HELP c\"} 1\n", "d{path=\"# HELP c\"} 1\n")
	f("# a comment # HELP c\n", "# a comment # HELP c\n")
	// A name that only starts like one in the table.
	f("# HELP a_total_more\n# HELP a\n", "# HELP a_total_more\n# HELP a\n")
	// A gauge named _total is a counter; other types stay as they are.
	f("# HELP z_total\n# TYPE z_total gauge\nz_total 1\n", "# HELP z_total\n# TYPE z_total counter\nz_total 1\n")
	f("# TYPE a_total gauge", "# TYPE a_total counter")
	f("# TYPE z gauge\n# TYPE y_totals gauge\n", "# TYPE z gauge\n# TYPE y_totals gauge\n")
	f("d{path=\"# TYPE z_total gauge\"} 1\n", "d{path=\"# TYPE z_total gauge\"} 1\n")
}

// Every family the metrics library writes for the Go runtime and the
// process on this machine has a text in helpTexts: a new one, after an
// upgrade of the library, fails here until it has.
func TestHelpTextsCoverGoAndProcessMetrics(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	var raw bytes.Buffer
	metrics.WriteProcessMetrics(&raw)
	metrics.WriteFDMetrics(&raw)
	var out bytes.Buffer
	writeHelp(&out, raw.Bytes(), helpLines)
	n := 0
	for line := range strings.Lines(out.String()) {
		rest, ok := strings.CutPrefix(line, "# HELP ")
		if !ok {
			continue
		}
		n++
		if name, text, _ := strings.Cut(strings.TrimSuffix(rest, "\n"), " "); text == "" {
			t.Errorf("%s has no HELP text on /metrics: add one to helpTexts in gateway/metrics_help.go", name)
		}
	}
	if n < 50 {
		t.Fatalf("the metrics library wrote %d HELP lines; want the Go and process families, 50 or more:\n%s", n, raw.String())
	}
}

// Each text is one line that says something, under a name Prometheus
// accepts.
func TestHelpTextsAreOneLine(t *testing.T) {
	for name, text := range helpTexts {
		if strings.TrimSpace(text) == "" || strings.ContainsAny(text, "\n\r\\") {
			t.Errorf("%s: HELP text %q; want one line of text, without backslashes", name, text)
		}
		for i, c := range name {
			if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
				t.Errorf("%q is not a family name on /metrics", name)
				break
			}
		}
	}
}

// BenchmarkWriteHelp times writeHelp alone over a scrape of the Go and
// process metrics, the part of a /metrics answer that every node has.
func BenchmarkWriteHelp(b *testing.B) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	var raw bytes.Buffer
	metrics.WriteProcessMetrics(&raw)
	var out bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(raw.Len()))
	for b.Loop() {
		out.Reset()
		writeHelp(&out, raw.Bytes(), helpLines)
	}
}
