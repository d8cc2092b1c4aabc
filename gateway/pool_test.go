package gateway

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/infergate/infergate/oip"
)

// retainedBytes counts every buffer a scratch keeps reachable: not only the
// Data of the inputs and outputs in use (what scratchPool.put counts), but
// those beyond len, and the decoder's unescape scratch.
func retainedBytes(s *scratch) int {
	n := cap(s.buf) + cap(s.num)
	for _, in := range s.req.Inputs[:cap(s.req.Inputs)] {
		n += cap(in.Data) + 8*cap(in.Shape)
	}
	for _, o := range s.outs[:cap(s.outs)] {
		n += cap(o.Data) + 8*cap(o.Shape)
	}
	n += reflect.ValueOf(&s.req).Elem().FieldByName("scratch").Cap()
	return n
}

// TestScratchPoolDropsGrownBuffers checks that scratchPool.put drops a
// scratch that a client grew past maxPooledBytes, counting every buffer it
// keeps: tensor slots beyond the last request's inputs and the decoder's
// unescape scratch included.
func TestScratchPoolDropsGrownBuffers(t *testing.T) {
	var p scratchPool

	// One request with a long escaped string ("id", a BYTES element...):
	// the decoder unescapes it into req.scratch, which put never counts.
	t.Run("escaped string", func(t *testing.T) {
		s := &scratch{}
		body := `{"id":"\n` + strings.Repeat("a", 8<<20) + `","inputs":[]}`
		if err := oip.DecodeRequest(&s.req, []byte(body), -1); err != nil {
			t.Fatal(err)
		}
		retained := retainedBytes(s)
		p.put(s)
		if kept := s.req.ID == ""; kept && retained > maxPooledBytes {
			t.Fatalf("put kept a scratch holding %d bytes; maxPooledBytes is %d", retained, maxPooledBytes)
		}
	})

	// Requests that fail to decode (no model needed: DecodeRequest runs
	// before any check), each growing one more tensor slot to 512 KiB with
	// a 128 KiB body: the slots beyond the last request's inputs are not
	// counted. With MaxTensors slots that is 512 MiB per pooled scratch.
	t.Run("tensor slots beyond len", func(t *testing.T) {
		s := &scratch{}
		const slots, elems = 64, 64 << 10 // FP64: 512 KiB reserved per slot
		pad := strings.Repeat(" ", 2*elems)
		dropped := false
		for k := 0; k < slots && !dropped; k++ {
			var b strings.Builder
			b.WriteString(`{"inputs":[`)
			for i := 0; i < k; i++ {
				fmt.Fprintf(&b, `{"name":"t%d","datatype":"FP64","shape":[1],"data":[0]},`, i)
			}
			fmt.Fprintf(&b, `{"name":"t%d","datatype":"FP64","shape":[%d],"data":[0%s]}]}`, k, elems, pad)
			if err := oip.DecodeRequest(&s.req, []byte(b.String()), -1); err == nil {
				t.Fatal("want a decode error (data too short for its shape)")
			}
			retained := retainedBytes(s)
			p.put(s)
			kept := len(s.req.Inputs) == 0 // put resets what it keeps
			if kept && retained > maxPooledBytes {
				t.Fatalf("put kept a scratch holding %d bytes; maxPooledBytes is %d", retained, maxPooledBytes)
			}
			dropped = !kept
		}
		if !dropped {
			t.Fatalf("put kept a scratch through %d requests that each grew another slot", slots)
		}
	})
}

func TestThousands(t *testing.T) {
	f := func(n uint64, want string) {
		t.Helper()
		if got := thousands(n); got != want {
			t.Fatalf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
	f(0, "0")
	f(999, "999")
	f(1000, "1,000")
	f(22303, "22,303")
	f(1234567, "1,234,567")
}
