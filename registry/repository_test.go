package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/oip"
)

// fakeBackend stands in for ONNX Runtime: the model file's text is its
// identity, and "fail" makes the load fail. It records misuse.
type fakeBackend struct {
	tag    string
	closed atomic.Bool
	runs   atomic.Int64
	t      *testing.T
}

func (b *fakeBackend) Inputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 2}}}
}

func (b *fakeBackend) Outputs() []oip.TensorMetadata {
	return []oip.TensorMetadata{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1, 1}}}
}

func (b *fakeBackend) Run(ctx context.Context, in []oip.Tensor, names []string, dst []oip.Tensor) ([]oip.Tensor, error) {
	if b.closed.Load() {
		b.t.Errorf("BUG: Run on closed backend %q", b.tag)
	}
	b.runs.Add(1)
	return dst, nil
}

func (b *fakeBackend) Close() error {
	if b.closed.Swap(true) {
		b.t.Errorf("BUG: backend %q closed twice", b.tag)
	}
	return nil
}

// failDevice is a device the fake loader refuses, as ONNX Runtime refuses a
// device it does not have: a load that fails for its configuration.
const failDevice = "cuda:99"

// fakeLoader loads fakeBackends; a model file whose text starts with
// "fail", or a configuration on failDevice, fails to load.
type fakeLoader struct {
	t     *testing.T
	mu    sync.Mutex
	loads []string
	all   []*fakeBackend
}

func (l *fakeLoader) load(data []byte, cfg ModelConfig) (Backend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tag := string(bytes.TrimSpace(data))
	l.loads = append(l.loads, tag)
	if strings.HasPrefix(tag, "fail") || cfg.Device == failDevice {
		return nil, fmt.Errorf("broken model %q", tag)
	}
	b := &fakeBackend{tag: tag, t: l.t}
	l.all = append(l.all, b)
	return b, nil
}

func (l *fakeLoader) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.loads)
}

func writeModel(t *testing.T, dir, name string, version int, content string) {
	t.Helper()
	p := filepath.Join(dir, name, fmt.Sprint(version), "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// Make every rewrite visible to the size+mtime check.
	mt := time.Now().Add(time.Duration(len(content)) * time.Millisecond)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func newTestRepo(t *testing.T, defaults ModelConfig) (*Repository, *fakeLoader, string) {
	t.Helper()
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	r, err := New(Config{Dir: dir, Defaults: defaults, Load: l.load, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, l, dir
}

func backendOf(v *Version) *fakeBackend { return v.Backend.(*fakeBackend) }

func mustAcquire(t *testing.T, r *Repository, name string, version int64) *Version {
	t.Helper()
	v, err := r.Acquire(name, version)
	if err != nil {
		t.Fatalf("Acquire(%q, %d): %s", name, version, err)
	}
	return v
}

func TestLoadAndRoute(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	writeModel(t, dir, "other", 3, "o3")
	if err := r.LoadAll(); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 0)
	if v.Number != 2 || backendOf(v).tag != "m2" || v.Label != "2" {
		t.Fatalf("latest of m: got version %d (%s); want 2 (m2)", v.Number, backendOf(v).tag)
	}
	v.Release()
	if _, err := r.Acquire("m", 1); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("Acquire(m, 1) under latest-1 policy: got %v; want ErrVersionNotFound", err)
	}
	if _, err := r.Acquire("nope", 0); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("Acquire(nope): got %v; want ErrModelNotFound", err)
	}
	if v := mustAcquire(t, r, "other", 3); backendOf(v).tag != "o3" {
		t.Fatalf("other/3: got %s", backendOf(v).tag)
	} else {
		v.Release()
	}
	if v.SHA256 == "" || len(v.SHA256) != 64 {
		t.Fatalf("SHA256 = %q; want 64 hex digits", v.SHA256)
	}
}

func TestVersionPolicies(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	for i := 1; i <= 4; i++ {
		writeModel(t, dir, "m", i, fmt.Sprintf("m%d", i))
	}
	f := func(cfg string, want []int64) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "m", "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := r.Load("m", nil); err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, v := range r.Model("m").Versions() {
			got = append(got, v.Number)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("config %s: serving %v; want %v", cfg, got, want)
		}
	}
	f(`{}`, []int64{4})
	f(`{"version_policy":{"latest":{"num_versions":2}}}`, []int64{3, 4})
	f(`{"version_policy":{"all":{}}}`, []int64{1, 2, 3, 4})
	f(`{"version_policy":{"specific":{"versions":[2,9]}}}`, []int64{2})
}

func TestHotSwapDrainsOldVersion(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	old := mustAcquire(t, r, "m", 0) // an in-flight request on version 1

	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 0)
	if v.Number != 2 {
		t.Fatalf("after load: latest is %d; want 2", v.Number)
	}
	v.Release()
	// The in-flight request on version 1 still works.
	if backendOf(old).closed.Load() {
		t.Fatal("version 1 closed while a request held it")
	}
	if _, err := old.Backend.Run(context.Background(), nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	old.Release()
	testenv.CheckFor(t, time.Second, func() error {
		if !backendOf(old).closed.Load() {
			return errors.New("version 1 not closed after its last request")
		}
		return nil
	})
	idx, _ := r.Index()
	if fmt.Sprint(idx) != "[{m 1 UNAVAILABLE unloaded} {m 2 READY }]" {
		t.Fatalf("index: got %v", idx)
	}
}

func TestFailedLoadKeepsOldVersion(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "m", 2, "fail-2")
	err := r.Load("m", nil)
	if !errors.Is(err, ErrLoadFailed) || !strings.Contains(err.Error(), `model "m" version 2`) || !strings.Contains(err.Error(), "broken model") {
		t.Fatalf("loading a broken version: got %v; want ErrLoadFailed naming version 2 and the cause", err)
	}
	v := mustAcquire(t, r, "m", 0)
	if v.Number != 1 || backendOf(v).closed.Load() {
		t.Fatalf("after failed load: serving %d (closed %v); want 1, open", v.Number, backendOf(v).closed.Load())
	}
	v.Release()
	idx, _ := r.Index()
	if len(idx) != 2 || idx[1].State != StateUnavailable || !strings.Contains(idx[1].Reason, "broken model") {
		t.Fatalf("index after failed load: %+v", idx)
	}

	// A poll does not retry the unchanged broken file...
	n := l.count()
	if err := r.Poll(); err == nil {
		t.Fatal("Poll: want the standing failure reported")
	}
	if l.count() != n {
		t.Fatalf("Poll retried an unchanged broken file: loads %d -> %d", n, l.count())
	}
	// ...but does once it is fixed, and then retires version 1.
	writeModel(t, dir, "m", 2, "m2-fixed")
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	v = mustAcquire(t, r, "m", 0)
	if v.Number != 2 || backendOf(v).tag != "m2-fixed" {
		t.Fatalf("after fix: serving %d %s", v.Number, backendOf(v).tag)
	}
	v.Release()
}

func TestReloadChangedFile(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "first")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	first := mustAcquire(t, r, "m", 1)
	first.Release()
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if l.count() != 1 {
		t.Fatalf("Load of an unchanged version reloaded it: %d loads", l.count())
	}
	writeModel(t, dir, "m", 1, "second!")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	defer v.Release()
	if backendOf(v).tag != "second!" || v.SHA256 == first.SHA256 {
		t.Fatalf("changed file: serving %s", backendOf(v).tag)
	}
	if v.Metrics != first.Metrics {
		t.Fatal("a reloaded version must keep its metric series")
	}
	testenv.CheckFor(t, time.Second, func() error {
		if !backendOf(first).closed.Load() {
			return errors.New("replaced backend not closed")
		}
		return nil
	})
}

func TestOverrideConfig(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{All: &struct{}{}}, Instances: 3}); err != nil {
		t.Fatal(err)
	}
	vs := r.Model("m").Versions()
	if len(vs) != 2 || vs[0].Config.Instances != 3 {
		t.Fatalf("override: %d versions, instances %d; want 2, 3", len(vs), vs[0].Config.Instances)
	}
	if err := r.Load("m", &ModelConfig{Instances: 99}); err == nil || !errors.Is(err, ErrBadConfig) {
		t.Fatalf("invalid override: got %v; want ErrBadConfig", err)
	}
}

func TestUnloadAndPoll(t *testing.T) {
	set := metrics.NewSet()
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	r, err := New(Config{Dir: dir, Load: l.load, Metrics: set, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeModel(t, dir, "a", 1, "a1")
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "a", 0)
	v.Release()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `infergate_inference_request_success_total{model="a",version="1"}`) {
		t.Fatalf("version metrics missing:\n%s", buf.String())
	}
	if err := r.Unload("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire("a", 0); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("after unload: got %v; want ErrModelNotFound", err)
	}
	testenv.CheckFor(t, time.Second, func() error {
		buf.Reset()
		set.WritePrometheus(&buf)
		if strings.Contains(buf.String(), `model="a"`) || !backendOf(v).closed.Load() {
			return errors.New("unloaded version still has metrics or is open")
		}
		return nil
	})
	if err := r.Unload("a"); err != nil {
		t.Fatalf("second unload: got %v; want nil, as in Triton", err)
	}
	if err := r.Unload("no_such_model"); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("unload of a name the repository does not know: got %v; want ErrModelNotFound", err)
	}

	// Polls leave it unloaded (TestPollLeavesUnloaded); a Load brings it
	// back, and a poll unloads it when its directory goes.
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if r.Model("a") != nil {
		t.Fatal("a poll loaded model a again after Unload")
	}
	if err := r.Load("a", nil); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, r, "a", 1).Release()
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if r.Model("a") != nil {
		t.Fatal("model whose directory is gone is still served after Poll")
	}
}

func TestOverloadRefusesAtOnce(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1, MaxQueue: 1})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	a := mustAcquire(t, r, "m", 0)
	b := mustAcquire(t, r, "m", 0)
	_, err := r.Acquire("m", 0)
	var oe *OverloadError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "raise instances or max_queue") {
		t.Fatalf("third acquire: got %v; want *OverloadError naming the knobs", err)
	}
	a.Release()
	mustAcquire(t, r, "m", 0).Release()
	b.Release()
	if n := a.InFlight(); n != 0 {
		t.Fatalf("in flight after all releases: %d", n)
	}
}

func TestLoadErrors(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	f := func(name string, target error, fragment string) {
		t.Helper()
		err := r.Load(name, nil)
		if !errors.Is(err, target) || !strings.Contains(err.Error(), fragment) {
			t.Fatalf("Load(%q): got %v; want %v containing %q", name, err, target, fragment)
		}
	}
	f("../x", ErrBadName, "letters, digits")
	f("missing", ErrModelNotFound, "no directory for model")
	if err := os.MkdirAll(filepath.Join(dir, "empty", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	f("empty", ErrNoVersions, "holds a model.onnx")
	writeModel(t, dir, "badcfg", 1, "x")
	if err := os.WriteFile(filepath.Join(dir, "badcfg", "config.json"), []byte(`{"instancs":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f("badcfg", ErrBadConfig, `unknown field "instancs"`)
}

// TestSwapUnderLoad hammers Acquire/Run/Release while versions are
// swapped in and out; no request may fail or reach a closed backend.
func TestSwapUnderLoad(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{Instances: 1, MaxQueue: 1 << 20})
	writeModel(t, dir, "m", 1, "v1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				v, err := r.Acquire("m", 0)
				if err != nil {
					t.Errorf("Acquire during swaps: %s", err)
					return
				}
				v.Backend.Run(context.Background(), nil, nil, nil)
				v.Release()
				served.Add(1)
			}
		}()
	}
	for i := 2; i <= 40; i++ {
		writeModel(t, dir, "m", i, fmt.Sprintf("v%d", i))
		if err := r.Load("m", nil); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if got := mustAcquire(t, r, "m", 0); got.Number != 40 {
		t.Fatalf("latest after swaps: %d; want 40", got.Number)
	} else {
		got.Release()
	}
	if served.Load() == 0 {
		t.Fatal("no request served")
	}
}

func TestSetDefaultRoutesUnversioned(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	// Set before the model exists: it must hold once the model loads.
	r.SetDefault("m", 1)
	all := &ModelConfig{VersionPolicy: VersionPolicy{All: &struct{}{}}}
	if err := r.Load("m", all); err != nil {
		t.Fatal(err)
	}
	unversioned := func(want int64) {
		t.Helper()
		v := mustAcquire(t, r, "m", 0)
		defer v.Release()
		if v.Number != want {
			t.Fatalf("unversioned request: got version %d; want %d", v.Number, want)
		}
		if d := r.Model("m").Default(); d == nil || d.Number != want {
			t.Fatalf("Model.Default: got %v; want version %d", d, want)
		}
	}
	unversioned(1)
	r.SetDefault("m", 2)
	unversioned(2)
	// A default that is not ready serves nothing, not another version.
	r.SetDefault("m", 7)
	if v, err := r.Acquire("m", 0); !errors.Is(err, ErrModelNotReady) {
		t.Fatalf("default 7, not loaded: got %v, %v; want ErrModelNotReady", v, err)
	}
	if r.DefaultVersion("m") != 7 {
		t.Fatalf("DefaultVersion: got %d; want 7", r.DefaultVersion("m"))
	}
	r.SetDefault("m", 1)
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", all); err != nil {
		t.Fatal(err)
	}
	unversioned(1) // survives an unload and reload
	r.SetDefault("m", 0)
	unversioned(2)
}

// TestDrainWaitsForHolders: a drain ends only once no request holds the
// version, whatever released to zero before it began, and a request that
// tries to acquire it while it drains is turned away without ending the
// drain.
func TestDrainWaitsForHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := &Version{drained: make(chan struct{})}
		if err := v.acquire(); err != nil {
			t.Fatal(err)
		}
		v.Release() // to zero before the drain
		if err := v.acquire(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			v.drain()
			close(done)
		}()
		synctest.Wait() // the drain has begun and blocks
		if err := v.acquire(); err != errRetry {
			t.Fatalf("acquire while draining: %v; want errRetry", err)
		}
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the drain ended while a request held the version")
		default:
		}
		if n := v.InFlight(); n != 1 {
			t.Fatalf("in flight while draining: %d; want 1", n)
		}
		v.Release()
		<-done
		v.drain() // a second drain returns at once
	})
}

// A config.json that is valid alone but not with the node's defaults is
// refused before any model file is read, with the default named.
func TestLoadChecksMergedConfig(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{MaxBatchSize: 64})
	writeModel(t, dir, "m", 1, "m1")
	writeConfig(t, dir, "m", `{"dynamic_batching":{"preferred_batch_sizes":[128]}}`)
	err := r.Load("m", nil)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "above max_batch_size 64 (the node's default, serve --max-batch-size)") {
		t.Fatalf("Load: got %v; want ErrBadConfig naming the node's max_batch_size", err)
	}
	if n := l.count(); n != 0 {
		t.Fatalf("the loader ran %d times for a configuration refused before loading", n)
	}
	// Without a dynamic_batching block there is nothing to check.
	writeConfig(t, dir, "m", `{}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatalf("Load with no dynamic_batching: %v", err)
	}
	// With batching off, preferred sizes are unused and do not stop it.
	writeConfig(t, dir, "m", `{"dynamic_batching":{"enabled":false,"preferred_batch_sizes":[128]}}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatalf("Load with batching off: %v", err)
	}
}

// A version whose load failed for its configuration is retried by a poll
// once the configuration changes, though its file has not.
func TestPollRetriesAfterConfigChange(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeConfig(t, dir, "m", `{"device":"`+failDevice+`"}`)
	if err := r.Poll(); err == nil {
		t.Fatal("the first poll loaded a model on a device the loader refuses")
	}
	n := l.count()
	if err := r.Poll(); err == nil || l.count() != n {
		t.Fatalf("a poll with nothing changed: err %v and %d more loads; want an error and none", err, l.count()-n)
	}
	writeConfig(t, dir, "m", `{"device":"cpu"}`)
	if err := r.Poll(); err != nil {
		t.Fatalf("the poll after config.json was fixed: %v", err)
	}
	mustAcquire(t, r, "m", 1).Release()
}

// A load with an override that fails leaves the override before it in
// place: later loads do not fail for it.
func TestFailedOverrideNotKept(t *testing.T) {
	r, l, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	if err := r.Load("m", &ModelConfig{Instances: 2}); err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", &ModelConfig{Device: failDevice}); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load with an override the loader refuses: got %v; want ErrLoadFailed", err)
	}
	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", nil); err != nil {
		t.Fatalf("Load after a failed override: %v", err)
	}
	v := mustAcquire(t, r, "m", 2)
	defer v.Release()
	if v.Config.Instances != 2 || v.Config.Device == failDevice {
		t.Fatalf("version 2 loaded with %+v; want the override before the failed one (2 instances)", v.Config)
	}
	if n := l.count(); n != 3 {
		t.Fatalf("the loader ran %d times; want 3 (version 1 twice, version 2 once)", n)
	}
}

// An override replaces config.json, broken or not; without one, a broken
// config.json stops the load and says where it is.
func TestOverrideOverBrokenConfigJSON(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeConfig(t, dir, "m", `{"instancs":1}`)
	if err := r.Load("m", nil); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), filepath.Join(dir, "m", "config.json")) {
		t.Fatalf("Load over a broken config.json: got %v; want ErrBadConfig naming the file", err)
	}
	if err := r.Load("m", &ModelConfig{Instances: 1}); err != nil {
		t.Fatalf("Load with an override over a broken config.json: %v", err)
	}
}

// A model directory that is a symbolic link is a model like any other, to
// LoadAll and to polls.
func TestSymlinkedModelDir(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	elsewhere := t.TempDir()
	writeModel(t, elsewhere, "real", 1, "m1")
	if err := os.Symlink(filepath.Join(elsewhere, "real"), filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	// A link to a file is not a model directory.
	if err := os.Symlink(filepath.Join(elsewhere, "real", "1", "model.onnx"), filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := r.LoadAll(); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, r, "m", 1).Release()
	if r.Model("f") != nil {
		t.Fatal("a link to a file was loaded as a model")
	}
}

func writeConfig(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name, "config.json"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A model unloaded through Unload stays unloaded through polls until a
// Load asks for it again.
func TestPollLeavesUnloaded(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "a", 1, "a1")
	writeModel(t, dir, "b", 1, "b1")
	if err := r.LoadAll(); err != nil {
		t.Fatal(err)
	}
	if err := r.Unload("a"); err != nil {
		t.Fatal(err)
	}
	writeModel(t, dir, "b", 2, "b2")
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if r.Model("a") != nil {
		t.Fatal("a poll loaded model a again after Unload")
	}
	mustAcquire(t, r, "b", 2).Release() // polls go on for the others
	if err := r.Load("a", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Unload("b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, r, "a", 1).Release()
	if r.Model("b") != nil {
		t.Fatal("a poll loaded model b again after Unload")
	}
}

// With TritonMetrics, every version also exports Triton's series, computed
// from its own counters, and they leave /metrics with the version.
func TestTritonMetrics(t *testing.T) {
	dir := t.TempDir()
	l := &fakeLoader{t: t}
	set := metrics.NewSet()
	r, err := New(Config{Dir: dir, Load: l.load, Logf: t.Logf, Metrics: set, TritonMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "m1")
	if err := r.LoadAll(); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 0)
	vm := v.Metrics
	vm.Succeeded(1500 * time.Microsecond)
	vm.Succeeded(2500 * time.Microsecond)
	vm.Failed(ReasonOverloaded, 0)
	vm.Failed(ReasonTimeout, 700*time.Microsecond)
	vm.Failed(ReasonDisplaced, 0)
	vm.Failed(ReasonInternal, 300*time.Microsecond)
	vm.Failed(ReasonBadRequest, 0)
	vm.Executed(5, 2, 400*time.Microsecond, nil)
	vm.Queued(90 * time.Microsecond)
	vm.Queued(10 * time.Microsecond)
	vm.CacheHit(50*time.Microsecond, 20*time.Microsecond)
	vm.CacheMiss(3 * time.Microsecond)
	v.Release()

	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	text := buf.String()
	for series, want := range map[string]string{
		`nv_inference_request_success{model="m",version="1"}`:                   "2",
		`nv_inference_request_failure{model="m",version="1",reason="REJECTED"}`: "3",
		`nv_inference_request_failure{model="m",version="1",reason="BACKEND"}`:  "1",
		`nv_inference_request_failure{model="m",version="1",reason="OTHER"}`:    "1",
		`nv_inference_request_failure{model="m",version="1",reason="CANCELED"}`: "0",
		`nv_inference_count{model="m",version="1"}`:                             "5",
		`nv_inference_exec_count{model="m",version="1"}`:                        "1",
		`nv_inference_pending_request_count{model="m",version="1"}`:             "0",
		`nv_inference_request_duration_us{model="m",version="1"}`:               "5000",
		`nv_inference_queue_duration_us{model="m",version="1"}`:                 "100",
		`nv_inference_compute_infer_duration_us{model="m",version="1"}`:         "800",
		`nv_cache_num_hits_per_model{model="m",version="1"}`:                    "1",
		`nv_cache_num_misses_per_model{model="m",version="1"}`:                  "1",
		`nv_cache_hit_duration_per_model{model="m",version="1"}`:                "20",
		`nv_cache_miss_duration_per_model{model="m",version="1"}`:               "3",
	} {
		if !strings.Contains(text, series+" "+want+"\n") {
			t.Errorf("want %s %s in\n%s", series, want, text)
		}
	}
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		buf.Reset()
		set.WritePrometheus(&buf)
		if strings.Contains(buf.String(), "nv_") {
			return fmt.Errorf("series of the unloaded version left:\n%s", buf.String())
		}
		return nil
	})

	// Without the option, none.
	r2, _, dir2 := newTestRepo(t, ModelConfig{})
	writeModel(t, dir2, "m", 1, "m1")
	if err := r2.LoadAll(); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	r2.cfg.Metrics.WritePrometheus(&buf)
	if strings.Contains(buf.String(), "nv_") {
		t.Fatalf("Triton's series without TritonMetrics:\n%s", buf.String())
	}
}

// A load that fails before any version is tried (here, on its
// configuration) says why in the index: as the model's state when nothing
// serves, beside each serving version otherwise; a load that succeeds
// clears it.
func TestIndexReportsModelFailures(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	writeConfig(t, dir, "m", `{"instancez":2}`)
	index := func() []IndexEntry {
		t.Helper()
		idx, err := r.Index()
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	if err := r.Load("m", nil); err == nil {
		t.Fatal("loaded with a bad configuration")
	}
	if idx := index(); len(idx) != 1 || idx[0].State != StateUnavailable || !strings.Contains(idx[0].Reason, `unknown field "instancez"`) {
		t.Fatalf("index %+v; want m unavailable, naming the field", idx)
	}
	writeConfig(t, dir, "m", `{}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if idx := index(); len(idx) != 1 || idx[0].State != StateReady || idx[0].Reason != "" {
		t.Fatalf("index %+v; want version 1 ready, no reason", idx)
	}
	writeConfig(t, dir, "m", `{"instancez":2}`)
	if err := r.Load("m", nil); err == nil {
		t.Fatal("loaded with a bad configuration")
	}
	if idx := index(); len(idx) != 1 || idx[0].State != StateReady || !strings.Contains(idx[0].Reason, `serving as loaded before; the model's latest load failed: `) {
		t.Fatalf("index %+v; want version 1 ready, with the failure beside it", idx)
	}
}

// Load folds Triton's spellings of an override on a copy: the caller's
// override is left as it was, and loads the same again.
func TestLoadLeavesCallerOverride(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{MaxQueue: 100})
	writeModel(t, dir, "m", 1, "m1")
	size := int64(7)
	override := &ModelConfig{DynamicBatching: &DynamicBatching{DefaultQueuePolicy: &QueuePolicy{MaxQueueSize: &size}}}
	if err := r.Load("m", override); err != nil {
		t.Fatal(err)
	}
	v := mustAcquire(t, r, "m", 1)
	first := v.Config.MaxQueue
	v.Release()
	if first != 7 {
		t.Fatalf("first load: max_queue %d; want 7", first)
	}
	if override.DynamicBatching.DefaultQueuePolicy == nil {
		t.Errorf("Load cleared the caller's dynamic_batching.default_queue_policy")
	}
	if err := r.Load("m", override); err != nil {
		t.Fatal(err)
	}
	v = mustAcquire(t, r, "m", 1)
	defer v.Release()
	if v.Config.MaxQueue != 7 {
		t.Fatalf("the same override loaded again: max_queue %d; want 7", v.Config.MaxQueue)
	}
}

// A model that served, was unloaded, and whose configuration is then
// broken: the load asked for fails before any version is tried, and
// nothing serves, yet the index shows only the stale "unloaded" and never
// why the load failed.
// A load that fails on its configuration after the model was unloaded
// says why in the index, beside the versions' last states.
func TestIndexShowsLoadFailureAfterUnload(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Unload("m"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		idx, _ := r.Index()
		if len(idx) != 1 || idx[0].Reason != "unloaded" {
			return fmt.Errorf("index %+v; want version 1 unloaded", idx)
		}
		return nil
	})
	writeConfig(t, dir, "m", `{"instancez":2}`)
	if err := r.Load("m", nil); err == nil {
		t.Fatal("loaded with a bad configuration")
	}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range idx {
		if strings.Contains(e.Reason, `unknown field "instancez"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("index %+v after the failed load; want the reason (unknown field \"instancez\") shown", idx)
	}
}

// A version's failure leaves the index once a successful load no longer
// selects it.
func TestIndexDropsFailureOfDeselectedVersion(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	writeModel(t, dir, "m", 2, "fail v2")
	writeConfig(t, dir, "m", `{"version_policy":{"all":{}}}`)
	if err := r.Load("m", nil); err == nil {
		t.Fatal("version 2 loaded")
	}
	writeConfig(t, dir, "m", `{"version_policy":{"specific":{"versions":[1]}}}`)
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx {
		if strings.Contains(e.Reason, "broken model") {
			t.Fatalf("index %+v after a successful load that no longer selects version 2; its old failure is still shown", idx)
		}
	}
}

// A model's load failure leaves the index with the model's directory.
func TestIndexForgetsModelThatLeft(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "v1")
	writeModel(t, dir, "gone", 1, "g1")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, "m", `{"instancez":2}`)
	writeConfig(t, dir, "gone", `{"instancez":2}`)
	for _, name := range []string{"m", "gone"} {
		if err := r.Load(name, nil); err == nil {
			t.Fatalf("%s loaded with a bad configuration", name)
		}
	}
	for _, name := range []string{"m", "gone"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.Poll() // unloads m, which left the repository
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx {
		if strings.Contains(e.Reason, "instancez") {
			t.Errorf("index row %+v after the model left the repository: its removed config's error is still there", e)
		}
	}
}

// Removing every version directory of a model is a load that fails: the
// versions that served keep serving, and the index says why beside them
// (Triton, polling, would unload them). Removing one of two versions
// unloads it.
func TestPollWithVersionDirectoriesRemoved(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{VersionPolicy: VersionPolicy{All: &struct{}{}}})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "m", "2")); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire("m", 2); err == nil {
		t.Fatal("version 2 serves after its directory was removed")
	}
	if err := os.RemoveAll(filepath.Join(dir, "m", "1")); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(); err == nil || !strings.Contains(err.Error(), "no version directory under") {
		t.Fatalf("poll with no version left: got %v; want the load's error", err)
	}
	mustAcquire(t, r, "m", 0).Release()
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx {
		if e.Name == "m" && e.Version == "1" {
			if e.State != "READY" || !strings.Contains(e.Reason, "no version directory under") {
				t.Fatalf("index row of version 1: %+v; want READY with the reason", e)
			}
			return
		}
	}
	t.Fatalf("index %+v has no row for m version 1", idx)
}

// Check refuses what Load would, reading only the directory: a model that
// is not there, a configuration that does not parse, one with no version
// its policy selects; it loads nothing.
func TestCheck(t *testing.T) {
	r, loader, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "good", 1, "g1")
	writeModel(t, dir, "bad", 1, "b1")
	if err := os.WriteFile(filepath.Join(dir, "bad", "config.json"), []byte(`{"instances":"many"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Check("good"); err != nil {
		t.Fatalf("Check(good): %v", err)
	}
	err := r.Check()
	for _, want := range []string{`cannot load model "bad"`, "instances", `cannot load model "empty"`, "no version directory"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(): %v; want it to contain %q", err, want)
		}
	}
	if err := r.Check("nosuch"); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("Check(nosuch): %v; want an error naming it", err)
	}
	if err := r.Check("../x"); err == nil {
		t.Error("Check(../x): nil; want the name refused")
	}
	loader.mu.Lock()
	loads := len(loader.loads)
	loader.mu.Unlock()
	if r.Model("good") != nil || loads != 0 {
		t.Fatalf("Check loaded something: model %v, %d loads", r.Model("good"), loads)
	}
}
