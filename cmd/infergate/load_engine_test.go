package main

import (
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
