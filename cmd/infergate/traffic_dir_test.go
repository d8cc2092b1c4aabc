package main

import "testing"

// A --traffic-dir that is the --data directory itself serves. serve
// panicked as it started ("metric infergate_disk_free_bytes{path=...} is
// already registered": a disk guard for each, on one path), and the
// traffic log's lock file, LOCK, was the one serve holds on --data, so
// the log refused to open, saying another traffic log had the directory.
func TestTrafficDirIsTheDataDir(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, "--models", demoRepo(t), "--data", dir, "--traffic-dir", dir, "--traffic-percent", "100")
	body, _ := inferBody(1, 64, 1)
	if code, out, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("infer: got status %d (%s); want 200", code, out)
	}
	s.stop(t)
}
