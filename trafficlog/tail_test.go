package trafficlog

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/oip"
)

// TestTailPosition: the tail of the last maxBytes begins at the first
// record at or after end-maxBytes, inside a segment too, where positions
// are not indexed; records whose float data holds the look of a frame do
// not mislead it.
func TestTailPosition(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SegmentBytes = 1 << 16
	cfg.MaxBytes = 1 << 20
	cfg.MaxRecordBytes = 1 << 14
	l := open(t, cfg)
	for i := range 600 {
		e := prediction(i)
		// Varying sizes; data that repeats small little-endian lengths.
		vals := make([]float32, i%97)
		for j := range vals {
			vals[j] = float32(j % 5)
		}
		e.Inputs = []oip.Tensor{fp32("features", []int64{1, int64(len(vals))}, vals...)}
		if err := l.AppendSync(e); err != nil {
			t.Fatal(err)
		}
	}
	_, poss, end := readAll(t, l, l.Stats().First)
	if l.Stats().Segments < 3 {
		t.Fatalf("%d segments; the test wants the tail to cross some", l.Stats().Segments)
	}
	f := func(maxBytes int64) {
		t.Helper()
		want := end
		for _, p := range poss {
			if p >= end-maxBytes {
				want = p
				break
			}
		}
		got, err := l.TailPosition(maxBytes)
		if err != nil || got != want {
			t.Fatalf("TailPosition(%d) of a log ending at %d: %d, %v; want %d", maxBytes, end, got, err, want)
		}
	}
	for _, n := range []int64{0, 1, 7, 100, 333, 1000, 4096, 65535, 65536, 65537, 100000, end - poss[0], end, 10 * end} {
		f(n)
	}
	for n := int64(1); n < end; n += 997 {
		f(n)
	}
}

// TestTailPositionDamaged: damage where the tail would begin makes it
// begin at the next segment, not inside the damage.
func TestTailPositionDamaged(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SegmentBytes = 1 << 16
	cfg.MaxBytes = 1 << 20
	cfg.MaxRecordBytes = 1 << 14
	dir := cfg.Dir
	l := open(t, cfg)
	for i := range 1000 {
		if err := l.AppendSync(prediction(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.Segments < 2 {
		t.Fatalf("%d segments; want 2 or more", st.Segments)
	}
	second, ok := l.SegmentAfter(st.First)
	if !ok {
		t.Fatal("no second segment")
	}
	// Everything after the first segment's first 100 bytes is damaged.
	name := filepath.Join(dir, segName(st.First))
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(data); i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := l.TailPosition(st.Next - st.First - 200)
	if err != nil || got != second {
		t.Fatalf("TailPosition into damage: %d, %v; want %d, the next segment", got, err, second)
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// TestTailScanBoundedOnFrameLookalikes: a client can put the look of a
// frame header (a length a record may have, the format, a known kind) at
// every few bytes of a tensor's data, each with a checksum that fails.
// Checking each such header read and checksummed its whole claimed
// record, up to MaxRecordBytes (4 MiB by default) per byte position of
// the 1 MiB scanned, so that a node's start could read hundreds of GiB
// before it served. What the scan reads must stay within a few records.
func TestTailScanBoundedOnFrameLookalikes(t *testing.T) {
	const maxRecord, size, window, every = 1 << 20, 4 << 20, 64 << 10, 64
	seg := make([]byte, size)
	for p := 0; p < window; p += every {
		binary.LittleEndian.PutUint32(seg[p:], maxRecord-16) // length
		binary.LittleEndian.PutUint32(seg[p+4:], 0xdeadbeef) // checksum: wrong
		seg[p+frameLen], seg[p+frameLen+1] = formatVersion, byte(Prediction)
	}
	r := &countingReaderAt{r: bytes.NewReader(seg)}
	_, ok := firstFrame(r, seg[:window], 0, size, maxRecord)
	if ok {
		t.Fatalf("firstFrame found a record among %d headers whose checksums fail", window/every)
	}
	if most := int64(2*maxRecord + 2*window); r.n > most {
		t.Fatalf("firstFrame read %d bytes past its window of %d looking for a record among %d look-alike headers; want %d at most", r.n, window, window/every, most)
	}
}
