package registry

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway/route"
)

// TestExperimentShadowSeriesChurn (passes): SetExperiment and
// SetShadow flip while requests count on the experiment/shadow they
// loaded and /metrics is written; -race finds nothing and nothing panics.
func TestExperimentShadowSeriesChurn(t *testing.T) {
	r, set, dir := newRepoWithMetrics(t)
	writeModel(t, dir, "m", 1, "m1")
	writeModel(t, dir, "m", 2, "m2")
	if err := r.Load("m", &ModelConfig{VersionPolicy: VersionPolicy{Specific: &SpecificPolicy{Versions: []int64{1, 2}}}}); err != nil {
		t.Fatal(err)
	}
	exps := []*route.Experiment{
		{Name: "e1", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "b", Version: 2, Weight: 1}}},
		{Name: "e1", Arms: []route.Arm{{Name: "a", Version: 1, Weight: 1}, {Name: "c", Version: 9, Weight: 1}}},
		nil,
	}
	shs := []*route.Shadow{{Version: 2, Percent: 100}, {Version: 1, Percent: 50}, nil}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f(i)
			}
		}()
	}
	run(func(i int) { r.SetExperiment("m", exps[i%len(exps)]) })
	run(func(i int) { r.SetShadow("m", shs[i%len(shs)]) })
	run(func(int) { set.WritePrometheus(io.Discard) })
	for range 2 {
		run(func(int) {
			if v, _, err := r.AcquireUnversioned("m", nil); err == nil {
				v.Release()
			}
			if sh := r.Model("m").Shadow(); sh != nil {
				sh.Count(ShadowCompared)
				sh.MaxDiff.Update(0.5)
				sh.Disagreements.Inc()
			}
		})
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
}
