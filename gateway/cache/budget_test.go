package cache

import (
	"bytes"
	"encoding/binary"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
)

// An entry costs what its copies take, allocator rounding included: the
// live entries' data stays within the budget (a 32,772-byte output,
// [8193,1] FP32, takes 40,960 bytes).
func TestCostCountsAllocatedBytes(t *testing.T) {
	const budget = 1 << 20
	c, err := reserved(New(budget))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	outs := []oip.Tensor{tensor("score", oip.FP32, []int64{8193, 1}, make([]byte, 4*8193)...)}
	key := func(i int) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(i)) }
	for i := range 64 {
		c.Set(key(i), outs)
		c.Wait()
	}
	n, held := 0, 0
	for i := range 64 {
		if e, ok := c.Get(key(i)); ok {
			n++
			held += cap(e.Outputs[0].Data) + 8*cap(e.Outputs[0].Shape)
		}
	}
	if n == 0 {
		t.Fatal("no entry admitted")
	}
	if held > budget {
		t.Fatalf("%d live entries hold %d bytes of tensor data alone; want at most the budget %d", n, held, budget)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The admission policy's counters, which ristretto allocates at once,
// count against the budget: New allocates what admissionBytes says (and
// ristretto's fixed buffers, about 300 KB), and leaves the rest of the
// budget to entries.
func TestBudgetCountsAdmission(t *testing.T) {
	f := func(budget int64) {
		t.Helper()
		h0 := heapAlloc()
		c, err := reserved(New(budget))
		if err != nil {
			t.Fatal(err)
		}
		h1 := heapAlloc()
		defer c.Close()
		adm := admissionBytes(max(budget/512*10, 1<<12))
		if got := c.rc.Load().MaxCost(); got != budget-adm {
			t.Errorf("budget %d: entries may take %d; want %d, the budget less the %d bytes of admission counters", budget, got, budget-adm, adm)
		}
		if extra := int64(h1 - h0); extra < adm || extra > adm+512<<10 {
			t.Errorf("budget %d: New allocated %d bytes; want %d for the admission counters, and up to 512 KiB more", budget, extra, adm)
		}
	}
	f(64 << 20)
	f(1 << 16)
}

// A key's length prefixes cannot wrap: a tensor of rank 256 and no data
// does not share a key with a 256-byte scalar.
func TestKeyRankPrefix(t *testing.T) {
	md := []oip.TensorMetadata{{Name: "x", Datatype: oip.UINT8}}
	// A: shape [128, 0 x 255] (0 elements, no data).
	shapeA := make([]int64, 256)
	shapeA[0] = 128
	a := []oip.Tensor{{Name: "x", Datatype: oip.UINT8, Shape: shapeA}}
	// B: a scalar whose 256 data bytes spell the rest of A's key.
	b := []oip.Tensor{{Name: "x", Datatype: oip.UINT8, Shape: nil, Data: make([]byte, 256)}}
	ka, kb := AppendKey(nil, 1, a, md), AppendKey(nil, 1, b, md)
	if bytes.Equal(ka, kb) {
		t.Fatalf("a rank-256 tensor of 0 bytes and a scalar of 256 bytes share key %x", ka[:16])
	}
}

// A budget beyond the machine's memory is refused with an error that says
// so, never a panic or an out-of-memory crash: ristretto would allocate a
// tenth of it at once for its counters (and overflow computing them for
// budgets near 2^63).
func TestNewRefusesBudgetBeyondMemory(t *testing.T) {
	f := func(budget int64) {
		t.Helper()
		c, err := reserved(New(budget))
		if err == nil {
			c.Close()
			t.Fatalf("New(%d): got no error; want one that names the machine's memory", budget)
		}
		if !strings.Contains(err.Error(), "memory") {
			t.Fatalf("New(%d): got %v; want an error that names the machine's memory", budget, err)
		}
		if err := CheckBudget(budget); err == nil {
			t.Fatalf("CheckBudget(%d): got nil; want the error New gives", budget)
		}
	}
	f(math.MaxInt64)
	f(1 << 62)
	if err := CheckBudget(64 << 20); err != nil {
		t.Fatalf("CheckBudget(64 MiB): got %v; want nil", err)
	}
}
