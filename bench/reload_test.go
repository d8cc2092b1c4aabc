package bench

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
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

// TestReloaderSchedule checks, on synctest's clock, when the reloads
// happen, which configuration each loads, that a slow load delays the
// next and none starts after the window, and when restore must load the
// served configuration again.
func TestReloaderSchedule(t *testing.T) {
	f := func(window, took time.Duration, failServed bool, wantAt []time.Duration, wantRestore bool) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var at []time.Duration
			var configs []string
			p := &reloader{model: "m", configs: [2]string{"served", "altered"}, interval: 100 * time.Millisecond, clean: true}
			running := true
			p.load = func(c string) error {
				at = append(at, time.Since(start))
				configs = append(configs, c)
				time.Sleep(took)
				if failServed && running && c == "served" {
					return errors.New("refused")
				}
				return nil
			}
			p.run(make(chan struct{}), start, start.Add(window))
			running = false
			if fmt.Sprint(at) != fmt.Sprint(wantAt) {
				t.Fatalf("loads at %v; want %v", at, wantAt)
			}
			for i, c := range configs {
				if want := [2]string{"altered", "served"}[i%2]; c != want {
					t.Fatalf("load %d: %s; want %s", i, c, want)
				}
			}
			n := len(configs)
			if err := p.restore(); err != nil {
				t.Fatal(err)
			}
			if restored := len(configs) > n; restored != wantRestore || (restored && configs[n] != "served") {
				t.Fatalf("restore loaded %v; want a load of served: %v", configs[n:], wantRestore)
			}
			st := p.stats()
			if st.Loads != int64(len(wantAt)) || (failServed && st.Failures == 0) || (!failServed && st.Failures != 0) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	// Every 100 ms from 50 ms; seven in 750 ms, the last one altered.
	f(750*time.Millisecond, time.Millisecond, false, ms(50, 150, 250, 350, 450, 550, 650), true)
	// Loads of 250 ms: each starts when the one before ends, and the one
	// that would start at 800 ms, past the window, does not.
	f(750*time.Millisecond, 250*time.Millisecond, false, ms(50, 300, 550), true)
	// Six in 650 ms leave the served configuration loaded last; but had
	// that load failed, the gateway might serve either.
	f(650*time.Millisecond, time.Millisecond, false, ms(50, 150, 250, 350, 450, 550), false)
	f(650*time.Millisecond, time.Millisecond, true, ms(50, 150, 250, 350, 450, 550), true)
}

// TestReloadEvery checks --reload-every against a gateway: the model is
// reloaded through the window with the served and the altered
// configuration in turn, is left with the served one, and a run that lost
// requests, however few, is flagged.
func TestReloadEvery(t *testing.T) {
	run := func(g *fakeGateway, window time.Duration) (Run, []string) {
		t.Helper()
		rep := measureFake(t, g, func(cfg *Config) {
			cfg.Warmup, cfg.Duration = 20*time.Millisecond, window
			cfg.ReloadEvery = 100 * time.Millisecond
		})
		g.mu.Lock()
		defer g.mu.Unlock()
		return rep.Runs[0], g.loadBodies
	}
	r, bodies := run(&fakeGateway{}, 750*time.Millisecond)
	rl := r.Reloads
	// Up to seven loads in the window (at 50, 150, ... 650 ms), fewer if
	// this machine stalls, then one that puts the served configuration
	// back if the last was the altered one.
	if rl == nil || rl.Loads < 3 || rl.Failures != 0 || rl.EveryMS != 100 || rl.P50US <= 0 || r.Flagged != "" {
		t.Fatalf("run %s: reloads %+v, flagged %q", r.Name, rl, r.Flagged)
	}
	if want := rl.Loads + rl.Loads%2; int64(len(bodies)) != want {
		t.Fatalf("%d load calls after %d reloads; want %d: %q", len(bodies), rl.Loads, want, bodies)
	}
	for i, b := range bodies {
		want := [2]string{`max_queue\":257`, `max_queue\":256`}[i%2]
		if !strings.Contains(b, want) {
			t.Fatalf("load %d: %s; want %s", i, b, want)
		}
	}
	var table strings.Builder
	WriteTable(&table, &Report{Runs: []Run{r}})
	if want := fmt.Sprintf("reloads gateway/ctr@c2: %d, one every 100ms", rl.Loads); !strings.Contains(table.String(), want) {
		t.Fatalf("table lacks %q:\n%s", want, table.String())
	}

	// One failed request in 200 is below the 1% that flags other runs,
	// but a reload must lose none.
	r, _ = run(&fakeGateway{failEvery: 200}, 400*time.Millisecond)
	if r.Errors == 0 || r.Errors*100 > r.Requests || !strings.Contains(r.Flagged, "requests failed while the model reloaded") {
		t.Fatalf("run with %d errors of %d: flagged %q; want flagged for the lost requests", r.Errors, r.Requests, r.Flagged)
	}
}

// The instance count comes from infergate's instances or, as infergate's
// view and Triton give it, from instance_group.
func TestParseServedConfigInstances(t *testing.T) {
	f := func(body string, want int) {
		t.Helper()
		sc := parseServedConfig([]byte(body))
		if sc == nil || sc.Instances != want {
			t.Fatalf("%s: got %+v; want %d instances", body, sc, want)
		}
	}
	f(`{"instances":3}`, 3)
	f(`{"instance_group":[{"count":2,"kind":"KIND_CPU"}]}`, 2)
	f(`{"instance_group":[{"count":2},{"count":3}]}`, 5)
	f(`{"instance_group":[{"kind":"KIND_GPU"}]}`, 1)
	f(`{}`, 0)
}
