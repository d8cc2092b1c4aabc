// Package shm keeps the system shared-memory regions that clients on the
// server's host register (Triton's system shared memory extension), so
// that a request's tensors can be read from and written to memory the
// client maps too, instead of travelling in the request and the response.
//
// A region names part of a POSIX shared memory object (/dev/shm/KEY),
// mapped read-write and shared once, at registration. A client that
// truncates the object while it is mapped makes the next access fault:
// Read and Write turn the fault into an error, not a crash.
package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/infergate/infergate/oip"
)

// Errors of the table; each is wrapped with the values at fault.
var (
	// ErrInvalid marks a registration or a use whose values cannot work:
	// a bad key, an object too small, a range outside the region.
	ErrInvalid = errors.New("invalid shared memory use")
	// ErrNotFound marks a region name that is not registered.
	ErrNotFound = errors.New("shared memory region not registered")
	// ErrExists marks a region name registered already.
	ErrExists = errors.New("shared memory region registered already")
)

const (
	// MaxRegions bounds the regions registered at once.
	MaxRegions = 1024
	// maxNameLen bounds a region's name.
	maxNameLen = 256
)

// Dir is where the POSIX shared memory objects of Linux live.
const Dir = "/dev/shm"

// Status describes one registered region.
type Status = oip.SharedMemoryStatus

// Table holds the registered regions. Its methods may be called from any
// goroutine.
type Table struct {
	dir string
	// mu protects regions and each region's refs and gone.
	mu      sync.Mutex
	regions map[string]*region
}

// region is one registered region: bytes [offset, offset+size) of the
// object, mapped from its start (mmap needs an offset aligned to pages).
type region struct {
	Status
	mapping []byte
	// refs counts the reads and writes in progress; gone is set once
	// unregistered, and the last of them unmaps it.
	refs int
	gone bool
}

// New returns an empty table over the objects in dir (Dir, or another
// directory in tests).
func New(dir string) *Table {
	return &Table{dir: dir, regions: map[string]*region{}}
}

// Register maps bytes [offset, offset+size) of the object key (its name
// under the table's directory; one leading '/' is dropped, as shm_open
// takes it) and registers them as region name.
func (t *Table) Register(name, key string, offset, size int64) error {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: region name %q: use 1-%d bytes of UTF-8", ErrInvalid, name, maxNameLen)
	}
	file := strings.TrimPrefix(key, "/")
	if file == "" || len(file) > 255 || strings.ContainsAny(file, "/\x00") || file == "." || file == ".." {
		return fmt.Errorf("%w: key %q: give the name of a shared memory object, as shm_open takes it (\"/name\", without other '/')", ErrInvalid, key)
	}
	if offset < 0 || size <= 0 || offset > (1<<62)-size {
		return fmt.Errorf("%w: region %q: offset %d and byte_size %d; byte_size must be at least 1 and neither negative", ErrInvalid, name, offset, size)
	}
	t.mu.Lock()
	_, taken := t.regions[name]
	n := len(t.regions)
	t.mu.Unlock()
	if taken {
		return fmt.Errorf("%w: %q; unregister it first", ErrExists, name)
	}
	if n >= MaxRegions {
		return fmt.Errorf("%w: %d regions are registered, the most this server keeps; unregister some", ErrInvalid, n)
	}

	// O_NOFOLLOW, as shm_open opens: a symbolic link in the directory
	// would reach any file the server's user can open.
	f, err := os.OpenFile(filepath.Join(t.dir, file), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%w: %q is a symbolic link, not a shared memory object", ErrInvalid, key)
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: no shared memory object %q on this host (%s); create it (shm_open) before registering it, on the server's host", ErrInvalid, key, filepath.Join(t.dir, file))
	}
	if err != nil {
		return fmt.Errorf("%w: cannot open shared memory object %q: %v", ErrInvalid, key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: cannot stat shared memory object %q: %v", ErrInvalid, key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %q is not a shared memory object", ErrInvalid, key)
	}
	if end := offset + size; fi.Size() < end {
		return fmt.Errorf("%w: shared memory object %q has %d bytes; offset %d plus byte_size %d needs %d", ErrInvalid, key, fi.Size(), offset, size, end)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(offset+size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("%w: cannot map shared memory object %q: %v", ErrInvalid, key, err)
	}
	r := &region{Status: Status{Name: name, Key: key, Offset: offset, ByteSize: size}, mapping: m}

	t.mu.Lock()
	defer t.mu.Unlock()
	if _, taken := t.regions[name]; taken || len(t.regions) >= MaxRegions {
		syscall.Munmap(m)
		if taken {
			return fmt.Errorf("%w: %q; unregister it first", ErrExists, name)
		}
		return fmt.Errorf("%w: %d regions are registered, the most this server keeps; unregister some", ErrInvalid, len(t.regions))
	}
	t.regions[name] = r
	return nil
}

// Unregister removes region name, or every region when name is empty. A
// name that is not registered is no error: the client wants it gone. A
// region in use is unmapped once its last use ends.
func (t *Table) Unregister(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, r := range t.regions {
		if name != "" && n != name {
			continue
		}
		delete(t.regions, n)
		r.gone = true
		if r.refs == 0 {
			syscall.Munmap(r.mapping)
		}
	}
}

// Status describes region name, or every region (by name) when name is
// empty.
func (t *Table) Status(name string) ([]Status, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if name != "" {
		r := t.regions[name]
		if r == nil {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return []Status{r.Status}, nil
	}
	out := make([]Status, 0, len(t.regions))
	for _, r := range t.regions {
		out = append(out, r.Status)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Usage returns the regions registered and the bytes of their mappings.
func (t *Table) Usage() (regions int, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.regions {
		bytes += int64(len(r.mapping))
	}
	return len(t.regions), bytes
}

// acquire returns region name, counted in use until release.
func (t *Table) acquire(name string) (*region, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.regions[name]
	if r == nil {
		return nil, fmt.Errorf("%w: %q; register it first", ErrNotFound, name)
	}
	r.refs++
	return r, nil
}

func (t *Table) release(r *region) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.refs--; r.refs == 0 && r.gone {
		syscall.Munmap(r.mapping)
	}
}

// span returns bytes [offset, offset+size) of region r, checked.
func (r *region) span(offset, size int64) ([]byte, error) {
	if offset < 0 || size < 0 || offset > r.ByteSize || size > r.ByteSize-offset {
		return nil, fmt.Errorf("%w: shared_memory_offset %d and shared_memory_byte_size %d reach past region %q, of %d bytes", ErrInvalid, offset, size, r.Name, r.ByteSize)
	}
	start := r.Offset + offset
	return r.mapping[start : start+size : start+size], nil
}

// Read appends bytes [offset, offset+size) of region name to dst.
func (t *Table) Read(dst []byte, name string, offset, size int64) ([]byte, error) {
	r, err := t.acquire(name)
	if err != nil {
		return dst, err
	}
	defer t.release(r)
	b, err := r.span(offset, size)
	if err != nil {
		return dst, err
	}
	err = guard(r, func() { dst = append(dst, b...) })
	return dst, err
}

// Write copies data to region name from offset on; size is the room the
// client gave it there, which data must fit. It is WriteAll of one.
func (t *Table) Write(name string, offset, size int64, data []byte) error {
	_, err := t.WriteAll([]Out{{Region: name, Offset: offset, Size: size, Data: data}})
	return err
}

// Out is one write of WriteAll: Data into bytes [Offset, Offset+Size) of
// region Region, from Offset on.
type Out struct {
	Region       string
	Offset, Size int64
	Data         []byte
}

// testHookWrites, when set, runs in WriteAll between the checks and the
// writes.
var testHookWrites func()

// WriteAll makes the writes of outs, all of them or none: it holds every
// region they name and checks every write before it makes one, so that
// neither a write that cannot be made nor an unregister meanwhile leaves
// some written and others not (an unregistered region is written all the
// same, as a read in progress reads it). Only an object truncated under
// its region between two writes can still fail a later one, its fault an
// error. It returns the index in outs of the write that failed, with the
// error.
func (t *Table) WriteAll(outs []Out) (int, error) {
	var held [4]*region
	rs := held[:0]
	defer func() {
		for _, r := range rs {
			t.release(r)
		}
	}()
	for i := range outs {
		o := &outs[i]
		r, err := t.acquire(o.Region)
		if err != nil {
			return i, err
		}
		rs = append(rs, r)
		if _, err := r.room(o.Offset, o.Size, len(o.Data)); err != nil {
			return i, err
		}
	}
	if testHookWrites != nil {
		testHookWrites()
	}
	for i := range outs {
		o := &outs[i]
		b, _ := rs[i].room(o.Offset, o.Size, len(o.Data)) // checked above
		if err := guard(rs[i], func() { copy(b, o.Data) }); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// room returns bytes [offset, offset+size) of region r, checked, to
// which n bytes are to be written.
func (r *region) room(offset, size int64, n int) ([]byte, error) {
	b, err := r.span(offset, size)
	if err != nil {
		return nil, err
	}
	if int64(n) > size {
		return nil, fmt.Errorf("%w: the output has %d bytes but shared_memory_byte_size gives it %d in region %q", ErrInvalid, n, size, r.Name)
	}
	return b, nil
}

// guard runs f, which touches r's mapping, turning a memory fault (the
// object truncated under the mapping) into an error.
func guard(r *region, f func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: region %q (object %q) faulted: was the object truncated? Register it again once it is as large as the region", ErrInvalid, r.Name, r.Key)
		}
	}()
	f()
	return nil
}

// Close unregisters every region.
func (t *Table) Close() { t.Unregister("") }
