package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/gateway/route"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

func fp32(name string, shape []int64, xs ...float32) oip.Tensor {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return oip.Tensor{Name: name, Datatype: oip.FP32, Shape: shape, Data: b}
}

func TestCompareOutputs(t *testing.T) {
	f := func(client, shadow []oip.Tensor, wantDiff float64, wantSame bool) {
		t.Helper()
		diff, same := compareOutputs(client, shadow)
		if same != wantSame || (same && diff != wantDiff && !(math.IsInf(diff, 1) && math.IsInf(wantDiff, 1))) {
			t.Fatalf("compareOutputs = %v, %t; want %v, %t", diff, same, wantDiff, wantSame)
		}
	}
	nan := float32(math.NaN())
	s := []int64{1, 2}
	f([]oip.Tensor{fp32("a", s, 1, 2)}, []oip.Tensor{fp32("a", s, 1, 2)}, 0, true)
	f([]oip.Tensor{fp32("a", s, 1, 2)}, []oip.Tensor{fp32("b", s, 0, 0), fp32("a", s, 1.5, 1)}, 1, true)
	f([]oip.Tensor{fp32("a", s, nan, 2)}, []oip.Tensor{fp32("a", s, nan, 2)}, 0, true)
	f([]oip.Tensor{fp32("a", s, nan, 2)}, []oip.Tensor{fp32("a", s, 1, 2)}, math.Inf(1), true)
	f([]oip.Tensor{fp32("a", s, 1, 2)}, []oip.Tensor{fp32("b", s, 1, 2)}, 0, false)
	f([]oip.Tensor{fp32("a", s, 1, 2)}, []oip.Tensor{fp32("a", []int64{2, 1}, 1, 2)}, 0, false)
	f([]oip.Tensor{{Name: "a", Datatype: oip.BYTES, Shape: []int64{1}, Data: []byte("\x01\x00\x00\x00x")}},
		[]oip.Tensor{{Name: "a", Datatype: oip.BYTES, Shape: []int64{1}, Data: []byte("\x01\x00\x00\x00y")}}, math.Inf(1), true)
	// Equal infinities agree; strings of other lengths are +Inf apart
	// (both found by a reviewing helper).
	inf := float32(math.Inf(-1))
	f([]oip.Tensor{fp32("logp", s, inf, -1)}, []oip.Tensor{fp32("logp", s, inf, -1)}, 0, true)
	f([]oip.Tensor{fp32("logp", s, inf, -1)}, []oip.Tensor{fp32("logp", s, -inf, -1)}, math.Inf(1), true)
	str := func(x string) oip.Tensor {
		d := binary.LittleEndian.AppendUint32(nil, uint32(len(x)))
		return oip.Tensor{Name: "label", Datatype: oip.BYTES, Shape: []int64{1}, Data: append(d, x...)}
	}
	f([]oip.Tensor{str("cat")}, []oip.Tensor{str("dogs")}, math.Inf(1), true)
	f([]oip.Tensor{str("cat")}, []oip.Tensor{str("cat")}, 0, true)
	i32 := oip.Tensor{Name: "a", Datatype: oip.INT32, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint32(nil, 5)}
	f([]oip.Tensor{i32}, []oip.Tensor{{Name: "a", Datatype: oip.INT32, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint32(nil, 2)}}, 3, true)
}

func TestShadowQueueDropsWhenFull(t *testing.T) {
	set := metrics.NewSet()
	sh := registry.NewShadow(set, "m", &route.Shadow{Version: 2, Percent: 100})
	w := newShadower(nil, time.Second, nil, t.Logf)
	w.start.Do(func() {}) // no workers: the queue only fills
	in := []oip.Tensor{fp32("a", []int64{1, 1}, 1)}
	for range shadowQueue + 3 {
		w.submit(sh, in, in, "")
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if want := `infergate_shadow_requests_total{model="m",version="2",result="dropped"} 3`; !strings.Contains(b.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, b.String())
	}
	w.close(context.Background())
	w.close(context.Background()) // idempotent
	w.submit(sh, in, in, "")      // after close: neither queued nor counted
	if len(w.queue) != shadowQueue {
		t.Fatalf("queue holds %d; want %d", len(w.queue), shadowQueue)
	}
}

func TestCloneTensorsOwnsItsData(t *testing.T) {
	in := []oip.Tensor{fp32("a", []int64{1, 2}, 1, 2), fp32("b", []int64{1}, 3)}
	c := cloneTensors(in)
	in[0].Data[0], in[1].Shape[0] = 9, 7
	if c[0].Data[0] == 9 || c[1].Shape[0] == 7 || len(c[1].Data) != 4 || cap(c[0].Data) != 8 {
		t.Fatalf("the clone shares or mis-sizes: %+v", c)
	}
}

// TestShadowFailuresAreLoggedSparingly: a shadow that fails every copy
// (here its inputs differ from the requests') says why in the log once,
// then at most once a minute with a count, instead of nothing (the
// series counted "failed" without a reason) or a line per copy.
func TestShadowFailuresAreLoggedSparingly(t *testing.T) {
	b := &blockingBackend{release: make(chan struct{})}
	close(b.release)
	r := reviewRepo(t, b, true)
	sh := registry.NewShadow(metrics.NewSet(), "m", &route.Shadow{Version: 1, Percent: 100})
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	w := newShadower(r, time.Second, nil, logf)
	in := []oip.Tensor{fp32("wrong", []int64{1, 1}, 1)}
	for range 5 {
		w.run(&shadowJob{sh: sh, inputs: in, outputs: in})
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `model "m" failed on its shadow, version 1`) || !strings.Contains(lines[0], `"wrong"`) {
		t.Fatalf("5 failed copies logged %q; want one line naming the model, the version and the reason", lines)
	}
	w.failures.Backdate(shadowLogEvery)
	w.run(&shadowJob{sh: sh, inputs: in, outputs: in})
	if len(lines) != 2 || !strings.Contains(lines[1], "(and 4 more since the last line)") {
		t.Fatalf("a minute later: %q; want a second line counting the 4 not logged", lines)
	}
}
