package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testenv"
)

// A node restarts on its --data and --models. Model ctr is the cluster's,
// with production version 1 and staged version 2, and production.json in
// --data says so. serve serves HTTP while it loads the repository, and
// reads production.json before that: unversioned requests never reach
// staged version 2 (before, production.json was read only when the
// control plane started, after every model had loaded). A model that
// takes long to load after ctr holds the window open: its config.json is
// a FIFO, as a stalled network filesystem would be.
func TestProductionKeptDuringInitialLoad(t *testing.T) {
	src := demoRepo(t)
	onnxBytes, err := os.ReadFile(filepath.Join(src, "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	models, data := t.TempDir(), t.TempDir()
	s := startServer(t, "--models", models, "--data", data)
	for i := range 2 {
		code, body, _ := s.do(t, "POST", "/v1/models/ctr/versions", onnxBytes, map[string]string{"Content-Type": "application/octet-stream"})
		if code != 201 {
			t.Fatalf("upload %d: %d %s", i+1, code, body)
		}
	}
	testenv.CheckFor(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(data, "raft", "production.json"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != `{"ctr":1}` {
			return fmt.Errorf("production.json: %s", b)
		}
		for _, v := range []string{"1", "2"} {
			if _, err := os.Stat(filepath.Join(models, "ctr", v, "model.onnx")); err != nil {
				return err
			}
		}
		return nil
	})
	s.stop(t)

	// A model that loads after ctr, and takes its time.
	addHungModel(t, models, "zzslow")
	_, _, log := startServeUntil(t, `loaded model "ctr"`, "--models", models, "--data", data, "--http", "127.0.0.1:0")
	m := servingLine.FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no address in the log:\n%s", log.String())
	}
	again := &server{scheme: m[1], addr: m[2]}
	body, _ := inferBody(1, 64, 1)
	code, b, _ := again.post(t, "/v2/models/ctr/infer", body)
	var resp inferResponse
	json.Unmarshal(b, &resp)
	if code == 200 && resp.ModelVersion != "1" {
		t.Errorf("after a restart, while the initial models load: an unversioned request for ctr is answered by version %s (production.json: {\"ctr\":1}; version 2 is staged). Want production or \"not ready\", as the README promises for a restarted node; log tail:\n%s",
			resp.ModelVersion, tail(log.String(), 4))
	}
}

// --data names a directory that does not exist yet: serve fsyncs its
// parent once it creates it, and DATA/raft once raft-boltdb has created
// raft.db in it, so that a crash loses neither entry, nor with them the
// node-id, the raft log and the blobs written since. Seen with strace
// (where it is missing, the test cannot see the system calls).
func TestDataDirEntriesSynced(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("needs strace")
	}
	repo := demoRepo(t)
	parent := t.TempDir()
	data := filepath.Join(parent, "data")
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=openat,fsync,mkdirat", "-o", trace,
		binPath, "serve", "--ort-lib", testenv.ORTLib(t), "--http", "127.0.0.1:0", "--models", repo, "--load", "ctr", "--data", data)
	// strace and serve in a process group of their own, killed together;
	// serve's log goes to a file (no pipe for a leftover to hold open).
	logPath := filepath.Join(t.TempDir(), "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	logText := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(logText(), " ready\n") {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready in 90s under strace; log:\n%s", logText())
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve exited: %v; log:\n%s", err, logText())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Stop it in order, so that strace's log is complete.
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop within 30s of SIGTERM; log:\n%s", logText())
	}
	synced := dirsSynced(t, trace)
	if _, err := os.Stat(filepath.Join(data, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	if !synced[data] {
		t.Fatalf("the trace shows no fsync of %s either: the trace is not what this test expects; synced: %v", data, synced)
	}
	if !synced[parent] {
		t.Errorf("serve created --data %s and wrote node-id, raft.db and the blob store into it, but never fsynced its parent %s: a crash may lose the whole data directory (fsynced directories: %v)", data, parent, keys(synced))
	}
	// The same for raft.db: raft-boltdb creates it in DATA/raft, whose
	// entry cluster.open makes durable (durable.MakeDirs) for this very
	// reason, but nobody fsyncs DATA/raft once raft.db is in it.
	if raftDir := filepath.Join(data, "raft"); !synced[raftDir] {
		t.Errorf("raft.db was created in %s, which was never fsynced after: a crash may lose raft.db's entry, and the node then bootstraps afresh without the writes it acknowledged", raftDir)
	}
}

var (
	openRe  = regexp.MustCompile(`^(\d+)\s+openat\(AT_FDCWD, "([^"]+)", [^)]*\) = (\d+)$`)
	openBeg = regexp.MustCompile(`^(\d+)\s+openat\(AT_FDCWD, "([^"]+)", .*<unfinished \.\.\.>$`)
	openEnd = regexp.MustCompile(`^(\d+)\s+<\.\.\. openat resumed>.*= (\d+)$`)
	fsyncRe = regexp.MustCompile(`^(\d+)\s+fsync\((\d+)`)
)

// dirsSynced reads an strace -f log and returns the paths that were
// fsynced (by following which path each descriptor was opened on).
func dirsSynced(t *testing.T, trace string) map[string]bool {
	t.Helper()
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds := map[string]string{}
	pending := map[string]string{}
	synced := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := openRe.FindStringSubmatch(line); m != nil {
			fds[m[3]] = m[2]
		} else if m := openBeg.FindStringSubmatch(line); m != nil {
			pending[m[1]] = m[2]
		} else if m := openEnd.FindStringSubmatch(line); m != nil {
			if p, ok := pending[m[1]]; ok {
				fds[m[2]] = p
				delete(pending, m[1])
			}
		} else if m := fsyncRe.FindStringSubmatch(line); m != nil {
			if p, ok := fds[m[2]]; ok {
				synced[filepath.Clean(p)] = true
			}
		}
	}
	return synced
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
