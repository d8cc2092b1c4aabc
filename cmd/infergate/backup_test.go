package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/internal/testenv"
)

// backedUpModels is what GET /v1/models says of each model that a restore
// must keep: versions with stage and digest, aliases, the experiment's
// name and arms (not the nodes' readiness, which names node ids).
func backedUpModels(t *testing.T, n *clusterNode) (map[string]any, error) {
	code, b, _ := n.admin(t, "GET", "/v1/models", nil)
	if code != 200 {
		return nil, fmt.Errorf("GET /v1/models on %s: %d %s", n.addr, code, b)
	}
	var answer struct {
		Models []struct {
			Name       string           `json:"name"`
			Production int64            `json:"production"`
			Aliases    map[string]int64 `json:"aliases"`
			Versions   []struct {
				Version int64  `json:"version"`
				Stage   string `json:"stage"`
				SHA256  string `json:"sha256"`
			} `json:"versions"`
			Experiment *struct {
				Name  string `json:"name"`
				Arms  any    `json:"arms"`
				Phase int64  `json:"phase"`
			} `json:"experiment"`
			// The arms' counts, summed over the members (not the
			// members' ids).
			Results *struct {
				Arms any `json:"arms"`
			} `json:"experiment_results"`
		} `json:"models"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return nil, fmt.Errorf("GET /v1/models: %w: %s", err, b)
	}
	out := map[string]any{}
	for _, m := range answer.Models {
		e, r := m.Experiment, m.Results
		m.Experiment, m.Results = nil, nil // pointers: compare what they point to
		out[m.Name] = fmt.Sprintf("%+v %+v %+v", m, e, r)
	}
	return out, nil
}

// A lone node with the demo models, a second ctr version and an
// experiment that has counted requests is backed up with `cluster
// backup`; damaged copies of the archive are refused by `cluster
// restore` with nothing written; the node is killed, its data removed,
// and a node started on the restored directory at a new raft address
// answers GET /v1/models as before, the experiment's counts included
// (they started over before backups carried them), and serves both arms.
func TestBackupRestoreServesTheSameModels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateways")
	}
	demo := demoRepo(t)
	first := startFounder(t, demo)
	onnxBytes, err := os.ReadFile(filepath.Join(demo, "ranker", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := first.admin(t, "POST", "/v1/models/ranker/versions", onnxBytes); code != 201 {
		t.Fatalf("upload ranker 2: %d %s", code, b)
	}
	exp := `{"name":"e1","arms":[{"name":"a","version":1,"weight":1},{"name":"b","version":2,"weight":1}]}`
	if code, b, _ := first.admin(t, "PUT", "/v1/models/ranker/experiment", []byte(exp)); code != 200 {
		t.Fatalf("set experiment: %d %s", code, b)
	}
	body, _ := inferBody(1, 256, 3)
	for i := range 6 {
		if code, b, _ := first.do(t, "POST", "/v2/models/ranker/infer", body, map[string]string{"X-Unit-Id": fmt.Sprint("unit-", i)}); code != 200 {
			t.Fatalf("ranker in the experiment: %d %s", code, b)
		}
	}
	before, err := backedUpModels(t, first)
	if err != nil {
		t.Fatal(err)
	}
	if r := fmt.Sprint(before["ranker"]); !regexp.MustCompile(`requests:[1-9]`).MatchString(r) {
		t.Fatalf("before the backup, ranker's experiment has counted no request: %s", r)
	}
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := clusterGroup.main(args, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "backup.tar")
	code, out := run("backup", "--addr", first.url(), "--token", clusterToken, "--out", archive)
	if want := "experiment counts of 1 model from 1 node (missing: none)"; code != 0 || !strings.Contains(out, "2 models, 3 versions") || !strings.Contains(out, want) {
		t.Fatalf("backup: exit %d:\n%s\nwant 2 models, 3 versions, and %q", code, out, want)
	}
	t.Logf("backup said:\n%s", out)
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) > 0 {
		t.Errorf("temp files left: %v", m)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}

	// Damaged archives: refused, saying why, and the directory stays absent.
	bad := func(name string, content []byte, want string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "restored-"+name)
		code, out := run("restore", "--from", path, "--data", target, "--cluster", "127.0.0.1:20398")
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "nothing written") {
			t.Errorf("restore of %s: exit %d, %q; want refused saying %q and nothing written", name, code, out, want)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("restore of %s left %s: %v", name, target, err)
		}
	}
	bad("truncated", data[:len(data)/2], "truncated")
	flipped := bytes.Clone(data)
	flipped[len(data)-4096] ^= 0x40 // in the last blob
	bad("flipped", flipped, "damaged")
	bad("format", regexp.MustCompile(`"format": [0-9]+,`).ReplaceAll(data, []byte(`"format": 7,`)), "backup format 7")
	if code, out := run("restore", "--from", archive, "--data", demo, "--cluster", "127.0.0.1:20398"); code != 1 || !strings.Contains(out, "is not empty") {
		t.Errorf("restore into a non-empty directory: exit %d, %q; want refused", code, out)
	}

	gzipped := filepath.Join(dir, "backup.tar.gz")
	if code, out := run("backup", "--addr", first.url(), "--token", clusterToken, "--out", gzipped, "--gzip"); code != 0 {
		t.Fatalf("backup --gzip: exit %d:\n%s", code, out)
	}
	if code, out := run("backup", "--addr", first.url(), "--out", filepath.Join(dir, "x")); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("backup without the token: exit %d, %q; want 401", code, out)
	}
	first.kill(t)
	if err := os.RemoveAll(first.data); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "data")
	raftAddr := testenv.FreeAddr(t)
	code, out = run("restore", "--from", gzipped, "--data", restored, "--cluster", raftAddr)
	if code != 0 || !strings.Contains(out, "dropped: ") || !strings.Contains(out, "experiment counts of 1 model from 1 node (missing: none)") {
		t.Fatalf("restore: exit %d:\n%s", code, out)
	}
	t.Logf("restore said:\n%s", out)
	again := startNode(t, restored, t.TempDir(), raftAddr, "")
	// Before any request: the restored node counts on from the backup.
	testenv.CheckFor(t, 30*time.Second, func() error {
		after, err := backedUpModels(t, again)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(after, before) {
			return fmt.Errorf("GET /v1/models after the restore:\n%v\nwant\n%v", after, before)
		}
		return nil
	})
	testenv.CheckFor(t, 30*time.Second, func() error {
		for _, v := range []string{"1", "2"} {
			if code, b, _ := again.post(t, "/v2/models/ranker/versions/"+v+"/infer", body); code != 200 {
				return fmt.Errorf("ranker %s: %d %s", v, code, b)
			}
		}
		if code, b, h := again.post(t, "/v2/models/ranker/infer", body); code != 200 || len(h.Peek("X-Experiment-Arm")) == 0 {
			return fmt.Errorf("ranker in the experiment: %d %s", code, b)
		}
		// It takes writes: it leads.
		if code, b, _ := again.admin(t, "PUT", "/v1/models/ranker/aliases/canary", []byte(`{"version":2}`)); code != 200 {
			return fmt.Errorf("a write on the restored node: %d %s", code, b)
		}
		return nil
	})
}

// A follower asked for a backup first catches up with the leader over
// HTTP, and a blob it lacks is fetched from the leader: the archive holds
// every live version's blob all the same, and the follower's store has
// the blob again.
func TestFollowerBackupFetchesAMissingBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateways")
	}
	demo := demoRepo(t)
	first := startFounder(t, demo)
	second := startNode(t, t.TempDir(), t.TempDir(), testenv.FreeAddr(t), first.url())
	body, _ := inferBody(1, 64, 7)
	testenv.CheckFor(t, 30*time.Second, func() error { return servesVersion(t, second, body, "1") })
	blobsDir := filepath.Join(second.data, "blobs", "sha256")
	held, err := os.ReadDir(blobsDir)
	if err != nil || len(held) != 2 {
		t.Fatalf("the follower's blobs: %v %v; want the two demo models'", held, err)
	}
	gone := held[0].Name()
	if err := os.Remove(filepath.Join(blobsDir, gone)); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "b.tar")
	var stdout, stderr bytes.Buffer
	if code := clusterGroup.main([]string{"backup", "--addr", second.url(), "--token", clusterToken, "--out", archive}, &stdout, &stderr); code != 0 {
		t.Fatalf("backup from the follower: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 blobs") {
		t.Errorf("backup from the follower said %q; want 2 blobs", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(blobsDir, gone)); err != nil {
		t.Errorf("the follower did not fetch the blob it lacked back: %v", err)
	}
}

// TestClusterBackupTimeoutHelp checks what "cluster backup --help" says
// of --timeout: it bounds the wait for the node's answer to start, not
// the archive (README, Backups). It said what the other admin commands
// say, "give up on the call after this long; uploads of large models may
// need more", which would have a person raise it for a large archive.
func TestClusterBackupTimeoutHelp(t *testing.T) {
	code, _, stderr := runAdmin(t, clusterGroup, fakeCall{}, "backup", "--help")
	if code != 0 {
		t.Fatalf("cluster backup --help: exit %d; want 0", code)
	}
	if want := "for the node's answer to start"; !strings.Contains(stderr, want) {
		t.Errorf("cluster backup --help lacks %q in what it says of --timeout:\n%s", want, stderr)
	}
	if bad := "uploads of large models"; strings.Contains(stderr, bad) {
		t.Errorf("cluster backup --help says %q of --timeout, which does not bound the archive:\n%s", bad, stderr)
	}
}

// counted gives "1 model", not "1 models" (a one-model backup said so).
func TestCounted(t *testing.T) {
	f := func(n int, one, want string) {
		t.Helper()
		if got := counted(n, one); got != want {
			t.Errorf("counted(%d, %q) = %q; want %q", n, one, got, want)
		}
	}
	f(0, "blob", "0 blobs")
	f(1, "model", "1 model")
	f(2, "version", "2 versions")
}

// backupCounts says which experiment counts a backup carries, from how
// many members, and which were missing; or none, and why.
func TestBackupCounts(t *testing.T) {
	f := func(c *cluster.BackupCounts, want string) {
		t.Helper()
		if got := backupCounts(&cluster.BackupManifest{ExperimentCounts: c}, "none (why)"); got != want {
			t.Errorf("backupCounts(%+v) = %q; want %q", c, got, want)
		}
	}
	f(nil, "experiment counts: none (why)")
	f(&cluster.BackupCounts{Models: []string{"ctr"}, Nodes: []string{"a"}}, "experiment counts of 1 model from 1 node (missing: none)")
	f(&cluster.BackupCounts{Models: []string{"ctr", "ranker"}, Nodes: []string{"a", "b"}, Missing: []string{"c", "d"}}, "experiment counts of 2 models from 2 nodes (missing: c, d)")
}
