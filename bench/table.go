package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteTable writes r as a table for a terminal: one line per run with
// its rate, rows/s, latency percentiles, errors, the client's CPU use and
// the server's figures, then the reasons of the flagged runs and the
// outcome of the sweeps. A flagged run's figures are not clean: read the
// reason before using them. A client CPU marked "!" is 90% or more of
// GOMAXPROCS: the load generator may have been the limit. When some run
// is an overload run, two columns show the share of requests shed with
// their p99 and the readiness probes' p99, and a line per overload run
// after the table tells the whole of it.
func WriteTable(w io.Writer, r *Report) error {
	e := &r.Env
	fmt.Fprintf(w, "%s, %d CPUs", orDash(e.CPUModel), e.CPUs)
	if e.ThreadsPerCore > 1 {
		fmt.Fprintf(w, " (%d threads per core)", e.ThreadsPerCore)
	}
	fmt.Fprintf(w, ", GOMAXPROCS %d, %s", e.GOMAXPROCS, e.GoVersion)
	if e.ORTVersion != "" {
		fmt.Fprintf(w, ", ONNX Runtime %s", e.ORTVersion)
	}
	if e.Commit != "" {
		fmt.Fprintf(w, ", commit %s", e.Commit)
	}
	if e.Rounds > 1 {
		fmt.Fprintf(w, ", %d rounds", e.Rounds)
	}
	shared := yesNo(e.SharedCores)
	switch {
	case e.ServerCPUs != "" && e.HTTPFloor == "in-process":
		shared += fmt.Sprintf(" (gateway on CPUs %s, load generator and http floor on %s)", e.ServerCPUs, e.ClientCPUs)
	case e.ServerCPUs != "":
		shared += fmt.Sprintf(" (servers on CPUs %s, load generator on %s)", e.ServerCPUs, e.ClientCPUs)
	}
	if e.RuntimeCPUs != "" {
		shared += fmt.Sprintf("; the gateway reserves CPUs %s for ONNX Runtime", e.RuntimeCPUs)
	}
	if e.ORTFloorCPUs != "" {
		shared += fmt.Sprintf("; ort floor on CPUs %s while the servers idle", e.ORTFloorCPUs)
	}
	fmt.Fprintf(w, "\ntarget %s (%s), instances %d, intra-op threads %d, client and server share cores: %s\n\n",
		orDash(e.Target), orDash(e.ServerVersion), e.Instances, e.IntraOpThreads, shared)

	header := []string{"run", "kind", "req/s", "rows/s", "p50", "p99", "p99.9", "errors", "cpu", "srv cpu", "srv/req", "batch", "queue", "compute", "wake", "flag"}
	overload := slices.ContainsFunc(r.Runs, func(run Run) bool { return run.Shed != nil || run.Health != nil })
	if overload {
		header = slices.Insert(header, len(header)-1, "shed (p99)", "ready p99")
	}
	rows := [][]string{header}
	var notes []string
	busyClient := false
	for i := range r.Runs {
		run := &r.Runs[i]
		flag := ""
		if run.Flagged != "" {
			notes = append(notes, fmt.Sprintf("[%d] %s: %s", len(notes)+1, run.Name, run.Flagged))
			flag = fmt.Sprintf("FLAGGED[%d]", len(notes))
		}
		rps := groupThousands(run.ThroughputRPS)
		if run.Spread != nil && run.ThroughputRPS > 0 {
			rps += fmt.Sprintf(" ±%.0f%%", (run.Spread.ThroughputRPS.Max-run.Spread.ThroughputRPS.Min)/2/run.ThroughputRPS*100)
		}
		batch, queue, compute, wake := "-", "-", "-", "-"
		if s := run.Server; s != nil {
			batch = strconv.FormatFloat(s.AvgBatch, 'f', 2, 64)
			queue, compute = formatUS(s.QueueUSAvg), formatUS(s.ComputeUSAvg)
			if s.WakeUSAvg > 0 {
				wake = formatUS(s.WakeUSAvg)
			}
		}
		if run.Kind == KindORTFloor {
			batch = strconv.Itoa(run.BatchSize)
		}
		cpu := strconv.FormatFloat(run.ClientCPU, 'f', 2, 64)
		if e.GOMAXPROCS > 0 && run.ClientCPU >= saturated*float64(e.GOMAXPROCS) {
			cpu += "!"
			busyClient = true
		}
		srvCPU, srvPerReq := "-", "-"
		if run.ServerCPU > 0 {
			srvCPU = strconv.FormatFloat(run.ServerCPU, 'f', 2, 64)
		}
		if run.ServerCPUPerRequestUS > 0 {
			srvPerReq = formatUS(run.ServerCPUPerRequestUS)
		}
		row := []string{
			run.Name, run.Kind, rps, groupThousands(run.RowsPerS),
			formatUS(run.Latency.P50), formatUS(run.Latency.P99), formatUS(run.Latency.P999),
			formatErrors(run.Errors, run.Requests), cpu, srvCPU, srvPerReq,
			batch, queue, compute, wake, flag,
		}
		if overload {
			shed, ready := "-", "-"
			if run.Shed != nil {
				shed = formatShed(run.Shed)
			}
			if h := run.Health; h != nil {
				ready = formatUS(h.P99US)
				if h.Failures > 0 {
					ready += fmt.Sprintf(", %d failed", h.Failures)
				}
			}
			row = slices.Insert(row, len(row)-1, shed, ready)
		}
		if run.Requests == 0 {
			for i := 2; i < len(row)-1; i++ {
				row[i] = "-"
			}
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < 2 || i == len(row)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	if busyClient {
		notes = append(notes, fmt.Sprintf("! the load generator used %.0f%% or more of its %d cores (GOMAXPROCS): such a run may measure the client, not the server (a floor's in-process server counts here too)",
			saturated*100, e.GOMAXPROCS))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	for _, s := range r.Sweeps {
		unit := "/s"
		if s.Mode == ModeClosed {
			unit = " connections"
		}
		fmt.Fprintf(w, "\nsweep %s/%s (%s loop), p99 <= %s: ", s.Kind, s.Model, s.Mode, formatUS(s.MaxP99US))
		if s.Best == "" {
			fmt.Fprintf(w, "no load level met it")
		} else {
			fmt.Fprintf(w, "highest load %s%s (%s req/s achieved, %s)", groupThousands(s.BestLoad), unit, groupThousands(s.BestThroughputRPS), s.Best)
		}
		if s.StoppedAt != "" {
			fmt.Fprintf(w, "; stopped at %s", s.StoppedAt)
		}
		fmt.Fprintln(w)
	}
	for i := range r.Runs {
		if run := &r.Runs[i]; run.Shed != nil && run.Requests > 0 {
			fmt.Fprintf(w, "\n%s\n", overloadLine(run))
		}
		if run := &r.Runs[i]; run.Reloads != nil && run.Requests > 0 {
			fmt.Fprintf(w, "\n%s\n", reloadLine(run))
		}
	}
	writeTargets(w, r.Targets, targetsCaveat(&r.Env, r.Targets))
	writeCPUPerRequest(w, r)
	writeComputePerRow(w, r)
	return nil
}

// reloadLine tells what the reloads of run r did, in a sentence.
func reloadLine(r *Run) string {
	rl := r.Reloads
	s := fmt.Sprintf("reloads %s: %d, one every %s (its configuration, then max_queue one higher, in turn)",
		r.Name, rl.Loads, time.Duration(rl.EveryMS)*time.Millisecond)
	if rl.Loads > 0 {
		s += fmt.Sprintf(", each load %s p50, %s max", formatUS(rl.P50US), formatUS(rl.MaxUS))
	}
	if rl.Failures > 0 {
		s += fmt.Sprintf(", %d failed (%s)", rl.Failures, rl.LastError)
	}
	return s + fmt.Sprintf("; requests: errors %s, p99 %s, max %s", formatErrors(r.Errors, r.Requests), formatUS(r.Latency.P99), formatUS(r.Latency.Max))
}

// overloadLine tells what overload run r measured, in a sentence.
func overloadLine(r *Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "overload %s: offered %s/s = %s × %s/s sustained by %s (sent %s/s); accepted %s/s, p99 %s",
		r.Name, groupThousands(r.OfferedRPS), strconv.FormatFloat(r.Overload, 'f', -1, 64),
		groupThousands(r.SustainableRPS), orDash(r.SustainableRun), groupThousands(r.SentRPS),
		groupThousands(r.ThroughputRPS), formatUS(r.Latency.P99))
	if r.MaxAcceptedP99US > 0 {
		fmt.Fprintf(&b, " (bound %s)", formatUS(r.MaxAcceptedP99US))
	}
	fmt.Fprintf(&b, "; shed %s of %s requests", thousands(r.Shed.Count), thousands(r.Requests))
	if r.Shed.Count > 0 {
		fmt.Fprintf(&b, " (%s), p50 %s, p99 %s, max %s", percent(r.Shed.Fraction),
			formatUS(r.Shed.P50US), formatUS(r.Shed.P99US), formatUS(r.Shed.MaxUS))
	}
	fmt.Fprintf(&b, "; errors %s", formatErrors(r.Errors, r.Requests))
	if h := r.Health; h != nil {
		fmt.Fprintf(&b, "; %s p50 %s, p99 %s, max %s, %d of %d probes failed", healthPath,
			formatUS(h.P50US), formatUS(h.P99US), formatUS(h.MaxUS), h.Failures, h.Probes)
	}
	return b.String()
}

// formatShed writes the share of requests shed and their p99, e.g.
// "66.5% (2.10ms)"; "0" when none was.
func formatShed(s *ShedStats) string {
	if s.Count == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (%s)", percent(s.Fraction), formatUS(s.P99US))
}

// formatHealth writes what the readiness probes saw, e.g. "p99 1.20ms,
// 0/500 failed".
func formatHealth(h *HealthStats) string {
	return fmt.Sprintf("p99 %s, %d/%d failed", formatUS(h.P99US), h.Failures, h.Probes)
}

// saturated is the share of its cores above which the load generator is
// marked busy in the table.
const saturated = 0.9

// formatUS writes a duration in µs with three significant figures and a
// unit that fits.
func formatUS(us float64) string {
	switch {
	case us == 0:
		return "0"
	case us < 1000:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	case us < 1e6:
		return trim3(us/1e3) + "ms"
	default:
		return trim3(us/1e6) + "s"
	}
}

// trim3 writes x (at least 1) with three significant figures.
func trim3(x float64) string {
	switch {
	case x < 10:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case x < 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// groupThousands writes x rounded to an integer with thousands separated
// by commas; below 100 with one decimal.
func groupThousands(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	if math.Abs(x) < 100 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return thousands(int64(math.Round(x)))
}

func formatErrors(errs, requests int64) string {
	if errs == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.1f%%)", errs, float64(errs)/float64(max(requests, 1))*100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
