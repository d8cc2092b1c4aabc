package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A version whose configuration has model_warmup is not loaded again by a
// poll (or a Load) when neither its file nor its configuration changed
// (it was, at every poll, while its Config held the warm-up inputs made
// for its load).
func TestWarmupPollKeepsUnchangedVersion(t *testing.T) {
	r, l := repoWithConfig(t, ModelConfig{}, `{"max_batch_size":8,"model_warmup":[{"name":"w","batch_size":2,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"zero_data":true}}}]}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v1 := r.Model("m").Version(1)
	before := l.count()
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if got := l.count() - before; got != 0 || r.Model("m").Version(1) != v1 {
		t.Fatalf("a poll and a Load with the same file and configuration loaded version 1 %d more times; want it kept (loads %v)", got, l.loads)
	}
}

// The warm-up inputs (up to 64 samples of 64 MiB each) are made for a
// load; the serving version's Config keeps the configuration as given, no
// inputs and no warmup directory, which the next load compares.
func TestWarmupInputsNotKeptByVersion(t *testing.T) {
	r, _ := repoWithConfig(t, ModelConfig{}, `{"max_batch_size":8,"model_warmup":[{"name":"w","batch_size":8,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"zero_data":true}}}]}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if d := r.Model("m").Version(1).Config.warmupDir; d != "" {
		t.Fatalf("the serving version's Config holds warmup directory %q; want the configuration as given", d)
	}
}

// A sample above the node's max_batch_size is refused, as one above a
// max_batch_size the configuration gives is (checkMerged), rather than
// warm a batch that never serves.
func TestWarmupBatchAboveNodeMaxBatchSize(t *testing.T) {
	r, _ := repoWithConfig(t, ModelConfig{MaxBatchSize: 8}, `{"model_warmup":[{"name":"w","batch_size":64,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"zero_data":true}}}]}`)
	if err := r.Load("m", nil); err == nil || !strings.Contains(err.Error(), "above max_batch_size 8") {
		t.Fatalf("Load with a warm-up batch_size 64 over the node's max_batch_size 8: got %v; want it refused as a configured max_batch_size 8 is", err)
	}
}

// repoWithConfig returns a repository on the fake loader, with defaults,
// holding model m version 1 and config.json cfg.
func repoWithConfig(t *testing.T, defaults ModelConfig, cfg string) (*Repository, *fakeLoader) {
	t.Helper()
	r, l, dir := newTestRepo(t, defaults)
	writeModel(t, dir, "m", 1, "m1")
	if err := os.WriteFile(filepath.Join(dir, "m", "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return r, l
}
