package gateway

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/testenv"
)

// When a trace count runs out, the traces taken before its last one that
// are still being recorded (their requests ran at the same time) are
// written as soon as they are: the file holds every trace the count
// allowed, not only those recorded before the last one.
func TestTraceCountWritesTracesRecordedAfterItsLast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTracer(TraceConfig{File: file, Level: TraceTimestamps, Rate: 1, Count: 2}, metrics.NewSet(), t.Logf)
	defer tr.close()
	first, ok1 := tr.take("m")
	second, ok2 := tr.take("m")
	if _, ok := tr.take("m"); !ok1 || !ok2 || ok {
		t.Fatalf("take: ok %v %v, then %v; want two traces, then none", ok1, ok2, ok)
	}
	at := time.Now()
	// The second request's answer was ready first.
	tr.record(&traceEntry{id: second, model: "m", version: "1", start: at, end: at})
	tr.record(&traceEntry{id: first, model: "m", version: "1", start: at, end: at})
	testenv.CheckFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var got []map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", file, err, b)
		}
		if len(got) != 4 {
			return fmt.Errorf("with the count run out (and no shutdown) the file holds %d objects; want 4, both traces", len(got))
		}
		return nil
	})
}
