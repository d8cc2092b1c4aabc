package trafficlog

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/infergate/infergate/oip"
)

// TestEventJSONEveryDatatype: every line AppendJSON writes is valid
// JSON and carries the id, arm and unit back exactly, for each datatype
// and for strings with quotes, control characters, U+2028 and
// backslashes.
func TestEventJSONEveryDatatype(t *testing.T) {
	bytesElems := func(ss ...string) []byte {
		var b []byte
		for _, s := range ss {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
		return b
	}
	u64 := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	weird := "q\"uo\\te\n\t\x00\x1f\u2028</script>é"
	ts := []oip.Tensor{
		{Name: "b", Datatype: oip.BYTES, Shape: []int64{3}, Data: bytesElems("plain", weird, "")},
		{Name: "h", Datatype: oip.FP16, Shape: []int64{4}, Data: []byte{0x00, 0x3c, 0x00, 0x7c, 0x00, 0xfc, 0x01, 0x7e}}, // 1, +Inf, -Inf, NaN
		{Name: "t", Datatype: oip.BOOL, Shape: []int64{2}, Data: []byte{1, 0}},
		{Name: "i", Datatype: oip.INT64, Shape: []int64{2}, Data: u64(1<<63, 1<<62+1)},
		{Name: "f", Datatype: oip.FP32, Shape: []int64{1}, Data: []byte{0, 0, 0xc0, 0x7f}}, // NaN
	}
	e := &Event{Kind: Prediction, Time: time.Unix(1, 2), ID: weird, Model: "m", Version: 3, Arm: weird, Unit: weird, Inputs: ts, Outputs: ts}
	line := AppendJSON(nil, 42, e)
	if !json.Valid(line) {
		t.Fatalf("not JSON: %s", line)
	}
	var got struct {
		ID, Arm, Unit string
		Inputs        []struct {
			Datatype string
			Data     []any
		}
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != weird || got.Arm != weird || got.Unit != weird || len(got.Inputs) != len(ts) || got.Inputs[0].Data[1] != weird {
		t.Fatalf("round trip: %+v\nline %s", got, line)
	}
	fb := AppendJSON(nil, 0, &Event{Kind: Feedback, ID: weird, Model: "m", HasLabel: true, Label: -0.5, HasReward: true, Reward: 1e-300})
	if !json.Valid(fb) {
		t.Fatalf("feedback not JSON: %s", fb)
	}
	// Without a position (a Kafka topic's events have none), none is
	// written.
	sh := AppendJSON(nil, -1, &Event{Kind: Shadow, ID: "a", Model: "m", Version: 3, Outputs: ts[:1]})
	var m map[string]any
	if err := json.Unmarshal(sh, &m); err != nil || m["position"] != nil || m["kind"] != "shadow" || m["version"] != 3.0 {
		t.Fatalf("shadow line %s: %v; want kind shadow, version 3, no position", sh, err)
	}
}
