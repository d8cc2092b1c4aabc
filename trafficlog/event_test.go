package trafficlog

import (
	"errors"
	"testing"
)

func TestDecodeRefusesDamage(t *testing.T) {
	rec := AppendRecord(nil, prediction(1))
	var e Event
	if n, err := Decode(rec, &e); err != nil || n != len(rec) {
		t.Fatalf("a whole record: %d, %v", n, err)
	}
	for i := range rec {
		b := append([]byte(nil), rec...)
		b[i] ^= 0x41
		if _, err := Decode(b, &e); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d damaged: %v; want ErrCorrupt", i, err)
		}
	}
	for n := range len(rec) {
		if _, err := Decode(rec[:n], &e); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut to %d bytes: %v; want ErrCorrupt", n, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendRecord(nil, prediction(1)))
	f.Add(AppendRecord(nil, feedback(2)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		n, err := Decode(b, &e)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		again := AppendRecord(nil, &e)
		if string(again) != string(b[:n]) {
			t.Fatalf("re-encoded %x; decoded from %x", again, b[:n])
		}
	})
}
