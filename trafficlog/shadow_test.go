package trafficlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/infergate/infergate/oip"
)

// TestShadowEventsAndKinds: a Shadow event (outputs only) reads back as
// written, after a restart, and counts under its own kind; an event of a
// kind the log does not know is refused before it is written.
func TestShadowEventsAndKinds(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	l := open(t, cfg)
	sh := &Event{Kind: Shadow, Time: time.Unix(1700000002, 5).UTC(), ID: "req-1", Model: "ranker", Version: 3,
		Outputs: []oip.Tensor{fp32("score", []int64{1, 1}, 0.75)}}
	want := []*Event{prediction(1), sh, feedback(1)}
	if err := l.AppendSync(want...); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{0, 4, 255} {
		err := l.Append(&Event{Kind: k, ID: "x"})
		if !errors.Is(err, ErrUnknownKind) {
			t.Fatalf("Append of kind %d: %v; want ErrUnknownKind", k, err)
		}
	}
	var sb strings.Builder
	cfg.Metrics.WritePrometheus(&sb)
	for _, k := range []string{"prediction", "feedback", "shadow"} {
		if line := fmt.Sprintf(`infergate_traffic_events_total{kind=%q} 1`, k); !strings.Contains(sb.String(), line+"\n") {
			t.Fatalf("metrics lack %q:\n%s", line, sb.String())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = metrics.NewSet()
	l = open(t, cfg)
	got, _, _ := readAll(t, l, 0)
	if len(got) != len(want) {
		t.Fatalf("read %d events; want %d", len(got), len(want))
	}
	for i := range got {
		sameEvent(t, got[i], want[i])
	}
	if got[1].Kind.String() != "shadow" {
		t.Fatalf("kind %q; want shadow", got[1].Kind)
	}
}
