package route

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzExperiment decodes mutated experiment bodies (PUT .../experiment)
// as strictly as the admin API does. A valid experiment survives a JSON
// round trip and Clone equal, prints, and assigns every unit to an arm
// of positive weight, the same arm each time.
func FuzzExperiment(f *testing.F) {
	f.Add([]byte(`{"name":"ranking","arms":[{"name":"control","version":1,"weight":90},{"name":"treatment","version":2,"weight":10}]}`), []byte("user-7"))
	f.Add([]byte(`{"name":"aa","salt":"s","arms":[{"name":"a","version":1,"weight":0},{"name":"b","version":1,"weight":1000000}]}`), []byte(""))
	f.Add([]byte(`{"name":"x","arms":[]}`), []byte("u"))
	f.Fuzz(func(t *testing.T, body, unit []byte) {
		var e Experiment
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&e) != nil || e.Validate() != nil {
			return
		}
		// The admin API ignores a client's phase, as here.
		e.Phase, e.Started = 0, time.Time{}
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", e, err)
		}
		var again Experiment
		if err := json.Unmarshal(b, &again); err != nil || !again.Equal(&e) {
			t.Fatalf("round trip of %s: got %+v, %v; want %+v", b, again, err, e)
		}
		if c := e.Clone(); !c.Equal(&e) || !c.SameSplit(&e) {
			t.Fatalf("Clone: got %+v; want %+v", c, e)
		}
		_ = e.String()
		if len(unit) > MaxUnitLen {
			unit = unit[:MaxUnitLen]
		}
		i := e.Assign(unit)
		if i < 0 || i >= len(e.Arms) || e.Arms[i].Weight == 0 {
			t.Fatalf("Assign(%q) = %d; want an arm of positive weight of %+v", unit, i, e.Arms)
		}
		if len(unit) > 0 {
			if j := e.Assign(unit); j != i {
				t.Fatalf("Assign(%q) = %d, then %d", unit, i, j)
			}
		}
	})
}
