package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// statusPage serves a small HTML page for people: what is served, in
// which state, and where the machine-readable endpoints are.
func (s *Server) statusPage(ctx *fasthttp.RequestCtx) error {
	idx, err := s.index()
	if err != nil {
		return err
	}
	type row struct {
		registry.IndexEntry
		InFlight int64
		SHA256   string
		Loaded   string
		// Default says how the version answers unversioned requests: all
		// of them ("unversioned"), or, while an experiment splits them,
		// those whose arm is not ready here ("fallback of the arms").
		Default string
		// Roles says what else the version does: its experiment arms, and
		// "shadow".
		Roles string
		// Off marks a version out of service on purpose (retired or
		// unloaded), shown in grey rather than red.
		Off bool
		// n, first and last are the retired versions folded into the
		// row: how many, and the lowest and highest.
		n           int
		first, last string
	}
	rows := make([]row, 0, len(idx))
	// retired is the row of each model's retired versions, folded into
	// one: a trainer retires a version a round, and a row each would
	// bury the rows that matter under an ever longer list.
	retired := map[string]int{}
	for _, e := range idx {
		if e.State == registry.StateUnavailable && e.Reason == reasonRetired {
			if i, ok := retired[e.Name]; ok {
				r := &rows[i]
				r.n++
				r.last = e.Version
				r.Version = r.first + "–" + r.last
				r.Reason = fmt.Sprintf("%s (%d versions)", reasonRetired, r.n)
				r.InFlight += s.drainingInFlight(e)
				continue
			}
			retired[e.Name] = len(rows)
			rows = append(rows, row{IndexEntry: e, Off: true, InFlight: s.drainingInFlight(e), n: 1, first: e.Version, last: e.Version})
			continue
		}
		r := row{IndexEntry: e, Off: e.State == registry.StateUnavailable && (e.Reason == registry.ReasonUnloaded || e.Reason == reasonRemoved)}
		r.InFlight = s.drainingInFlight(e)
		if m := s.repo.Model(e.Name); m != nil {
			def := m.Default()
			for _, v := range m.Versions() {
				if v.Label == e.Version {
					r.InFlight += v.InFlight()
					r.SHA256 = v.SHA256
					r.Loaded = v.LoadedAt.UTC().Format(time.RFC3339)
					if v == def {
						r.Default = "unversioned"
						if m.Experiment() != nil {
							r.Default = "fallback of the arms"
						}
					}
					r.Roles = roles(m, v.Number)
				}
			}
		}
		rows = append(rows, r)
	}
	ready, why := s.readiness()
	unavailable := 0 // for a failure: not those unloaded or retired on purpose
	for _, r := range rows {
		if r.State == registry.StateUnavailable && !r.Off {
			unavailable++
		}
	}
	var traffic []versionTraffic
	seen := map[string]bool{}
	for _, e := range idx {
		if seen[e.Name] {
			continue
		}
		seen[e.Name] = true
		if m := s.repo.Model(e.Name); m != nil {
			for _, v := range m.Versions() {
				traffic = append(traffic, trafficOf(v, s.cache != nil))
			}
		}
	}
	data := struct {
		Name, Version, Runtime, Uptime, Repo string
		Ready                                bool
		NotReady                             string // why not, when not
		Unavailable                          int    // index rows not serving
		Rows                                 []row
		Traffic                              []versionTraffic
		Arms                                 []armRow
		Cluster                              *clusterStatus
		TLS                                  string // the certificate served, when HTTPS
		TLSSoon                              bool   // it expires within two weeks
		Disks                                []diskLine
		GRPC                                 string // where gRPC is served, if it is
		GRPCStreams                          int    // ModelStreamInfer streams open
		Log                                  *logLine
		MonitorOnly                          bool // /metrics is on the monitoring address
	}{
		MonitorOnly: s.cfg.MonitorOnly,
		Name:        s.cfg.Name,
		Version:     s.cfg.Version,
		Runtime:     s.cfg.RuntimeVersion,
		GRPC:        s.grpcAddr(),
		GRPCStreams: s.grpcStreamsOpen(),
		Uptime:      time.Since(s.started).Round(time.Second).String(),
		Repo:        s.repo.Dir(),
		Ready:       ready,
		NotReady:    why,
		Unavailable: unavailable,
		Rows:        rows,
		Traffic:     traffic,
		Arms:        s.armRows(),
		Cluster:     s.clusterView(),
	}
	data.TLS, data.TLSSoon = s.certificateLine()
	data.Disks = s.diskLines()
	data.Log = s.logLine()
	ctx.SetContentType("text/html; charset=utf-8")
	return statusTemplate.Execute(ctx, data)
}

// drainingInFlight returns the requests still in flight on the unloaded
// loads of e's version.
func (s *Server) drainingInFlight(e registry.IndexEntry) int64 {
	n, err := strconv.ParseInt(e.Version, 10, 64)
	if err != nil {
		return 0
	}
	return s.repo.DrainingInFlight(e.Name, n)
}

// logLine is what the status page says of the log: the ERROR and
// WARNING lines logged since the start, and a verbose log left on.
type logLine struct {
	Text   string
	Errors bool // some ERROR line: shown in red
}

// logLine returns the status page's line about the log; nil without
// Config.Logging.
func (s *Server) logLine() *logLine {
	lg := s.cfg.Logging
	if lg == nil {
		return nil
	}
	errs, warns := lg.Lines(logging.LevelError), lg.Lines(logging.LevelWarning)
	l := &logLine{Errors: errs > 0, Text: "log: no ERROR or WARNING line since the start"}
	if errs+warns > 0 {
		l.Text = fmt.Sprintf("log: %d ERROR and %d WARNING lines since the start", errs, warns)
	}
	if lg.Verbose() > 0 {
		l.Text += "; verbose: a line a request (log_verbose_level 1)"
	}
	return l
}

// diskLine is what the status page says of one guarded directory.
type diskLine struct {
	Text string
	Low  bool // under the minimum free: writes that grow the disk are refused
}

// diskLines says how much space each guarded directory has left.
func (s *Server) diskLines() []diskLine {
	var out []diskLine
	for _, d := range s.cfg.Disks {
		g := d.Guard
		free, err := g.Free()
		if err != nil {
			out = append(out, diskLine{Text: fmt.Sprintf("%s: free space unknown (%v)", g.Dir(), err)})
			continue
		}
		have, keep := diskfree.Sizes(free, g.Min())
		l := diskLine{Text: fmt.Sprintf("%s free in %s", have, g.Dir()), Low: g.Low()}
		if l.Low {
			l.Text += fmt.Sprintf(", under the %s the node keeps: it refuses %s", keep, d.Refuses)
		}
		out = append(out, l)
	}
	return out
}

// certificateLine says which certificate the server presents and until
// when, and whether that is within two weeks; "" without TLS.
func (s *Server) certificateLine() (string, bool) {
	if s.cfg.TLS == nil || s.cfg.TLS.GetCertificate == nil {
		return "", false
	}
	c, err := s.cfg.TLS.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c == nil || c.Leaf == nil {
		return "", false
	}
	left := time.Until(c.Leaf.NotAfter)
	in := fmt.Sprintf("%.0f days left", left.Hours()/24)
	switch {
	case left <= 0:
		in = "expired"
	case left < 48*time.Hour:
		in = fmt.Sprintf("%.0f hours left", left.Hours())
	}
	return fmt.Sprintf("HTTPS certificate %s, valid until %s (%s)", c.Leaf.Subject.CommonName, c.Leaf.NotAfter.UTC().Format(time.RFC3339), in),
		left < 14*24*time.Hour
}

// versionTraffic is what the status page says of a loaded version's
// traffic, from its metrics (since the version was first loaded) and its
// batcher (now).
type versionTraffic struct {
	Model, Version string
	Served, Failed string
	FailedTip      string // the failures by reason
	AvgBatch       string // rows per execution
	AvgWait        string // a request's mean wait for an instance
	AvgRun         string // an execution's mean time
	OnCPU          string // the share of the sampled runs' time their thread had a CPU
	Queued         string // waiting now, of the queue's bound
	Batching       string // the batcher's settings
	Cache          string
}

// trafficOf reads v's traffic; nodeCache says whether this node has a
// response cache at all (--cache-bytes above 0).
func trafficOf(v *registry.Version, nodeCache bool) versionTraffic {
	m := v.Metrics
	t := versionTraffic{Model: v.Model, Version: v.Label, Served: thousands(m.Success.Get()), AvgBatch: "—", AvgWait: "—", AvgRun: "—", OnCPU: "—", Cache: "off"}
	var failed uint64
	var why []string
	for r, c := range m.Failure {
		if n := c.Get(); n > 0 {
			failed += n
			why = append(why, registry.FailureReason(r).String()+" "+thousands(n))
		}
	}
	t.Failed, t.FailedTip = thousands(failed), strings.Join(why, ", ")
	st := m.Statistics()
	if st.ExecutionCount > 0 {
		t.AvgBatch = fmt.Sprintf("%.1f", float64(st.InferenceCount)/float64(st.ExecutionCount))
	}
	// The statistics count cache hits as queued for no time; the wait
	// is that of the requests that went to an instance.
	if n := st.Queue.Count - min(st.CacheHit.Count, st.Queue.Count); n > 0 {
		t.AvgWait = meanDuration(st.Queue.NS, n)
	}
	var runs, ns uint64
	for _, b := range st.Batches {
		runs, ns = runs+b.Count, ns+b.NS
	}
	if runs > 0 {
		t.AvgRun = meanDuration(ns, runs)
	}
	// The calling thread does all the work only with one intra-op thread
	// on a CPU; otherwise its share says nothing of oversubscription.
	if wall := m.SampledCompute.Get(); wall > 0 && v.Config.IntraOpThreads <= 1 && !strings.HasPrefix(v.Config.Device, "cuda") {
		t.OnCPU = fmt.Sprintf("%.0f%%", 100*min(m.SampledCPU.Get()/wall, 1))
	}
	bc := v.Batcher.Config()
	t.Queued = thousands(uint64(v.Batcher.QueueLen())) + " of " + thousands(uint64(bc.MaxQueueSize))
	instances := "1 instance"
	if bc.Instances != 1 {
		instances = fmt.Sprintf("%d instances", bc.Instances)
	}
	if bc.MaxBatchSize > 1 {
		t.Batching = fmt.Sprintf("up to %d rows, %s", bc.MaxBatchSize, instances)
		if bc.MaxQueueDelay > 0 {
			t.Batching += fmt.Sprintf(", waits up to %s", bc.MaxQueueDelay)
		}
	} else {
		t.Batching = "off, " + instances
	}
	if bc.WorkerThread != nil {
		t.Batching += ", on the reserved CPUs"
	}
	if rc := v.Config.ResponseCache; rc != nil && rc.Enable && !nodeCache {
		t.Cache = "off: this node has no cache (--cache-bytes 0)"
	} else if rc != nil && rc.Enable {
		hits, misses := m.CacheHits.Get(), m.CacheMisses.Get()
		t.Cache = "on"
		if hits+misses > 0 {
			t.Cache = fmt.Sprintf("on: %.0f%% of %s lookups hit", 100*float64(hits)/float64(hits+misses), thousands(hits+misses))
		}
	}
	return t
}

// meanDuration writes ns/n nanoseconds as a duration rounded for people.
func meanDuration(ns, n uint64) string {
	d := time.Duration(ns / n)
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return d.Round(100 * time.Nanosecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

// thousands writes n with commas between groups of three digits.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// clusterStatus is the status page's view of the control plane, from this
// node's own state, but for which members answer, which a follower asks
// its leader (cluster.Node.MembersFromLeader, half a second at most).
type clusterStatus struct {
	Node, Leader string
	Index        uint64
	LastContact  string
	// Pending says why this node has not gone over the cluster's models
	// since it started (it replays its raft log, say), "" once it has:
	// until then its tables are the group's past, or empty.
	Pending string
	// MembersErr says why the members are not listed.
	MembersErr string
	Members    []memberRow
	Models     []clusterModel
}

// memberRow is a member's row: Lost for one that is unreachable or
// dropped (in red), Silent for how long the leader has not heard from it.
type memberRow struct {
	cluster.Member
	Lost   bool
	Silent string
}

type clusterModel struct {
	Name       string
	Production int64
	Removed    bool // removed from the cluster: no production, every version retired
	Aliases    string
	Versions   int
	Experiment string
	Shadow     string
}

// armRow is the status page's line for one arm of a running experiment:
// what this node counted for it.
type armRow struct {
	Model, Experiment, Arm string
	Since                  string // when the phase began, or "—"
	Version                int64
	Weight                 int
	Requests, Fallbacks    uint64
	Labels, Rewards        string // "n (mean m)", or "—"
}

func (s *Server) armRows() []armRow {
	var rows []armRow
	for _, m := range s.repo.Models() {
		x := m.Experiment()
		if x == nil {
			continue
		}
		since := "—"
		if !x.Started.IsZero() {
			since = x.Started.UTC().Format("2006-01-02 15:04:05 MST")
		}
		for i, a := range x.Arms {
			st := x.Stats(i)
			rows = append(rows, armRow{
				Model: m.Name, Experiment: x.Name, Since: since, Arm: a.Name, Version: a.Version, Weight: a.Weight,
				Requests: st.Requests, Fallbacks: st.Fallbacks,
				Labels: meanOf(st.Labels, st.LabelSum), Rewards: meanOf(st.Rewards, st.RewardSum),
			})
		}
	}
	return rows
}

func meanOf(n uint64, sum float64) string {
	if n == 0 {
		return "—"
	}
	return thousands(n) + " (mean " + strconv.FormatFloat(sum/float64(n), 'g', 4, 64) + ")"
}

// roles names what version n of m does besides answering the requests
// that name it: the arms of m's experiment it serves ("arm control") and
// whether it is m's shadow.
func roles(m *registry.Model, n int64) string {
	var rs []string
	if e := m.Experiment(); e != nil {
		for _, a := range e.Arms {
			if a.Version == n {
				rs = append(rs, "arm "+a.Name)
			}
		}
	}
	if sh := m.Shadow(); sh != nil && sh.Version == n {
		rs = append(rs, "shadow")
	}
	if retired, until := m.StandIn(); retired == n {
		rs = append(rs, fmt.Sprintf("retired: unversioned only, until version %d is ready", until))
	}
	return strings.Join(rs, ", ")
}

func (s *Server) clusterView() *clusterStatus {
	cp := s.plane.Load()
	if cp == nil {
		return nil
	}
	n := cp.node
	cs := &clusterStatus{Node: n.ID()}
	leader, members, err := n.MembersFromLeader(context.Background())
	if err == nil {
		cs.Leader = leader
		for _, m := range members {
			row := memberRow{Member: m, Lost: m.State == "unreachable" || m.State == "dropped"}
			if m.SilentMS > 0 {
				row.Silent = (time.Duration(m.SilentMS) * time.Millisecond).String()
			}
			cs.Members = append(cs.Members, row)
		}
	} else if errors.Is(err, cluster.ErrDropped) {
		cs.MembersErr = "not known here: this node is out of its group's raft (above, why); ask a member of the group"
	} else {
		cs.MembersErr = "not known here: " + err.Error()
	}
	cs.Pending = n.LocalStatus().Pending
	st := n.Staleness()
	cs.Index = st.Index
	switch {
	case n.IsLeader():
		cs.LastContact = "this node leads"
	case st.LastContact < 0:
		cs.LastContact = "never heard from a leader"
	default:
		cs.LastContact = "leader heard from " + st.LastContact.Round(time.Millisecond).String() + " ago"
	}
	state, _ := n.FSM().State()
	for name, m := range state.Models {
		cm := clusterModel{Name: name, Production: m.Production(), Removed: m.Removed(), Versions: len(m.Versions)}
		var aliases []string
		for a, v := range m.Aliases {
			aliases = append(aliases, fmt.Sprintf("%s=%d", a, v))
		}
		slices.Sort(aliases)
		cm.Aliases = strings.Join(aliases, " ")
		if m.Experiment != nil {
			cm.Experiment = m.Experiment.String()
		}
		if m.Shadow != nil {
			cm.Shadow = m.Shadow.String()
		}
		cs.Models = append(cs.Models, cm)
	}
	slices.SortFunc(cs.Models, func(a, b clusterModel) int { return strings.Compare(a.Name, b.Name) })
	return cs
}

var statusTemplate = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Name}} status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-top:1em}
th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}
.READY{color:#0a7a2f;font-weight:600}.UNAVAILABLE{color:#b00020;font-weight:600}
.LOADING,.UNLOADING{color:#a66b00;font-weight:600}
.OFF{color:#777}
code{background:#f4f4f4;padding:1px 4px}
</style></head><body>
<h1>{{.Name}} {{.Version}}</h1>
<p>{{if .Ready}}<span class="READY">ready</span>{{else}}<span class="UNAVAILABLE">not ready: {{.NotReady}}</span>{{end}}{{with .Unavailable}} · <span class="UNAVAILABLE">{{.}} not serving (below, with the reason)</span>{{end}}
 · up {{.Uptime}} · ONNX Runtime {{.Runtime}} · repository <code>{{.Repo}}</code>{{with .GRPC}} · gRPC on <code>{{.}}</code>{{with $.GRPCStreams}} ({{.}} stream{{if ne . 1}}s{{end}} open){{end}}{{end}}{{with .TLS}} · <span{{if $.TLSSoon}} class="UNAVAILABLE"{{end}}>{{.}}</span>{{end}}{{range .Disks}} · <span{{if .Low}} class="UNAVAILABLE"{{end}}>{{.Text}}</span>{{end}}{{with .Log}} · <span{{if .Errors}} class="UNAVAILABLE"{{end}}>{{.Text}}</span>{{end}}</p>
<table><tr><th>model</th><th>version</th><th>state</th><th>in flight</th><th>loaded</th><th>sha256</th><th>reason</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Version}}{{with .Default}} <small>({{.}})</small>{{end}}{{with .Roles}} <small>({{.}})</small>{{end}}</td><td class="{{if .Off}}OFF{{else}}{{.State}}{{end}}">{{.State}}</td><td>{{.InFlight}}</td><td>{{.Loaded}}</td><td>{{with .SHA256}}<code>{{printf "%.12s" .}}</code>{{end}}</td><td>{{.Reason}}</td></tr>
{{else}}<tr><td colspan="7">the repository holds no models</td></tr>{{end}}
</table>
{{with .Traffic}}<h2>Traffic</h2>
<p>Counts and means since each version was first loaded (as JSON: <code>GET /v2/models/stats</code>); the queue as of now.</p>
<table><tr><th>model</th><th>version</th><th>served</th><th>failed</th><th>rows per batch</th><th>mean wait</th><th>mean run</th><th title="of the sampled runs' time (one in 64), how much their thread had a CPU; well under 100%, the CPUs are oversubscribed (shown with one intra-op thread on a CPU only)">on a CPU</th><th>queued</th><th>batching</th><th>response cache</th></tr>
{{range .}}<tr><td>{{.Model}}</td><td>{{.Version}}</td><td>{{.Served}}</td><td{{with .FailedTip}} title="{{.}}"{{end}}>{{.Failed}}{{with .FailedTip}} <small>({{.}})</small>{{end}}</td><td>{{.AvgBatch}}</td><td>{{.AvgWait}}</td><td>{{.AvgRun}}</td><td>{{.OnCPU}}</td><td>{{.Queued}}</td><td>{{.Batching}}</td><td>{{.Cache}}</td></tr>
{{end}}</table>{{end}}
{{with .Arms}}<h2>Experiments</h2>
<p>What this node counted for each arm in the experiment's phase (since it started or its split last changed, across this node's restarts): requests, those that fell back to production (the arm's version not ready here), and the outcomes clients reported (POST /v2/models/{name}/feedback, with a traffic log) with their means. Each node counts its own: <code>infergate models show MODEL</code> sums the nodes and says whether the arms differ.</p>
<table><tr><th>model</th><th>experiment</th><th>phase since</th><th>arm</th><th>version</th><th>weight</th><th>requests</th><th>fell back</th><th>labels</th><th>rewards</th></tr>
{{range .}}<tr><td>{{.Model}}</td><td>{{.Experiment}}</td><td>{{.Since}}</td><td>{{.Arm}}</td><td>{{.Version}}</td><td>{{.Weight}}</td><td>{{.Requests}}</td><td>{{.Fallbacks}}</td><td>{{.Labels}}</td><td>{{.Rewards}}</td></tr>
{{end}}</table>{{end}}
{{with .Cluster}}
<h2>Cluster</h2>
<p>node <code>{{.Node}}</code> · leader <code>{{if .Leader}}{{.Leader}}{{else}}none known{{end}}</code> · applied index {{.Index}} · {{.LastContact}}{{with .Pending}} · <span class="LOADING">{{.}}</span>{{end}}</p>
<table><tr><th>member</th><th>raft</th><th>http</th><th>voter</th><th>state</th></tr>
{{range .Members}}<tr><td>{{.ID}}</td><td><code>{{.RaftAddr}}</code></td><td><code>{{.HTTPAddr}}</code></td><td>{{if .Voter}}yes{{else}}no{{end}}</td><td{{if .Lost}} class="UNAVAILABLE"{{end}}>{{.State}}{{with .Silent}} (silent {{.}}){{end}}</td></tr>
{{else}}<tr><td colspan="5">{{.MembersErr}}</td></tr>{{end}}</table>
<table><tr><th>cluster model</th><th>production</th><th>aliases</th><th>versions</th><th>experiment</th><th>shadow</th></tr>
{{range .Models}}<tr><td>{{.Name}}</td><td{{if .Removed}} class="OFF"{{end}}>{{if .Removed}}none: removed from the cluster{{else}}{{.Production}}{{end}}</td><td>{{.Aliases}}</td><td>{{.Versions}}</td><td>{{.Experiment}}</td><td>{{.Shadow}}</td></tr>
{{else}}<tr><td colspan="6">{{if .Pending}}none known yet: the node has not replayed the cluster's state (above){{else}}no model is registered in the cluster; <code>infergate models upload NAME FILE</code> adds one{{end}}</td></tr>{{end}}
</table>
{{end}}
<p>Machine-readable: <code>GET /v2</code>, <code>GET /v2/models/{name}</code>, <code>POST /v2/repository/index</code>, <code>GET /metrics</code>{{if .MonitorOnly}} (on the monitoring address, <code>serve --monitor-http</code>){{end}}, <code>GET /v1/models</code> and <code>GET /v1/cluster</code> (admin token).</p>
</body></html>
`))
