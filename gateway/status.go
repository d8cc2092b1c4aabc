package gateway

import (
	"html/template"
	"time"

	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// statusPage serves a small HTML page for people: what is served, in
// which state, and where the machine-readable endpoints are.
func (s *Server) statusPage(ctx *fasthttp.RequestCtx) error {
	idx, err := s.repo.Index()
	if err != nil {
		return err
	}
	type row struct {
		registry.IndexEntry
		InFlight int64
		SHA256   string
		Loaded   string
	}
	rows := make([]row, 0, len(idx))
	for _, e := range idx {
		r := row{IndexEntry: e}
		if m := s.repo.Model(e.Name); m != nil {
			for _, v := range m.Versions() {
				if v.Label == e.Version {
					r.InFlight = v.InFlight()
					r.SHA256 = v.SHA256
					r.Loaded = v.LoadedAt.UTC().Format(time.RFC3339)
				}
			}
		}
		rows = append(rows, r)
	}
	data := struct {
		Name, Version, Runtime, Uptime, Repo string
		Ready                                bool
		Rows                                 []row
	}{
		Name:    s.cfg.Name,
		Version: s.cfg.Version,
		Runtime: s.cfg.RuntimeVersion,
		Uptime:  time.Since(s.started).Round(time.Second).String(),
		Repo:    s.repo.Dir(),
		Ready:   s.ready.Load() && !s.stopping.Load(),
		Rows:    rows,
	}
	ctx.SetContentType("text/html; charset=utf-8")
	return statusTemplate.Execute(ctx, data)
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
code{background:#f4f4f4;padding:1px 4px}
</style></head><body>
<h1>{{.Name}} {{.Version}}</h1>
<p>{{if .Ready}}<span class="READY">ready</span>{{else}}<span class="UNAVAILABLE">not ready</span>{{end}}
 · up {{.Uptime}} · ONNX Runtime {{.Runtime}} · repository <code>{{.Repo}}</code></p>
<table><tr><th>model</th><th>version</th><th>state</th><th>in flight</th><th>loaded</th><th>sha256</th><th>reason</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td class="{{.State}}">{{.State}}</td><td>{{.InFlight}}</td><td>{{.Loaded}}</td><td><code>{{printf "%.12s" .SHA256}}</code></td><td>{{.Reason}}</td></tr>
{{else}}<tr><td colspan="7">the repository holds no models</td></tr>{{end}}
</table>
<p>Machine-readable: <code>GET /v2</code>, <code>GET /v2/models/{name}</code>, <code>POST /v2/repository/index</code>, <code>GET /metrics</code>.</p>
</body></html>
`))
