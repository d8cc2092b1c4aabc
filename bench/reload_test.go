package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestAlterMaxQueue(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := alterMaxQueue(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("alterMaxQueue(%s): got %q, %v; want an error with %q", in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("alterMaxQueue(%s): got %s, %v; want %s", in, got, err, want)
		}
	}
	f(`{"max_queue":256,"instances":1}`, `{"instances":1,"max_queue":257}`, "")
	f(`{"instances":1}`, "", "no max_queue")
	f(`{"max_queue":"many"}`, "", "max_queue in")
	f(`[1]`, "", "cannot unmarshal")
}

// TestReloadEvery checks that --reload-every reloads the model through the
// measured window with the served configuration and the altered one in
// turn, leaves the served one loaded, and flags a run that lost requests,
// however few.
func TestReloadEvery(t *testing.T) {
	run := func(g *fakeGateway, window time.Duration) (Run, []string) {
		t.Helper()
		url := startFakeGateway(t, g)
		cfg := DefaultConfig()
		cfg.Options = shortOptions()
		cfg.Warmup, cfg.Duration = 20*time.Millisecond, window
		cfg.Target = url
		cfg.Concurrency = []int{2}
		cfg.ReloadEvery = 100 * time.Millisecond
		rep, err := Measure(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		return rep.Runs[0], g.loadBodies
	}
	r, bodies := run(&fakeGateway{}, 750*time.Millisecond)
	rl := r.Reloads
	// Loads at 50, 150, ..., 650 ms of the 750 ms window: 7, the last of
	// the altered configuration, and one more that puts the served one
	// back.
	if rl == nil || rl.Loads != 7 || rl.Failures != 0 || rl.EveryMS != 100 || rl.P50US <= 0 || r.Flagged != "" {
		t.Fatalf("run %s: reloads %+v, flagged %q", r.Name, rl, r.Flagged)
	}
	if len(bodies) != 8 {
		t.Fatalf("%d load calls; want 8: %q", len(bodies), bodies)
	}
	for i, b := range bodies {
		want := `max_queue\":257`
		if i%2 == 1 || i == len(bodies)-1 {
			want = `max_queue\":256`
		}
		if !strings.Contains(b, want) {
			t.Fatalf("load %d: %s; want %s", i, b, want)
		}
	}
	var table strings.Builder
	WriteTable(&table, &Report{Runs: []Run{r}})
	if !strings.Contains(table.String(), "reloads gateway/ctr@c2: 7, one every 100ms") {
		t.Fatalf("table:\n%s", table.String())
	}

	// One failed request in hundreds is below the 1% that flags other
	// runs, but a reload must lose none.
	r, _ = run(&fakeGateway{failEvery: 500}, 400*time.Millisecond)
	if r.Errors == 0 || r.Errors*100 > r.Requests || !strings.Contains(r.Flagged, "requests failed while the model reloaded") {
		t.Fatalf("run with %d errors of %d: flagged %q; want flagged for the lost requests", r.Errors, r.Requests, r.Flagged)
	}
}
