package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"

	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// adminStub is the part of the admin API that the peer protocol uses,
// with the contract gateway/admin.go implements: a join marked with
// HeaderForwarded goes to JoinLocal, any other to Join (which forwards to
// the leader); forwarded applies go to ApplyLocal.
type adminStub struct {
	node           atomic.Pointer[Node]
	forwardedJoins atomic.Int64
	plainJoins     atomic.Int64
}

func (a *adminStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.node.Load()
	if n == nil {
		stubWriteErr(w, fmt.Errorf("%w: starting", ErrNotLeader))
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/cluster/join":
		var m fsm.Member
		if err := json.Unmarshal(body, &m); err != nil {
			stubWriteErr(w, fmt.Errorf("%w: %w", fsm.ErrInvalid, err))
			return
		}
		m.Fresh, m.KnowsDropped = r.Header.Get(HeaderFresh) == "1", r.Header.Get(HeaderFresh) != ""
		m.Protocol = ParseProtocol(r.Header.Get(HeaderProtocol))
		var err error
		if r.Header.Get(HeaderForwarded) != "" {
			a.forwardedJoins.Add(1)
			err = n.JoinLocal(m)
		} else {
			a.plainJoins.Add(1)
			err = n.Join(r.Context(), m)
		}
		if err != nil {
			stubWriteErr(w, err)
			return
		}
		w.Write([]byte("{}"))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/cluster/apply":
		c, err := fsm.Decode(body)
		if err != nil {
			stubWriteErr(w, err)
			return
		}
		res, err := n.ApplyLocal(c)
		if err != nil {
			stubWriteErr(w, err)
			return
		}
		json.NewEncoder(w).Encode(res)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/cluster/read-index":
		index, err := n.LeaderIndex()
		if err != nil {
			stubWriteErr(w, err)
			return
		}
		fmt.Fprintf(w, `{"index":%d}`, index)
	default:
		http.NotFound(w, r)
	}
}

func stubWriteErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrDropped):
		w.Header().Set(HeaderErrorKind, ErrorKind(err))
		code = http.StatusConflict
	case ErrorKind(err) != "":
		w.Header().Set(HeaderErrorKind, ErrorKind(err))
		code = http.StatusServiceUnavailable
	case errors.Is(err, fsm.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, fsm.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, fsm.ErrConflict):
		code = http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func inConfig(t *testing.T, n *Node, id string) bool {
	t.Helper()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
}

// stubNet returns n in-memory raft transports at 127.0.0.i:port, each
// connected to the others, and for each an HTTP server of the admin stub.
func stubNet(t *testing.T, n, port int) (trans []*raft.InmemTransport, apis []*adminStub, srvs []*httptest.Server) {
	trans = inmemNet(n, port)
	for range n {
		api := &adminStub{}
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		apis, srvs = append(apis, api), append(srvs, srv)
	}
	return trans, apis, srvs
}

// inmemNet returns n in-memory raft transports at 127.0.0.i:port, each
// connected to the others.
func inmemNet(n, port int) []*raft.InmemTransport {
	var trans []*raft.InmemTransport
	for i := range n {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("127.0.0.%d:%d", i+1, port)))
		for _, o := range trans {
			tr.Connect(o.LocalAddr(), o)
			o.Connect(tr.LocalAddr(), tr)
		}
		trans = append(trans, tr)
	}
	return trans
}

// startOn starts a node with cfg, stopped when the test ends, and serves
// it through api.
func startOn(t *testing.T, cfg Config, api *adminStub) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	api.node.Store(n)
	return n
}

// A node joins through any member's HTTP API, a follower's too: its own
// join is not marked forwarded, so a follower forwards it to the leader
// instead of answering that it does not lead.
func TestJoinThroughFollower(t *testing.T) {
	trans, apis, srvs := stubNet(t, 3, 7100)
	var nodes []*Node
	start := func(i int, join string) *Node {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), trans[i], join)
		cfg.HTTPAddr = srvs[i].URL
		n := startOn(t, cfg, apis[i])
		nodes = append(nodes, n)
		return n
	}
	n0 := start(0, "")
	c := &testCluster{t: t}
	c.waitLeader(n0)
	n1 := start(1, "http://127.0.0.1:1") // joined by hand below
	if err := n0.JoinLocal(fsm.Member{ID: "n1", RaftAddr: n1.cfg.RaftAddr, HTTPAddr: n1.cfg.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	// n1 follows n0 and knows its HTTP address: it could forward a join.
	testenv.CheckFor(t, 5*time.Second, func() error {
		if id, url := n1.Leader(); id != "n0" || url != srvs[0].URL {
			return fmt.Errorf("n1 knows leader %q at %q", id, url)
		}
		return nil
	})

	// n2 joins through the follower n1, as --join allows.
	start(2, srvs[1].URL)
	time.Sleep(3 * time.Second)
	if !n0.IsLeader() {
		t.Skip("leadership moved; the scenario needs n1 to be a follower")
	}
	joined := inConfig(t, n0, "n2")
	t.Logf("joins n1 received: %d marked forwarded, %d plain; n2 in configuration: %t",
		apis[1].forwardedJoins.Load(), apis[1].plainJoins.Load(), joined)

	// Control: the same join without the header is forwarded by n1 to the
	// leader and succeeds at once.
	if !joined {
		b, _ := json.Marshal(fsm.Member{ID: "n2", RaftAddr: nodes[2].cfg.RaftAddr, HTTPAddr: nodes[2].cfg.HTTPAddr})
		resp, err := http.Post(srvs[1].URL+"/v1/cluster/join", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("control join without %s through n1: %d %s; n2 in configuration: %t", HeaderForwarded, resp.StatusCode, msg, inConfig(t, n0, "n2"))
		t.Fatalf("a node given --join %s (a follower) did not join in 3s: its join carried %s, so the follower answered not-leader %d times instead of forwarding it", srvs[1].URL, HeaderForwarded, apis[1].forwardedJoins.Load())
	}
}

// While no live version of a model is on a node yet (the new production's
// blob is not there), a version retired meanwhile stops serving there,
// versioned and unversioned.
func TestRetiredVersionStopsServing(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	if _, err := c.register(n, "m", "version one"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	// Version 2 becomes production; its blob is nowhere to be had (a peer
	// that is down, a slow pull).
	sum := sha256.Sum256([]byte("version two"))
	if _, err := n.ApplyLocal(fsm.Command{
		Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]), Size: 11,
		Created: time.Unix(2, 0).UTC(), Origin: "elsewhere", Promote: true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	// The reconciler has seen the retirement once it drops v1's status.
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if _, ok := st["1"]; ok || st["2"].State == "" {
			return fmt.Errorf("statuses %+v; want v1 gone and v2 reported", st)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if v, err := n.cfg.Registry.Acquire("m", 1); err == nil {
		v.Release()
		t.Errorf("retired version 1 still serves versioned requests")
	}
	if v, err := n.cfg.Registry.Acquire("m", 0); err == nil {
		t.Errorf("unversioned requests are served by version %d, which is retired (production is 2, not ready here)", v.Number)
		v.Release()
	}
}

// A version retired while another live version fails to load on a node
// stops serving there: the failed load keeps what served before it, and
// the reconciler drops the retired version from that.
func TestRetiredVersionStopsServingBesideFailedVersion(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	for _, content := range []string{"good one", "good two", "broken three"} {
		if _, err := c.register(n, "m", content); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		st := n.LocalStatus().Models["m"]
		if st["1"].State != VersionReady || st["2"].State != VersionReady || st["3"].State != VersionFailed {
			return fmt.Errorf("statuses %+v; want 1 and 2 ready, 3 failed", st)
		}
		return nil
	})
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRetireVersion, Model: "m", Version: 2}); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		if v, err := n.cfg.Registry.Acquire("m", 2); err == nil {
			v.Release()
			return fmt.Errorf("retired version 2 still serves versioned requests (loaded: %v)", loadedVersions(n.cfg.Registry, "m"))
		}
		return nil
	})
	if v, err := n.cfg.Registry.Acquire("m", 1); err != nil {
		t.Fatalf("production version 1 after the retirement: %v; want it serving", err)
	} else {
		v.Release()
	}
}

// A cluster model never replaces the files of a local model of the same
// name on another node (Upload refuses the name only on the node that
// serves it): the version is reported failed, saying why, and the local
// file stays.
func TestClusterModelSparesLocalModel(t *testing.T) {
	c := newTestCluster(t, 2)
	leader := c.waitLeader(c.nodes...)
	other := c.follower(leader)
	path := filepath.Join(other.cfg.Registry.Dir(), "m", "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	local := []byte("local model bytes")
	if err := os.WriteFile(path, local, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := other.cfg.Registry.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	// The guard on the node that has the local model:
	if _, _, err := other.Upload(context.Background(), "m", []byte("cluster bytes"), false, nil); !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("Upload of a local model's name on its node: got %v; want ErrConflict", err)
	}
	// The same name registered through the leader, which has no local "m"
	// (c.register stands in for Upload plus the blob pull).
	if _, err := c.register(leader, "m", "cluster bytes"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, local) {
		t.Fatalf("%s, a local model's file on node %s, now holds %q; want the local bytes %q left alone", path, other.ID(), got, local)
	}
	vs := other.LocalStatus().Models["m"]["1"]
	if vs.State != VersionFailed || !strings.Contains(vs.Reason, "this node did not put them there") {
		t.Fatalf("model m version 1 on node %s: %+v; want failed, saying the file is not the node's", other.ID(), vs)
	}
	// The local model stops serving, since the cluster owns the name, and
	// its row in the repository index says why, not only "unloaded".
	var row registry.IndexEntry
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		idx, err := other.cfg.Registry.Index()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range idx {
			if e.Name == "m" && e.Version == "1" {
				row = e
			}
		}
		if row.State == registry.StateUnavailable || time.Now().After(deadline) {
			break
		}
	}
	if want := "unloaded: the cluster registered other bytes for this model"; row.State != registry.StateUnavailable || !strings.HasPrefix(row.Reason, want) {
		t.Fatalf("index row of model m version 1 on node %s: %+v; want %s, reason starting %q", other.ID(), row, registry.StateUnavailable, want)
	}
}

// A stopped node starts again on the same Config, metrics set included.
func TestRestartWithSameMetricsSet(t *testing.T) {
	_, tr := raft.NewInmemTransport("unused")
	cfg := testConfig(t, "solo", tr, "")
	cfg.inmem = nil
	cfg.RaftAddr = testenv.FreeAddr(t)
	cfg.Metrics = metrics.NewSet()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	var again *Node
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("second Start with the same Config panicked: %v", p)
			}
		}()
		again, err = Start(cfg)
	}()
	if again != nil {
		again.Stop()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Stop closes the peer client's idle keep-alive connections.
func TestStopClosesPeerConnections(t *testing.T) {
	c := newTestCluster(t, 1)
	n := c.waitLeader(c.nodes...)
	good := []byte("bytes a peer serves")
	sum := sha256.Sum256(good)
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	peer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(good) }))
	peer.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	peer.Start()
	defer peer.Close()
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpSetMember, Member: &fsm.Member{ID: "peer", RaftAddr: "10.0.0.1:1", HTTPAddr: peer.URL}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyLocal(fsm.Command{Op: fsm.OpRegisterVersion, Model: "m", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(good)), Created: time.Unix(1, 0).UTC(), Origin: "peer"}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	left := len(open)
	mu.Unlock()
	if left > 0 {
		t.Fatalf("%d connection(s) from the stopped node to its peer are still open 500ms after Stop", left)
	}
}

// A follower cut off from the leader's log, but not from its HTTP API,
// learns the leader's index and cannot reach it: the linearizable read
// ends with ErrBehind (a 503 at the API), not a bare deadline error (a
// 500). While the follower can read the log again, the same read passes.
func TestReadIndexBehind(t *testing.T) {
	trans, apis, srvs := stubNet(t, 3, 7200)
	var nodes []*Node
	for i, tr := range trans {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), tr, "")
		cfg.HTTPAddr = srvs[i].URL
		if i > 0 {
			cfg.Join = "http://127.0.0.1:1" // joined by hand below
		}
		if i == 2 {
			// n2 keeps following n0 for the whole test, cut off or not,
			// rather than losing its leader and starting elections.
			cfg.HeartbeatTimeout = time.Minute
			cfg.ElectionTimeout = time.Minute
		}
		nodes = append(nodes, startOn(t, cfg, apis[i]))
	}
	c := &testCluster{t: t, nodes: nodes, trans: trans}
	c.joinAll()
	n2 := nodes[2]
	testenv.CheckFor(t, 5*time.Second, func() error {
		if id, url := n2.Leader(); id != "n0" || url != srvs[0].URL {
			return fmt.Errorf("n2 knows leader %q at %q", id, url)
		}
		return nil
	})
	read := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return n2.ReadIndex(ctx)
	}
	if err := read(); err != nil {
		t.Fatalf("read on a follower in step: %v", err)
	}

	// Cut n2's raft transport only, then commit a write on n0 and n1.
	for _, tr := range trans[:2] {
		tr.Disconnect(trans[2].LocalAddr())
		trans[2].Disconnect(tr.LocalAddr())
	}
	if _, err := c.register(nodes[0], "m", "after the cut"); err != nil {
		t.Fatal(err)
	}
	err := read()
	if !errors.Is(err, ErrBehind) {
		t.Fatalf("read on a follower cut off from the log: got %v; want ErrBehind", err)
	}
	if !strings.Contains(err.Error(), "when the wait ended") {
		t.Errorf("error %q does not say how far the node got", err)
	}

	c.heal()
	testenv.CheckFor(t, 5*time.Second, read)
	if stateOf(n2).Models["m"] == nil {
		t.Fatal("the read passed before n2 applied the write")
	}
}
