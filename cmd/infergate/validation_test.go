package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A dry run writes nothing: not the --cpuprofile file either.
func TestBenchDryRunWritesNoProfile(t *testing.T) {
	for _, sub := range [][]string{{"bench"}, {"bench", "suite"}} {
		prof := filepath.Join(t.TempDir(), "cpu.prof")
		args := append(append([]string{}, sub...), "--dry-run", "--cpuprofile", prof)
		checkExit(t, 0, "configuration is valid", args...)
		if st, err := os.Stat(prof); err == nil {
			t.Errorf("infergate %v: created %s (%d bytes); a dry run must not write files", args, prof, st.Size())
		}
	}
}

// An output file whose directory does not exist is refused before the
// run (and by --dry-run), not after it has measured.
func TestBenchOutputDirCheckedFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, flag := range []string{"--json", "--html", "--cpuprofile"} {
		checkExit(t, 1, "directory "+missing+" does not exist", "bench", "--dry-run", flag, filepath.Join(missing, "out"))
		checkExit(t, 1, "directory "+missing+" does not exist", "bench", "suite", "--dry-run", flag, filepath.Join(missing, "out"))
	}
}

// serve --dry-run refuses what the real start would: a model's
// configuration that does not parse, a --load name that is not in the
// repository, a --node-id that --data belongs to another node, ports out
// of range, a --max-queue of 0.
func TestServeDryRunRefusesWhatStartWould(t *testing.T) {
	repo := demoRepo(t)
	if err := os.WriteFile(filepath.Join(repo, "ctr", "config.json"), []byte(`{"no_such_field": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	nodeData := t.TempDir()
	if err := os.WriteFile(filepath.Join(nodeData, "node-id"), []byte("node-a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--load", "ctr"}, `unknown field "no_such_field"`},
		{[]string{"--load", "nosuch"}, `cannot load model "nosuch"`},
		{[]string{"--load", "ranker", "--data", nodeData, "--node-id", "node-b"}, `belongs to node "node-a"`},
		{[]string{"--load", "ranker", "--http", "127.0.0.1:99999"}, `--http "127.0.0.1:99999": port "99999": want a number from 0 to 65535`},
		{[]string{"--load", "ranker", "--pprof-addr", "nonsense"}, `--pprof-addr "nonsense": want host:port`},
		{[]string{"--load", "ranker", "--grpc", "nonsense"}, `--grpc "nonsense": want host:port`},
		{[]string{"--load", "ranker", "--log-verbose", "2"}, `--log-verbose 2: use 0 (no verbose lines) or 1`},
		{[]string{"--load", "ranker", "--log-format", "iso"}, `--log-format: log format "iso": use "default" or "ISO8601"`},
		{[]string{"--load", "ranker", "--http", "127.0.0.1:18999", "--grpc", "127.0.0.1:18999"}, `give gRPC a port of its own`},
		{[]string{"--load", "ranker", "--cluster", "127.0.0.1:99999"}, `raft address "127.0.0.1:99999" must be host:port with a fixed port, 1 to 65535`},
		{[]string{"--load", "ranker", "--max-queue", "0"}, `--max-queue 0: use 1 to 1048576`},
		{[]string{"--load", "ranker", "--traffic-percent", "150"}, `--traffic-percent 150 is out of range; use 0 (no traffic log) to 100`},
		{[]string{"--load", "ranker", "--traffic-percent", "5", "--traffic-max-bytes", "1000000"}, `--traffic-*: a traffic log budget of 1000000 bytes holds fewer than two segments`},
	} {
		args := append([]string{"--dry-run", "--models", repo, "--data", t.TempDir()}, c.args...)
		code, out := runServeFor(t, 30*time.Second, args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("serve %s: exit %d:\n%s\nwant a refusal containing %q", strings.Join(args, " "), code, out, c.want)
		}
	}
	// What the start would not read, the dry run does not check: ctr with
	// --load ranker, and every model with --load "".
	for _, load := range []string{"ranker", ""} {
		code, out := runServeFor(t, 30*time.Second, "--dry-run", "--models", repo, "--data", t.TempDir(), "--load", load)
		if code != 0 || !strings.Contains(out, "configuration is valid") {
			t.Fatalf("serve --dry-run --load %q: exit %d:\n%s\nwant valid", load, code, out)
		}
	}
}

// A --node-id that --data refuses is refused before any model loads, and
// leaves --data as it was.
func TestStoredNodeIDRefusedBeforeLoading(t *testing.T) {
	repo, data := demoRepo(t), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "node-id"), []byte("node-a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runServeFor(t, 60*time.Second, "--models", repo, "--data", data, "--http", "127.0.0.1:0", "--load", "ctr", "--node-id", "node-b")
	if code == 0 || !strings.Contains(out, `belongs to node "node-a"`) {
		t.Fatalf("serve --node-id node-b on node-a's --data: exit %d; want the refusal; log:\n%s", code, out)
	}
	if strings.Contains(out, "loaded model") {
		t.Errorf("serve loaded models before refusing --node-id; log:\n%s", out)
	}
}

// serve --help shows a placeholder for --ort-lib, not words of its usage.
func TestOrtLibHelp(t *testing.T) {
	out, _ := exec.Command(binPath, "serve", "--help").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "-ort-lib") && l != "-ort-lib string" {
			t.Errorf("serve --help shows %q; want \"-ort-lib string\"", l)
		}
	}
}

// runUpload runs infergate models upload --addr ADDR args... without an
// admin token and returns its exit code and output.
func runUpload(t *testing.T, addr string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"models", "upload", "--addr", "http://" + addr}, args...)...)
	cmd.Env = append(os.Environ(), "INFERGATE_ADMIN_TOKEN=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// An upload whose --config is over the server's --max-header-bytes says
// so, naming --config; one whose model is over --max-body gets advice
// for an upload.
func TestUploadLimitsSayWhichFlag(t *testing.T) {
	s := startServer(t, "--models", t.TempDir(), "--max-header-bytes", "4096", "--max-body", "1048576")
	model := filepath.Join(demoRepo(t), "ctr", "1", "model.onnx")
	var inputs []string
	for i := range 40 {
		inputs = append(inputs, fmt.Sprintf(`{"name":"feature_%02d","data_type":"TYPE_FP32","dims":["16"],"format":"FORMAT_NONE","optional":false}`, i))
	}
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfgFile, []byte(`{"input":[`+strings.Join(inputs, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runUpload(t, s.addr, "--config", cfgFile, "ctr", model)
	if code != 1 || !strings.Contains(out, "--config "+cfgFile) || !strings.Contains(out, "--max-header-bytes") {
		t.Errorf("upload with a large --config: exit %d:\n%s\nwant a failure naming --config and --max-header-bytes", code, out)
	}
	big := filepath.Join(t.TempDir(), "big.onnx")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runUpload(t, s.addr, "ctr", big)
	if code != 1 || !strings.Contains(out, "the model file is larger than that; raise the --max-body") || strings.Contains(out, "rows") {
		t.Errorf("upload of 2 MiB to --max-body 1 MiB: exit %d:\n%s\nwant advice for an upload", code, out)
	}
}

// models and cluster take the admin token as --admin-token too, as serve
// spells it.
func TestAdminTokenFlagAsServeSpellsIt(t *testing.T) {
	checkExit(t, 1, "cannot reach the admin API at http://127.0.0.1:1", "cluster", "status", "--admin-token", "x", "--addr", "http://127.0.0.1:1")
	checkExit(t, 1, "cannot reach the admin API at http://127.0.0.1:1", "models", "list", "--admin-token", "x", "--addr", "http://127.0.0.1:1")
}
