package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/engine"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
	"github.com/infergate/infergate/trainer/onnx"
)

// loadEngine hands a model configuration's instance settings to the
// engine: share_session puts the instances on one session.
func TestLoadEngineSharesSession(t *testing.T) {
	if err := engine.Init(testenv.ORTLib(t)); err != nil {
		t.Fatal(err)
	}
	model := onnx.DemoCTR().Model().Marshal()
	f := func(cfg registry.ModelConfig, instances, sessions int) {
		t.Helper()
		b, err := loadEngine(model, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		m := b.(*engine.Model)
		if m.Instances() != instances || m.Sessions() != sessions {
			t.Fatalf("%+v: %d instances on %d sessions; want %d on %d", cfg, m.Instances(), m.Sessions(), instances, sessions)
		}
	}
	f(registry.ModelConfig{Instances: 3}, 3, 3)
	f(registry.ModelConfig{Instances: 3, ShareSession: true}, 3, 1)
	f(registry.ModelConfig{Instances: 1, ShareSession: true}, 1, 1)
}

// loadEngine hands cpu_mem_arena to the engine: false turns the arena off,
// left out or true keeps it.
func TestLoadEngineMemArena(t *testing.T) {
	if err := engine.Init(testenv.ORTLib(t)); err != nil {
		t.Fatal(err)
	}
	model := onnx.DemoCTR().Model().Marshal()
	f := func(cfg registry.ModelConfig, want bool) {
		t.Helper()
		b, err := loadEngine(model, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if got := b.(*engine.Model).CPUMemArena(); got != want {
			t.Fatalf("cpu_mem_arena %v: the engine's arena is %v; want %v", fmtArena(cfg.CPUMemArena), got, want)
		}
	}
	off, on := false, true
	f(registry.ModelConfig{}, true)
	f(registry.ModelConfig{CPUMemArena: &on}, true)
	f(registry.ModelConfig{CPUMemArena: &off}, false)
	f(registry.ModelConfig{CPUMemArena: &off, Instances: 2, ShareSession: true}, false)
}

func fmtArena(b *bool) string {
	if b == nil {
		return "left out"
	}
	if *b {
		return "true"
	}
	return "false"
}

// A model's model_warmup reaches ONNX Runtime: the engine asks for the
// samples once it knows the model's tensors, every sample runs before the
// version serves, and one that does not fit the model fails the load,
// naming the sample and why.
func TestModelWarmupReachesEngine(t *testing.T) {
	if err := engine.Init(testenv.ORTLib(t)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vdir := filepath.Join(dir, "ctr", "1")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, "model.onnx"), onnx.DemoCTR().Model().Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := registry.New(registry.Config{Dir: dir, Load: loadEngine, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	pbtxt := func(dims string) {
		t.Helper()
		text := `max_batch_size: 16
instance_group [ { count: 2 kind: KIND_CPU } ]
model_warmup [
  { name: "zeros" batch_size: 16 inputs { key: "features" value: { data_type: TYPE_FP32 dims: [ 64 ] zero_data: true } } },
  { name: "random" batch_size: 3 count: 2 inputs { key: "features" value: { data_type: TYPE_FP32 dims: [ ` + dims + ` ] random_data: true } } }
]
`
		if err := os.WriteFile(filepath.Join(dir, "ctr", "config.pbtxt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pbtxt("64")
	if err := repo.Load("ctr", nil); err != nil {
		t.Fatalf("Load with warm-up samples ctr takes: %v", err)
	}
	pbtxt("63")
	err = repo.Load("ctr", nil)
	if err == nil || !strings.Contains(err.Error(), `model_warmup "random" input "features" has shape [3,63] (batch_size 3, then dims [63]: the model batches, so dims leave the batch dimension out), which the model's [-1,64] does not take`) {
		t.Fatalf("Load with a warm-up sample ctr refuses: got %v; want the sample named, and its shape", err)
	}
	t.Logf("refused: %v", err)
	// The version that loaded first keeps serving.
	v, err := repo.Acquire("ctr", 1)
	if err != nil {
		t.Fatalf("after a failed warm-up: %v; want version 1 still serving", err)
	}
	v.Release()
}
