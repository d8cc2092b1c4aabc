// Package cache is infergate's response cache: one byte budget for the
// node, shared by the models that enable it, over ristretto (TinyLFU
// admission, sampled LFU eviction).
//
// A key is the version's generation (unique per load, so a reloaded file
// never answers from its predecessor's entries) and every input's name,
// datatype, shape and bytes, in the model's input order. ristretto keeps
// two independent 64-bit hashes of it, so a false hit needs both to
// collide. An entry is an immutable copy of the outputs of a successful
// inference; requests that hit it build their own response (their own id,
// output selection and encoding) from it.
//
// A second kind of key, the request body itself (AppendBodyKey), maps to
// the encoded response it got: a byte-identical request, common when
// clients send no id, is answered without decoding anything.
package cache

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/infergate/infergate/oip"
)

// Entry is a cached inference result. It is immutable: readers must not
// modify it. A tensor key's entry holds Outputs; a body key's entry holds
// the whole encoded Response.
type Entry struct {
	Outputs []oip.Tensor

	// Response is the encoded body answered to a request body, and the
	// length of its JSON part (JSONLen < len(Response) when binary
	// outputs follow it).
	Response []byte
	JSONLen  int
}

// Cache maps request keys to Entries within a byte budget. Its methods
// are safe for concurrent use. A Set is applied asynchronously and may be
// dropped under contention or by the admission policy.
type Cache struct {
	rc *ristretto.Cache[[]byte, *Entry]
}

// entryOverhead approximates the bytes an entry costs beyond its data:
// the Entry, its tensor headers and ristretto's bookkeeping.
const entryOverhead = 256

// New returns a Cache that holds at most maxBytes: its entries and the
// counters its admission policy keeps, which it allocates at once (about
// a tenth of maxBytes). ristretto's own buffers, about 300 KB whatever
// the budget, are not counted.
func New(maxBytes int64) (*Cache, error) {
	if err := CheckBudget(maxBytes); err != nil {
		return nil, err
	}
	// About ten counters per entry expected, as ristretto advises; an
	// entry of a scoring model costs 400 bytes or more (entryOverhead,
	// its names and shapes, its data).
	counters := max(maxBytes/512*10, 1<<12)
	rc, err := ristretto.NewCache(&ristretto.Config[[]byte, *Entry]{
		NumCounters: counters,
		MaxCost:     maxBytes - admissionBytes(counters),
		BufferItems: 64,
		// For Usage: sharded counters, a few atomic adds a call.
		Metrics: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the response cache: %w", err)
	}
	return &Cache{rc: rc}, nil
}

// maxUnknownMemory bounds the budget where the machine's memory is not
// known: far above any machine's, far below where the counters' sizes
// would overflow.
const maxUnknownMemory = 1 << 50

// CheckBudget reports what is wrong with maxBytes as the budget of a
// Cache: less than 64 KiB, or more than the machine's memory, which no
// cache can hold and whose tenth New would allocate at once (a budget
// near 2^63 would not even be computed right).
func CheckBudget(maxBytes int64) error {
	if maxBytes < 1<<16 {
		return fmt.Errorf("response cache of %d bytes is too small; use at least 64 KiB, or 0 to disable it", maxBytes)
	}
	limit, what := physicalMemory(), "this machine's memory"
	if limit == 0 || limit > maxUnknownMemory {
		limit, what = maxUnknownMemory, "any machine's memory"
	}
	if uint64(maxBytes) > limit {
		return fmt.Errorf("response cache of %d bytes is more than %s (%d bytes); give it a share of that, or 0 to disable it", maxBytes, what, limit)
	}
	return nil
}

// admissionBytes is what ristretto allocates for its admission policy's
// counters: a count-min sketch of four rows of 4-bit counters, their
// number rounded up to a power of two, and a bloom filter of 9.6 bits a
// counter (1% false positives), rounded up to a power of two too.
func admissionBytes(counters int64) int64 {
	return 2*nextPow2(counters) + nextPow2(counters*96/10)/8
}

// nextPow2 returns the least power of two at least n (n ≥ 1).
func nextPow2(n int64) int64 { return 1 << bits.Len64(uint64(n-1)) }

// Usage is what a Cache holds and has let go of since it was made.
type Usage struct {
	// Bytes and Entries are held now: the entries' costs, as Set counts
	// them, and their number.
	Bytes, Entries uint64
	// Evicted is the entries evicted to make room for others; Rejected
	// the ones the admission policy refused (less often asked for than
	// those they would have evicted); Dropped the Sets lost under
	// contention.
	Evicted, Rejected, Dropped uint64
}

// Usage returns what c holds and has let go of.
func (c *Cache) Usage() Usage {
	m := c.rc.Metrics
	return Usage{
		Bytes:    m.CostAdded() - m.CostEvicted(),
		Entries:  m.KeysAdded() - m.KeysEvicted(),
		Evicted:  m.KeysEvicted(),
		Rejected: m.SetsRejected(),
		Dropped:  m.SetsDropped(),
	}
}

// Get returns the entry stored under key.
func (c *Cache) Get(key []byte) (*Entry, bool) {
	return c.rc.Get(key)
}

// Set stores a copy of outputs under key.
func (c *Cache) Set(key []byte, outputs []oip.Tensor) {
	e := &Entry{Outputs: make([]oip.Tensor, len(outputs))}
	cost := int64(entryOverhead)
	for i := range outputs {
		o := &outputs[i]
		e.Outputs[i] = oip.Tensor{
			Name:     o.Name,
			Datatype: o.Datatype,
			Shape:    append([]int64(nil), o.Shape...),
			Data:     append([]byte(nil), o.Data...),
		}
		// What the copies take: the allocator rounds them up.
		t := &e.Outputs[i]
		cost += int64(cap(t.Data) + 8*cap(t.Shape) + len(o.Name) + 64)
	}
	c.rc.Set(key, e, cost)
}

// SetResponse stores a copy of an encoded response under a body key
// (AppendBodyKey).
func (c *Cache) SetResponse(key, response []byte, jsonLen int) {
	e := &Entry{Response: append([]byte(nil), response...), JSONLen: jsonLen}
	c.rc.Set(key, e, int64(entryOverhead+cap(e.Response)))
}

// Wait blocks until the Sets issued so far are applied; for tests.
func (c *Cache) Wait() { c.rc.Wait() }

// Close stops the cache's goroutines; it must not be used after.
func (c *Cache) Close() { c.rc.Close() }

// AppendBodyKey appends the key of a request body to dst: generation, a
// zero byte (a tensor key has a non-zero name length there, so the two
// kinds never meet), the binary header length (-1 for none) and the body
// bytes as received (decompressed). Byte-identical requests, the same id
// and parameters included, get byte-identical answers, so its entry is
// the whole response and a hit needs no decoding.
func AppendBodyKey(dst []byte, generation uint64, headerLen int, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, generation)
	dst = append(dst, 0)
	dst = binary.AppendVarint(dst, int64(headerLen))
	return append(dst, body...)
}

// AppendKey appends the key of a request to dst: generation, then each
// input in the order of model (its metadata), with its name, datatype,
// shape and data, each length-prefixed so that no two requests share a
// key. Inputs must hold every model input (the gateway checked).
func AppendKey(dst []byte, generation uint64, inputs []oip.Tensor, model []oip.TensorMetadata) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, generation)
	for i := range model {
		name := model[i].Name
		for j := range inputs {
			in := &inputs[j]
			if in.Name != name {
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(len(name)))
			dst = append(dst, name...)
			dst = append(dst, byte(in.Datatype))
			dst = binary.AppendUvarint(dst, uint64(len(in.Shape)))
			for _, d := range in.Shape {
				dst = binary.AppendVarint(dst, d)
			}
			dst = binary.AppendUvarint(dst, uint64(len(in.Data)))
			dst = append(dst, in.Data...)
			break
		}
	}
	return dst
}
