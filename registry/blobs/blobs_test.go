package blobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustPut(t *testing.T, s *Store, data []byte) string {
	t.Helper()
	h, n, err := s.Put(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put: got size %d; want %d", n, len(data))
	}
	return h
}

// readBlob returns the bytes that s.Open gives for h.
func readBlob(t *testing.T, s *Store, h string) []byte {
	t.Helper()
	f, size, err := s.Open(h)
	if err != nil {
		t.Fatalf("Open(%s): %v", h, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", h, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("Open(%s): got size %d; want %d", h, size, len(b))
	}
	return b
}

// checkBlobs fails unless s lists exactly want and holds no temp file.
func checkBlobs(t *testing.T, s *Store, want ...string) {
	t.Helper()
	got, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List: got %v; want %v", got, want)
	}
	checkDir(t, filepath.Join(s.Dir(), "tmp"), nil)
}

// checkDir fails unless dir holds exactly the names in want.
func checkDir(t *testing.T, dir string, want []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v; want %v", dir, got, want)
	}
}

func TestParseDigest(t *testing.T) {
	h := strings.Repeat("0123456789abcdef", 4)

	f := func(s, want string) {
		t.Helper()
		got, err := ParseDigest(s)
		if err != nil {
			t.Fatalf("ParseDigest(%q): %v", s, err)
		}
		if got != want {
			t.Fatalf("ParseDigest(%q): got %q; want %q", s, got, want)
		}
	}
	f("sha256:"+h, h)
	f(h, h)

	bad := func(s string) {
		t.Helper()
		if _, err := ParseDigest(s); !errors.Is(err, ErrBadDigest) {
			t.Fatalf("ParseDigest(%q): got %v; want %v", s, err, ErrBadDigest)
		}
	}
	bad("")
	bad("sha256:")
	bad(h[:63])
	bad(h + "0")
	bad(strings.ToUpper(h))
	bad("SHA256:" + h)
	bad("sha512:" + h)
	bad("sha256:sha256:" + h)
	bad(" " + h[1:])
	bad(h[:63] + "g")
	bad("../../etc/passwd")
	bad(h[:60] + "/../")
}

func TestPutRoundTrip(t *testing.T) {
	s := openStore(t)
	data := []byte("ONNX model bytes")
	h, n, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if h != sum(data) || n != int64(len(data)) {
		t.Fatalf("Put: got %s, %d; want %s, %d", h, n, sum(data), len(data))
	}
	if !s.Has(h) {
		t.Fatalf("Has(%s): got false; want true", h)
	}
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Fatalf("Open(%s): got %q; want %q", h, got, data)
	}

	// Again, at exactly the limit: same digest, one blob.
	if h2, _, err := s.Put(bytes.NewReader(data), int64(len(data))); err != nil || h2 != h {
		t.Fatalf("second Put: got %s, %v; want %s, nil", h2, err, h)
	}
	empty := mustPut(t, s, nil)
	checkBlobs(t, s, h, empty)
}

func TestPutTooLarge(t *testing.T) {
	s := openStore(t)
	_, _, err := s.Put(bytes.NewReader(make([]byte, 11)), 10)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put: got %v; want %v", err, ErrTooLarge)
	}
	checkBlobs(t, s)
}

func TestPutExpect(t *testing.T) {
	data := []byte("ONNX model bytes")
	h, size := sum(data), int64(len(data))
	errRead := errors.New("connection reset")

	s := openStore(t)
	f := func(name string, r io.Reader, want error) {
		t.Helper()
		if err := s.PutExpect(r, h, size); !errors.Is(err, want) {
			t.Fatalf("%s: got %v; want %v", name, err, want)
		}
		if s.Has(h) {
			t.Fatalf("%s: Has(%s): got true; want false", name, h)
		}
		checkBlobs(t, s)
	}
	f("wrong digest", bytes.NewReader(bytes.ToUpper(data)), ErrDigestMismatch)
	f("short", bytes.NewReader(data[:size-1]), ErrSizeMismatch)
	f("empty", bytes.NewReader(nil), ErrSizeMismatch)
	f("long", bytes.NewReader(append(data, '!')), ErrSizeMismatch)
	f("read error", io.MultiReader(bytes.NewReader(data[:5]), iotest.ErrReader(errRead)), errRead)
	f("read error at end", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errRead)), errRead)

	if err := s.PutExpect(iotest.OneByteReader(bytes.NewReader(data)), h, size); err != nil {
		t.Fatalf("PutExpect: %v", err)
	}
	if got := readBlob(t, s, h); !bytes.Equal(got, data) {
		t.Fatalf("Open(%s): got %q; want %q", h, got, data)
	}
	checkBlobs(t, s, h)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless yields 'x' forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestPutExpectReadsAtMostSizePlusOne(t *testing.T) {
	s := openStore(t)
	const size = 100_000
	h := sum(bytes.Repeat([]byte("x"), size))
	r := &countingReader{r: endless{}}
	if err := s.PutExpect(r, h, size); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("PutExpect: got %v; want %v", err, ErrSizeMismatch)
	}
	if r.n > size+1 {
		t.Fatalf("PutExpect read %d bytes; want at most %d", r.n, size+1)
	}
	checkBlobs(t, s)
}

func TestVerify(t *testing.T) {
	s := openStore(t)
	data := bytes.Repeat([]byte("weights "), 1000)
	size := int64(len(data))

	h := mustPut(t, s, data)
	if err := s.Verify(h, size); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	f := func(name string, corrupt func([]byte) []byte) {
		t.Helper()
		h := mustPut(t, s, data)
		if err := os.Chmod(s.Path(h), 0o644); err != nil { // blobs are read-only
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(s.Path(h), corrupt(bytes.Clone(data)), 0o644); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.Verify(h, size); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("%s: Verify: got %v; want %v", name, err, ErrDigestMismatch)
		}
		if s.Has(h) {
			t.Fatalf("%s: Has(%s) after Verify: got true; want false", name, h)
		}
		checkBlobs(t, s)
	}
	f("flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	f("truncated", func(b []byte) []byte { return b[:len(b)-1] })
	f("empty", func([]byte) []byte { return nil })

	if err := s.Verify(h, size); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify absent: got %v; want %v", err, ErrNotFound)
	}
}

func TestOpenSweepsTemps(t *testing.T) {
	s := openStore(t)
	h := mustPut(t, s, []byte("kept"))
	tmp := filepath.Join(s.Dir(), "tmp")
	for _, name := range []string{"put-123", "put-456"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("half a blob"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(s.Dir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	checkBlobs(t, s, h)
}

func TestListRemove(t *testing.T) {
	s := openStore(t)
	a := mustPut(t, s, []byte("a"))
	b := mustPut(t, s, []byte("b"))
	c := mustPut(t, s, []byte("c"))
	checkBlobs(t, s, a, b, c)

	for range 2 { // absent the second time
		if err := s.Remove(b); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	checkBlobs(t, s, a, c)
	if _, _, err := s.Open(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open removed: got %v; want %v", err, ErrNotFound)
	}
}

func TestLink(t *testing.T) {
	f := func(t *testing.T, hardLink bool) {
		s := openStore(t)
		v1, v2 := []byte("model v1"), []byte("model v2, longer")
		h1, h2 := mustPut(t, s, v1), mustPut(t, s, v2)
		dir := filepath.Join(t.TempDir(), "models", "resnet", "1")
		path := filepath.Join(dir, "model.onnx")

		check := func(h string, want []byte) {
			t.Helper()
			if err := s.Link(h, path); err != nil {
				t.Fatalf("Link: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("linked file: got %q; want %q", got, want)
			}
			lfi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			bfi, err := os.Stat(s.Path(h))
			if err != nil {
				t.Fatal(err)
			}
			if os.SameFile(lfi, bfi) != hardLink {
				t.Fatalf("same file as the blob: got %v; want %v", !hardLink, hardLink)
			}
			checkDir(t, dir, []string{"model.onnx"})
		}
		check(h1, v1) // creates the parent directories
		check(h2, v2) // replaces the file

		if err := s.Remove(h2); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v2) {
			t.Fatalf("after Remove: got %q, %v; want %q", got, err, v2)
		}
		if err := s.Link(h2, path); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Link removed blob: got %v; want %v", err, ErrNotFound)
		}
	}
	t.Run("hard link", func(t *testing.T) { f(t, true) })
	t.Run("copy", func(t *testing.T) {
		linkFile = func(oldname, newname string) error {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EXDEV}
		}
		t.Cleanup(func() { linkFile = os.Link })
		f(t, false)
	})
}

func TestConcurrentPutExpect(t *testing.T) {
	s := openStore(t)
	data := bytes.Repeat([]byte("concurrent weights "), 10_000)
	h, size := sum(data), int64(len(data))

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.PutExpect(iotest.HalfReader(bytes.NewReader(data)), h, size)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PutExpect %d: %v", i, err)
		}
	}
	if err := s.Verify(h, size); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	checkBlobs(t, s, h)
}

func TestBadHex(t *testing.T) {
	s := openStore(t)
	good := mustPut(t, s, []byte("present"))
	path := filepath.Join(t.TempDir(), "m", "1", "model.onnx")

	// ParseDigest has its own cases in TestParseDigest.
	f := func(h string) {
		t.Helper()
		check := func(method string, err error) {
			t.Helper()
			if !errors.Is(err, ErrBadDigest) {
				t.Fatalf("%s(%q): got %v; want %v", method, h, err, ErrBadDigest)
			}
		}
		check("PutExpect", s.PutExpect(strings.NewReader("present"), h, 7))
		_, _, err := s.Open(h)
		check("Open", err)
		check("Verify", s.Verify(h, 7))
		check("Remove", s.Remove(h))
		check("Link", s.Link(h, path))
		if s.Has(h) {
			t.Fatalf("Has(%q): got true; want false", h)
		}
		if p := s.Path(h); p != "" {
			t.Fatalf("Path(%q): got %q; want \"\"", h, p)
		}
	}
	if strings.ToUpper(good) == good {
		t.Fatalf("BUG: test blob's hex %s has no letters", good)
	}
	f(strings.ToUpper(good))
	f(good[:63])
	f(good + "0")
	f("sha256:" + good) // methods take the bare hex
	f("../../etc/passwd")
	f("../sha256/" + good[:54])
	f(strings.Repeat(".", 64))
	f("")

	checkBlobs(t, s, good)
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Link with a bad hex created %s: %v", filepath.Dir(path), err)
	}
}
