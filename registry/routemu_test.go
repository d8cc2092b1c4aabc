package registry

import (
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway/route"
)

// TestRouteSettersDoNotWaitForLoad: while a load
// is held inside the LoadFunc (loadMu held), SetDefault, SetExperiment,
// SetShadow and their getters return at once, and the model the load
// then publishes carries what they set.
func TestRouteSettersDoNotWaitForLoad(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	r, err := New(Config{Dir: dir, Logf: t.Logf, Load: func(b []byte, cfg ModelConfig) (Backend, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		return &fakeBackend{tag: string(b), t: t}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	loaded := make(chan error, 1)
	go func() {
		loaded <- r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2}}}})
	}()
	<-entered
	e := &route.Experiment{Name: "x", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.SetDefault("m", 2)
		r.SetExperiment("m", e)
		r.SetShadow("m", &route.Shadow{Version: 1, Percent: 5})
		_ = r.DefaultVersion("m")
		_ = r.ExperimentOf("m")
		_ = r.ShadowOf("m")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		close(gate)
		t.Fatal("the route setters waited for a running load")
	}
	close(gate)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	m := r.Model("m")
	if d := m.def.Load(); d == nil || *d != (defaultRoute{cur: 2}) || m.Experiment() == nil || m.Experiment().Name != "x" || m.Shadow() == nil || m.Shadow().Version != 1 {
		t.Fatalf("the model published after the load: default %+v experiment %v shadow %v", m.def.Load(), m.Experiment(), m.Shadow())
	}
}

// TestRouteSettersRaceLoadUnload: Load and
// Unload of a model race SetDefault, HandOver, SetExperiment and SetShadow; once
// both stop, the served model holds what was set last (no Model is
// published from maps read before a setter ran and missed by it).
func TestRouteSettersRaceLoadUnload(t *testing.T) {
	r, _, dir := newTestRepo(t, ModelConfig{})
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	cfg := &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2}}}}
	exps := []*route.Experiment{
		nil,
		{Name: "x", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}},
		{Name: "y", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 3}, {Name: "b", Version: 2, Weight: 1}}},
	}
	shadows := []*route.Shadow{nil, {Version: 1, Percent: 5}, {Version: 2, Percent: 50}}
	const rounds = 300
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range rounds {
			if err := r.Load("m", cfg); err != nil {
				t.Error(err)
				return
			}
			if i%3 == 2 {
				if err := r.Unload("m"); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds * 3 {
			if i%4 == 3 {
				r.HandOver("m", 1, 2, i%8 == 7)
			} else {
				r.SetDefault("m", int64(i%3))
			}
			r.SetExperiment("m", exps[(i/3)%3])
			r.SetShadow("m", shadows[(i/7)%3])
		}
	}()
	wg.Wait()
	if err := r.Load("m", cfg); err != nil {
		t.Fatal(err)
	}
	m := r.Model("m")
	if got, want := m.def.Load(), r.defVersion["m"]; got != want {
		t.Errorf("model default %+v; SetDefault or HandOver last set %+v", got, want)
	}
	if got, want := m.Experiment(), r.ExperimentOf("m"); got != want {
		t.Errorf("model experiment %v; SetExperiment last set %v", got, want)
	}
	if got, want := m.Shadow(), r.ShadowOf("m"); got != want {
		t.Errorf("model shadow %v; SetShadow last set %v", got, want)
	}
}
