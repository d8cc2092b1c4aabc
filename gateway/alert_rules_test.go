package gateway_test

// deploy/prometheus/infergate-alerts.yml held to what /metrics exports,
// without promtool (`make alerts-check` runs promtool on it; `make test`
// runs this).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
)

// alertRulesFile is the rules file, relative to the repository root.
const alertRulesFile = "deploy/prometheus/infergate-alerts.yml"

// targetLabels are the labels Prometheus gives every series it scrapes
// (the scrape job's and the target's), which no family lists.
var targetLabels = []string{"instance", "job"}

// alertRule is one rule of the rules file.
type alertRule struct {
	line        int // of its "- alert:" line, from 1
	group       string
	name        string
	expr        string
	dur         string // for:, "" when left out
	labels      map[string]string
	annotations map[string]string
}

// parseAlertRules reads a Prometheus rules file written in the shape of
// infergate-alerts.yml, and only that: no YAML library is in go.mod, and
// the file is ours. The shape, two spaces an indent level:
//
//	groups:
//	  - name: GROUP
//	    rules:
//	      - alert: NAME
//	        expr: VALUE
//	        for: DURATION
//	        labels:
//	          KEY: VALUE
//	        annotations:
//	          KEY: VALUE
//
// A VALUE is plain (one line, holding no ": " or " #", not starting with
// one of YAML's indicators), double-quoted (Go's escapes, which YAML's
// share for what the file needs), single-quoted, or a block scalar (|,
// |-, >, >-) whose lines are indented deeper than its key. Blank lines,
// and lines whose first non-space character is #, outside block scalars,
// are skipped. Anything else, a recording rule or another key included,
// is an error naming the line.
func parseAlertRules(text string) ([]alertRule, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var rules []alertRule
	var group string
	section := "" // "labels" or "annotations" while reading their entries
	sawGroups := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s line %d: %s (%q); the test reads the shape described in parseAlertRules, gateway/alert_rules_test.go", alertRulesFile, i+1, fmt.Sprintf(format, args...), line)
		}
		if strings.ContainsRune(line, '\t') {
			return nil, fail("a tab")
		}
		item := strings.HasPrefix(trimmed, "- ")
		if item {
			trimmed = strings.TrimPrefix(trimmed, "- ")
		}
		key, rest, ok := strings.Cut(trimmed, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \"'{") {
			return nil, fail("not a key: value line")
		}
		rest = strings.TrimSpace(rest)
		// A block scalar takes the lines indented deeper than its key.
		if rest == "|" || rest == "|-" || rest == ">" || rest == ">-" {
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, next)
				i++
			}
			rest = blockScalar(block, rest[0] == '>')
			if rest == "" {
				return nil, fail("an empty block scalar")
			}
		} else {
			v, err := yamlScalar(rest)
			if err != nil {
				return nil, fail("%v", err)
			}
			rest = v
		}
		var r *alertRule
		if len(rules) > 0 {
			r = &rules[len(rules)-1]
		}
		switch {
		case indent == 0 && !item && key == "groups" && rest == "":
			sawGroups = true
		case indent == 2 && item && key == "name" && sawGroups:
			group = rest
		case indent == 4 && !item && key == "rules" && rest == "" && group != "":
		case indent == 6 && item && key == "alert" && group != "":
			rules = append(rules, alertRule{line: i + 1, group: group, name: rest, labels: map[string]string{}, annotations: map[string]string{}})
			section = ""
		case indent == 6 && item:
			return nil, fail("a rule that is not an alert (%s)", key)
		case indent == 8 && !item && r != nil && r.group == group:
			section = ""
			switch key {
			case "expr":
				r.expr = rest
			case "for":
				r.dur = rest
			case "labels", "annotations":
				if rest != "" {
					return nil, fail("%s on the key's line; want its entries on the lines below", key)
				}
				section = key
			default:
				return nil, fail("a rule key the test does not know (%s)", key)
			}
		case indent == 10 && !item && r != nil && section != "":
			m := r.labels
			if section == "annotations" {
				m = r.annotations
			}
			if _, dup := m[key]; dup {
				return nil, fail("%s given twice", key)
			}
			m[key] = rest
		default:
			return nil, fail("a line out of place")
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("%s: no \"- alert:\" rules read; the test reads the shape described in parseAlertRules", alertRulesFile)
	}
	return rules, nil
}

// blockScalar returns the text of a block scalar's lines: the first
// line's indentation removed from each, joined by line feeds (|) or
// spaces (>, where a blank line is a line feed), without the final line
// feed (the file uses |- and >-; | and > differ only in keeping it,
// which no check here reads). A folded scalar's more-indented lines are
// folded too, where YAML keeps their breaks: no check here reads those.
func blockScalar(lines []string, folded bool) string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return ""
	}
	strip := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	var b strings.Builder
	for i, l := range lines {
		l = l[min(strip, len(l)-len(strings.TrimLeft(l, " "))):]
		switch {
		case i == 0:
		case !folded || l == "":
			b.WriteByte('\n')
		case strings.HasSuffix(b.String(), "\n"):
			// after a blank line, whose line feed stands for the break
		default:
			b.WriteByte(' ')
		}
		b.WriteString(l)
	}
	return b.String()
}

// yamlScalar returns the value of a one-line scalar: plain,
// double-quoted or single-quoted.
func yamlScalar(s string) (string, error) {
	switch {
	case s == "":
		return "", nil
	case s[0] == '"':
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("a double-quoted value Go cannot unquote: %v", err)
		}
		return v, nil
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return "", errors.New("a single-quoted value that does not end with its quote")
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case strings.ContainsRune("{}[]&*!|>%@`,?", rune(s[0])):
		return "", fmt.Errorf("a plain value starting with %q, which YAML reads otherwise: quote it", s[0])
	case strings.Contains(s, ": ") || strings.Contains(s, " #"):
		return "", errors.New(`a plain value holding ": " or " #": quote it`)
	}
	return s, nil
}

// matcher is one label matcher of a selector: label op "value".
type matcher struct{ label, op, value string }

// selector is a metric name in an expression, with its matchers.
type selector struct {
	name     string
	matchers []matcher
}

// exprNames is what scanExpr finds in a PromQL expression.
type exprNames struct {
	selectors []selector
	by        []string // labels of by (...)
	grouping  []string // labels of without, on, ignoring, group_left, group_right (...)
}

// promqlFunctions are PromQL's functions and aggregation operators
// (Prometheus 2.42): an identifier among them is never a metric name.
var promqlFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh
		avg avg_over_time bottomk ceil changes clamp clamp_max clamp_min cos cosh count
		count_over_time count_values day_of_month day_of_week day_of_year days_in_month
		deg delta deriv exp floor group histogram_quantile holt_winters hour idelta increase
		irate label_join label_replace last_over_time ln log10 log2 max max_over_time min
		min_over_time minute month pi predict_linear present_over_time quantile
		quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt
		stddev stddev_over_time stdvar stdvar_over_time sum sum_over_time tan tanh time
		timestamp topk vector year`) {
		promqlFunctions[f] = true
	}
}

// scanExpr finds the metric names of a PromQL expression, the matchers
// each has, and the labels its by, without, on, ignoring, group_left
// and group_right clauses name. It reads PromQL's lexical shape:
// strings, durations in brackets and numbers are skipped; an identifier
// followed by "(" must be a function; a keyword is skipped; any other
// identifier is a metric name.
func scanExpr(expr string) (exprNames, error) {
	var out exprNames
	s := expr
	last := -1 // index in out.selectors of the name just read, for its {...}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	ident := func(i int) int { // end of the identifier at i
		j := i
		for j < len(s) && isIdent(s[j], j == i) {
			j++
		}
		return j
	}
	skipSpace := func(i int) int {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
		return i
	}
	str := func(i int) (string, int, error) { // the quoted string at i, and its end
		q := s[i]
		j := i + 1
		for j < len(s) && s[j] != q {
			if s[j] == '\\' && q != '`' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return "", 0, fmt.Errorf("a string not closed at %d", i)
		}
		v, err := strconv.Unquote(`"` + strings.ReplaceAll(s[i+1:j], `"`, `\"`) + `"`)
		if q == '`' || err != nil {
			v = s[i+1 : j]
		}
		return v, j + 1, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case strings.ContainsRune(" \t\r\n", rune(c)):
			i++
			continue
		case c == '#': // a comment, to the line's end
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			_, j, err := str(i)
			if err != nil {
				return out, err
			}
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return out, fmt.Errorf("a [ not closed at %d", i)
			}
			i += j + 1
		case c == '{':
			if last < 0 {
				return out, fmt.Errorf("a selector without a metric name at %d: name the metric", i)
			}
			i = skipSpace(i + 1)
			for i < len(s) && s[i] != '}' {
				j := ident(i)
				if j == i {
					return out, fmt.Errorf("a matcher without a label name at %d", i)
				}
				m := matcher{label: s[i:j]}
				i = skipSpace(j)
				for _, op := range []string{"=~", "!~", "!=", "="} {
					if strings.HasPrefix(s[i:], op) {
						m.op = op
						break
					}
				}
				if m.op == "" {
					return out, fmt.Errorf("a matcher of %s without =, !=, =~ or !~ at %d", m.label, i)
				}
				i = skipSpace(i + len(m.op))
				if i >= len(s) || !strings.ContainsRune("\"'`", rune(s[i])) {
					return out, fmt.Errorf("a matcher of %s without a quoted value at %d", m.label, i)
				}
				v, j, err := str(i)
				if err != nil {
					return out, err
				}
				m.value = v
				out.selectors[last].matchers = append(out.selectors[last].matchers, m)
				i = skipSpace(j)
				if i < len(s) && s[i] == ',' {
					i = skipSpace(i + 1)
				}
			}
			if i >= len(s) {
				return out, errors.New("a { not closed")
			}
			i++
			last = -1
			continue
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i], false) || s[i] == '.') {
				i++ // 0.5, 1e9, 5m
			}
			if i < len(s) && (s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E') {
				i++ // 1e+9
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					i++
				}
			}
		case isIdent(c, true):
			j := ident(i)
			word := s[i:j]
			next := skipSpace(j)
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, word):
				i = next
				if i >= len(s) || s[i] != '(' {
					if word == "group_left" || word == "group_right" {
						last = -1
						continue // without a list
					}
					return out, fmt.Errorf("%s without its ( label list )", word)
				}
				end := strings.IndexByte(s[i:], ')')
				if end < 0 {
					return out, fmt.Errorf("%s ( not closed", word)
				}
				for _, l := range strings.Split(s[i+1:i+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						if word == "by" {
							out.by = append(out.by, l)
						} else {
							out.grouping = append(out.grouping, l)
						}
					}
				}
				i += end + 1
				last = -1
				continue
			case slices.Contains([]string{"and", "or", "unless", "bool", "offset", "atan2"}, word),
				strings.EqualFold(word, "inf"), strings.EqualFold(word, "nan"):
			case promqlFunctions[word]:
			case next < len(s) && s[next] == '(':
				return out, fmt.Errorf("%s( is not a PromQL function", word)
			default:
				out.selectors = append(out.selectors, selector{name: word})
				i = next
				last = len(out.selectors) - 1
				continue
			}
			i = j
		default:
			i++ // an operator, a parenthesis, a comma
		}
		last = -1
	}
	return out, nil
}

// familyOf returns the family of helpTexts a metric name of an
// expression reads, and the suffix (_bucket, _sum, _count) it read it
// by; ok is false when the name is none of them.
func familyOf(name string) (family, suffix string, ok bool) {
	if _, ok := gateway.HelpTexts[name]; ok {
		return name, "", true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f, cut := strings.CutSuffix(name, suf); cut {
			if _, ok := gateway.HelpTexts[f]; ok {
				return f, suf, true
			}
		}
	}
	return "", "", false
}

// liveLabels reads Prometheus text into the label names each family
// carries (le aside) with the values each label takes, and the families
// typed histogram.
func liveLabels(text string) (labels map[string]map[string]map[string]bool, histograms map[string]bool) {
	labels = map[string]map[string]map[string]bool{}
	histograms = map[string]bool{}
	series := regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? `)
	pair := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	for _, m := range series.FindAllStringSubmatch(text, -1) {
		family, _, ok := familyOf(m[1])
		if !ok {
			continue
		}
		if labels[family] == nil {
			labels[family] = map[string]map[string]bool{}
		}
		for _, p := range pair.FindAllStringSubmatch(m[2], -1) {
			if p[1] == "le" {
				continue
			}
			if labels[family][p[1]] == nil {
				labels[family][p[1]] = map[string]bool{}
			}
			labels[family][p[1]][p[2]] = true
		}
	}
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[3] == "histogram" {
			histograms[f[2]] = true
		}
	}
	return labels, histograms
}

// TestAlertRules holds every alert of deploy/prometheus/infergate-alerts.yml
// to /metrics: each metric name its expression reads is a family of
// helpTexts (a histogram's _bucket, _sum and _count read its family), or
// up; each label its matchers name is one the family carries, as the
// /metrics of a test server with every part that exports series
// in-process has it (else as README's Metrics table gives it), or one
// Prometheus adds (instance, job), and an equality matcher's value is one
// that server exports; each label of a by, on, ignoring, without or
// group_ clause is carried by every metric of the expression; each
// {{ $labels.X }} of its annotations is a label the result has. Every
// alert has a severity, page or warning, and a summary and a description.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), alertRulesFile))
	if err != nil {
		t.Fatalf("cannot read the alerting rules: %v", err)
	}
	rules, err := parseAlertRules(string(b))
	if err != nil {
		t.Fatal(err)
	}
	live, histograms := liveLabels(everyPartMetrics(t))
	readme := readmeMetricLabels(t)
	// carries says whether family has label, and whether that is known.
	carries := func(family, label string) (has, known bool) {
		if slices.Contains(targetLabels, label) {
			return true, true
		}
		if family == "up" {
			return false, true
		}
		if l, ok := live[family]; ok {
			return l[label] != nil, true
		}
		if l, ok := readme[family]; ok {
			return slices.Contains(l, label), true
		}
		return false, false
	}

	names := map[string]int{}
	for _, r := range rules {
		where := fmt.Sprintf("alert %s (%s line %d)", r.name, alertRulesFile, r.line)
		if first, dup := names[r.name]; dup {
			t.Errorf("%s: the name is taken by the alert of line %d", where, first)
		}
		names[r.name] = r.line
		if !regexp.MustCompile(`^Infergate[A-Z][A-Za-z0-9]*$`).MatchString(r.name) {
			t.Errorf("%s: want a name InfergateCamelCase", where)
		}
		if s := r.labels["severity"]; s != "page" && s != "warning" {
			t.Errorf("%s: severity %q; want page or warning", where, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", where, a)
			}
		}
		if r.dur != "" && !regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`).MatchString(r.dur) {
			t.Errorf("%s: for: %q is not a Prometheus duration", where, r.dur)
		}
		if r.expr == "" {
			t.Errorf("%s: no expr", where)
			continue
		}
		e, err := scanExpr(r.expr)
		if err != nil {
			t.Errorf("%s: cannot read its expr: %v\n%s", where, err, r.expr)
			continue
		}
		if len(e.selectors) == 0 {
			t.Errorf("%s: its expr reads no metric", where)
		}
		type read struct{ family, suffix string }
		var families []read
		for _, sel := range e.selectors {
			var f read
			switch {
			case sel.name == "up":
				f.family = "up"
			case strings.HasPrefix(sel.name, "infergate_") || strings.HasPrefix(sel.name, "nv_") ||
				strings.HasPrefix(sel.name, "process_") || strings.HasPrefix(sel.name, "go_"):
				var ok bool
				if f.family, f.suffix, ok = familyOf(sel.name); !ok {
					t.Errorf("%s: %s is not a family on /metrics (none of helpTexts, gateway/metrics_help.go, nor a histogram's _bucket, _sum or _count)", where, sel.name)
					continue
				}
				if f.suffix != "" && len(live[f.family]) > 0 && !histograms[f.family] {
					t.Errorf("%s: %s reads %s as a histogram; /metrics types it otherwise", where, sel.name, f.family)
				}
			default:
				t.Errorf("%s: %s is neither a series of infergate's /metrics (infergate_, nv_, process_, go_) nor up", where, sel.name)
				continue
			}
			families = append(families, f)
			for _, m := range sel.matchers {
				if m.label == "le" && f.suffix == "_bucket" {
					continue
				}
				has, known := carries(f.family, m.label)
				switch {
				case !known:
					t.Errorf("%s: cannot tell whether %s carries the label %s: neither the test server's /metrics nor README's Metrics table has the family", where, sel.name, m.label)
				case !has:
					t.Errorf("%s: %s{%s%s%q}: %s carries no label %s", where, sel.name, m.label, m.op, m.value, f.family, m.label)
				case (m.op == "=" || m.op == "!=") && !slices.Contains(targetLabels, m.label) && live[f.family] != nil && !live[f.family][m.label][m.value]:
					t.Errorf("%s: %s{%s%s%q}: /metrics has no %s with %s %q; it has %v", where, sel.name, m.label, m.op, m.value, f.family, m.label, m.value, slices.Sorted(mapKeys(live[f.family][m.label])))
				}
			}
		}
		for _, l := range slices.Concat(e.by, e.grouping) {
			for _, f := range families {
				if l == "le" && f.suffix == "_bucket" {
					continue
				}
				if has, known := carries(f.family, l); !known {
					t.Errorf("%s: groups by %s, and cannot tell whether %s carries it: neither the test server's /metrics nor README's Metrics table has the family", where, l, f.family)
				} else if !has {
					t.Errorf("%s: groups by %s, which %s does not carry", where, l, f.family)
				}
			}
		}
		// The labels the alert's result has: what its last by keeps,
		// else its metrics' and Prometheus'.
		result := slices.Clone(e.by)
		if len(result) == 0 {
			result = slices.Clone(targetLabels)
			for _, f := range families {
				result = append(result, slices.Collect(mapKeys(live[f.family]))...)
				result = append(result, readme[f.family]...)
			}
		}
		slices.Sort(result)
		result = slices.Compact(result)
		for _, text := range r.annotations {
			for _, m := range regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`).FindAllStringSubmatch(text, -1) {
				if !slices.Contains(result, m[1]) {
					t.Errorf("%s: an annotation reads $labels.%s, which its expr's result does not carry (it has %v)", where, m[1], result)
				}
			}
		}
	}
	if len(rules) < 20 {
		t.Errorf("read %d alerts from %s; want the 20 or more it has (did its shape change?)", len(rules), alertRulesFile)
	}
	t.Logf("%d alerts checked", len(rules))
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestScanExpr(t *testing.T) {
	f := func(expr string, want exprNames) {
		t.Helper()
		got, err := scanExpr(expr)
		if err != nil {
			t.Fatalf("scanExpr(%q): %v", expr, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("scanExpr(%q):\ngot  %+v\nwant %+v", expr, got, want)
		}
	}
	f(`up{job="infergate"} == 0`, exprNames{selectors: []selector{{"up", []matcher{{"job", "=", "infergate"}}}}})
	f(`sum by (instance, model) (rate(a_total{reason="x", b!~'y.*'}[5m])) / sum(rate(b_total[5m] offset 1h)) without (c) > 0.05`,
		exprNames{
			selectors: []selector{{"a_total", []matcher{{"reason", "=", "x"}, {"b", "!~", "y.*"}}}, {"b_total", nil}},
			by:        []string{"instance", "model"},
			grouping:  []string{"c"},
		})
	f("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 1e-3 # a comment naming not_a_metric",
		exprNames{selectors: []selector{{"h_bucket", nil}}, by: []string{"le"}})
	f(`a - time() < 14 * 86400 and on (instance) group_left b unless c{d="}"}`,
		exprNames{selectors: []selector{{"a", nil}, {"b", nil}, {"c", []matcher{{"d", "=", "}"}}}}, grouping: []string{"instance"}})
	f(`max(a) > Inf or vector(1)`, exprNames{selectors: []selector{{"a", nil}}})

	bad := func(expr, want string) {
		t.Helper()
		if _, err := scanExpr(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("scanExpr(%q): got error %v; want one saying %q", expr, err, want)
		}
	}
	bad(`raet(a[5m])`, "raet( is not a PromQL function")
	bad(`{__name__="a"}`, "without a metric name")
	bad(`a{b}`, "without =")
	bad(`a{b="c"`, "not closed")
	bad(`sum by instance (a)`, "label list")
}

func TestParseAlertRules(t *testing.T) {
	const good = `# a comment
groups:
  - name: g
    rules:
      # before a rule
      - alert: A
        expr: |-
          sum(rate(a_total[5m]))
            # a line of the block, not a comment of the file
            > 0
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "a \"quoted\" {{ $labels.instance }}"
          description: >-
            two lines
            folded

            and a paragraph
  - name: h
    rules:
      - alert: B
        expr: up == 0
        labels:
          severity: 'warning'
        annotations:
          summary: plain text
          description: it's plain
`
	rules, err := parseAlertRules(good)
	if err != nil {
		t.Fatal(err)
	}
	want := []alertRule{
		{line: 6, group: "g", name: "A", expr: "sum(rate(a_total[5m]))\n  # a line of the block, not a comment of the file\n  > 0", dur: "5m",
			labels:      map[string]string{"severity": "page"},
			annotations: map[string]string{"summary": `a "quoted" {{ $labels.instance }}`, "description": "two lines folded\nand a paragraph"}},
		{line: 23, group: "h", name: "B", expr: "up == 0",
			labels:      map[string]string{"severity": "warning"},
			annotations: map[string]string{"summary": "plain text", "description": "it's plain"}},
	}
	if !reflect.DeepEqual(rules, want) {
		t.Fatalf("got  %+v\nwant %+v", rules, want)
	}

	bad := func(text, want string) {
		t.Helper()
		if _, err := parseAlertRules(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("parseAlertRules(%q): got error %v; want one saying %q", text, err, want)
		}
	}
	head := "groups:\n  - name: g\n    rules:\n"
	bad(head+"      - record: r\n        expr: a\n", "not an alert")
	bad(head+"      - alert: A\n        keep_firing_for: 5m\n", "rule key the test does not know")
	bad(head+"      - alert: A\n         expr: a\n", "out of place")
	bad(head+"      - alert: A\n        labels: {severity: page}\n", "YAML reads otherwise")
	bad(head+"      - alert: A\n        expr: a > 0 # why\n", `" #"`)
	bad(head+"      - alert: A\n        annotations:\n          summary: x\n          summary: y\n", "given twice")
	bad(head+"\t- alert: A\n", "a tab")
	bad(head, "no \"- alert:\" rules")
	bad("rules:\n  - alert: A\n", "out of place")
}

// TestAlertRulesInREADME checks README's table of the alerts ("###
// Alerting", "| alert | severity | fires when |") against the rules
// file: the same alerts, with the same severities.
func TestAlertRulesInREADME(t *testing.T) {
	root := testenv.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, alertRulesFile))
	if err != nil {
		t.Fatalf("cannot read the alerting rules: %v", err)
	}
	rules, err := parseAlertRules(string(b))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Alerting\n")
	if !ok {
		t.Fatal(`README.md has no "### Alerting" section`)
	}
	_, table, ok := strings.Cut(section, "| alert | severity | fires when |\n|---|---|---|\n")
	if !ok {
		t.Fatal(`README's Alerting section has no "| alert | severity | fires when |" table`)
	}
	documented := map[string]string{}
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), " | ")
		if len(cells) != 3 {
			t.Fatalf("README's Alerting table: row %q has %d cells; want 3", line, len(cells))
		}
		documented[strings.Trim(strings.TrimSpace(cells[0]), "`")] = strings.TrimSpace(cells[1])
	}
	for _, r := range rules {
		switch s, ok := documented[r.name]; {
		case !ok:
			t.Errorf("README's Alerting table has no row for %s", r.name)
		case s != r.labels["severity"]:
			t.Errorf("README's Alerting table gives %s the severity %s; the rules file %s", r.name, s, r.labels["severity"])
		}
		delete(documented, r.name)
	}
	for name := range documented {
		t.Errorf("README's Alerting table names %s, which the rules file does not have", name)
	}
}
