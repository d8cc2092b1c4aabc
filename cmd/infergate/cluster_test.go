package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/infergate/infergate/internal/testenv"
)

const clusterToken = "cluster-test-token"

// clusterNode is one `infergate serve` of a multi-process cluster test,
// with what it needs to be restarted on the same state.
type clusterNode struct {
	*server
	data, models, raft string
}

// startFounder starts the node that bootstraps a cluster over the demo
// repository demo (--register-local-models) and waits until the cluster
// has registered ctr.
func startFounder(t *testing.T, demo string) *clusterNode {
	t.Helper()
	first := startNode(t, t.TempDir(), demo, testenv.FreeAddr(t), "")
	testenv.CheckFor(t, 20*time.Second, func() error {
		_, _, err := first.model(t, "ctr", false)
		return err
	})
	return first
}

// startNode starts (or restarts) a cluster node; join is a member's URL or
// "" to bootstrap.
func startNode(t *testing.T, data, models, raftAddr, join string) *clusterNode {
	t.Helper()
	args := []string{"--data", data, "--models", models, "--cluster", raftAddr, "--admin-token", clusterToken}
	if join != "" {
		args = append(args, "--join", join)
	} else {
		args = append(args, "--register-local-models")
	}
	return &clusterNode{server: startServer(t, args...), data: data, models: models, raft: raftAddr}
}

func (n *clusterNode) url() string { return n.scheme + "://" + n.addr }

// admin calls the admin API with the token.
func (n *clusterNode) admin(t *testing.T, method, path string, body []byte) (int, []byte, string) {
	code, b, h := n.do(t, method, path, body, map[string]string{"Authorization": "Bearer " + clusterToken})
	kind := ""
	if h != nil {
		kind = string(h.Peek("X-Infergate-Error-Kind"))
	}
	return code, b, kind
}

type clusterView struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr"`
		Voter    bool   `json:"voter"`
		State    string `json:"state"`
	} `json:"members"`
}

func (n *clusterNode) cluster(t *testing.T) (clusterView, error) {
	var v clusterView
	code, b, _ := n.admin(t, "GET", "/v1/cluster", nil)
	if code != 200 {
		return v, fmt.Errorf("GET /v1/cluster on %s: %d %s", n.addr, code, b)
	}
	return v, json.Unmarshal(b, &v)
}

type modelView struct {
	Production int64            `json:"production"`
	Aliases    map[string]int64 `json:"aliases"`
	Versions   []struct {
		Version int64  `json:"version"`
		Stage   string `json:"stage"`
	} `json:"versions"`
}

func (n *clusterNode) model(t *testing.T, name string, consistent bool) (modelView, int, error) {
	var v modelView
	path := "/v1/models/" + name
	if consistent {
		path += "?consistent=1"
	}
	code, b, _ := n.admin(t, "GET", path, nil)
	if code != 200 {
		return v, code, fmt.Errorf("GET %s on %s: %d %s", path, n.addr, code, b)
	}
	return v, code, json.Unmarshal(b, &v)
}

func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGKILL)
	err := <-n.done
	n.done <- err
}

// servesVersion reports whether an unversioned infer on n is answered by
// version want.
func servesVersion(t *testing.T, n *clusterNode, body []byte, want string) error {
	code, b, h := n.post(t, "/v2/models/ctr/infer", body)
	if code != 200 {
		return fmt.Errorf("%s: infer: %d %s", n.addr, code, b)
	}
	if got := string(h.Peek("X-Model-Version")); got != want {
		return fmt.Errorf("%s: X-Model-Version %q; want %q", n.addr, got, want)
	}
	return nil
}

// registerInput and registerOutput are the operations of the porcupine
// history: the value of the alias "exp" of model ctr, a register.
type registerInput struct {
	write bool
	value int64
}

// registerModel is the sequential specification of the alias, starting
// at init.
func registerModel(init int64) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return init },
		Step: func(state, input, output any) (bool, any) {
			in := input.(registerInput)
			if in.write {
				return true, in.value
			}
			return output.(int64) == state.(int64), state
		},
		DescribeOperation: func(input, output any) string {
			in := input.(registerInput)
			if in.write {
				return fmt.Sprintf("set exp=%d", in.value)
			}
			return fmt.Sprintf("get exp -> %v", output)
		},
	}
}

// history collects porcupine operations from several clients.
type history struct {
	mu  sync.Mutex
	t0  time.Time
	ops []porcupine.Operation
	// acked, unknown and refused count the writes by outcome.
	acked, unknown, refused int
}

func (h *history) now() int64 { return int64(time.Since(h.t0)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// TestClusterFailover runs three real gateways on loopback and checks the
// control plane's promises: a version uploaded to a follower is served by
// all three; SIGKILL of the leader under 2,000 predictions/s and admin
// writes fails no prediction, elects a new leader within 5 s, and keeps
// every acknowledged write (a porcupine check of the history); the killed
// node restarts on its data and catches up; a node whose blob store was
// wiped fetches and verifies its blobs again; admin calls need the token.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	demo := demoRepo(t)
	var nodes []*clusterNode
	first := startNode(t, t.TempDir(), demo, testenv.FreeAddr(t), "")
	nodes = append(nodes, first)
	testenv.CheckFor(t, 20*time.Second, func() error {
		_, _, err := first.model(t, "ctr", false)
		return err
	})
	for range 2 {
		nodes = append(nodes, startNode(t, t.TempDir(), t.TempDir(), testenv.FreeAddr(t), first.url()))
	}
	body, _ := inferBody(1, 64, 7)
	for _, n := range nodes {
		testenv.CheckFor(t, 30*time.Second, func() error { return servesVersion(t, n, body, "1") })
	}
	cv, err := nodes[2].cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(cv.Members) != 3 || cv.Leader != cv.Members[0].ID && cv.Leader == "" {
		t.Fatalf("cluster after joins: %+v", cv)
	}

	// Admin calls need the token.
	if code, b, _ := nodes[1].get(t, "/v1/models"); code != 401 {
		t.Fatalf("GET /v1/models without the token: got %d %s; want 401", code, b)
	}

	// A version uploaded to a follower is served by all three.
	leaderOf := func(n *clusterNode) string {
		v, err := n.cluster(t)
		if err != nil {
			return ""
		}
		return v.Leader
	}
	leaderID := leaderOf(nodes[0])
	var follower *clusterNode
	for _, n := range nodes {
		if v, _ := n.cluster(t); v.Leader != "" && !isSelf(n, v, leaderID) {
			follower = n
		}
	}
	if follower == nil {
		t.Fatal("no follower found")
	}
	onnxBytes, err := os.ReadFile(filepath.Join(demo, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, b, _ := follower.admin(t, "POST", "/v1/models/ctr/versions?promote=true", onnxBytes)
	if code != 201 || !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("upload to a follower: got %d %s; want 201 with version 2", code, b)
	}
	for _, n := range nodes {
		testenv.CheckFor(t, 10*time.Second, func() error { return servesVersion(t, n, body, "2") })
	}
	t.Logf("version 2, uploaded to follower %s, served by all three after %s", follower.addr, time.Since(start).Round(time.Millisecond))
	for v := 3; v <= 5; v++ {
		if code, b, _ := follower.admin(t, "POST", "/v1/models/ctr/versions", onnxBytes); code != 201 {
			t.Fatalf("upload version %d: %d %s", v, code, b)
		}
	}

	// Kill the leader under load, and restart it; a soak runs more rounds
	// (INFERGATE_SOAK_ROUNDS).
	rounds := 1
	if r, err := strconv.Atoi(os.Getenv("INFERGATE_SOAK_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	for round := 1; round <= rounds; round++ {
		nodes = killLeaderUnderLoad(t, nodes, body, round)
	}
	rest := nodes[1:]

	// A node whose blob store and repository were wiped fetches and
	// verifies every blob again.
	victim := rest[1]
	victim.stop(t)
	for _, dir := range []string{filepath.Join(victim.data, "blobs"), victim.models} {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(victim.models, 0o755); err != nil {
		t.Fatal(err)
	}
	// It comes back on another raft address too: the leader must replace
	// the old one in raft's configuration.
	moved := testenv.FreeAddr(t)
	again := startNode(t, victim.data, victim.models, moved, "")
	testenv.CheckFor(t, 20*time.Second, func() error { return servesVersion(t, again, body, "2") })
	testenv.CheckFor(t, 20*time.Second, func() error {
		v, err := rest[0].cluster(t)
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.HTTPAddr == again.url() && m.RaftAddr == moved && m.State != "unknown" {
				return nil
			}
		}
		return fmt.Errorf("the moved node is not in raft's configuration at %s: %+v", moved, v.Members)
	})
	if log := again.stderr.String(); !strings.Contains(log, "fetched sha256:") {
		t.Errorf("the wiped node serves without having fetched its blobs; log:\n%s", log)
	}
}

// isSelf reports whether v, as node n reports it, names n as id.
func isSelf(n *clusterNode, v clusterView, id string) bool {
	for _, m := range v.Members {
		if m.ID == id && m.HTTPAddr == n.url() {
			return true
		}
	}
	return false
}

// killLeaderUnderLoad SIGKILLs the leader of nodes while 2,000
// predictions/s go to the others and four admin clients write and read an
// alias; it checks that no prediction fails, that a leader is elected
// within 5 s, that the alias history is linearizable, and that the killed
// node restarts on its data and catches up. It returns the nodes with the
// restarted one first.
func killLeaderUnderLoad(t *testing.T, nodes []*clusterNode, body []byte, round int) []*clusterNode {
	t.Helper()
	leaderOf := func(n *clusterNode) string {
		v, err := n.cluster(t)
		if err != nil {
			return ""
		}
		return v.Leader
	}
	var leader *clusterNode
	var rest []*clusterNode
	for _, n := range nodes {
		if v, _ := n.cluster(t); isSelf(n, v, v.Leader) {
			leader = n
		} else {
			rest = append(rest, n)
		}
	}
	if leader == nil || len(rest) != 2 {
		t.Fatal("cannot tell the leader from the followers")
	}
	initial, _, err := rest[0].model(t, "ctr", true)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{t0: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	wg.Add(1)
	go func() { // 2,000 predictions/s to the followers
		defer wg.Done()
		sem := make(chan struct{}, 256)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var inner sync.WaitGroup
		defer inner.Wait()
		begin := time.Now()
		for i := 0; ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Send what the rate owes by now, so that a late tick does
			// not lower it.
			for int64(time.Since(begin).Seconds()*2000) > sent.Load() {
				n := rest[i%2]
				i++
				sem <- struct{}{}
				inner.Add(1)
				sent.Add(1)
				go func() {
					defer inner.Done()
					defer func() { <-sem }()
					if code, b, _ := n.post(t, "/v2/models/ctr/infer", body); code != 200 {
						failed.Add(1)
						failMu.Lock()
						if len(failures) < 5 {
							failures = append(failures, fmt.Sprintf("%s: %d %s", n.addr, code, b))
						}
						failMu.Unlock()
					}
				}()
			}
		}
	}()
	for c := range 4 {
		wg.Add(1)
		go func() { // admin clients: 0 and 1 write the alias, 2 and 3 read it
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := rest[rng.IntN(2)]
				if c < 2 {
					v := rng.Int64N(5) + 1
					call := h.now()
					code, _, kind := n.admin(t, "PUT", "/v1/models/ctr/aliases/exp", fmt.Appendf(nil, `{"version":%d}`, v))
					ret := h.now()
					h.mu.Lock()
					switch {
					case code == 200:
						h.acked++
					case code == 503 && (kind == "no-leader" || kind == "not-leader"):
						h.refused++ // not applied: no history entry
						h.mu.Unlock()
						time.Sleep(20 * time.Millisecond)
						continue
					case code == 503 || code == 0:
						h.unknown++ // may or may not apply, at any time after the call
						ret = math.MaxInt64
					default:
						h.mu.Unlock()
						t.Errorf("alias write: unexpected %d", code)
						return
					}
					h.mu.Unlock()
					h.add(porcupine.Operation{ClientId: c, Input: registerInput{write: true, value: v}, Call: call, Return: ret})
				} else {
					call := h.now()
					mv, code, _ := n.model(t, "ctr", true)
					ret := h.now()
					if code == 200 {
						h.add(porcupine.Operation{ClientId: c, Input: registerInput{}, Output: mv.Aliases["exp"], Call: call, Return: ret})
					} else {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}
		}()
	}

	time.Sleep(2 * time.Second)
	oldID := leaderOf(rest[0])
	killed := time.Now()
	leader.kill(t)
	var elected time.Duration
	testenv.CheckFor(t, 10*time.Second, func() error {
		for _, n := range rest {
			if id := leaderOf(n); id == "" || id == oldID {
				return fmt.Errorf("%s sees leader %q", n.addr, id)
			}
		}
		elected = time.Since(killed)
		return nil
	})
	t.Logf("new leader %s after %s", leaderOf(rest[0]), elected.Round(time.Millisecond))
	if elected > 5*time.Second {
		t.Errorf("a new leader took %s; want under 5s", elected)
	}
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	loadTime := time.Since(h.t0)
	t.Logf("%d predictions in %s (%.0f/s), %d failed; alias writes: %d acknowledged, %d unknown, %d refused; %d operations in the history",
		sent.Load(), loadTime.Round(time.Millisecond), float64(sent.Load())/loadTime.Seconds(), failed.Load(), h.acked, h.unknown, h.refused, len(h.ops))
	if failed.Load() > 0 {
		t.Errorf("%d predictions failed while the leader died, e.g. %q", failed.Load(), failures)
	}
	if h.acked == 0 {
		t.Error("no alias write was acknowledged")
	}

	// Every acknowledged write survived, in a linearizable order.
	final, _, err := rest[0].model(t, "ctr", true)
	if err != nil {
		t.Fatal(err)
	}
	h.add(porcupine.Operation{ClientId: 4, Input: registerInput{}, Output: final.Aliases["exp"], Call: h.now(), Return: h.now() + 1})
	if res := porcupine.CheckOperationsTimeout(registerModel(initial.Aliases["exp"]), h.ops, 30*time.Second); res != porcupine.Ok {
		t.Errorf("the alias history is not linearizable (%v)", res)
	}

	// The killed node restarts on its data directory and catches up.
	back := startNode(t, leader.data, leader.models, leader.raft, "")
	defer t.Logf("round %d: leader killed, %s elected in %s, restarted and caught up", round, leaderOf(rest[0]), elected.Round(time.Millisecond))
	testenv.CheckFor(t, 20*time.Second, func() error {
		mv, _, err := back.model(t, "ctr", false)
		if err != nil {
			return err
		}
		if mv.Aliases["exp"] != final.Aliases["exp"] || len(mv.Versions) != len(final.Versions) {
			return fmt.Errorf("restarted node: exp=%d with %d versions; want exp=%d with %d", mv.Aliases["exp"], len(mv.Versions), final.Aliases["exp"], len(final.Versions))
		}
		return servesVersion(t, back, body, "2")
	})
	return append([]*clusterNode{back}, rest...)
}

// TestRegisterModelCatchesStaleReads shows the history check can fail: a
// read that misses an acknowledged write is not linearizable.
func TestRegisterModelCatchesStaleReads(t *testing.T) {
	w := porcupine.Operation{ClientId: 0, Input: registerInput{write: true, value: 3}, Call: 0, Return: 10}
	good := porcupine.Operation{ClientId: 1, Input: registerInput{}, Output: int64(3), Call: 20, Return: 30}
	stale := porcupine.Operation{ClientId: 1, Input: registerInput{}, Output: int64(0), Call: 20, Return: 30}
	if !porcupine.CheckOperations(registerModel(0), []porcupine.Operation{w, good}) {
		t.Fatal("a read after the write that sees it was refused")
	}
	if porcupine.CheckOperations(registerModel(0), []porcupine.Operation{w, stale}) {
		t.Fatal("a read after an acknowledged write that misses it was accepted")
	}
	unknown := w
	unknown.Return = math.MaxInt64 // the write's outcome is unknown
	if !porcupine.CheckOperations(registerModel(0), []porcupine.Operation{unknown, stale}) {
		t.Fatal("a write of unknown outcome must be allowed not to have happened yet")
	}
}

// A voter removed while it was away (here stopped with SIGSTOP, as a
// machine that sleeps or a process that stalls) never receives the entry
// that removed it: it comes back counting itself a member, knowing no
// leader. It must find out from the members it knows, join again, and
// serve what the group decided meanwhile: the new production, and not the
// version retired while it was away.
func TestRemovedWhileAwayRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways")
	}
	victim, victimID, rest, body := threeNodesWithStagedVersion(t)
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			victim.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	// Meanwhile the group removes it, promotes version 2 and retires 1.
	removeAndRetire(t, rest, victimID, body)

	start := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	defer func() {
		if t.Failed() {
			t.Logf("victim's log:\n%s", victim.stderr.String())
		}
	}()
	testenv.CheckFor(t, 40*time.Second, func() error {
		if err := servesVersion(t, victim, body, "2"); err != nil {
			return err
		}
		if code, _, _ := victim.post(t, "/v2/models/ctr/versions/1/infer", body); code == 200 {
			return fmt.Errorf("%s still serves version 1, retired while it was away", victim.addr)
		}
		v, err := rest[0].cluster(t)
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == victimID {
				return nil
			}
		}
		return fmt.Errorf("the group does not list %s again: %+v", victimID, v.Members)
	})
	t.Logf("node %s, removed while stopped, serves the group's production again %s after it resumed", victimID, time.Since(start).Round(time.Millisecond))
	if log := victim.stderr.String(); !strings.Contains(log, "it was removed, or dropped by a recovery, while this node was away; asking to join again") {
		t.Errorf("the victim's log does not say it found itself removed:\n%s", log)
	}
}

// TestFollowerWriteIsLiveOnReturn: a change of routing written through a
// follower takes effect on that follower by the time the call returns,
// so that a script that ramps an experiment and then checks sees the new
// split (found by a walk on real servers: the follower routed by the
// previous experiment for a moment after each call).
func TestFollowerWriteIsLiveOnReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateways")
	}
	demo := demoRepo(t)
	first := startFounder(t, demo)
	onnxBytes, err := os.ReadFile(filepath.Join(demo, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := first.admin(t, "POST", "/v1/models/ctr/versions", onnxBytes); code != 201 {
		t.Fatalf("upload: %d %s", code, b)
	}
	second := startNode(t, t.TempDir(), t.TempDir(), testenv.FreeAddr(t), first.url())
	testenv.CheckFor(t, 30*time.Second, func() error {
		for _, v := range []string{"1", "2"} {
			if code, b, _ := second.get(t, "/v2/models/ctr/versions/"+v+"/ready"); code != 200 {
				return fmt.Errorf("version %s on the second node: %d %s", v, code, b)
			}
		}
		return nil
	})
	if v, err := second.cluster(t); err != nil || isSelf(second, v, v.Leader) {
		t.Fatalf("the second node must follow: %+v %v", v, err)
	}
	body, _ := inferBody(1, 64, 1)
	arm := func() string {
		_, _, h := second.do(t, "POST", "/v2/models/ctr/infer", body, map[string]string{"X-Unit-Id": "user-1"})
		return string(h.Peek("X-Experiment-Arm"))
	}
	for i := range 5 {
		exp := fmt.Sprintf(`{"name":"e%d","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`, i)
		if code, b, _ := second.admin(t, "PUT", "/v1/models/ctr/experiment", []byte(exp)); code != 200 {
			t.Fatalf("set experiment e%d through the follower: %d %s", i, code, b)
		}
		if got := arm(); got == "" {
			t.Fatalf("round %d: right after setting the experiment through the follower, it answered without an arm", i)
		}
		if code, b, _ := second.admin(t, "DELETE", "/v1/models/ctr/experiment", nil); code != 200 {
			t.Fatalf("end experiment e%d through the follower: %d %s", i, code, b)
		}
		if got := arm(); got != "" {
			t.Fatalf("round %d: right after ending the experiment through the follower, it answered from arm %q", i, got)
		}
	}
}
