package cache

import (
	"bytes"
	"testing"

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

func TestCacheGetSet(t *testing.T) {
	if _, err := New(100); err == nil {
		t.Fatal("a 100-byte cache: want an error")
	}
	c, err := New(1 << 20)
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
	c, err := New(1 << 16)
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
	c, err := New(1 << 20)
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
