package main

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/cluster"
)

// adminToken is the token the fake admin API expects unless a case says.
const adminToken = "s3cret"

// fakeCall is the one request a case expects the CLI to make, and the
// fake admin API's answer to it.
type fakeCall struct {
	method string
	uri    string // path and query, e.g. /v1/models?consistent=1
	token  string // expected bearer token; "-" for no Authorization header
	ctype  string // expected Content-Type, when set
	body   string // expected request body

	reqHeader map[string]string // request headers expected, when set

	status int // 200 when 0
	answer string
	header map[string]string
}

// runAdmin runs `infergate GROUP args...` against a fake admin API that
// expects call (no call when call.method is empty), with --addr pointing
// at it appended, and returns the exit code and what was printed.
func runAdmin(t *testing.T, g *adminGroup, call fakeCall, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("INFERGATE_ADMIN_TOKEN", "")
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		body, _ := io.ReadAll(r.Body)
		if r.Method != call.method || r.URL.RequestURI() != call.uri {
			t.Errorf("request %s %s; want %s %s", r.Method, r.URL.RequestURI(), call.method, call.uri)
		}
		wantAuth := "Bearer " + orValue(call.token, adminToken)
		if call.token == "-" {
			wantAuth = ""
		}
		if got := r.Header.Get("Authorization"); got != wantAuth {
			t.Errorf("Authorization %q; want %q", got, wantAuth)
		}
		if call.ctype != "" && r.Header.Get("Content-Type") != call.ctype {
			t.Errorf("Content-Type %q; want %q", r.Header.Get("Content-Type"), call.ctype)
		}
		if string(body) != call.body {
			t.Errorf("request body %q; want %q", body, call.body)
		}
		for k, v := range call.reqHeader {
			if got := r.Header.Get(k); got != v {
				t.Errorf("request header %s %q; want %q", k, got, v)
			}
		}
		for k, v := range call.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(cmp(call.status, http.StatusOK))
		io.WriteString(w, call.answer)
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	code = g.main(append(args, "--addr", srv.URL), &out, &errOut)
	if want := 0; call.method != "" {
		want = 1
		if calls != want {
			t.Errorf("%d requests; want %d", calls, want)
		}
	} else if calls != 0 {
		t.Errorf("%d requests; want none", calls)
	}
	return code, out.String(), errOut.String()
}

func cmp(v, dflt int) int {
	if v == 0 {
		return dflt
	}
	return v
}

const modelsAnswer = `{"models":[
 {"name":"ctr","production":2,"aliases":{"canary":3,"production":2},"versions":[
  {"version":1,"sha256":"1111111111111111111111111111111111111111111111111111111111111111","size":900,"stage":"retired","created":"2025-03-01T10:00:00.123Z","origin":"node-a"},
  {"version":2,"sha256":"2222222222222222222222222222222222222222222222222222222222222222","size":1572864,"stage":"production","created":"2025-03-02T10:00:00Z","origin":"node-a",
   "nodes":{"node-a":{"state":"ready"},"node-b":{"state":"ready"},"node-c":{"state":"ready"}}},
  {"version":3,"sha256":"3333333333333333333333333333333333333333333333333333333333333333","size":2048,"stage":"staged","created":"2025-03-03T10:00:00Z","origin":"node-b",
   "nodes":{"node-a":{"state":"ready"},"node-c":{"state":"failed","reason":"cannot load: out of memory"},"node-b":{"state":"loading"}}}]},
 {"name":"ranker","production":1,"aliases":{"production":1},"versions":[
  {"version":1,"sha256":"4444444444444444444444444444444444444444444444444444444444444444","size":10,"stage":"production","created":"2025-03-04T10:00:00Z","origin":"node-c",
   "nodes":{"node-a":{"state":"ready"}}}]}]}`

func TestModelsCommands(t *testing.T) {
	onnx := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(onnx, []byte("ONNX-BYTES"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(config, []byte("{\n  \"max_batch_size\": 8\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctrView := `{"name":"ctr","production":2,"aliases":{"canary":3,"production":2},"versions":[
  {"version":2,"sha256":"2222222222222222222222222222222222222222222222222222222222222222","size":1572864,"stage":"production","created":"2025-03-02T10:00:00Z","origin":"node-a",
   "nodes":{"node-a":{"state":"ready"},"node-b":{"state":"ready"}}},
  {"version":3,"sha256":"3333333333333333333333333333333333333333333333333333333333333333","size":2048,"stage":"staged","created":"2025-03-03T10:00:00Z","origin":"node-b",
   "nodes":{"node-a":{"state":"ready"},"node-b":{"state":"failed","reason":"cannot load: bad input shape"}}}]}`
	tests := []adminCase{
		{
			name: "list",
			args: []string{"list", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models", answer: modelsAnswer},
			want: `MODEL   VERSION  STAGE       ALIASES     SHA256        SIZE    CREATED               NODES
ctr     1        retired     -           111111111111  900B    2025-03-01T10:00:00Z  -
ctr     2        production  production  222222222222  1.5MiB  2025-03-02T10:00:00Z  3/3 ready
ctr     3        staged      canary      333333333333  2.0KiB  2025-03-03T10:00:00Z  1/3 ready; node-b loading, node-c failed
ranker  1        production  production  444444444444  10B     2025-03-04T10:00:00Z  1/1 ready
`,
		},
		{
			// A removed model's versions all read "retired", as any
			// retired version's do: the list says the model was removed,
			// where its history is, and how it comes back.
			name: "list with a removed model",
			args: []string{"list", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models", answer: `{"models":[
 {"name":"ctr","removed":true,"aliases":{},"versions":[
  {"version":1,"sha256":"1111111111111111111111111111111111111111111111111111111111111111","size":900,"stage":"retired","created":"2025-03-01T10:00:00Z","origin":"node-a","nodes":{}}]},
 {"name":"ranker","production":1,"aliases":{"production":1},"versions":[
  {"version":1,"sha256":"4444444444444444444444444444444444444444444444444444444444444444","size":10,"stage":"production","created":"2025-03-04T10:00:00Z","origin":"node-c",
   "nodes":{"node-a":{"state":"ready"}}}]}]}`},
			want: `MODEL   VERSION  STAGE       ALIASES     SHA256        SIZE  CREATED               NODES
ctr     1        retired     -           111111111111  900B  2025-03-01T10:00:00Z  -
ranker  1        production  production  444444444444  10B   2025-03-04T10:00:00Z  1/1 ready

removed from the cluster: ctr (every version retired; "models show NAME" lists its history, and an upload of the name serves it again)
`,
		},
		{
			// Retired versions no node answers with fold into one row per
			// model, as on the status page: a model a trainer replaces
			// every hour listed a line for each.
			name: "list folds retired versions",
			args: []string{"list", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models", answer: `{"models":[
 {"name":"ctr","production":4,"aliases":{"production":4},"versions":[
  {"version":1,"sha256":"1111111111111111111111111111111111111111111111111111111111111111","size":900,"stage":"retired","created":"2025-03-01T10:00:00Z","origin":"node-a","nodes":{}},
  {"version":2,"sha256":"2222222222222222222222222222222222222222222222222222222222222222","size":900,"stage":"retired","created":"2025-03-02T10:00:00Z","origin":"node-a","nodes":{}},
  {"version":3,"sha256":"3333333333333333333333333333333333333333333333333333333333333333","size":900,"stage":"retired","created":"2025-03-03T10:00:00Z","origin":"node-a","nodes":{}},
  {"version":4,"sha256":"4444444444444444444444444444444444444444444444444444444444444444","size":10,"stage":"production","created":"2025-03-04T10:00:00Z","origin":"node-c",
   "nodes":{"node-a":{"state":"ready"}}},
  {"version":5,"sha256":"5555555555555555555555555555555555555555555555555555555555555555","size":900,"stage":"retired","created":"2025-03-05T10:00:00Z","origin":"node-a","nodes":{}}]}]}`},
			want: `MODEL  VERSION  STAGE                 ALIASES     SHA256        SIZE  CREATED               NODES
ctr    1-3,5    retired (4 versions)  -           -             -     -                     -
ctr    4        production            production  444444444444  10B   2025-03-04T10:00:00Z  1/1 ready

(retired versions fold into one row; "models show NAME" lists each)
`,
		},
		{
			name: "list consistent",
			args: []string{"list", "--consistent", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models?consistent=1", answer: `{"models":[]}`},
			want: "no models are registered in the cluster; add one with `infergate models upload NAME FILE`\n",
		},
		{
			name: "list json",
			args: []string{"list", "--json", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models", answer: modelsAnswer},
			want: modelsAnswer + "\n",
		},
		{
			name: "show",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: ctrView},
			want: `model ctr: production is version 2
aliases: canary=3, production=2

VERSION  STAGE       ALIASES     SIZE    CREATED               ORIGIN  NODES                     SHA256
2        production  production  1.5MiB  2025-03-02T10:00:00Z  node-a  2/2 ready                 2222222222222222222222222222222222222222222222222222222222222222
3        staged      canary      2.0KiB  2025-03-03T10:00:00Z  node-b  1/2 ready; node-b failed  3333333333333333333333333333333333333333333333333333333333333333

not ready:
  version 3 on node-b: failed: cannot load: bad input shape
`,
		},
		{
			name: "show where production is not ready everywhere",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: `{"name":"ctr","production":3,"aliases":{"production":3},"versions":[
  {"version":1,"sha256":"11","size":10,"stage":"retired","created":"2025-03-01T10:00:00Z","origin":"node-a",
   "nodes":{"node-c":{"state":"ready","reason":"retired; serves this node's unversioned requests until production version 3 is ready here","unversioned":true}}},
  {"version":2,"sha256":"22","size":10,"stage":"staged","created":"2025-03-02T10:00:00Z","origin":"node-a",
   "nodes":{"node-a":{"state":"ready"},"node-b":{"state":"ready","unversioned":true}}},
  {"version":3,"sha256":"33","size":10,"stage":"production","created":"2025-03-03T10:00:00Z","origin":"node-a",
   "nodes":{"node-a":{"state":"ready","unversioned":true},"node-b":{"state":"failed","reason":"cannot load: bad input shape"},"node-c":{"state":"loading"}}}]}`},
			want: `model ctr: production is version 3
aliases: production=3

VERSION  STAGE       ALIASES     SIZE  CREATED               ORIGIN  NODES                                     SHA256
1        retired     -           10B   2025-03-01T10:00:00Z  node-a  stand-in on node-c                        11
2        staged      -           10B   2025-03-02T10:00:00Z  node-a  2/2 ready                                 22
3        production  production  10B   2025-03-03T10:00:00Z  node-a  1/3 ready; node-b failed, node-c loading  33

not ready:
  version 3 on node-b: failed: cannot load: bad input shape
  version 3 on node-c: loading

answering unversioned requests in production's place:
  version 2 on node-b, until production version 3 is ready there

retired, still answering unversioned requests:
  version 1 on node-c: retired; serves this node's unversioned requests until production version 3 is ready here
`,
		},
		{
			name: "upload",
			args: []string{"upload", "--token", adminToken, "ctr", onnx},
			call: fakeCall{method: "POST", uri: "/v1/models/ctr/versions", ctype: "application/octet-stream", body: "ONNX-BYTES",
				status: http.StatusCreated, answer: `{"model":"ctr","version":3,"sha256":"abc123"}`},
			want: "uploaded ctr version 3 (sha256:abc123)\n",
		},
		{
			name: "upload promote",
			args: []string{"upload", "--token", adminToken, "ctr", onnx, "--promote"},
			call: fakeCall{method: "POST", uri: "/v1/models/ctr/versions?promote=true", body: "ONNX-BYTES",
				status: http.StatusCreated, answer: `{"model":"ctr","version":3,"sha256":"abc123"}`},
			want: "uploaded ctr version 3 (sha256:abc123), now production\n",
		},
		{
			name: "upload with a config",
			args: []string{"upload", "--token", adminToken, "--config", config, "ctr", onnx},
			call: fakeCall{method: "POST", uri: "/v1/models/ctr/versions", body: "ONNX-BYTES",
				reqHeader: map[string]string{"Infergate-Model-Config": `{"max_batch_size":8}`},
				status:    http.StatusCreated, answer: `{"model":"ctr","version":3,"sha256":"abc123"}`},
			want: "uploaded ctr version 3 (sha256:abc123)\n",
		},
		{
			name: "upload json",
			args: []string{"upload", "--json", "--token", adminToken, "ctr", onnx},
			call: fakeCall{method: "POST", uri: "/v1/models/ctr/versions", body: "ONNX-BYTES",
				status: http.StatusCreated, answer: `{"model":"ctr","version":3,"sha256":"abc123"}` + "\n"},
			want: `{"model":"ctr","version":3,"sha256":"abc123"}` + "\n",
		},
		{
			name: "promote",
			args: []string{"promote", "ctr", "3", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/aliases/production", ctype: "application/json", body: `{"version":3}`,
				answer: `{"model":"ctr","alias":"production","version":3}`},
			want: "ctr production now points to version 3\n",
		},
		{
			name: "promote --force",
			args: []string{"promote", "ctr", "3", "--force", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/aliases/production?force=true", ctype: "application/json", body: `{"version":3}`,
				answer: `{"model":"ctr","alias":"production","version":3}`},
			want: "ctr production now points to version 3\n",
		},
		{
			name: "alias",
			args: []string{"alias", "ctr", "canary", "4", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/aliases/canary", body: `{"version":4}`,
				answer: `{"model":"ctr","alias":"canary","version":4}`},
			want: "ctr canary now points to version 4\n",
		},
		{
			name: "rollback",
			args: []string{"rollback", "ctr", "--token", adminToken},
			call: fakeCall{method: "POST", uri: "/v1/models/ctr/rollback", answer: `{"model":"ctr","version":2}`},
			want: "rolled ctr back: production is version 2\n",
		},
		{
			name: "show with experiment results",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: `{"name":"ctr","production":1,"rollback_to":3,"aliases":{"production":1},"versions":[],
  "experiment":{"name":"ab","arms":[{"name":"control","version":1,"weight":1},{"name":"treatment","version":2,"weight":1}]},
  "experiment_results":{"experiment":"ab","phase":17,"started":"2026-11-29T04:50:12.345Z","nodes":["node-a","node-b"],"missing":["node-c"],"arms":[
    {"arm":"control","version":1,"requests":900,"fallbacks":0,"labels":400,"label_sum":40,"label_square_sum":40,"rewards":2,"reward_sum":3,"reward_square_sum":5},
    {"arm":"treatment","version":2,"requests":910,"fallbacks":3,"labels":400,"label_sum":80,"label_square_sum":80,"rewards":0,"reward_sum":0,"reward_square_sum":0}]}}`},
			want: `model ctr: production is version 1 (a rollback goes to version 3)
aliases: production=1
experiment ab: control=version 1 (50%), treatment=version 2 (50%)

VERSION  STAGE  ALIASES  SIZE  CREATED  ORIGIN  NODES  SHA256

experiment ab, since 2026-11-29 04:50:12 UTC (when it started or its split last changed), as counted by 2 nodes; not counted: node-c (no answer, or not in this phase yet):
ARM        VERSION  REQUESTS  FALLBACKS  LABELS  MEAN LABEL (95%)      REWARDS  MEAN REWARD (95%)
control    1        900       0          400     0.1 [0.0743, 0.1333]  2        1.5 [-4.853, 7.853]
treatment  2        910       3          400     0.2 [0.1637, 0.242]   0        -
  treatment against control, mean label: higher: +0.1, in [0.01837, 0.1816] at 95%, always valid (p 7.12e-05 at this look alone)
  treatment against control, mean reward: too few values yet (2 and 0; 30 each at least)
  (each label and reward counts as one observation: where a unit gives many, the intervals are too narrow)
`,
		},
		{
			name: "show with experiment results, no feedback yet",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: `{"name":"ctr","production":1,"aliases":{"production":1},"versions":[],
  "experiment":{"name":"ab","arms":[{"name":"control","version":1,"weight":1},{"name":"treatment","version":2,"weight":1}]},
  "experiment_results":{"experiment":"ab","nodes":["node-a"],"arms":[{"arm":"control","version":1,"requests":5},{"arm":"treatment","version":2,"requests":4}]}}`},
			want: `model ctr: production is version 1
aliases: production=1
experiment ab: control=version 1 (50%), treatment=version 2 (50%)

VERSION  STAGE  ALIASES  SIZE  CREATED  ORIGIN  NODES  SHA256

experiment ab, as counted by 1 node:
ARM        VERSION  REQUESTS  FALLBACKS  LABELS  MEAN LABEL (95%)  REWARDS  MEAN REWARD (95%)
control    1        5         0          0       -                 0        -
treatment  2        4         0          0       -                 0        -
  no feedback counted yet: clients post each prediction's outcome to POST /v2/models/{model}/feedback with the id of its response (serve --traffic-percent above 0 gives responses ids)
`,
		},
		{
			name: "show with experiment results, no variance",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: `{"name":"ctr","production":1,"aliases":{"production":1},"versions":[],
  "experiment":{"name":"ab","arms":[{"name":"control","version":1,"weight":1},{"name":"treatment","version":2,"weight":1}]},
  "experiment_results":{"experiment":"ab","nodes":["node-a"],"arms":[
    {"arm":"control","version":1,"requests":40,"labels":30,"label_sum":0,"label_square_sum":0,"rewards":30,"reward_sum":60,"reward_square_sum":120},
    {"arm":"treatment","version":2,"requests":40,"labels":30,"label_sum":30,"label_square_sum":30,"rewards":30,"reward_sum":60,"reward_square_sum":120}]}}`},
			want: `model ctr: production is version 1
aliases: production=1
experiment ab: control=version 1 (50%), treatment=version 2 (50%)

VERSION  STAGE  ALIASES  SIZE  CREATED  ORIGIN  NODES  SHA256

experiment ab, as counted by 1 node:
ARM        VERSION  REQUESTS  FALLBACKS  LABELS  MEAN LABEL (95%)  REWARDS  MEAN REWARD (95%)
control    1        40        0          30      0 [0, 0.1135]     30       2 (no variance yet)
treatment  2        40        0          30      1 [0.8865, 1]     30       2 (no variance yet)
  treatment against control, mean label: no variance within either arm yet (every value so far is 0 in the control and 1 in this arm): no interval to judge by
  treatment against control, mean reward: no variance within either arm yet (every value so far is 2 in the control and 2 in this arm): no interval to judge by
  (each label and reward counts as one observation: where a unit gives many, the intervals are too narrow)
`,
		},
		{
			name: "show with an experiment",
			args: []string{"show", "ctr", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/models/ctr", answer: `{"name":"ctr","production":2,"aliases":{"production":2},"versions":[],
  "experiment":{"name":"ranking","salt":"s1","arms":[{"name":"control","version":2,"weight":9},{"name":"treatment","version":3,"weight":1}]},
  "shadow":{"version":4,"percent":2.5}}`},
			want: `model ctr: production is version 2
aliases: production=2
experiment ranking: control=version 2 (90%), treatment=version 3 (10%), salt "s1"
shadow: version 4 gets a copy of 2.5% of the requests (tolerance 0.001)

VERSION  STAGE  ALIASES  SIZE  CREATED  ORIGIN  NODES  SHA256
`,
		},
		{
			name: "experiment",
			args: []string{"experiment", "ctr", "ranking", "--arm", "control=2:90", "--arm", "treatment=3:10", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/experiment", ctype: "application/json",
				body:   `{"name":"ranking","arms":[{"name":"control","version":2,"weight":90},{"name":"treatment","version":3,"weight":10}]}`,
				answer: `{"model":"ctr","experiment":{"name":"ranking","arms":[{"name":"control","version":2,"weight":90},{"name":"treatment","version":3,"weight":10}]}}`},
			want: "ctr runs experiment ranking: control=version 2 (90%), treatment=version 3 (10%)\n",
		},
		{
			name: "experiment ramped: a new phase",
			args: []string{"experiment", "ctr", "ranking", "--arm", "control=2:50", "--arm", "treatment=3:50", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/experiment", ctype: "application/json",
				body:   `{"name":"ranking","arms":[{"name":"control","version":2,"weight":50},{"name":"treatment","version":3,"weight":50}]}`,
				answer: `{"model":"ctr","new_phase":true,"experiment":{"name":"ranking","arms":[{"name":"control","version":2,"weight":50},{"name":"treatment","version":3,"weight":50}],"phase":21,"started":"2026-11-29T05:00:00.5Z"}}`},
			want: "ctr runs experiment ranking: control=version 2 (50%), treatment=version 3 (50%)\na new phase began: the arms' counts (infergate models show) start at 0\n",
		},
		{
			name: "experiment set again: the phase goes on",
			args: []string{"experiment", "ctr", "ranking", "--arm", "control=2:50", "--arm", "treatment=3:50", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/experiment", ctype: "application/json",
				body:   `{"name":"ranking","arms":[{"name":"control","version":2,"weight":50},{"name":"treatment","version":3,"weight":50}]}`,
				answer: `{"model":"ctr","new_phase":false,"experiment":{"name":"ranking","arms":[{"name":"control","version":2,"weight":50},{"name":"treatment","version":3,"weight":50}],"phase":21,"started":"2026-11-29T05:00:00.5Z"}}`},
			want: "ctr runs experiment ranking: control=version 2 (50%), treatment=version 3 (50%)\nits split is unchanged: the phase since 2026-11-29 05:00:00 UTC goes on\n",
		},
		{
			name: "experiment with a salt",
			args: []string{"experiment", "--salt", "round-2", "ctr", "ranking", "--arm", "a=1:1", "--arm", "b=1:2", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/experiment",
				body:   `{"name":"ranking","salt":"round-2","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":1,"weight":2}]}`,
				answer: `{"model":"ctr","experiment":{"name":"ranking","salt":"round-2","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":1,"weight":2}]}}`},
			want: "ctr runs experiment ranking: a=version 1 (33.3%), b=version 1 (66.7%), salt \"round-2\"\n",
		},
		{
			name: "shadow",
			args: []string{"shadow", "ctr", "4", "--percent", "10", "--tolerance", "0.01", "--token", adminToken},
			call: fakeCall{method: "PUT", uri: "/v1/models/ctr/shadow", ctype: "application/json",
				body:   `{"version":4,"percent":10,"tolerance":0.01}`,
				answer: `{"model":"ctr","shadow":{"version":4,"percent":10,"tolerance":0.01}}`},
			want: "ctr: version 4 gets a copy of 10% of the requests (tolerance 0.01)\n",
		},
		{
			name: "end-shadow",
			args: []string{"end-shadow", "ctr", "--token", adminToken},
			call: fakeCall{method: "DELETE", uri: "/v1/models/ctr/shadow", answer: `{"model":"ctr","shadow":null}`},
			want: "ended ctr's shadow: its requests are copied nowhere now\n",
		},
		{
			name: "end-experiment",
			args: []string{"end-experiment", "ctr", "--token", adminToken},
			call: fakeCall{method: "DELETE", uri: "/v1/models/ctr/experiment", answer: `{"model":"ctr","experiment":null}`},
			want: "ended ctr's experiment: its unversioned requests go to production\n",
		},
		{
			name: "retire",
			args: []string{"retire", "ctr", "1", "--token", adminToken},
			call: fakeCall{method: "DELETE", uri: "/v1/models/ctr/versions/1", answer: `{"model":"ctr","version":1,"stage":"retired"}`},
			want: "ctr version 1 is retired\n",
		},
		{
			name: "retire --force",
			args: []string{"retire", "--force", "ctr", "1", "--token", adminToken},
			call: fakeCall{method: "DELETE", uri: "/v1/models/ctr/versions/1?force=true",
				answer: `{"model":"ctr","version":1,"stage":"retired","warnings":["node node-b: production version 2 failed there (bad bytes)"]}`},
			want: "ctr version 1 is retired\nwarning: node node-b: production version 2 failed there (bad bytes)\n",
		},
	}
	runAdminCases(t, modelsGroup, tests)
}

func TestClusterCommands(t *testing.T) {
	members := `{"leader":"node-a","members":[
 {"id":"node-a","raft_addr":"10.0.0.1:7000","http_addr":"http://10.0.0.1:8080","voter":true,"state":"leader"},
 {"id":"node-b","raft_addr":"10.0.0.2:7000","http_addr":"http://10.0.0.2:8080","voter":true,"state":"follower"},
 {"id":"node-c","raft_addr":"10.0.0.3:7000","http_addr":"http://10.0.0.3:8080","voter":true,"state":"unreachable","silent_ms":3250},
 {"id":"node-d","raft_addr":"10.0.0.4:7000","http_addr":"","voter":false,"state":"unknown"}]}`
	staleness := map[string]string{"X-Infergate-Index": "42", "X-Infergate-Known-Leader": "true", "X-Infergate-Last-Contact": "7"}
	tests := []adminCase{
		{
			name: "status",
			args: []string{"status", "--consistent", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/cluster?consistent=1", answer: members, header: staleness},
			want: `leader: node-a
ID      RAFT           HTTP                  VOTER  STATE
node-a  10.0.0.1:7000  http://10.0.0.1:8080  yes    leader
node-b  10.0.0.2:7000  http://10.0.0.2:8080  yes    follower
node-c  10.0.0.3:7000  http://10.0.0.3:8080  yes    unreachable (silent 3.25s)
node-d  10.0.0.4:7000  -                     no     unknown
answered with applied index 42, leader known, last leader contact 7ms ago
`,
		},
		{
			name: "status without leader",
			args: []string{"status", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/cluster", answer: `{"leader":"","members":[]}`,
				header: map[string]string{"X-Infergate-Index": "9", "X-Infergate-Known-Leader": "false", "X-Infergate-Last-Contact": "-1"}},
			want: `leader: none known
ID  RAFT  HTTP  VOTER  STATE
answered with applied index 9, no known leader, no contact with a leader yet
`,
		},
		{
			name: "status json",
			args: []string{"status", "--json", "--token", adminToken},
			call: fakeCall{method: "GET", uri: "/v1/cluster", answer: members, header: staleness},
			want: members + "\n",
		},
		{
			name: "remove",
			args: []string{"remove", "node-d", "--token", adminToken},
			call: fakeCall{method: "DELETE", uri: "/v1/cluster/members/node-d", answer: `{}`},
			want: "removed node-d from the cluster\n",
		},
	}
	runAdminCases(t, clusterGroup, tests)
}

// adminCase is one successful command of an admin group: its arguments,
// the one call it must make, and what it must print.
type adminCase struct {
	name string
	args []string
	call fakeCall
	want string
}

func runAdminCases(t *testing.T, g *adminGroup, tests []adminCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runAdmin(t, g, tc.call, tc.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if stdout != tc.want {
				t.Errorf("got\n%s\nwant\n%s", stdout, tc.want)
			}
		})
	}
}

func TestAdminErrors(t *testing.T) {
	f := func(g *adminGroup, args []string, call fakeCall, wantStderr string) {
		t.Helper()
		code, stdout, stderr := runAdmin(t, g, call, args...)
		if code != 1 {
			t.Errorf("%v: exit %d; want 1", args, code)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q; want nothing", args, stdout)
		}
		if stderr != wantStderr {
			t.Errorf("%v: stderr\n%q\nwant\n%q", args, stderr, wantStderr)
		}
	}
	unauthorized := `{"error":"this call needs the admin token: send Authorization: Bearer <token>"}`
	f(modelsGroup, []string{"list"},
		fakeCall{method: "GET", uri: "/v1/models", token: "-", status: 401, answer: unauthorized},
		"infergate models list: this call needs the admin token: send Authorization: Bearer <token> (HTTP 401); pass --token or set INFERGATE_ADMIN_TOKEN\n")
	f(modelsGroup, []string{"list", "--token", "wrong"},
		fakeCall{method: "GET", uri: "/v1/models", token: "wrong", status: 401, answer: unauthorized},
		"infergate models list: this call needs the admin token: send Authorization: Bearer <token> (HTTP 401); the --token given is not the server's --admin-token\n")
	f(modelsGroup, []string{"retire", "--token", adminToken, "ctr", "2"},
		fakeCall{method: "DELETE", uri: "/v1/models/ctr/versions/2", status: 409,
			answer: `{"error":"version conflict: cannot retire version 2 of model \"ctr\": aliases [\"production\"] point to it"}`},
		`infergate models retire: version conflict: cannot retire version 2 of model "ctr": aliases ["production"] point to it (HTTP 409)`+"\n")
	f(modelsGroup, []string{"promote", "--token", adminToken, "ctr", "2"},
		fakeCall{method: "PUT", uri: "/v1/models/ctr/aliases/production", body: `{"version":2}`, status: 503,
			answer: `{"error":"no leader"}`, header: map[string]string{"Retry-After": "1"}},
		"infergate models promote: no leader (HTTP 503); retry later, in 1s\n")
	f(clusterGroup, []string{"status", "--consistent", "--token", adminToken},
		fakeCall{method: "GET", uri: "/v1/cluster?consistent=1", status: 503, answer: `{"error":"not the leader"}`},
		"infergate cluster status: not the leader (HTTP 503); retry later\n")
	f(modelsGroup, []string{"show", "--token", adminToken, "nope"},
		fakeCall{method: "GET", uri: "/v1/models/nope", status: 404, answer: `{"error":"not found: model \"nope\" is not registered in the cluster"}`},
		`infergate models show: not found: model "nope" is not registered in the cluster (HTTP 404)`+"\n")
	f(clusterGroup, []string{"remove", "--token", adminToken, "node-x"},
		fakeCall{method: "DELETE", uri: "/v1/cluster/members/node-x", status: 502, answer: "<html>Bad   Gateway</html>\n"},
		"infergate cluster remove: <html>Bad Gateway</html> (HTTP 502)\n")
	f(modelsGroup, []string{"list", "--token", adminToken},
		fakeCall{method: "GET", uri: "/v1/models", status: 404, answer: "<!DOCTYPE html>\n<html><head><title>Error response</title></head><body><h1>404 Not Found</h1><p>Message: File not found.</p></body></html>\n"},
		"infergate models list: Not Found, as an HTML page, not an infergate node's JSON error (HTTP 404); is --addr an infergate node's HTTP address (its --http or --advertise-http), or a proxy's that passes /v1/ on?\n")
	f(modelsGroup, []string{"list", "--token", adminToken},
		fakeCall{method: "GET", uri: "/v1/models", answer: `{"models":`},
		"infergate models list: cannot decode the answer to GET /v1/models: unexpected end of JSON input\n")

	// Errors found before any call.
	missing := filepath.Join(t.TempDir(), "missing.onnx")
	f(modelsGroup, []string{"upload", "ctr", missing}, fakeCall{},
		"infergate models upload: cannot read the model: open "+missing+": no such file or directory\n")
	f(modelsGroup, []string{"list", "--timeout", "0s"}, fakeCall{}, "infergate models list: --timeout 0s: must be positive\n")
}

func TestAdminErrorsBeforeCall(t *testing.T) {
	t.Setenv("INFERGATE_ADMIN_TOKEN", "")
	f := func(args []string, wantStderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := modelsGroup.main(args, &out, &errOut); code != 1 || out.Len() > 0 || errOut.String() != wantStderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, out.String(), errOut.String(), wantStderr)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.onnx")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f([]string{"upload", "ctr", empty}, "infergate models upload: "+empty+" is empty; want an ONNX model\n")
	f([]string{"list", "--addr", "ftp://x"}, "infergate models list: --addr \"ftp://x\": want a base URL such as http://127.0.0.1:8080\n")

	// Nothing listens on a port just closed.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	var out, errOut bytes.Buffer
	if code := modelsGroup.main([]string{"list", "--addr", addr}, &out, &errOut); code != 1 ||
		!strings.HasPrefix(errOut.String(), "infergate models list: cannot reach the admin API at "+addr+": ") {
		t.Errorf("exit %d, stderr %q; want 1 and cannot reach the admin API", code, errOut.String())
	}
}

func TestAdminUsage(t *testing.T) {
	f := func(g *adminGroup, args []string, wantCode int, wantStdout, wantStderr []string) {
		t.Helper()
		code, stdout, stderr := runAdmin(t, g, fakeCall{}, args...)
		if code != wantCode {
			t.Errorf("%v: exit %d; want %d", args, code, wantCode)
		}
		for _, s := range wantStdout {
			if !strings.Contains(stdout, s) {
				t.Errorf("%v: stdout %q lacks %q", args, stdout, s)
			}
		}
		for _, s := range wantStderr {
			if !strings.Contains(stderr, s) {
				t.Errorf("%v: stderr %q lacks %q", args, stderr, s)
			}
		}
	}
	// runAdmin appends --addr, which would be taken for the subcommand.
	var out, errOut bytes.Buffer
	if code := modelsGroup.main(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage: infergate models <command>") ||
		!strings.Contains(errOut.String(), "upload NAME FILE") || !strings.Contains(errOut.String(), "rollback NAME") {
		t.Errorf("no subcommand: exit %d, stderr %q; want 2 and the list of subcommands", code, errOut.String())
	}
	out.Reset()
	if code := clusterGroup.main([]string{"help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "remove ID") {
		t.Errorf("help: exit %d, stdout %q; want 0 and the list of subcommands", code, out.String())
	}

	f(modelsGroup, []string{"frobnicate"}, 2, nil, []string{`infergate models: unknown command "frobnicate"`, "Commands:", "promote NAME VERSION"})
	f(modelsGroup, []string{"upload", "ctr"}, 2, nil, []string{"missing argument FILE\n", "Usage: infergate models upload [flags] NAME FILE", "-promote"})
	f(modelsGroup, []string{"alias", "ctr"}, 2, nil, []string{"missing arguments ALIAS VERSION\n", "Usage: infergate models alias [flags] NAME ALIAS VERSION"})
	f(modelsGroup, []string{"show"}, 2, nil, []string{"missing argument NAME\n", "-consistent"})
	f(modelsGroup, []string{"show", "ctr", "--confidence", "95"}, 2, nil, []string{"--confidence 95: give a level from 0.5 to 0.999, like 0.95\n", "Usage: infergate models show"})
	f(modelsGroup, []string{"rollback", "ctr", "extra"}, 2, nil, []string{`unexpected argument "extra"`})
	f(modelsGroup, []string{"list", "ctr"}, 2, nil, []string{`unexpected argument "ctr"`})
	f(modelsGroup, []string{"retire", "ctr", "v2"}, 2, nil, []string{`VERSION "v2": versions are positive integers`})
	f(modelsGroup, []string{"promote", "ctr", "0"}, 2, nil, []string{`VERSION "0": versions are positive integers`})
	f(modelsGroup, []string{"list", "--bogus"}, 2, nil, []string{"flag provided but not defined: -bogus"})
	f(modelsGroup, []string{"upload", "--help"}, 0, nil, []string{"Usage: infergate models upload [flags] NAME FILE", "Flags may come before, between or after the arguments"})
	f(clusterGroup, []string{"remove"}, 2, nil, []string{"missing argument ID\n", "Usage: infergate cluster remove [flags] ID"})
	f(clusterGroup, []string{"status", "node-a"}, 2, nil, []string{`unexpected argument "node-a"`})

	f(modelsGroup, []string{"experiment", "ctr", "e", "--arm", "a=1"}, 2, nil, []string{`invalid value "a=1" for flag -arm: "a=1" is not ARM=VERSION:WEIGHT, like control=1:90`})
	f(modelsGroup, []string{"experiment", "ctr", "e", "--arm", "a=x:1"}, 2, nil, []string{`version "x" is not a positive integer`})
	f(modelsGroup, []string{"experiment", "ctr", "e", "--arm", "a=1:-2"}, 2, nil, []string{`weight "-2" is not an integer of 0 or more`})
	f(modelsGroup, []string{"experiment", "ctr", "e", "--arm", "a=1:1"}, 2, nil, []string{"1 --arm flags; give 2 to 16, one per arm, like --arm control=1:90", "Usage: infergate models experiment"})
	f(modelsGroup, []string{"experiment", "ctr"}, 2, nil, []string{"missing argument EXPERIMENT\n"})
	f(modelsGroup, []string{"shadow", "ctr", "2"}, 2, nil, []string{"--percent is missing: give the share", "Usage: infergate models shadow"})
	f(modelsGroup, []string{"shadow", "ctr", "x", "--percent", "5"}, 2, nil, []string{`VERSION "x": versions are positive integers`})

	// A model name the cluster cannot hold is named before any call
	// (a '/' in it made the server answer "no such admin endpoint").
	f(modelsGroup, []string{"upload", "Bad/Name", "f.onnx"}, 2, nil, []string{`NAME "Bad/Name": model names are 1-128 letters, digits`, "Usage: infergate models upload"})
	f(modelsGroup, []string{"show", "a b"}, 2, nil, []string{`NAME "a b": model names are`})

	// Writes take no --consistent.
	f(modelsGroup, []string{"retire", "--consistent", "ctr", "1"}, 2, nil, []string{"flag provided but not defined: -consistent"})
}

func TestAdminTokenFromEnvironment(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer from-env" {
			t.Errorf("Authorization %q; want %q", got, "Bearer from-env")
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	t.Setenv("INFERGATE_ADMIN_TOKEN", "from-env")
	var out, errOut bytes.Buffer
	if code := clusterGroup.main([]string{"remove", "node-b", "--addr", strings.TrimPrefix(srv.URL, "http://") + "/"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q; want 0", code, errOut.String())
	}
	if want := "removed node-b from the cluster\n"; out.String() != want {
		t.Errorf("got %q; want %q", out.String(), want)
	}
	errOut.Reset()
	if code := clusterGroup.main([]string{"remove", "--help"}, &out, &errOut); code != 0 || strings.Contains(errOut.String(), "from-env") {
		t.Errorf("--help: exit %d, stderr %q; want 0 and no token", code, errOut.String())
	}
}

func TestAdminParseArgs(t *testing.T) {
	f := func(args []string, wantPos []string, wantJSON bool) {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, args, "A", "B")
		if err != nil {
			t.Fatalf("parseArgs(%q): %v", args, err)
		}
		if !slices.Equal(pos, wantPos) || *j != wantJSON {
			t.Errorf("parseArgs(%q) = %q, json %v; want %q, json %v", args, pos, *j, wantPos, wantJSON)
		}
	}
	f([]string{"a", "b"}, []string{"a", "b"}, false)
	f([]string{"--json", "a", "b"}, []string{"a", "b"}, true)
	f([]string{"a", "--json", "b"}, []string{"a", "b"}, true)
	f([]string{"a", "b", "--json"}, []string{"a", "b"}, true)
	f([]string{"a", "--", "--json"}, []string{"a", "--json"}, false)
	f([]string{"--json", "--", "-a", "b"}, []string{"-a", "b"}, true)
}

func TestAdminNodesSummary(t *testing.T) {
	f := func(nodes map[string]cluster.VersionStatus, want string) {
		t.Helper()
		if got := nodesSummary("staged", nodes); got != want {
			t.Errorf("nodesSummary(%v) = %q; want %q", nodes, got, want)
		}
	}
	f(nil, "-")
	f(map[string]cluster.VersionStatus{"a": {State: "ready"}}, "1/1 ready")
	f(map[string]cluster.VersionStatus{"c": {State: "unreachable"}, "a": {State: "ready"}, "b": {State: "fetching"}}, "1/3 ready; b fetching, c unreachable")
	f(map[string]cluster.VersionStatus{"a": {State: "pending"}}, "0/1 ready; a pending")
	retired := map[string]cluster.VersionStatus{"b": {State: "ready"}, "a": {State: "ready"}}
	if got, want := nodesSummary("retired", retired), "stand-in on a, b"; got != want {
		t.Errorf("nodesSummary of a retired stand-in = %q; want %q", got, want)
	}
	if got, want := nodesSummary("retired", nil), "-"; got != want {
		t.Errorf("nodesSummary of a retired version = %q; want %q", got, want)
	}
}

func TestAdminFormatSize(t *testing.T) {
	f := func(n int64, want string) {
		t.Helper()
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q; want %q", n, got, want)
		}
	}
	f(0, "0B")
	f(1023, "1023B")
	f(1024, "1.0KiB")
	f(1536, "1.5KiB")
	f(12<<20, "12.0MiB")
	f(3<<30, "3.0GiB")
}

// TestModelsRemove: "models remove NAME --yes" sends DELETE /v1/models/NAME
// and says what it retired; without --yes it changes nothing and says
// what it would do, since a removal cannot be undone but by uploading
// again.
func TestModelsRemove(t *testing.T) {
	runAdminCases(t, modelsGroup, []adminCase{{
		name: "remove",
		args: []string{"remove", "ctr", "--yes", "--token", adminToken},
		call: fakeCall{method: "DELETE", uri: "/v1/models/ctr", answer: `{"model":"ctr","removed":true,"retired_versions":[2,3]}`},
		want: "removed ctr from the cluster: retired versions 2, 3; every node unloads it, and an upload of the name serves it again as the next version\n",
	}})
	code, stdout, _ := runAdmin(t, modelsGroup, fakeCall{method: "GET", uri: "/v1/models/ctr",
		answer: `{"name":"ctr","aliases":{},"removed":true,"versions":[{"version":2,"sha256":"22","size":10,"stage":"retired","created":"2025-03-01T10:00:00Z","origin":"node-a"}]}`},
		"show", "ctr", "--token", adminToken)
	if want := "model ctr: removed from the cluster (every version retired); an upload of the name serves it again, numbered on\n"; code != 0 || !strings.HasPrefix(stdout, want) {
		t.Errorf("show of a removed model: exit %d, stdout %q; want 0 and a first line %q", code, stdout, want)
	}
	code, stdout, stderr := runAdmin(t, modelsGroup, fakeCall{}, "remove", "ctr", "--token", adminToken)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "changes nothing without --yes") || !strings.Contains(stderr, "Usage: infergate models remove [flags] NAME") {
		t.Errorf("remove without --yes: exit %d, stdout %q, stderr %q; want 2, nothing, and the refusal with the usage", code, stdout, stderr)
	}
	code, _, stderr = runAdmin(t, modelsGroup, fakeCall{method: "DELETE", uri: "/v1/models/ctr", status: 409,
		answer: `{"error":"conflict: remove_model of model \"ctr\" needs every member on a release that knows it: member n2 runs an earlier release; upgrade every member first"}`},
		"remove", "--yes", "--token", adminToken, "ctr")
	if want := `infergate models remove: conflict: remove_model of model "ctr" needs every member on a release that knows it: member n2 runs an earlier release; upgrade every member first (HTTP 409)` + "\n"; code != 1 || stderr != want {
		t.Errorf("remove refused: exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
}
