package trainer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/oip"
)

// Gateway is the admin API of the gateway nodes a Loop looks after: Nodes
// are their base URLs (the first takes the writes, which any node
// forwards to the cluster's leader), Token the admin token and
// InferenceToken the one of /v2/models/ calls, when the gateways want
// them. A nil HTTP is http.DefaultClient.
type Gateway struct {
	Nodes                 []string
	Token, InferenceToken string
	HTTP                  *http.Client
}

// ModelState is what the cluster says of a model (GET /v1/models/{name}).
type ModelState struct {
	Production int64 `json:"production"`
	// RollbackTo is the version "infergate models rollback" would make
	// production now (0: none, or a gateway of an earlier release).
	RollbackTo int64 `json:"rollback_to"`
	Versions   []struct {
		Version int64  `json:"version"`
		Stage   string `json:"stage"`
		SHA256  string `json:"sha256"`
		// Nodes maps member ids to the version's state there.
		Nodes map[string]struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		} `json:"nodes"`
	} `json:"versions"`
	Experiment *Experiment `json:"experiment"`
	// Removed says a person took the model off the cluster (infergate
	// models remove): every version is retired until an upload.
	Removed bool `json:"removed"`
	Shadow  *struct {
		Version int64   `json:"version"`
		Percent float64 `json:"percent"`
	} `json:"shadow"`
}

// Experiment is an A/B experiment as the admin API takes it.
type Experiment struct {
	Name string `json:"name"`
	Arms []Arm  `json:"arms"`
}

// Arm is one side of an Experiment.
type Arm struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	Weight  int    `json:"weight"`
}

// NotReady returns, for version v, the nodes where it is not ready and
// why ("" when it is ready on every node the cluster lists); unreachable
// is whether every one of them is only unreachable (not the version's
// fault).
func (m *ModelState) NotReady(v int64) (why string, unreachable bool) {
	for _, vv := range m.Versions {
		if vv.Version != v {
			continue
		}
		var not []string
		unreachable = true
		for id, st := range vv.Nodes {
			if st.State != "ready" {
				s := id + ": " + st.State
				if st.Reason != "" {
					s += " (" + st.Reason + ")"
				}
				not = append(not, s)
				unreachable = unreachable && st.State == "unreachable"
			}
		}
		if len(vv.Nodes) == 0 {
			return "no node reports it", false
		}
		slices.Sort(not)
		return strings.Join(not, "; "), unreachable && len(not) > 0
	}
	return "the cluster has no such version", false
}

// MissingMembers returns the cluster's members (their HTTP addresses)
// that g's Nodes do not name: their traffic logs would go unread.
func (g *Gateway) MissingMembers(ctx context.Context) ([]string, error) {
	var st struct {
		Members []struct {
			ID       string `json:"id"`
			HTTPAddr string `json:"http_addr"`
		} `json:"members"`
	}
	if err := g.any(ctx, http.MethodGet, "/v1/cluster", "", nil, &st); err != nil {
		return nil, err
	}
	bare := func(a string) string {
		a = strings.TrimRight(a, "/")
		if i := strings.Index(a, "://"); i >= 0 {
			a = a[i+3:]
		}
		return a
	}
	named := map[string]bool{}
	for _, n := range g.Nodes {
		named[bare(n)] = true
	}
	var missing []string
	for _, m := range st.Members {
		if !named[bare(m.HTTPAddr)] {
			missing = append(missing, m.ID+" ("+m.HTTPAddr+")")
		}
	}
	return missing, nil
}

// call makes one admin call to node base; out, when not nil, takes the
// JSON answer (a *string the text). A node that cannot be reached is a
// *NodeError.
func (g *Gateway) call(ctx context.Context, base, method, path string, ctype string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	token, hint := g.Token, "pass --token or set INFERGATE_ADMIN_TOKEN"
	if strings.HasPrefix(path, "/v2/models/") {
		token, hint = g.InferenceToken, "pass --inference-token or set INFERGATE_INFERENCE_TOKEN"
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		hint = "the token given is not the one the gateway was started with"
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	hc := g.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &NodeError{Node: base, Err: err}
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &NodeError{Node: base, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		msg := oip.ErrorMessage(ans)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += " (" + hint + ")"
		}
		return &HTTPError{Code: resp.StatusCode, Kind: resp.Header.Get("X-Infergate-Error-Kind"),
			Msg: fmt.Sprintf("%s %s%s: HTTP %d: %s", method, base, path, resp.StatusCode, msg)}
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(ans)
		return nil
	}
	if err := json.Unmarshal(ans, out); err != nil {
		return fmt.Errorf("%s %s%s: the answer is not what an infergate node says: %w", method, base, path, err)
	}
	return nil
}

// NodeError is a node that could not be reached.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string {
	return "cannot reach " + e.Node + ": " + e.Err.Error() + certs.Hint(e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

// any makes a call to the first node that answers: any node serves reads
// from its state and forwards writes to the leader. A POST (an upload,
// which registers a new version each time) goes on to the next node only
// when it never reached the node (unsent): one whose answer was lost may
// have taken effect, and the caller reads the state back instead.
func (g *Gateway) any(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	var errs []error
	for _, n := range g.Nodes {
		err := g.call(ctx, n, method, path, ctype, body, out)
		var ne *NodeError
		if method == http.MethodGet && isStatus(err, http.StatusServiceUnavailable) {
			// A node that cannot answer now (no leader within its
			// reach for a consistent read, say): another may.
			errs = append(errs, err)
			continue
		}
		if !errors.As(err, &ne) {
			return err
		}
		if method == http.MethodPost && !unsent(ne.Err) {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no node answered: %w", errors.Join(errs...))
}

// unsent reports whether err, a call's failure to reach its node, came
// before the request was written: the connection could not be made, or
// its TLS handshake failed.
func unsent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &rh)
}

// HTTPError is an admin call a node refused.
type HTTPError struct {
	Code int
	Msg  string
	// Kind is the answer's X-Infergate-Error-Kind: on a 409, "stands-in"
	// is a retirement that a node where production failed holds up for
	// now (cluster.KindStandsIn; the trainer imports no server code).
	Kind string
}

func (e *HTTPError) Error() string { return e.Msg }

// isStatus reports whether err is a refusal with HTTP status code.
func isStatus(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Code == code
}

func modelURL(name string, rest ...string) string {
	p := "/v1/models/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func (g *Gateway) write(ctx context.Context, method, path string, v any) error {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return err
		}
	}
	return g.any(ctx, method, path, "application/json", body, nil)
}

// Signature reads model name's metadata from the first node: its input's
// name and row width (an FP32 [-1, width] input is what the trainer
// learns from) and its output's name.
func (g *Gateway) Signature(ctx context.Context, name string) (input string, width int, output string, err error) {
	var md struct {
		Inputs []struct {
			Name     string  `json:"name"`
			Datatype string  `json:"datatype"`
			Shape    []int64 `json:"shape"`
		} `json:"inputs"`
		Outputs []struct {
			Name string `json:"name"`
		} `json:"outputs"`
	}
	if err := g.any(ctx, http.MethodGet, "/v2/models/"+url.PathEscape(name), "", nil, &md); err != nil {
		return "", 0, "", fmt.Errorf("cannot read model %s's metadata: %w", name, err)
	}
	if len(md.Inputs) != 1 || len(md.Outputs) != 1 || md.Inputs[0].Datatype != "FP32" || len(md.Inputs[0].Shape) != 2 || md.Inputs[0].Shape[1] < 1 {
		return "", 0, "", fmt.Errorf("model %s has inputs %+v and %d outputs; the trainer learns models of one FP32 input [-1, N] and one output", name, md.Inputs, len(md.Outputs))
	}
	return md.Inputs[0].Name, int(md.Inputs[0].Shape[1]), md.Outputs[0].Name, nil
}

// Model returns the cluster's state of model name as the leader has it
// now (?consistent=1): the trainer acts on what it reads, and a stale
// read would miss what a person just did (a rollback, an experiment
// ended), which the trainer's next write would undo.
func (g *Gateway) Model(ctx context.Context, name string) (*ModelState, error) {
	var m ModelState
	err := g.any(ctx, http.MethodGet, modelURL(name)+"?consistent=1", "", nil, &m)
	if isStatus(err, http.StatusNotFound) {
		return nil, fmt.Errorf("%w (the trainer looks after cluster models: upload a version with \"infergate models upload\", or start the nodes with --register-local-models)", err)
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Upload uploads an ONNX model as a new staged version of model name and
// returns its number.
func (g *Gateway) Upload(ctx context.Context, name string, data []byte) (int64, error) {
	var res struct {
		Version int64 `json:"version"`
	}
	if err := g.any(ctx, http.MethodPost, modelURL(name, "versions"), "application/octet-stream", data, &res); err != nil {
		return 0, err
	}
	return res.Version, nil
}

// SetShadow copies percent of model name's requests to version v.
func (g *Gateway) SetShadow(ctx context.Context, name string, v int64, percent float64) error {
	return g.write(ctx, http.MethodPut, modelURL(name, "shadow"), map[string]any{"version": v, "percent": percent})
}

// EndShadow stops model name's shadow; one already gone is no error.
func (g *Gateway) EndShadow(ctx context.Context, name string) error {
	if err := g.write(ctx, http.MethodDelete, modelURL(name, "shadow"), nil); err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	return nil
}

// EndShadowIf ends model name's shadow if version v is its shadow.
func (g *Gateway) EndShadowIf(ctx context.Context, name string, v int64) error {
	m, err := g.Model(ctx, name)
	if err != nil || m.Shadow == nil || m.Shadow.Version != v {
		return err
	}
	return g.EndShadow(ctx, name)
}

// EndExperimentIf ends model name's experiment if it is the one named x.
func (g *Gateway) EndExperimentIf(ctx context.Context, name, x string) error {
	m, err := g.Model(ctx, name)
	if err != nil || m.Experiment == nil || m.Experiment.Name != x {
		return err
	}
	return g.EndExperiment(ctx, name)
}

// SetExperiment starts (or replaces) model name's experiment.
func (g *Gateway) SetExperiment(ctx context.Context, name string, x Experiment) error {
	return g.write(ctx, http.MethodPut, modelURL(name, "experiment"), x)
}

// EndExperiment ends model name's experiment; one already gone is no
// error.
func (g *Gateway) EndExperiment(ctx context.Context, name string) error {
	if err := g.write(ctx, http.MethodDelete, modelURL(name, "experiment"), nil); err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	return nil
}

// Promote makes version v model name's production.
func (g *Gateway) Promote(ctx context.Context, name string, v int64) error {
	return g.write(ctx, http.MethodPut, modelURL(name, "aliases", "production"), map[string]int64{"version": v})
}

// Retire retires version v of model name.
func (g *Gateway) Retire(ctx context.Context, name string, v int64) error {
	return g.write(ctx, http.MethodDelete, modelURL(name, "versions", strconv.FormatInt(v, 10)), nil)
}

// Scrape returns the nodes' /metrics, one after the other: SumSeries of
// it sums a series over the nodes. missing names the nodes that could not
// be read (a guardrail must not pass on missing evidence); it fails when
// none could.
func (g *Gateway) Scrape(ctx context.Context) (text string, missing []string, err error) {
	texts, missing, err := g.ScrapeNodes(ctx)
	if err != nil {
		return "", missing, err
	}
	var all strings.Builder
	for _, n := range g.Nodes {
		t, ok := texts[n]
		if !ok {
			continue
		}
		all.WriteString(t)
		if !strings.HasSuffix(t, "\n") {
			all.WriteByte('\n')
		}
	}
	return all.String(), missing, nil
}

// ScrapeNodes returns each node's /metrics by its base URL, for the nodes
// that could be read; missing names the others. It fails when none could.
func (g *Gateway) ScrapeNodes(ctx context.Context) (texts map[string]string, missing []string, err error) {
	texts = map[string]string{}
	var errs []error
	for _, n := range g.Nodes {
		var t string
		if err := g.call(ctx, n, http.MethodGet, "/metrics", "", nil, &t); err != nil {
			missing = append(missing, n)
			errs = append(errs, err)
			continue
		}
		texts[n] = t
	}
	if len(missing) == len(g.Nodes) {
		return nil, missing, fmt.Errorf("cannot read any node's metrics: %w", errors.Join(errs...))
	}
	return texts, missing, nil
}

// SumSeries sums the values of the series of metric name in Prometheus
// text whose labels include every pair of match.
func SumSeries(text, name string, match map[string]string) float64 {
	sum := 0.0
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels := map[string]string{}
		if rest[0] == '{' {
			end := -1
			labels, end = parseLabels(rest)
			if end < 0 {
				continue
			}
			rest = rest[end:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		all := true
		for k, want := range match {
			if labels[k] != want {
				all = false
				break
			}
		}
		if all {
			sum += v
		}
	}
	return sum
}

// parseLabels parses `{a="x",b="y"}` at the start of s and returns the
// labels and the index after the closing brace (-1 when malformed).
func parseLabels(s string) (map[string]string, int) {
	labels := map[string]string{}
	i := 1
	for {
		if i < len(s) && s[i] == '}' {
			return labels, i + 1
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return nil, -1
		}
		key := strings.TrimSpace(s[i : i+eq])
		j := i + eq + 2
		var val strings.Builder
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[j])
				}
				continue
			}
			val.WriteByte(s[j])
		}
		if j >= len(s) {
			return nil, -1
		}
		labels[key] = val.String()
		i = j + 1
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
}

// CheckLogs asks every node for its traffic log's figures: a node that
// keeps none, or refuses the token, is an error (the trainer cannot work
// with it); one that cannot be reached is left for later.
func (g *Gateway) CheckLogs(ctx context.Context) error {
	for _, n := range g.Nodes {
		err := g.call(ctx, n, http.MethodGet, "/v1/traffic/stats", "", nil, nil)
		var ne *NodeError
		if err != nil && !errors.As(err, &ne) {
			return err
		}
	}
	return nil
}
