package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/certs"
	"github.com/infergate/infergate/registry"
)

// This file holds `infergate models` and `infergate cluster`: thin clients
// over the admin API (/v1) that gateway/admin.go serves. Each subcommand
// makes one call, then prints the answer as a table, or as it came with
// --json.

// runModels is `infergate models`. It prints its own errors, prefixed with
// the subcommand, and exits with their code.
func runModels(args []string) error { return exitAdmin(modelsGroup.main(args, os.Stdout, os.Stderr)) }

// runCluster is `infergate cluster`; see runModels.
func runCluster(args []string) error { return exitAdmin(clusterGroup.main(args, os.Stdout, os.Stderr)) }

// exitAdmin exits with code unless it is 0. The admin groups print their
// errors themselves, since main's prefix would lack the subcommand.
func exitAdmin(code int) error {
	if code != 0 {
		os.Exit(code)
	}
	return nil
}

// adminGroup is a command made of subcommands that call the admin API.
type adminGroup struct {
	name        string
	description string
	subs        []adminSub
}

// adminSub is one subcommand of an adminGroup.
type adminSub struct {
	name    string
	args    string // positional arguments, for the group's usage
	summary string
	run     func(out adminOutput, args []string) error
}

// adminOutput is where a subcommand writes: its answer to stdout, usage
// and flag errors to stderr. Tests replace both.
type adminOutput struct {
	stdout, stderr io.Writer
}

var modelsGroup = &adminGroup{
	name: "models",
	description: `Manage the models replicated across the cluster through the admin API (/v1) of
any member: upload ONNX versions, point aliases at them, roll production back,
run A/B experiments and shadows between versions, retire old versions, remove
a model. Writes sent to a follower are forwarded to the leader.`,
	subs: []adminSub{
		{"list", "", "list every model's versions with their stage, aliases and readiness on each node", modelsList},
		{"show", "NAME", "show one model's versions and why a node does not serve one", modelsShow},
		{"upload", "NAME FILE", "upload an ONNX file as the next version of a model", modelsUpload},
		{"promote", "NAME VERSION", "make a version production (the alias that serves unversioned requests)", modelsPromote},
		{"alias", "NAME ALIAS VERSION", "point an alias of a model at a version", modelsAlias},
		{"rollback", "NAME", "point production back at the version it had before", modelsRollback},
		{"retire", "NAME VERSION", "retire a version no alias points to; nodes unload it", modelsRetire},
		{"experiment", "NAME EXPERIMENT --arm ...", "split a model's unversioned requests among versions (A/B test)", modelsExperiment},
		{"end-experiment", "NAME", "end a model's A/B experiment: production takes its requests again", modelsEndExperiment},
		{"shadow", "NAME VERSION --percent P", "copy a sample of a model's requests to a version and compare its answers", modelsShadow},
		{"end-shadow", "NAME", "stop copying a model's requests to its shadow", modelsEndShadow},
		{"remove", "NAME --yes", "take a model off every node: end its experiment and shadow, drop its aliases, retire every version", modelsRemove},
	},
}

var clusterGroup = &adminGroup{
	name: "cluster",
	description: `Inspect and change the cluster's membership through the admin API (/v1) of any
member. Nodes join with "infergate serve --join". "backup" saves the state and
models online; "recover" and "restore" work offline on a data directory.`,
	subs: []adminSub{
		{"status", "", "show the leader, the members and how current the answering node is", clusterStatus},
		{"remove", "ID", "remove a member from the cluster (stop its process first)", clusterRemove},
		{"recover", "--data DIR", "make a stopped node its group's only member, when the group lost most of its voters for good", clusterRecover},
		{"backup", "--out FILE", "save a consistent backup of the cluster's state and models, taken online from any member", clusterBackup},
		{"restore", "--from FILE --data DIR --cluster ADDR", "make a new data directory whose node leads a group holding a backup's state", clusterRestore},
	},
}

// main runs the subcommand args[0] and returns the exit code: 0, 1 after
// an error it printed as "infergate GROUP SUB: ...", 2 after a usage error.
func (g *adminGroup) main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		g.usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		g.usage(stdout)
		return 0
	}
	for _, s := range g.subs {
		if s.name != args[0] {
			continue
		}
		err := s.run(adminOutput{stdout: stdout, stderr: stderr}, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case err == errUsage:
			return 2
		}
		fmt.Fprintf(stderr, "infergate %s %s: %s\n", g.name, s.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "infergate %s: unknown command %q\n\n", g.name, args[0])
	g.usage(stderr)
	return 2
}

func (g *adminGroup) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: infergate %s <command> [flags] [arguments]\n\n%s\n\nCommands:\n", g.name, g.description)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range g.subs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.args, s.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nFlags may come before, between or after the arguments; \"--\" ends them.\nRun `infergate %s <command> --help` for a command's flags.\n", g.name)
}

// flagSet returns newFlagSet's flag set writing to out.stderr; the usage
// says where flags may go.
func (out adminOutput) flagSet(name, synopsis, description string) *flag.FlagSet {
	fs := newFlagSet(name, synopsis, description+"\n\nFlags may come before, between or after the arguments; \"--\" ends them.")
	fs.SetOutput(out.stderr)
	return fs
}

// adminConfig is what the flags common to the admin subcommands say.
type adminConfig struct {
	addr       string
	token      string
	json       bool
	consistent bool
	timeout    time.Duration
	tls        *tlsClientFlags
}

// adminFlags defines the common flags on fs; --consistent only where read.
func adminFlags(fs *flag.FlagSet, read bool) *adminConfig {
	c := &adminConfig{}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "base URL of any cluster member's HTTP server (its --http or --advertise-http address); without a scheme, https:// when --ca-cert or --client-cert (or their variables) are given, else http://")
	// The default is read in client, so that --help never prints a token.
	fs.StringVar(&c.token, "token", "", "bearer token of the admin API, the server's --admin-token (default $INFERGATE_ADMIN_TOKEN); a server without one answers loopback clients only")
	fs.StringVar(&c.token, "admin-token", "", "the same as --token, spelled as serve spells it")
	fs.BoolVar(&c.json, "json", false, "print the API's JSON answer as it came instead of text")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up on the call after this long; uploads of large models may need more")
	c.tls = addTLSClientFlags(fs)
	if read {
		fs.BoolVar(&c.consistent, "consistent", false, "read after the leader confirms its commit index (linearizable) instead of from the answering member's possibly stale state; fails with 503 while there is no leader, or while this member cannot catch up with its log")
	}
	return c
}

// call sends one request through a client that c describes.
func (c *adminConfig) call(method, path string, query url.Values, contentType string, body []byte) (*adminAnswer, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return cl.call(method, path, query, contentType, body)
}

// client validates c and returns the client it describes.
func (c *adminConfig) client() (*adminClient, error) {
	if c.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", c.timeout)
	}
	addr, err := c.tls.baseURL("--addr", strings.TrimRight(c.addr, "/"))
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--addr %q: want a base URL such as http://127.0.0.1:8080", c.addr)
	}
	token := c.token
	if token == "" {
		token = os.Getenv("INFERGATE_ADMIN_TOKEN")
	}
	hc, err := c.tls.httpClient(c.timeout)
	if err != nil {
		return nil, err
	}
	return &adminClient{
		base:       addr,
		token:      token,
		consistent: c.consistent,
		timeout:    c.timeout,
		hc:         hc,
	}, nil
}

// adminClient makes calls to the admin API of one member.
type adminClient struct {
	base       string // scheme://host[:port][/prefix], no trailing slash
	token      string
	consistent bool
	timeout    time.Duration
	hc         *http.Client
	// header is added to every request (the upload's model config).
	header http.Header
}

// adminAnswer is a successful answer of the admin API.
type adminAnswer struct {
	body   []byte
	header http.Header
}

// maxAdminAnswer bounds the answers read; a listing of many models with
// many versions on many nodes stays far below it.
const maxAdminAnswer = 64 << 20

// call sends method path (with ?consistent=1 on reads when asked) and
// returns the 2xx answer, or an *adminError for the others.
func (c *adminClient) call(method, path string, query url.Values, contentType string, body []byte) (*adminAnswer, error) {
	if c.consistent && method == http.MethodGet {
		if query == nil {
			query = url.Values{}
		}
		query.Set("consistent", "1")
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build the request %s %s: %w", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "infergate/"+version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return nil, fmt.Errorf("%s %s: no answer within --timeout %s", method, u, c.timeout)
		}
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the admin API at %s: %w%s", c.base, err, certs.Hint(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: cannot read the answer (HTTP %d): %w", method, u, resp.StatusCode, err)
	}
	if len(data) > maxAdminAnswer {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d MiB", method, u, maxAdminAnswer>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newAdminError(resp, data, c.token != "")
	}
	return &adminAnswer{body: data, header: resp.Header}, nil
}

// adminError is an answer of the admin API with an error status.
type adminError struct {
	status     int
	header     http.Header
	msg        string // the server's {"error": ...}, else its body or status text
	retryAfter string // the Retry-After header of a 503
	unknown    bool   // a 503 whose write may have been applied: no blind retry
	hint       string // what to do, where the status says it
}

func newAdminError(resp *http.Response, body []byte, hadToken bool) *adminError {
	e := &adminError{status: resp.StatusCode, header: resp.Header}
	var eb struct {
		Error string `json:"error"`
	}
	switch {
	case json.Unmarshal(body, &eb) == nil && eb.Error != "":
		e.msg = eb.Error
	case (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
		(strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || bytes.HasPrefix(bytes.TrimSpace(body), []byte("<"))):
		// A web server's page for a path an infergate node has: the
		// address is another server's, or a proxy's that does not pass
		// the admin API on.
		e.msg = http.StatusText(resp.StatusCode) + ", as an HTML page, not an infergate node's JSON error"
		e.hint = "is --addr an infergate node's HTTP address (its --http or --advertise-http), or a proxy's that passes /v1/ on?"
	case len(bytes.TrimSpace(body)) > 0 && len(body) <= 512:
		// Not the gateway's JSON: a proxy's page, or not infergate at all.
		e.msg = strings.Join(strings.Fields(string(body)), " ")
	default:
		e.msg = http.StatusText(resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		e.retryAfter = resp.Header.Get("Retry-After")
		if resp.Header.Get(cluster.HeaderErrorKind) == "unknown-outcome" {
			e.unknown = true
			// The write may have been applied: a blind retry could apply
			// it twice (the server sends no Retry-After for this).
			e.hint = "read the state back (infergate models list or show, with --consistent) before retrying"
			// The server's message ends with the same advice for API
			// clients; the hint says it for this command's user.
			if i := strings.Index(e.msg, "; read the state back"); i >= 0 {
				e.msg = e.msg[:i]
			}
		}
	case http.StatusUnauthorized:
		if hadToken {
			e.hint = "the --token given is not the server's --admin-token"
		} else {
			e.hint = "pass --token or set INFERGATE_ADMIN_TOKEN"
		}
	}
	return e
}

func (e *adminError) Error() string {
	s := fmt.Sprintf("%s (HTTP %d)", e.msg, e.status)
	if e.status == http.StatusServiceUnavailable && !e.unknown {
		s += "; retry later"
		if _, err := strconv.Atoi(e.retryAfter); err == nil {
			s += ", in " + e.retryAfter + "s"
		}
	}
	if e.hint != "" {
		s += "; " + e.hint
	}
	return s
}

// decode unmarshals the answer to the call named by what into v.
func (a *adminAnswer) decode(what string, v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("cannot decode the answer to %s: %w", what, err)
	}
	return nil
}

// report prints ans: with --json its body as it came, else the line that
// line makes of it once decoded into res.
func (out adminOutput) report(asJSON bool, ans *adminAnswer, what string, res any, line func() string) error {
	if asJSON {
		return out.raw(ans)
	}
	if err := ans.decode(what, res); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out.stdout, line())
	return err
}

// getInto GETs path from the member that cfg names and decodes the answer
// into v. With --json it prints the answer as it came instead and returns
// a nil answer.
func (out adminOutput) getInto(cfg *adminConfig, path string, v any) (*adminAnswer, error) {
	ans, err := cfg.call(http.MethodGet, path, nil, "", nil)
	if err != nil {
		return nil, err
	}
	if cfg.json {
		return nil, out.raw(ans)
	}
	return ans, ans.decode("GET "+path, v)
}

// raw prints the answer's body as it came, ending with a newline.
func (out adminOutput) raw(a *adminAnswer) error {
	body := a.body
	if !bytes.HasSuffix(body, []byte("\n")) {
		body = append(slices.Clip(body), '\n')
	}
	_, err := out.stdout.Write(body)
	return err
}

// badModelName reports whether an argument named NAME or MODEL is a
// name no model can have, saying so on w: the server would answer a '/'
// in it as an unknown endpoint.
func badModelName(w io.Writer, names, pos []string) bool {
	for i, n := range names {
		if (n == "NAME" || n == "MODEL") && registry.CheckName(pos[i]) != nil {
			fmt.Fprintf(w, "%s %q: model names are 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit\n", n, pos[i])
			return true
		}
	}
	return false
}

// parseArgs parses args, in which flags may come before, between or after
// the positional arguments ("--" ends them), and returns one positional
// argument per name. Usage errors are printed; they return errUsage, and
// --help returns flag.ErrHelp.
func parseArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < len(names):
		missing := names[len(pos):]
		noun := "argument"
		if len(missing) > 1 {
			noun = "arguments"
		}
		fmt.Fprintf(fs.Output(), "missing %s %s\n", noun, strings.Join(missing, " "))
	case len(pos) > len(names):
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", pos[len(names)])
	case badModelName(fs.Output(), names, pos):
	default:
		return pos, nil
	}
	fs.Usage()
	return nil, errUsage
}

// parseVersion parses a VERSION argument: a positive integer.
func parseVersion(fs *flag.FlagSet, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		fmt.Fprintf(fs.Output(), "VERSION %q: versions are positive integers\n", s)
		fs.Usage()
		return 0, errUsage
	}
	return v, nil
}

// versionRanges writes sorted version numbers as runs: [1 2 3 5] is
// "1-3,5".
func versionRanges(nums []int64) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(nums[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(nums[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// modelPath returns /v1/models/{name} followed by the escaped segments.
func modelPath(name string, segments ...string) string {
	p := "/v1/models/" + url.PathEscape(name)
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func modelsList(out adminOutput, args []string) error {
	fs := out.flagSet("models list", "[flags]",
		`List the models registered in the cluster, one line per version: its stage,
the aliases pointing at it, its digest, size and creation time, and how many
nodes serve it (with the state of those that do not). A model's retired
versions that no node answers with share one row ("models show NAME" lists
each).`)
	cfg := adminFlags(fs, true)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	var list struct {
		Models []cluster.ModelView `json:"models"`
	}
	if ans, err := out.getInto(cfg, "/v1/models", &list); ans == nil || err != nil {
		return err
	}
	if len(list.Models) == 0 {
		_, err := fmt.Fprintln(out.stdout, "no models are registered in the cluster; add one with `infergate models upload NAME FILE`")
		return err
	}
	tw := tabwriter.NewWriter(out.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTAGE\tALIASES\tSHA256\tSIZE\tCREATED\tNODES")
	folded := false
	for _, m := range list.Models {
		if len(m.Versions) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\n", m.Name)
		}
		aliases := aliasesByVersion(m.Aliases)
		// Retired versions that no alias names and no node answers with
		// fold into one row, where the first of them stands: a model a
		// trainer replaces every hour would list a line for each.
		gone := func(v cluster.VersionView) bool {
			return v.Stage == fsm.StageRetired && len(aliases[v.Number]) == 0 && nodesSummary(v.Stage, v.Nodes) == "-"
		}
		var goneNums []int64
		for _, v := range m.Versions {
			if gone(v) {
				goneNums = append(goneNums, v.Number)
			}
		}
		slices.Sort(goneNums)
		fold := len(goneNums) >= 2
		for _, v := range m.Versions {
			if fold && gone(v) {
				if v.Number == goneNums[0] {
					fmt.Fprintf(tw, "%s\t%s\tretired (%d versions)\t-\t-\t-\t-\t-\n", m.Name, versionRanges(goneNums), len(goneNums))
					folded = true
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, v.Number, v.Stage,
				orDash(strings.Join(aliases[v.Number], ",")), shortDigest(v.SHA256),
				formatSize(v.Size), formatCreated(v.Created), nodesSummary(v.Stage, v.Nodes))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if folded {
		fmt.Fprintln(out.stdout, "\n(retired versions fold into one row; \"models show NAME\" lists each)")
	}
	// A removed model's rows read as any retired version's: say what
	// happened to it.
	var removed []string
	for _, m := range list.Models {
		if m.Removed {
			removed = append(removed, m.Name)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(out.stdout, "\nremoved from the cluster: %s (every version retired; \"models show NAME\" lists its history, and an upload of the name serves it again)\n", strings.Join(removed, ", "))
	return err
}

func modelsShow(out adminOutput, args []string) error {
	fs := out.flagSet("models show", "[flags] NAME",
		`Show model NAME: its production version and aliases, its A/B experiment and
shadow if it has them, its versions with their full digests, and the state of
each node that does not serve a version, with the reason it gave, and which
version answers a node's unversioned requests where production cannot yet.
With an experiment: what the nodes counted for each arm (requests, the labels
and rewards of its feedback, their means with intervals), and how each arm's
means differ from the first arm's, in intervals that stay valid however often
you look while the experiment runs.`)
	cfg := adminFlags(fs, true)
	confidence := fs.Float64("confidence", 0.95, "the confidence level of the A/B experiment's intervals, from 0.5 to 0.999")
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	if !(*confidence >= 0.5 && *confidence <= 0.999) {
		fmt.Fprintf(fs.Output(), "--confidence %g: give a level from 0.5 to 0.999, like 0.95\n", *confidence)
		fs.Usage()
		return errUsage
	}
	var m cluster.ModelView
	if ans, err := out.getInto(cfg, modelPath(pos[0]), &m); ans == nil || err != nil {
		return err
	}
	w := out.stdout
	if m.Production > 0 {
		rollback := ""
		if m.RollbackTo > 0 {
			rollback = fmt.Sprintf(" (a rollback goes to version %d)", m.RollbackTo)
		}
		fmt.Fprintf(w, "model %s: production is version %d%s\n", m.Name, m.Production, rollback)
	} else if m.Removed {
		fmt.Fprintf(w, "model %s: removed from the cluster (every version retired); an upload of the name serves it again, numbered on\n", m.Name)
	} else {
		fmt.Fprintf(w, "model %s: no production version\n", m.Name)
	}
	names := make([]string, 0, len(m.Aliases))
	for a := range m.Aliases {
		names = append(names, a)
	}
	slices.Sort(names)
	for i, a := range names {
		names[i] = fmt.Sprintf("%s=%d", a, m.Aliases[a])
	}
	fmt.Fprintf(w, "aliases: %s\n", orDash(strings.Join(names, ", ")))
	if m.Experiment != nil {
		fmt.Fprintf(w, "experiment %s\n", m.Experiment)
	}
	if m.Shadow != nil {
		fmt.Fprintf(w, "shadow: %s\n", m.Shadow)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTAGE\tALIASES\tSIZE\tCREATED\tORIGIN\tNODES\tSHA256")
	aliases := aliasesByVersion(m.Aliases)
	for _, v := range m.Versions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.Stage,
			orDash(strings.Join(aliases[v.Number], ",")), formatSize(v.Size),
			formatCreated(v.Created), orDash(v.Origin), nodesSummary(v.Stage, v.Nodes), v.SHA256)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notReady, standIns, inPlace []string
	for _, v := range m.Versions {
		for _, id := range sortedKeys(v.Nodes) {
			s := v.Nodes[id]
			if v.Stage == fsm.StageRetired {
				standIns = append(standIns, fmt.Sprintf("  version %d on %s: %s", v.Number, id, orDash(s.Reason)))
				continue
			}
			if s.Unversioned && v.Number != m.Production && m.Production > 0 {
				inPlace = append(inPlace, fmt.Sprintf("  version %d on %s, until production version %d is ready there", v.Number, id, m.Production))
			}
			if s.State == cluster.VersionReady {
				continue
			}
			line := fmt.Sprintf("  version %d on %s: %s", v.Number, id, s.State)
			if s.Reason != "" {
				line += ": " + s.Reason
			}
			notReady = append(notReady, line)
		}
	}
	if len(notReady) > 0 {
		fmt.Fprintf(w, "\nnot ready:\n%s\n", strings.Join(notReady, "\n"))
	}
	if len(inPlace) > 0 {
		fmt.Fprintf(w, "\nanswering unversioned requests in production's place:\n%s\n", strings.Join(inPlace, "\n"))
	}
	if len(standIns) > 0 {
		fmt.Fprintf(w, "\nretired, still answering unversioned requests:\n%s\n", strings.Join(standIns, "\n"))
	}
	if m.ExperimentResults != nil {
		return printExperimentResults(w, m.ExperimentResults, *confidence)
	}
	return nil
}

func modelsUpload(out adminOutput, args []string) error {
	fs := out.flagSet("models upload", "[flags] NAME FILE",
		`Upload the ONNX model in FILE as the next version of model NAME. The member
that receives it loads it once as a trial, keeps the bytes, and registers the
version; the other nodes then pull and load it. The first version of a model
becomes production; later ones are staged until promoted.`)
	cfg := adminFlags(fs, false)
	promote := fs.Bool("promote", false, "make the new version production at once, instead of staging it for \"infergate models promote\"")
	configFile := fs.String("config", "", "a config.json for the version (batching, instances, response cache; no version_policy); the production version's config applies to the model on every node")
	force := fs.Bool("force", false, "with --promote, promote even when the new version's inputs or outputs differ from production's (the server refuses otherwise, with 409): for clients that have moved to the new ones")
	pos, err := parseArgs(fs, args, "NAME", "FILE")
	if err != nil {
		return err
	}
	c, err := cfg.client()
	if err != nil {
		return err
	}
	if *configFile != "" {
		raw, err := os.ReadFile(*configFile)
		if err != nil {
			return fmt.Errorf("cannot read the config: %w", err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return fmt.Errorf("%s is not JSON: %w", *configFile, err)
		}
		c.header = http.Header{gateway.HeaderModelConfig: {compact.String()}}
	}
	name, file := pos[0], pos[1]
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cannot read the model: %w", err)
	}
	if len(data) == 0 {
		return fmt.Errorf("%s is empty; want an ONNX model", file)
	}
	if *force && !*promote {
		return fmt.Errorf("--force goes with --promote: a staged version changes nothing clients get until promoted (models promote --force)")
	}
	var q url.Values
	if *promote {
		q = url.Values{"promote": {"true"}}
		if *force {
			q.Set("force", "true")
		}
	}
	ans, err := c.call(http.MethodPost, modelPath(name, "versions"), q, "application/octet-stream", data)
	var ae *adminError
	if errors.As(err, &ae) && ae.status == http.StatusRequestHeaderFieldsTooLarge && c.header != nil && ae.hint == "" {
		ae.hint = fmt.Sprintf("--config %s (%d bytes compacted) travels in the %s header, which the server's --max-header-bytes bounds; raise that, or leave out what the configuration need not say",
			*configFile, len(c.header.Get(gateway.HeaderModelConfig)), gateway.HeaderModelConfig)
	}
	if err != nil {
		return err
	}
	var res struct {
		Model   string `json:"model"`
		Version int64  `json:"version"`
		SHA256  string `json:"sha256"`
	}
	return out.report(cfg.json, ans, "the upload", &res, func() string {
		suffix := ""
		if *promote {
			suffix = ", now production"
		}
		return fmt.Sprintf("uploaded %s version %d (sha256:%s)%s", res.Model, res.Version, res.SHA256, suffix)
	})
}

func modelsPromote(out adminOutput, args []string) error {
	fs := out.flagSet("models promote", "[flags] NAME VERSION",
		`Make VERSION of model NAME production: point the production alias, which serves
requests that name no version, at it. The same as
"infergate models alias NAME production VERSION".`)
	cfg := adminFlags(fs, false)
	force := fs.Bool("force", false, "promote even when the version's inputs or outputs differ from production's (the server refuses otherwise, with 409, unless a version's file has yet to reach the node asked): for clients that have moved to the new ones")
	pos, err := parseArgs(fs, args, "NAME", "VERSION")
	if err != nil {
		return err
	}
	return setAlias(out, fs, cfg, pos[0], "production", pos[1], *force)
}

func modelsAlias(out adminOutput, args []string) error {
	fs := out.flagSet("models alias", "[flags] NAME ALIAS VERSION",
		`Point alias ALIAS of model NAME at VERSION, creating the alias if it is new.
Alias production routes the model's unversioned requests (as "models promote"
does); any other alias is a name for people and tools: "models list" shows it,
and a version an alias points to cannot be retired. Requests name versions by
number, not by alias.`)
	cfg := adminFlags(fs, false)
	force := fs.Bool("force", false, "with alias production, as promote --force")
	pos, err := parseArgs(fs, args, "NAME", "ALIAS", "VERSION")
	if err != nil {
		return err
	}
	return setAlias(out, fs, cfg, pos[0], pos[1], pos[2], *force)
}

// setAlias is promote and alias: PUT /v1/models/{name}/aliases/{alias}.
func setAlias(out adminOutput, fs *flag.FlagSet, cfg *adminConfig, name, alias, version string, force bool) error {
	v, err := parseVersion(fs, version)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]int64{"version": v})
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	ans, err := cfg.call(http.MethodPut, modelPath(name, "aliases", alias), q, "application/json", body)
	if err != nil {
		return err
	}
	var res struct {
		Model   string `json:"model"`
		Alias   string `json:"alias"`
		Version int64  `json:"version"`
	}
	return out.report(cfg.json, ans, "the alias change", &res, func() string {
		return fmt.Sprintf("%s %s now points to version %d", res.Model, res.Alias, res.Version)
	})
}

func modelsRollback(out adminOutput, args []string) error {
	fs := out.flagSet("models rollback", "[flags] NAME",
		`Point the production alias of model NAME back at the version it had before the
last promotion; that one goes back to staged.`)
	cfg := adminFlags(fs, false)
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	ans, err := cfg.call(http.MethodPost, modelPath(pos[0], "rollback"), nil, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Model   string `json:"model"`
		Version int64  `json:"version"`
	}
	return out.report(cfg.json, ans, "the rollback", &res, func() string {
		return fmt.Sprintf("rolled %s back: production is version %d", res.Model, res.Version)
	})
}

func modelsRetire(out adminOutput, args []string) error {
	fs := out.flagSet("models retire", "[flags] NAME VERSION",
		`Retire VERSION of model NAME: the nodes unload it, remove its file from their
--models directories (one --register-local-models registered too), and requests
for it fail. The API refuses (409) while an alias, production included, points
to it, an experiment's arm serves it, or it is the shadow. A node still serving
unversioned requests with it, because it is still pulling or loading
production, keeps it for those until production is ready. The API also refuses
(409) while this version answers the unversioned requests of a node where
production failed (other than a pull tried again): that node would be left with
no version for them, and answer them 503. --force retires it anyway, and the
nodes it leaves so are printed as warnings.`)
	cfg := adminFlags(fs, false)
	force := fs.Bool("force", false, "retire even when a node where production failed would be left with no version for the model's unversioned requests (the server refuses otherwise, with 409, naming the node)")
	pos, err := parseArgs(fs, args, "NAME", "VERSION")
	if err != nil {
		return err
	}
	v, err := parseVersion(fs, pos[1])
	if err != nil {
		return err
	}
	var q url.Values
	if *force {
		q = url.Values{"force": {"true"}}
	}
	ans, err := cfg.call(http.MethodDelete, modelPath(pos[0], "versions", strconv.FormatInt(v, 10)), q, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Model    string   `json:"model"`
		Version  int64    `json:"version"`
		Stage    string   `json:"stage"`
		Warnings []string `json:"warnings"`
	}
	return out.report(cfg.json, ans, "the retirement", &res, func() string {
		line := fmt.Sprintf("%s version %d is %s", res.Model, res.Version, res.Stage)
		for _, w := range res.Warnings {
			line += "\nwarning: " + w
		}
		return line
	})
}

func modelsRemove(out adminOutput, args []string) error {
	fs := out.flagSet("models remove", "[flags] NAME",
		`Take model NAME off the cluster: end its experiment and shadow, drop its
aliases (production included) and retire every version, in one write. Every
node unloads it and removes its files as for a retirement; requests for it get
404 saying it was removed. "models show NAME" still lists its versions, retired.
An upload of the name serves it again, numbered on from its last version
(numbers are never reused). A trainer looking after the model stops acting on
it and says so. The API refuses (409) while a member runs an earlier release,
which could not apply the removal, or does not answer: upgrade every member
first. It changes nothing without --yes.`)
	cfg := adminFlags(fs, false)
	yes := fs.Bool("yes", false, "remove the model: without it the command changes nothing")
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(fs.Output(), "removing model %q takes it off every node and retires every version; it changes nothing without --yes\n", pos[0])
		fs.Usage()
		return errUsage
	}
	ans, err := cfg.call(http.MethodDelete, modelPath(pos[0]), nil, "", nil)
	if err != nil {
		return err
	}
	var res struct {
		Model   string  `json:"model"`
		Retired []int64 `json:"retired_versions"`
	}
	return out.report(cfg.json, ans, "the removal", &res, func() string {
		vs := make([]string, len(res.Retired))
		for i, v := range res.Retired {
			vs[i] = strconv.FormatInt(v, 10)
		}
		return fmt.Sprintf("removed %s from the cluster: retired versions %s; every node unloads it, and an upload of the name serves it again as the next version", res.Model, strings.Join(vs, ", "))
	})
}

func clusterStatus(out adminOutput, args []string) error {
	fs := out.flagSet("cluster status", "[flags]",
		`Show the cluster's leader and members as the member at --addr knows them, and
how current that is: the raft index it has applied, whether it knows a
leader, and when it last heard from one (--consistent makes it check first).`)
	cfg := adminFlags(fs, true)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	var st struct {
		Leader  string           `json:"leader"`
		Members []cluster.Member `json:"members"`
	}
	ans, err := out.getInto(cfg, "/v1/cluster", &st)
	if ans == nil || err != nil {
		return err
	}
	w := out.stdout
	fmt.Fprintf(w, "leader: %s\n", orValue(st.Leader, "none known"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT\tHTTP\tVOTER\tSTATE")
	for _, m := range st.Members {
		voter := "no"
		if m.Voter {
			voter = "yes"
		}
		state := m.State
		if m.SilentMS > 0 {
			state += fmt.Sprintf(" (silent %s)", time.Duration(m.SilentMS)*time.Millisecond)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.RaftAddr), orDash(m.HTTPAddr), voter, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if line := stalenessLine(ans.header); line != "" {
		fmt.Fprintln(w, line)
	}
	return nil
}

// stalenessLine describes the X-Infergate-* read-state headers in one
// line; empty when the server sent none.
func stalenessLine(h http.Header) string {
	var parts []string
	if v := h.Get("X-Infergate-Index"); v != "" {
		parts = append(parts, "applied index "+v)
	}
	switch h.Get("X-Infergate-Known-Leader") {
	case "true":
		parts = append(parts, "leader known")
	case "false":
		parts = append(parts, "no known leader")
	}
	if v := h.Get("X-Infergate-Last-Contact"); v != "" {
		if v == "-1" {
			parts = append(parts, "no contact with a leader yet")
		} else {
			parts = append(parts, "last leader contact "+v+"ms ago")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "answered with " + strings.Join(parts, ", ")
}

func clusterRemove(out adminOutput, args []string) error {
	fs := out.flagSet("cluster remove", "[flags] ID",
		`Remove member ID from the cluster's raft configuration and member list. Stop
its process first: a removed node that still runs, or that comes back later
(a machine that slept, a network that healed), finds out within a few seconds
(it knows no leader, and the members it asks no longer list it) and joins
again, so that it never serves what the group retired while it was away.`)
	cfg := adminFlags(fs, false)
	pos, err := parseArgs(fs, args, "ID")
	if err != nil {
		return err
	}
	ans, err := cfg.call(http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(pos[0]), nil, "", nil)
	if err != nil {
		return err
	}
	if cfg.json {
		return out.raw(ans)
	}
	_, err = fmt.Fprintf(out.stdout, "removed %s from the cluster\n", pos[0])
	return err
}

// aliasesByVersion inverts a model's aliases: version -> sorted aliases.
func aliasesByVersion(aliases map[string]int64) map[int64][]string {
	out := make(map[int64][]string, len(aliases))
	for a, v := range aliases {
		out[v] = append(out[v], a)
	}
	for _, as := range out {
		slices.Sort(as)
	}
	return out
}

// nodesSummary says how many nodes serve a version, e.g. "3/3 ready" or
// "1/3 ready; node-b loading, node-c failed"; "-" with none (retired);
// for a retired version that a node keeps answering its unversioned
// requests until production is ready there, "stand-in on node-b".
func nodesSummary(stage string, nodes map[string]cluster.VersionStatus) string {
	if len(nodes) == 0 {
		return "-"
	}
	if stage == fsm.StageRetired {
		return "stand-in on " + strings.Join(sortedKeys(nodes), ", ")
	}
	ready := 0
	var others []string
	for _, id := range sortedKeys(nodes) {
		if s := nodes[id].State; s == cluster.VersionReady {
			ready++
		} else {
			others = append(others, id+" "+s)
		}
	}
	s := fmt.Sprintf("%d/%d ready", ready, len(nodes))
	if len(others) > 0 {
		s += "; " + strings.Join(others, ", ")
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// shortDigest returns the first 12 hex digits of a sha256 digest.
func shortDigest(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return orDash(hex)
}

// formatSize formats n bytes in binary units: 512B, 1.5KiB, 12.0MiB.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatCreated formats t in UTC, RFC 3339; "-" for the zero time.
func formatCreated(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string { return orValue(s, "-") }

func orValue(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}
