package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry/blobs"
)

const adminToken = "admin-test-token"

// startAdmin starts the demo server with a one-node control plane (real
// raft over loopback TCP) and waits until it has registered ctr.
func startAdmin(t *testing.T, cfg gateway.Config) *testServer {
	t.Helper()
	return startAdminWith(t, serverOptions{cfg: cfg, files: map[string][]byte{"ctr/1": ctrONNX()}})
}

// startAdminWith is startAdmin with the server's options (its models'
// defaults, say).
func startAdminWith(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	s := startServer(t, o)
	attachNode(t, s, o.cfg.AdminToken, func(cc *cluster.Config) {
		cc.RegisterLocal = true
		cc.Check = engineCheck
	})
	waitCtrRegistered(t, s)
	return s
}

// engineCheck is the cluster's trial load of `infergate serve`: ONNX
// Runtime's, for the model's inputs and outputs.
func engineCheck(b []byte) ([]oip.TensorMetadata, []oip.TensorMetadata, error) {
	m, err := engine.Load(b, engine.Options{})
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	return m.Inputs(), m.Outputs(), nil
}

// waitCtrRegistered waits until s's control plane lists ctr.
func waitCtrRegistered(t *testing.T, s *testServer) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.admin(t, "GET", "/v1/models/ctr", nil); r.code != 200 {
			return fmt.Errorf("ctr not registered yet: %s", r)
		}
		return nil
	})
}

// attachNode starts a one-node control plane over s's repository (real
// raft over loopback TCP, token as its admin token), attaches it to s and
// returns it; mod, when set, changes its config first. It stops when the
// test ends.
func attachNode(t *testing.T, s *testServer, token string, mod func(*cluster.Config)) *cluster.Node {
	t.Helper()
	store, err := blobs.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cc := cluster.DefaultConfig()
	cc.NodeID = "n1"
	cc.RaftAddr = testenv.FreeAddr(t)
	cc.HTTPAddr = "http://" + s.listenTCP(t)
	cc.DataDir = t.TempDir()
	cc.Token = token
	cc.Registry = s.repo
	cc.Blobs = store
	cc.Logf = s.log.printf
	cc.Metrics = s.set
	if mod != nil {
		mod(&cc)
	}
	node, err := cluster.Start(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Stop() })
	s.srv.AttachCluster(node, store)
	return node
}

// admin sends an admin call with the token.
func (s *testServer) admin(t testing.TB, method, uri string, body []byte, headers ...string) response {
	t.Helper()
	return s.do(t, method, uri, body, append([]string{"Authorization", "Bearer " + adminToken}, headers...)...)
}

func TestAdminAPI(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	const (
		bad, unauthorized, notFound, notAllowed, conflict = fasthttp.StatusBadRequest, fasthttp.StatusUnauthorized,
			fasthttp.StatusNotFound, fasthttp.StatusMethodNotAllowed, fasthttp.StatusConflict
	)
	ctrHex := sha256Hex(ctrONNX())
	// A model served from the directory alone, after the cluster started.
	local := filepath.Join(s.repo.Dir(), "local", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, ctrONNX(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.repo.Load("local", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, uri, body string
		noToken                 bool
		headers                 []string
		code                    int
		fragment                string
	}{
		{name: "no token", method: "GET", uri: "/v1/models", noToken: true, code: unauthorized, fragment: "Authorization: Bearer"},
		{name: "wrong token", method: "GET", uri: "/v1/models", noToken: true, headers: []string{"Authorization", "Bearer nope"}, code: unauthorized, fragment: "admin token"},
		{name: "repository load needs the token", method: "POST", uri: "/v2/repository/models/ctr/load", noToken: true, code: unauthorized, fragment: "admin token"},
		{name: "empty upload", method: "POST", uri: "/v1/models/ctr/versions", code: bad, fragment: "body is empty"},
		{name: "garbage upload", method: "POST", uri: "/v1/models/ctr/versions", body: "not onnx", code: bad, fragment: "not a model this gateway can serve"},
		// The config uploaded with a version is checked against it, as a
		// node loading it would: else the cluster would register a version
		// no node can load.
		{name: "upload whose config names another model", method: "POST", uri: "/v1/models/ctr/versions?promote=true", body: string(ctrONNX()),
			headers: []string{gateway.HeaderModelConfig, `{"name":"rank"}`}, code: bad, fragment: `names model "rank", but it is loaded as "ctr"`},
		{name: "upload whose config does not fit the model", method: "POST", uri: "/v1/models/ctr/versions?promote=true", body: string(ctrONNX()),
			headers: []string{gateway.HeaderModelConfig, `{"input":[{"name":"features","data_type":"TYPE_FP32","dims":[32]}]}`}, code: bad, fragment: `input "features" has dims [64] in the model`},
		{name: "name with dots", method: "POST", uri: "/v1/models/../versions", body: "x", code: notFound, fragment: "no such admin endpoint"},
		{name: "bad name", method: "POST", uri: "/v1/models/-x/versions", body: "x", code: bad, fragment: "letters, digits"},
		{name: "bad promote", method: "POST", uri: "/v1/models/ctr/versions?promote=maybe", body: "x", code: bad, fragment: "promote"},
		{name: "alias without version", method: "PUT", uri: "/v1/models/ctr/aliases/beta", body: `{}`, code: bad, fragment: `{"version": N}`},
		{name: "alias body not JSON", method: "PUT", uri: "/v1/models/ctr/aliases/beta", body: `v1`, code: bad, fragment: "not the expected JSON"},
		{name: "alias unknown field", method: "PUT", uri: "/v1/models/ctr/aliases/beta", body: `{"version":1,"x":2}`, code: bad, fragment: "unknown field"},
		{name: "alias to a missing version", method: "PUT", uri: "/v1/models/ctr/aliases/beta", body: `{"version":9}`, code: notFound, fragment: "9"},
		{name: "alias of a missing model", method: "PUT", uri: "/v1/models/nope/aliases/beta", body: `{"version":1}`, code: notFound, fragment: "nope"},
		{name: "bad alias name", method: "PUT", uri: "/v1/models/ctr/aliases/Bad%20Alias", body: `{"version":1}`, code: bad, fragment: "alias"},
		{name: "rollback without history", method: "POST", uri: "/v1/models/ctr/rollback", code: conflict, fragment: "roll back"},
		{name: "retire production", method: "DELETE", uri: "/v1/models/ctr/versions/1", code: conflict, fragment: "production"},
		{name: "retire non-number", method: "DELETE", uri: "/v1/models/ctr/versions/one", code: bad, fragment: "positive integers"},
		{name: "unknown model", method: "GET", uri: "/v1/models/nope", code: notFound, fragment: "nope"},
		{name: "bad digest", method: "GET", uri: "/v1/blobs/sha256:zz", code: bad, fragment: "sha256:<64 hex digits>"},
		{name: "missing blob", method: "GET", uri: "/v1/blobs/sha256:" + zeros64, code: notFound, fragment: "not stored"},
		{name: "unknown endpoint", method: "GET", uri: "/v1/nope", code: notFound, fragment: "no such admin endpoint"},
		{name: "wrong method", method: "GET", uri: "/v1/models/ctr/rollback", code: notAllowed, fragment: "use POST"},
		{name: "remove unknown member", method: "DELETE", uri: "/v1/cluster/members/ghost", code: notFound, fragment: "ghost"},
		{name: "remove the last voter", method: "DELETE", uri: "/v1/cluster/members/n1", code: conflict, fragment: "last voter"},
		{name: "join without address", method: "POST", uri: "/v1/cluster/join", body: `{"id":"x"}`, code: bad, fragment: "raft address"},
		{name: "join from an unreachable address", method: "POST", uri: "/v1/cluster/join", body: `{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"http://127.0.0.1:2"}`, code: bad, fragment: "cannot reach raft address 127.0.0.1:1"},
		{name: "upload over a local model", method: "POST", uri: "/v1/models/local/versions", body: "x", code: conflict, fragment: "outside the cluster"},
		// KServe's v1 predict is no admin call: no admin token needed.
		{name: "KServe v1 predict", method: "POST", uri: "/v1/models/ctr:predict", body: `{}`, noToken: true, code: fasthttp.StatusBadRequest, fragment: `neither "instances" (rows) nor "inputs"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			var r response
			if c.noToken {
				r = s.do(t, c.method, c.uri, body, c.headers...)
			} else {
				r = s.admin(t, c.method, c.uri, body, c.headers...)
			}
			checkError(t, r, c.code, c.fragment)
			if c.code == unauthorized && r.header["Www-Authenticate"] == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	// The blob a peer would pull.
	if r := s.admin(t, "GET", "/v1/blobs/sha256:"+ctrHex, nil); r.code != 200 || !bytes.Equal(r.body, ctrONNX()) {
		t.Fatalf("GET the ctr blob: %d, %d bytes; want 200 with the model's %d bytes", r.code, len(r.body), len(ctrONNX()))
	}
	// And over TCP, where the file goes out through the TCP connection
	// under fasthttp's and the listener's wrappers (sendfile).
	req, err := http.NewRequest("GET", "http://"+s.listenTCP(t)+"/v1/blobs/sha256:"+ctrHex, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(blob, ctrONNX()) {
		t.Fatalf("GET the ctr blob over TCP: %d, %d bytes, %v; want 200 with the model's %d bytes", resp.StatusCode, len(blob), err, len(ctrONNX()))
	}

	// Upload, promote, roll back: unversioned traffic follows production.
	infer := func(want string) {
		t.Helper()
		testenv.CheckFor(t, 10*time.Second, func() error {
			r := s.post(t, "/v2/models/ctr/infer", []byte(inputs(input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64))))))
			if r.code != 200 || r.header["X-Model-Version"] != want {
				return fmt.Errorf("infer: %s, X-Model-Version %q; want 200 from version %s", r, r.header["X-Model-Version"], want)
			}
			return nil
		})
	}
	r := s.admin(t, "POST", "/v1/models/ctr/versions", ctrONNX())
	var up struct {
		Model   string `json:"model"`
		Version int64  `json:"version"`
		SHA256  string `json:"sha256"`
	}
	if err := json.Unmarshal(r.body, &up); r.code != 201 || err != nil || up.Version != 2 || up.SHA256 != ctrHex || up.Model != "ctr" {
		t.Fatalf("upload: %s; want 201 for ctr version 2 with sha256 %s", r, ctrHex)
	}
	infer("1") // staged, not promoted
	if r := s.admin(t, "PUT", "/v1/models/ctr/aliases/production", []byte(`{"version":2}`)); r.code != 200 {
		t.Fatalf("promote: %s", r)
	}
	infer("2")
	if r := s.admin(t, "POST", "/v1/models/ctr/rollback", nil); r.code != 200 || !bytes.Contains(r.body, []byte(`"version":1`)) {
		t.Fatalf("rollback: %s; want version 1", r)
	}
	infer("1")
	if r := s.admin(t, "DELETE", "/v1/models/ctr/versions/2", nil); r.code != 200 {
		t.Fatalf("retire: %s", r)
	}
	testenv.CheckFor(t, 10*time.Second, func() error {
		if r := s.post(t, "/v2/models/ctr/versions/2/infer", []byte(inputs(input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64)))))); r.code != 404 {
			return fmt.Errorf("a retired version still answers: %s", r)
		}
		return nil
	})

	// Reads say how current they are; consistent=1 waits for the leader.
	r = s.admin(t, "GET", "/v1/models/ctr?consistent=1", nil)
	if r.code != 200 || r.header["X-Infergate-Known-Leader"] != "true" || r.header["X-Infergate-Index"] == "" {
		t.Fatalf("consistent read: %s with headers %v", r, r.header)
	}
	var mv cluster.ModelView
	if err := json.Unmarshal(r.body, &mv); err != nil {
		t.Fatal(err)
	}
	if mv.Production != 1 || len(mv.Versions) != 2 || mv.Versions[1].Stage != "retired" || mv.Versions[0].Nodes["n1"].State != cluster.VersionReady {
		t.Fatalf("model view after the round trip: %+v", mv)
	}
	r = s.admin(t, "GET", "/v1/cluster", nil)
	if r.code != 200 || !bytes.Contains(r.body, []byte(`"leader":"n1"`)) || !bytes.Contains(r.body, []byte(`"state":"leader"`)) {
		t.Fatalf("cluster status: %s", r)
	}
	// The control plane's metrics are on /metrics.
	text := s.metricsText(t)
	checkMetric(t, text, "infergate_cluster_is_leader", 1)
	checkMetric(t, text, "infergate_cluster_voters", 1)
	checkMetric(t, text, "infergate_cluster_versions_not_ready", 0)
	// Refused commands (the 404/409 cases above) count apart.
	ok, _ := metricValue(text, `infergate_cluster_apply_total{result="ok"}`)
	refused, _ := metricValue(text, `infergate_cluster_apply_total{result="error"}`)
	if ok < 5 || refused < 3 {
		t.Errorf("apply counters: %s", grepLines(text, "infergate_cluster_apply_total"))
	}
	// The status page shows the control plane from local state.
	page := s.do(t, "GET", "/", nil)
	for _, want := range []string{"<h2>Cluster</h2>", "leader <code>n1</code>", "this node leads", "<td>ctr</td><td>1</td><td>production=1</td><td>2</td>", "1 <small>(unversioned)</small>"} {
		if !bytes.Contains(page.body, []byte(want)) {
			t.Errorf("status page lacks %q:\n%s", want, page.body)
		}
	}
}

func TestInferenceToken(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "infer-token"
	s := startDemo(t, cfg, false)
	body := []byte(inputs(input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64)))))
	checkError(t, s.post(t, "/v2/models/ctr/infer", body), fasthttp.StatusUnauthorized, "inference token")
	if r := s.post(t, "/v2/models/ctr/infer", body, "Authorization", "Bearer infer-token"); r.code != 200 {
		t.Fatalf("infer with the token: %s", r)
	}
	// Health and metrics stay open for probes and scrapers.
	if r := s.do(t, "GET", "/v2/health/ready", nil); r.code != 200 {
		t.Fatalf("ready without a token: %s", r)
	}
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAdminUploadConfig(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	up := func(config string) response {
		return s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX(), gateway.HeaderModelConfig, config)
	}
	checkError(t, up(`{"max_batch_size":`), fasthttp.StatusBadRequest, "model config")
	checkError(t, up(`{"max_bach_size":4}`), fasthttp.StatusBadRequest, "max_bach_size")
	checkError(t, up(`{"version_policy":{"all":{}}}`), fasthttp.StatusBadRequest, "leave it out")
	if r := up(`{"max_batch_size":1,"dynamic_batching":{"enabled":false}}`); r.code != 201 {
		t.Fatalf("upload with a config: %s", r)
	}
	// The production version's config is what the node serves with.
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.do(t, "GET", "/v2/models/ctr/config", nil)
		if r.code != 200 || !bytes.Contains(r.body, []byte(`"max_batch_size":1`)) {
			return fmt.Errorf("served config: %s", r)
		}
		return nil
	})
	r := s.admin(t, "GET", "/v1/models/ctr", nil)
	if !bytes.Contains(r.body, []byte(`"config":{"max_batch_size":1,"dynamic_batching":{"enabled":false}}`)) {
		t.Fatalf("the version's config is not listed: %s", r)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// A version uploaded without promote runs with production's config until
// it is promoted: the upload is checked against that config as well as
// its own, so that the cluster does not register a version that no node
// can load.
func TestUploadCheckedAgainstProductionConfig(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	ctrConfig := `{"input":[{"name":"features","data_type":"TYPE_FP32","dims":[64]}]}`
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true", ctrONNX(), gateway.HeaderModelConfig, ctrConfig); r.code != fasthttp.StatusCreated {
		t.Fatalf("upload of ctr with its config: %s", r)
	}
	// ranker's features are [-1,256]: production's config does not fit it.
	r := s.admin(t, "POST", "/v1/models/ctr/versions", rankerONNX())
	checkError(t, r, fasthttp.StatusBadRequest, `which applies to every version of "ctr" while this one is staged, does not fit it`)
	// Promoted, it runs with its own (none): accepted (forced: its inputs
	// are not production's, which a promotion checks too).
	if r := s.admin(t, "POST", "/v1/models/ctr/versions?promote=true&force=true", rankerONNX()); r.code != fasthttp.StatusCreated {
		t.Fatalf("promoted upload: %s", r)
	}
}
