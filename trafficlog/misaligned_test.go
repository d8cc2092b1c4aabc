package trafficlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/oip"
)

// TestReadInsideZeroDataIsNoRecord: a position inside a tensor's zero
// bytes gives an error wrapping ErrNotRecord, as any position inside a
// record does (found by a reviewing helper: eight zero bytes read as a
// record of length 0, whose CRC-32C is 0, and Read passed it on).
func TestReadInsideZeroDataIsNoRecord(t *testing.T) {
	dir := t.TempDir()
	l := open(t, testConfig(t, dir))
	e := prediction(0)
	e.Inputs = []oip.Tensor{fp32("features", []int64{1, 16}, make([]float32, 16)...)} // 64 zero bytes
	if err := l.AppendSync(e); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, segName(0)))
	if err != nil {
		t.Fatal(err)
	}
	inside := int64(bytes.Index(data, make([]byte, 16)))
	if inside <= 0 {
		t.Fatalf("no zero run in the record")
	}
	var got [][]byte
	next, err := l.Read(inside, 1, func(pos int64, rec []byte) bool {
		got = append(got, bytes.Clone(rec))
		return true
	})
	if !errors.Is(err, ErrNotRecord) || len(got) != 0 {
		var dec error
		if len(got) > 0 {
			var ev Event
			_, dec = Decode(got[0], &ev)
		}
		t.Fatalf("Read from position %d, inside the record at 0: err %v, next %d, fn got %d record(s) %x (Decode: %v); want ErrNotRecord and no record",
			inside, err, next, len(got), got, dec)
	}
}
