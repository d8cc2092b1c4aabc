package bench

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Sample is one series of a Prometheus text exposition: a metric name,
// its labels in the order written, and its value.
type Sample struct {
	Name   string
	Labels []Label
	Value  float64
}

// Label is one label of a Sample.
type Label struct {
	Name, Value string
}

// Label returns the value of the label called name and whether s has it.
func (s *Sample) Label(name string) (string, bool) {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// ParseMetrics parses the Prometheus text exposition format (version
// 0.0.4): one `name{label="value",...} value [timestamp]` per line, with
// comments (# HELP, # TYPE) and blank lines skipped. Label values may hold
// the escapes \\, \" and \n; values may be NaN, +Inf or -Inf. Timestamps
// are ignored. The error names the first line it cannot read.
func ParseMetrics(text []byte) ([]Sample, error) {
	var out []Sample
	for n, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSampleLine(line)
		if err != nil {
			return out, fmt.Errorf("metrics line %d %q: %s", n+1, clip([]byte(line), 120), err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSampleLine(line string) (Sample, error) {
	var s Sample
	i := 0
	for i < len(line) && isNameByte(line[i], i == 0, true) {
		i++
	}
	if i == 0 {
		return s, fmt.Errorf("no metric name")
	}
	s.Name = line[:i]
	if i < len(line) && line[i] == '{' {
		i++
		for {
			for i < len(line) && line[i] == ' ' {
				i++
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			start := i
			for i < len(line) && isNameByte(line[i], i == start, false) {
				i++
			}
			if i == start {
				return s, fmt.Errorf("bad label name at byte %d", i)
			}
			name := line[start:i]
			for i < len(line) && line[i] == ' ' {
				i++
			}
			if i >= len(line) || line[i] != '=' {
				return s, fmt.Errorf("label %q has no '='", name)
			}
			i++
			for i < len(line) && line[i] == ' ' {
				i++
			}
			value, next, err := parseLabelValue(line, i)
			if err != nil {
				return s, fmt.Errorf("label %q: %s", name, err)
			}
			s.Labels = append(s.Labels, Label{Name: name, Value: value})
			i = next
			for i < len(line) && line[i] == ' ' {
				i++
			}
			if i < len(line) && line[i] == ',' {
				i++
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return s, fmt.Errorf("want ',' or '}' after label %q", name)
		}
	}
	fields := strings.Fields(line[i:])
	if len(fields) == 0 || len(fields) > 2 || (i < len(line) && line[i] != ' ' && line[i] != '\t') {
		return s, fmt.Errorf("want a value after the name and labels")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value %q is not a number", fields[0])
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("timestamp %q is not an integer", fields[1])
		}
	}
	s.Value = v
	return s, nil
}

// isNameByte reports whether c may appear in a metric name (colons
// allowed) or label name, first says whether it is the first byte.
func isNameByte(c byte, first, metric bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c == ':':
		return metric
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// parseLabelValue reads the quoted value at line[i] and returns it
// unescaped with the index after the closing quote.
func parseLabelValue(line string, i int) (string, int, error) {
	if i >= len(line) || line[i] != '"' {
		return "", i, fmt.Errorf("value is not quoted")
	}
	i++
	var b strings.Builder
	for i < len(line) {
		c := line[i]
		switch c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(line) {
				return "", i, fmt.Errorf("unfinished escape")
			}
			switch line[i+1] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte('\\')
				b.WriteByte(line[i+1])
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", i, fmt.Errorf("unterminated value")
}

// The gateway's metrics that steps read.
const (
	metricRows         = "infergate_inference_count_total"
	metricExecs        = "infergate_inference_exec_count_total"
	metricQueueSum     = "infergate_inference_queue_duration_seconds_sum"
	metricQueueCount   = "infergate_inference_queue_duration_seconds_count"
	metricWakeSum      = "infergate_inference_wake_duration_seconds_sum"
	metricWakeCount    = "infergate_inference_wake_duration_seconds_count"
	metricComputeSum   = "infergate_inference_compute_duration_seconds_sum"
	metricComputeCount = "infergate_inference_compute_duration_seconds_count"
	metricSampledWall  = "infergate_inference_compute_sampled_seconds_total"
	metricSampledCPU   = "infergate_inference_compute_sampled_cpu_seconds_total"
	metricCacheHits    = "infergate_cache_hits_total"
	metricCacheMisses  = "infergate_cache_misses_total"
	metricFailures     = "infergate_inference_request_failure_total"
	metricBatchBucket  = "infergate_inference_batch_size_bucket"
	metricProcessCPU   = "process_cpu_seconds_total"
)

// scrapeDelta is the change of the gateway's metrics of one model over a
// step.
type scrapeDelta struct {
	before, after []Sample
	model         string

	// prev maps each series of before (sampleKey) to its value, and reset
	// holds the groups (seriesGroup) whose series were made again between
	// the scrapes; both are filled on first use.
	prev  map[string]float64
	reset map[string]bool
}

// sampleKey names a series: its name and labels, as the server wrote them
// (one server writes a series' labels in the same order every time).
func sampleKey(s *Sample) string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, l := range s.Labels {
		b.WriteByte(0)
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(l.Value)
	}
	return b.String()
}

// seriesGroup names the series that are made together: those of one model
// version (a reload may make them again, all at once), or the node's own.
func seriesGroup(s *Sample) string {
	m, _ := s.Label("model")
	v, _ := s.Label("version")
	return m + "\x00" + v
}

// isCounter reports whether the series of name only ever grow while they
// live: the gateway's counters, and its histograms' sums, counts and
// buckets. Series of other names are left out, whatever they end in: the
// Triton-named ones (serve --triton-metrics) are gauges, and
// nv_inference_pending_request_count goes down without any reset.
func isCounter(name string) bool {
	if !strings.HasPrefix(name, "infergate_") {
		return false
	}
	for _, suffix := range []string{"_total", "_count", "_sum", "_bucket"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// index fills d.prev and d.reset. A group was reset when any of its
// counters went down: then all its series started again from zero, and
// their values after the step are their growth, even those that have
// since grown past where they were (deciding counter by counter would
// divide a growth by a total).
func (d *scrapeDelta) index() {
	if d.prev != nil {
		return
	}
	d.prev = make(map[string]float64, len(d.before))
	for i := range d.before {
		d.prev[sampleKey(&d.before[i])] = d.before[i].Value
	}
	d.reset = map[string]bool{}
	for i := range d.after {
		s := &d.after[i]
		if b, ok := d.prev[sampleKey(s)]; ok && s.Value < b && isCounter(s.Name) {
			d.reset[seriesGroup(s)] = true
		}
	}
}

// growth returns how much counter series s (of the scrape after the step)
// grew over it: from its value before, from zero when it was made during
// the step, or since it was made again.
func (d *scrapeDelta) growth(s *Sample) float64 {
	d.index()
	if d.reset[seriesGroup(s)] {
		return s.Value
	}
	return max(s.Value-d.prev[sampleKey(s)], 0)
}

// byModel reports whether the series of name carry a "model" label: then
// a series belongs to the model when that label names it; otherwise (a
// node-wide metric) all do.
func (d *scrapeDelta) byModel(name string) bool {
	for _, ss := range [][]Sample{d.after, d.before} {
		for i := range ss {
			if ss[i].Name == name {
				if _, ok := ss[i].Label("model"); ok {
					return true
				}
			}
		}
	}
	return false
}

func (d *scrapeDelta) belongs(s *Sample, byModel bool) bool {
	if !byModel {
		return true
	}
	m, _ := s.Label("model")
	return m == d.model
}

func hasLabels(s *Sample, match []Label) bool {
	for _, l := range match {
		if v, ok := s.Label(l.Name); !ok || v != l.Value {
			return false
		}
	}
	return true
}

// delta returns how much the counter name grew over the step, summed over
// its series that belong to the model and carry every label of match,
// each series from its own value before (see growth).
func (d *scrapeDelta) delta(name string, match ...Label) float64 {
	byModel := d.byModel(name)
	var total float64
	for i := range d.after {
		s := &d.after[i]
		if s.Name == name && d.belongs(s, byModel) && hasLabels(s, match) {
			total += d.growth(s)
		}
	}
	return total
}

// has reports whether the scrape after the step has a series of name.
func (d *scrapeDelta) has(name string) bool {
	return slices.ContainsFunc(d.after, func(s Sample) bool { return s.Name == name })
}

// stats returns the server figures of the step, or nil when the target
// exposes none of the gateway's inference metrics.
func (d *scrapeDelta) stats() *ServerStats {
	if d.after == nil || !d.has(metricRows) {
		return nil
	}
	st := &ServerStats{}
	if execs := d.delta(metricExecs); execs > 0 {
		st.AvgBatch = round3(d.delta(metricRows) / execs)
	}
	if n := d.delta(metricQueueCount); n > 0 {
		st.QueueUSAvg = round1(d.delta(metricQueueSum) / n * 1e6)
	}
	if n := d.delta(metricComputeCount); n > 0 {
		st.ComputeUSAvg = round1(d.delta(metricComputeSum) / n * 1e6)
	}
	if n := d.delta(metricWakeCount); n > 0 {
		st.WakeUSAvg = round1(d.delta(metricWakeSum) / n * 1e6)
	}
	if wall := d.delta(metricSampledWall); wall > 0 {
		// The thread's clock is read inside the wall clock's interval;
		// two clocks can still disagree by a hair.
		st.ComputeOnCPU = round3(min(d.delta(metricSampledCPU)/wall, 1))
	}
	st.CacheHits = d.delta(metricCacheHits)
	st.CacheMisses = d.delta(metricCacheMisses)
	st.Rejected = d.delta(metricFailures, Label{"reason", "overloaded"}) + d.delta(metricFailures, Label{"reason", "displaced"})
	return st
}

// batches returns the distribution of executed batch sizes over the step
// from the histogram infergate_inference_batch_size: Prometheus buckets
// (cumulative, label "le") or VictoriaMetrics ones (label "vmrange").
// Empty bins are left out. The +Inf bucket, which a batch size cannot
// reach when the buckets cover the largest batch, is reported with Size
// twice the largest finite bound.
func (d *scrapeDelta) batches() []BatchBin {
	le := map[float64]float64{}
	vm := map[float64]float64{}
	for i := range d.after {
		s := &d.after[i]
		if s.Name != metricBatchBucket || !d.belongs(s, true) {
			continue
		}
		if v, ok := s.Label("le"); ok {
			if b, err := strconv.ParseFloat(v, 64); err == nil {
				le[b] += d.growth(s)
			}
		} else if v, ok := s.Label("vmrange"); ok {
			if _, hi, ok := strings.Cut(v, "..."); ok {
				if b, err := strconv.ParseFloat(hi, 64); err == nil {
					vm[b] += d.growth(s)
				}
			}
		}
	}
	var out []BatchBin
	if len(le) > 0 {
		keys := slices.Sorted(maps.Keys(le))
		prev := 0.0
		largest := 1.0
		for _, k := range keys {
			n := max(le[k]-prev, 0)
			prev = max(le[k], prev)
			size := k
			if math.IsInf(k, 1) {
				size = 2 * largest
			} else {
				largest = k
			}
			if n > 0 {
				out = append(out, BatchBin{Size: size, Count: n})
			}
		}
		return out
	}
	for _, k := range slices.Sorted(maps.Keys(vm)) {
		if n := vm[k]; n > 0 {
			out = append(out, BatchBin{Size: k, Count: n})
		}
	}
	return out
}
