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
//
// Once a load is unloaded, nothing asks for its generation's keys again:
// Drop deletes its entries of both kinds, which the cache finds in the
// hashes it keeps of every generation's stored keys. Left in, they would
// hold their share of the budget until evicted, and the admission policy,
// which lets a newcomer evict only entries asked for less often than it,
// would keep the next load's answers out for as long.
package cache

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
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

	// gen, kh and cost are the generation and the key hash it is stored
	// under, and its cost, for the callbacks of ristretto's goroutine
	// (keyCost, onReject, onEvict), which get the entry.
	gen, kh uint64
	cost    int64
	// updated is set when a Set stored it in place of another entry
	// under its key, at once: ristretto's goroutine then stores nothing.
	updated atomic.Bool
}

// Cache maps request keys to Entries within a byte budget. Its methods
// are safe for concurrent use. A Set is applied asynchronously and may be
// dropped under contention or by the admission policy.
//
// A Cache takes no memory until Reserve, or the first Get, which
// reserves it: until then Set stores nothing, so that a node none of
// whose models enables the cache does not hold its counters.
type Cache struct {
	maxBytes int64
	// rc is nil until Reserve stores it, under closeMu.
	rc atomic.Pointer[ristretto.Cache[[]byte, *Entry]]

	// mu protects gens. Set holds it around ristretto's Set, and the
	// callbacks of ristretto's goroutine take it, so that each sees a
	// Set whole; Get never takes it.
	mu sync.Mutex
	// gens holds, per generation, the hashes of the keys stored for it
	// or with Sets under way; a generation without keys has no map.
	gens map[uint64]map[uint64]*tracked

	// closeMu is held by Drop, which a registry's goroutine may call at
	// any time, around its Dels, and by Close around ristretto's Close,
	// which Dels must not meet, and by Reserve, which must not make a
	// ristretto cache after Close; it protects closed.
	closeMu sync.RWMutex
	closed  bool
}

// tracked is a key of gens: its conflict hash, and the Sets of it that
// ristretto's goroutine has not taken up yet and may store an entry when
// it does, after an eviction or a rejection of the key's.
type tracked struct {
	conflict uint64
	pending  int
}

// entryOverhead approximates the bytes an entry costs beyond its data:
// the Entry, its tensor headers and ristretto's bookkeeping.
const entryOverhead = 256

// New returns a Cache that will hold at most maxBytes once reserved: its
// entries and the counters its admission policy keeps, which Reserve
// allocates (about a tenth of maxBytes). ristretto's own buffers, about
// 300 KB whatever the budget, are not counted.
func New(maxBytes int64) (*Cache, error) {
	if err := CheckBudget(maxBytes); err != nil {
		return nil, err
	}
	return &Cache{maxBytes: maxBytes, gens: make(map[uint64]map[uint64]*tracked)}, nil
}

// Reserve allocates the cache's memory and starts ristretto's goroutine,
// unless done before or c is closed: a 256 MiB budget's counters take 24
// MB of heap and about 5 ms. Call it before the first request that may
// use the cache; it is safe to call at any time, from any goroutine.
func (c *Cache) Reserve() error {
	if c.rc.Load() != nil {
		return nil
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed || c.rc.Load() != nil {
		return nil
	}
	// About ten counters per entry expected, as ristretto advises; an
	// entry of a scoring model costs 400 bytes or more (entryOverhead,
	// its names and shapes, its data).
	maxBytes := c.maxBytes
	counters := max(maxBytes/512*10, 1<<12)
	rc, err := ristretto.NewCache(&ristretto.Config[[]byte, *Entry]{
		NumCounters: counters,
		MaxCost:     maxBytes - admissionBytes(counters),
		BufferItems: 64,
		// For Usage: sharded counters, a few atomic adds a call.
		Metrics:   true,
		KeyToHash: keyToHash,
		// Set gives cost 0, for ristretto's goroutine to call keyCost
		// as it takes a Set up.
		Cost:    c.keyCost,
		OnEvict: c.onEvict,
		ShouldUpdate: func(cur, _ *Entry) bool {
			cur.updated.Store(true)
			return true
		},
		OnReject: c.onReject,
	})
	if err != nil {
		return fmt.Errorf("cannot create the response cache: %w", err)
	}
	c.rc.Store(rc)
	return nil
}

// Reserved reports whether Reserve has allocated the cache's memory.
func (c *Cache) Reserved() bool { return c.rc.Load() != nil }

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
	// Evicted is the entries evicted to make room for others, or
	// deleted as their load was unloaded (Drop); Rejected
	// the ones the admission policy refused (less often asked for than
	// those they would have evicted); Dropped the Sets lost under
	// contention.
	Evicted, Rejected, Dropped uint64
}

// Usage returns what c holds and has let go of.
func (c *Cache) Usage() Usage {
	rc := c.rc.Load()
	if rc == nil {
		return Usage{}
	}
	m := rc.Metrics
	return Usage{
		Bytes:    m.CostAdded() - m.CostEvicted(),
		Entries:  m.KeysAdded() - m.KeysEvicted(),
		Evicted:  m.KeysEvicted(),
		Rejected: m.SetsRejected(),
		Dropped:  m.SetsDropped(),
	}
}

// Get returns the entry stored under key. The first Get reserves the
// cache if nothing did before (a version that enables the cache and was
// loaded before the gateway watched the loads), and misses.
func (c *Cache) Get(key []byte) (*Entry, bool) {
	rc := c.rc.Load()
	if rc == nil {
		_ = c.Reserve() // an error leaves it unreserved: a miss
		return nil, false
	}
	return rc.Get(key)
}

// Set stores a copy of outputs under key.
func (c *Cache) Set(key []byte, outputs []oip.Tensor) {
	e := &Entry{Outputs: make([]oip.Tensor, len(outputs)), gen: keyGeneration(key)}
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
	c.set(key, e, cost)
}

// SetResponse stores a copy of an encoded response under a body key
// (AppendBodyKey).
func (c *Cache) SetResponse(key, response []byte, jsonLen int) {
	e := &Entry{Response: append([]byte(nil), response...), JSONLen: jsonLen, gen: keyGeneration(key)}
	c.set(key, e, int64(entryOverhead+cap(e.Response)))
}

// set stores e under key, and the key's hash under e's generation while
// the entry may be stored.
func (c *Cache) set(key []byte, e *Entry, cost int64) {
	rc := c.rc.Load()
	if rc == nil {
		return
	}
	var ch uint64
	e.kh, ch = keyToHash(key)
	e.cost = cost
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.gens[e.gen]
	if m == nil {
		m = make(map[uint64]*tracked)
		c.gens[e.gen] = m
	}
	t := m[e.kh]
	if t == nil {
		t = &tracked{conflict: ch}
		m[e.kh] = t
	}
	if rc.Set(key, e, 0) {
		if !e.updated.Load() {
			t.pending++
		}
	} else {
		// Dropped under contention: e is not stored, whatever is.
		c.untrack(m, e.gen, e.kh, t)
	}
}

// keyCost is called by ristretto's goroutine as it takes up the Set of
// e: just before it stores e or rejects it (onReject), unless e was
// stored at once (updated).
func (c *Cache) keyCost(e *Entry) int64 {
	c.mu.Lock()
	if t := c.gens[e.gen][e.kh]; t != nil && t.pending > 0 && !e.updated.Load() {
		t.pending--
	}
	c.mu.Unlock()
	return e.cost
}

// onReject is called by ristretto's goroutine for an entry its admission
// policy refused, or whose key another Set had stored first.
func (c *Cache) onReject(it *ristretto.Item[*Entry]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := it.Value
	if m := c.gens[e.gen]; m != nil {
		if t := m[e.kh]; t != nil {
			c.untrack(m, e.gen, e.kh, t)
		}
	}
}

// untrack forgets t, key hash kh of generation gen's keys m, unless a Set
// of it is under way or it is stored. c.mu is held.
func (c *Cache) untrack(m map[uint64]*tracked, gen, kh uint64, t *tracked) {
	if t.pending > 0 {
		return
	}
	if _, stored := c.rc.Load().GetTTL(hashKey(make([]byte, 0, hashKeyLen), kh, t.conflict)); stored {
		return
	}
	c.forget(m, gen, kh)
}

// onEvict is called by ristretto's goroutine for an entry it evicted.
func (c *Cache) onEvict(it *ristretto.Item[*Entry]) {
	e := it.Value
	if e == nil {
		return // deleted from the store by Drop before the policy let go of it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.gens[e.gen]; m != nil {
		if t := m[e.kh]; t != nil && t.pending == 0 {
			c.forget(m, e.gen, e.kh)
		}
	}
}

// forget deletes kh from m, generation gen's keys, and m from c.gens
// once empty. c.mu is held.
func (c *Cache) forget(m map[uint64]*tracked, gen, kh uint64) {
	delete(m, kh)
	if len(m) == 0 {
		delete(c.gens, gen)
	}
}

// Drop deletes the entries of generation gen, of both kinds of key: a
// load that is unloaded, none of whose keys will be asked for again. Sets
// of gen issued before it are deleted too; call it once no more come.
func (c *Cache) Drop(gen uint64) {
	c.mu.Lock()
	m := c.gens[gen]
	delete(c.gens, gen)
	c.mu.Unlock()
	// Without c.mu: ristretto's goroutine, which Del waits for when its
	// buffer is full, takes it in the callbacks.
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	rc := c.rc.Load()
	if c.closed || rc == nil {
		return
	}
	key := make([]byte, 0, hashKeyLen)
	for kh, t := range m {
		// t is not c.gens' any more: its conflict hash is read alone.
		rc.Del(hashKey(key, kh, t.conflict))
	}
}

// keys returns the number of key hashes c keeps; for tests.
func (c *Cache) keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.gens {
		n += len(m)
	}
	return n
}

// keyGeneration returns the generation a key of AppendKey or
// AppendBodyKey begins with; 0 for a shorter key (tests').
func keyGeneration(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(key)
}

// hashKeyLen is the length of a key of hashKey.
const hashKeyLen = len(hashKeyMark) + 16

// hashKeyMark begins a key of hashKey: 8 bytes of generation 0, which no
// load has, then the zero byte of a body key and the varint 0 in two
// bytes, which AppendBodyKey, writing varints in the fewest bytes, never
// writes.
const hashKeyMark = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x00"

// hashKey returns, in dst's capacity, the key that keyToHash maps to the
// hashes kh and ch: how Drop and untrack name a stored key they only
// know the hashes of.
func hashKey(dst []byte, kh, ch uint64) []byte {
	dst = append(dst[:0], hashKeyMark...)
	dst = binary.LittleEndian.AppendUint64(dst, kh)
	return binary.LittleEndian.AppendUint64(dst, ch)
}

// keyToHash returns ristretto's key and conflict hashes of key: those of
// the key's bytes, as ristretto computes them by default, but for a key
// of hashKey, which carries them.
func keyToHash(key []byte) (uint64, uint64) {
	if len(key) == hashKeyLen && string(key[:len(hashKeyMark)]) == hashKeyMark {
		return binary.LittleEndian.Uint64(key[len(hashKeyMark):]), binary.LittleEndian.Uint64(key[len(hashKeyMark)+8:])
	}
	return z.KeyToHash(key)
}

// Wait blocks until the Sets issued so far are applied; for tests.
func (c *Cache) Wait() {
	if rc := c.rc.Load(); rc != nil {
		rc.Wait()
	}
}

// Close stops the cache's goroutines; it must not be used after, but for
// Drop, which does nothing then.
func (c *Cache) Close() {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	c.closed = true
	if rc := c.rc.Load(); rc != nil {
		rc.Close()
	}
}

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
