package cache

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"

	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/infergate/infergate/oip"
)

var model = []oip.TensorMetadata{
	{Name: "a", Datatype: oip.FP32, Shape: []int64{-1, 2}},
	{Name: "b", Datatype: oip.INT64, Shape: []int64{-1}},
}

func tensor(name string, dt oip.DataType, shape []int64, data ...byte) oip.Tensor {
	return oip.Tensor{Name: name, Datatype: dt, Shape: shape, Data: data}
}

func TestAppendKey(t *testing.T) {
	base := []oip.Tensor{
		tensor("a", oip.FP32, []int64{1, 2}, 1, 2, 3, 4, 5, 6, 7, 8),
		tensor("b", oip.INT64, []int64{1}, 9, 0, 0, 0, 0, 0, 0, 0),
	}
	key := AppendKey(nil, 7, base, model)

	// The order of inputs in the request does not matter.
	swapped := []oip.Tensor{base[1], base[0]}
	if got := AppendKey(nil, 7, swapped, model); !bytes.Equal(got, key) {
		t.Fatal("inputs in another order give another key")
	}
	// Everything else does.
	f := func(what string, gen uint64, ins []oip.Tensor) {
		t.Helper()
		if bytes.Equal(AppendKey(nil, gen, ins, model), key) {
			t.Fatalf("%s: same key as the base request", what)
		}
	}
	f("generation", 8, base)
	f("data", 7, []oip.Tensor{tensor("a", oip.FP32, []int64{1, 2}, 1, 2, 3, 4, 5, 6, 7, 9), base[1]})
	f("shape", 7, []oip.Tensor{tensor("a", oip.FP32, []int64{2, 1}, 1, 2, 3, 4, 5, 6, 7, 8), base[1]})
	f("datatype", 7, []oip.Tensor{tensor("a", oip.INT32, []int64{1, 2}, 1, 2, 3, 4, 5, 6, 7, 8), base[1]})
	// Bytes moved from one input to the next must not collide.
	f("boundary", 7, []oip.Tensor{
		tensor("a", oip.FP32, []int64{1, 2}, 1, 2, 3, 4, 5, 6, 7),
		tensor("b", oip.INT64, []int64{1}, 8, 9, 0, 0, 0, 0, 0, 0, 0),
	})
	// Appending reuses dst.
	buf := make([]byte, 0, 256)
	if got := AppendKey(buf, 7, base, model); &got[0] != &buf[:1][0] {
		t.Fatal("AppendKey did not append into dst's capacity")
	}
}

// reserved reserves c, as the gateway does before its first request
// that may use the cache.
func reserved(c *Cache, err error) (*Cache, error) {
	if err == nil {
		err = c.Reserve()
	}
	return c, err
}

// A Cache takes its memory at Reserve, or at the first Get, not at New:
// before it, a Set stores nothing, and a Drop, a Usage, a Wait and a
// Close do nothing; after a Close, neither allocates anything.
func TestCacheReserve(t *testing.T) {
	c, err := New(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	key := []byte("k1")
	outs := []oip.Tensor{tensor("y", oip.FP32, []int64{1, 1}, 1, 2, 3, 4)}
	c.Set(key, outs)
	c.Wait()
	c.Drop(0)
	if u := c.Usage(); u != (Usage{}) {
		t.Fatalf("Usage before Reserve: got %+v; want zeros", u)
	}
	if c.Reserved() {
		t.Fatal("Reserved before Reserve: got true")
	}
	before := heap()
	if err := c.Reserve(); err != nil {
		t.Fatal(err)
	}
	if err := c.Reserve(); err != nil { // a second one does nothing
		t.Fatal(err)
	}
	grew := int64(heap()) - int64(before)
	// A 256 MiB budget's counters: admissionBytes(5,242,880) = 18 MiB
	// and more for ristretto's own.
	if want := admissionBytes(256 << 20 / 512 * 10); grew < want {
		t.Fatalf("heap grew %d bytes at Reserve; want at least the %d of the counters", grew, want)
	}
	if _, ok := c.Get(key); ok {
		t.Fatal("hit for a Set made before Reserve")
	}
	c.Set(key, outs)
	c.Wait()
	if _, ok := c.Get(key); !ok {
		t.Fatal("miss after Reserve, Set and Wait")
	}
	if u := c.Usage(); u.Entries != 1 {
		t.Fatalf("Usage after a Set: got %+v; want 1 entry", u)
	}
	c.Close()

	closed, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if err := closed.Reserve(); err != nil || closed.Reserved() {
		t.Fatalf("Reserve after Close: got %v, reserved %v; want nil, false", err, closed.Reserved())
	}
	if _, ok := closed.Get(key); ok || closed.Reserved() {
		t.Fatalf("Get after Close: got a hit or a reserved cache; want neither")
	}

	// The first Get reserves a cache nothing reserved: a version loaded
	// before the gateway watched the loads.
	lazy, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	if _, ok := lazy.Get(key); ok || !lazy.Reserved() {
		t.Fatalf("first Get: got a hit, or no reservation (%v); want a miss that reserves", lazy.Reserved())
	}
	lazy.Set(key, outs)
	lazy.Wait()
	if _, ok := lazy.Get(key); !ok {
		t.Fatal("miss after the first Get, a Set and Wait")
	}
}

func TestCacheGetSet(t *testing.T) {
	if _, err := New(100); err == nil {
		t.Fatal("a 100-byte cache: want an error")
	}
	c, err := reserved(New(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := []byte("k1")
	outs := []oip.Tensor{tensor("y", oip.FP32, []int64{1, 1}, 1, 2, 3, 4)}
	if _, ok := c.Get(key); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Set(key, outs)
	c.Wait()
	// The entry is a copy: changing the caller's buffers does not reach it.
	outs[0].Data[0] = 99
	outs[0].Shape[0] = 5
	e, ok := c.Get(key)
	if !ok {
		t.Fatal("miss after Set and Wait")
	}
	if got := e.Outputs[0]; got.Name != "y" || got.Data[0] != 1 || got.Shape[0] != 1 {
		t.Fatalf("entry %+v; want the outputs as they were at Set", got)
	}
	if _, ok := c.Get([]byte("k2")); ok {
		t.Fatal("hit for another key")
	}
}

func TestCacheBudget(t *testing.T) {
	c, err := reserved(New(1 << 16))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := []oip.Tensor{tensor("y", oip.UINT8, []int64{1 << 15}, make([]byte, 1<<15)...)}
	for i := range 16 {
		c.Set([]byte{byte(i)}, big)
		c.Wait()
	}
	n := 0
	for i := range 16 {
		if _, ok := c.Get([]byte{byte(i)}); ok {
			n++
		}
	}
	if n > 1 {
		t.Fatalf("%d entries of 32 KiB in a 64 KiB cache; want at most 1", n)
	}
	// Usage says what it holds and what it let go of.
	u := c.Usage()
	if u.Entries != uint64(n) || u.Bytes < uint64(n)<<15 || u.Bytes > 1<<16 || u.Evicted+u.Rejected+u.Dropped+u.Entries != 16 {
		t.Fatalf("usage %+v with %d entries of 32 KiB held; want them counted, and the other %d as evicted, rejected or dropped", u, n, 16-n)
	}
}

func TestCacheUsage(t *testing.T) {
	c, err := reserved(New(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	small := []oip.Tensor{tensor("y", oip.FP32, []int64{1, 1}, 1, 2, 3, 4)}
	for i := range 10 {
		c.Set([]byte{byte(i)}, small)
	}
	c.Wait()
	if u := c.Usage(); u.Entries != 10 || u.Bytes != 10*u.Bytes/u.Entries || u.Bytes < 10*entryOverhead {
		t.Fatalf("usage %+v after 10 small entries; want 10 entries of %d bytes or more each", u, entryOverhead)
	}
}

func TestCacheDrop(t *testing.T) {
	c, err := reserved(New(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	outs := []oip.Tensor{tensor("y", oip.FP32, []int64{1, 1}, 1, 2, 3, 4)}
	// Keys of both kinds for generations 1 and 2.
	keys := func(gen uint64) (tensorKeys, bodyKeys [][]byte) {
		for i := range 20 {
			in := []oip.Tensor{
				tensor("a", oip.FP32, []int64{1, 2}, byte(i), 2, 3, 4, 5, 6, 7, 8),
				tensor("b", oip.INT64, []int64{1}, 9, 0, 0, 0, 0, 0, 0, 0),
			}
			tensorKeys = append(tensorKeys, AppendKey(nil, gen, in, model))
			bodyKeys = append(bodyKeys, AppendBodyKey(nil, gen, -1, []byte{'{', byte(i), '}'}))
		}
		return tensorKeys, bodyKeys
	}
	t1, b1 := keys(1)
	t2, b2 := keys(2)
	for i := range t1 {
		c.Set(t1[i], outs)
		c.SetResponse(b1[i], []byte("{}"), 2)
		c.Set(t2[i], outs)
		c.SetResponse(b2[i], []byte("{}"), 2)
	}
	c.Wait()
	if u := c.Usage(); u.Entries != 80 {
		t.Fatalf("usage %+v after 80 Sets; want 80 entries", u)
	}
	c.Drop(1)
	c.Wait()
	hits := func(keys ...[][]byte) int {
		n := 0
		for _, ks := range keys {
			for _, k := range ks {
				if _, ok := c.Get(k); ok {
					n++
				}
			}
		}
		return n
	}
	if got := hits(t1, b1); got != 0 {
		t.Fatalf("got %d hits of generation 1 after its drop; want 0", got)
	}
	if got := hits(t2, b2); got != 40 {
		t.Fatalf("got %d hits of generation 2 after generation 1's drop; want 40", got)
	}
	if u := c.Usage(); u.Entries != 40 || u.Bytes != 40*u.Bytes/u.Entries {
		t.Fatalf("usage %+v after the drop of 40 of 80 entries; want 40 entries, and their bytes only", u)
	}
	if got := c.keys(); got != 40 {
		t.Fatalf("got %d key hashes kept; want 40, those of generation 2", got)
	}
	// A drop of a generation without entries, or one dropped already,
	// changes nothing.
	c.Drop(1)
	c.Drop(3)
	c.Wait()
	if got := hits(t2, b2); got != 40 {
		t.Fatalf("got %d hits of generation 2; want 40", got)
	}
	c.Drop(2)
	c.Wait()
	if u, k := c.Usage(), c.keys(); u.Entries != 0 || u.Bytes != 0 || k != 0 {
		t.Fatalf("usage %+v and %d key hashes kept after every generation's drop; want none", u, k)
	}
	// After Close, a drop does nothing (a registry's goroutine may call
	// it while the server stops).
	c.Close()
	c.Drop(2)
}

// TestCacheDropChurn checks that the key hashes a Cache keeps are those of
// the entries it holds, whatever the admission policy and evictions did to
// the Sets, concurrent Sets of the same key among them.
func TestCacheDropChurn(t *testing.T) {
	c, err := reserved(New(1 << 16))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	outs := []oip.Tensor{tensor("y", oip.FP32, []int64{1, 64}, make([]byte, 256)...)}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var key []byte
			for i := range 5000 {
				// Four generations; the workers share half their keys.
				gen := uint64(1 + i%4)
				n := i
				if i%2 == 0 {
					n += w << 20
				}
				key = AppendBodyKey(key[:0], gen, -1, binary.LittleEndian.AppendUint32(nil, uint32(n%3000)))
				if i%3 == 0 {
					c.SetResponse(key, outs[0].Data, 2)
				} else {
					c.Set(key, outs)
				}
				c.Get(key)
			}
		})
	}
	wg.Wait()
	c.Wait()
	u := c.Usage()
	if k := c.keys(); uint64(k) != u.Entries {
		t.Fatalf("got %d key hashes kept for %d entries held (usage %+v); want one each", k, u.Entries, u)
	}
	if u.Evicted+u.Rejected < 1000 {
		t.Fatalf("usage %+v: want a churn of evictions and rejections", u)
	}
	for gen := range uint64(5) {
		c.Drop(gen)
	}
	c.Wait()
	if u, k := c.Usage(), c.keys(); u.Entries != 0 || k != 0 {
		t.Fatalf("usage %+v and %d key hashes kept after every generation's drop; want none", u, k)
	}
}

func TestKeyToHash(t *testing.T) {
	f := func(key []byte) {
		t.Helper()
		kh, ch := keyToHash(key)
		if wkh, wch := z.KeyToHash(key); kh != wkh || ch != wch {
			t.Fatalf("keyToHash(%q) = %x, %x; want ristretto's %x, %x", key, kh, ch, wkh, wch)
		}
		if gkh, gch := keyToHash(hashKey(nil, kh, ch)); gkh != kh || gch != ch {
			t.Fatalf("keyToHash of its hash key = %x, %x; want %x, %x", gkh, gch, kh, ch)
		}
	}
	f([]byte("k1"))
	f(AppendBodyKey(nil, 1, -1, []byte("{}")))
	f(AppendBodyKey(nil, 0, 0, make([]byte, 16)))
	f(AppendKey(nil, 7, []oip.Tensor{tensor("a", oip.FP32, []int64{1, 2}, 1, 2, 3, 4, 5, 6, 7, 8), tensor("b", oip.INT64, []int64{1}, 9, 0, 0, 0, 0, 0, 0, 0)}, model))
}
