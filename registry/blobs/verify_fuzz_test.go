package blobs

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzPutExpectVerify stores bytes under a digest and size that are right
// or mutated, then overwrites the stored blob with other bytes (rot). The
// store takes exactly the blobs whose bytes match both, and Verify keeps
// exactly the blobs whose bytes are still those, removing the others.
func FuzzPutExpectVerify(f *testing.F) {
	f.Add([]byte("model bytes"), []byte("model bytes"), int8(0), uint8(0))
	f.Add([]byte("model bytes"), []byte("model bytez"), int8(0), uint8(0))
	f.Add([]byte("model bytes"), []byte("model byte"), int8(-1), uint8(3))
	f.Add([]byte{}, []byte{0}, int8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data, rot []byte, sizeDelta int8, flip uint8) {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		hex := sum(data)
		want := hex
		if flip != 0 {
			b := []byte(hex)
			b[int(flip)%len(b)] = "0123456789abcdef"[flip%16]
			hex = string(b)
		}
		size := int64(len(data)) + int64(sizeDelta)
		err = s.PutExpect(bytes.NewReader(data), hex, size)
		match := hex == want && size == int64(len(data))
		switch {
		case match && err != nil:
			t.Fatalf("PutExpect of %d bytes under their own digest: %v", len(data), err)
		case !match && !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrSizeMismatch):
			t.Fatalf("PutExpect of %d bytes as %d bytes of sha256:%s: %v; want a mismatch", len(data), size, hex, err)
		case !match && (s.Has(hex) || s.Has(want)):
			t.Fatalf("PutExpect refused (%v), yet stored the blob", err)
		}
		if !match {
			return
		}
		p := s.Path(hex)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, rot, 0o644); err != nil {
			t.Fatal(err)
		}
		err = s.Verify(hex, int64(len(data)))
		if same := bytes.Equal(rot, data); same != (err == nil) || (!same && (!errors.Is(err, ErrDigestMismatch) || s.Has(hex))) {
			t.Fatalf("Verify of %d bytes rotted into %d (same: %t): %v, still stored: %t", len(data), len(rot), same, err, s.Has(hex))
		}
	})
}
