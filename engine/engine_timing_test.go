package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/trainer/onnx"
)

// benchModels are the demo models of DESIGN.md.
var benchModels = []struct {
	name string
	mlp  func() *onnx.MLP
}{
	{"ctr", onnx.DemoCTR},
	{"ranker", onnx.DemoRanker},
}

// BenchmarkRun measures Run as the batcher calls it: one instance, one
// intra-op thread, the previous result passed back as dst.
func BenchmarkRun(b *testing.B) { benchRun(b, Options{Instances: 1, IntraOpThreads: 1}) }

// BenchmarkRunNoCPUMemArena is BenchmarkRun with ONNX Runtime's CPU memory
// arena off (config.json's cpu_mem_arena false): what giving a run's
// memory back costs.
func BenchmarkRunNoCPUMemArena(b *testing.B) {
	benchRun(b, Options{Instances: 1, IntraOpThreads: 1, NoCPUMemArena: true})
}

func benchRun(b *testing.B, opts Options) {
	for _, bm := range benchModels {
		mlp := bm.mlp()
		model := mlp.Model().Marshal()
		for _, rows := range []int{1, 4, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", bm.name, rows), func(b *testing.B) {
				m := load(b, model, opts)
				in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{int64(rows), int64(mlp.In())}, Data: f32Bytes(features(1, rows, mlp.In()))}}
				ctx := context.Background()
				dst, err := m.Run(ctx, in, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					if dst, err = m.Run(ctx, in, nil, dst); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkRunNoReuse is BenchmarkRun with dst nil: every call allocates
// its result.
func BenchmarkRunNoReuse(b *testing.B) {
	mlp := onnx.DemoCTR()
	m := load(b, mlp.Model().Marshal(), Options{})
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, 64}, Data: f32Bytes(features(1, 1, 64))}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Run(ctx, in, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunParallel runs each demo model from many goroutines on two
// instances, with a session each and sharing one: the semaphore's cost
// under contention, and what a shared session costs concurrent runs.
func BenchmarkRunParallel(b *testing.B) {
	for _, bm := range benchModels {
		mlp := bm.mlp()
		for _, share := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/share=%v", bm.name, share), func(b *testing.B) {
				m := load(b, mlp.Model().Marshal(), Options{Instances: 2, ShareSession: share})
				const rows = 4
				in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{rows, int64(mlp.In())}, Data: f32Bytes(features(1, rows, mlp.In()))}}
				b.ReportAllocs()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					var dst []oip.Tensor
					var err error
					for pb.Next() {
						if dst, err = m.Run(context.Background(), in, nil, dst); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkRawORT is the floor under BenchmarkRun: onnxruntime_go with
// tensors made once, no validation, no copies.
func BenchmarkRawORT(b *testing.B) {
	for _, bm := range benchModels {
		mlp := bm.mlp()
		model := mlp.Model().Marshal()
		for _, rows := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", bm.name, rows), func(b *testing.B) {
				initORT(b)
				so, err := ort.NewSessionOptions()
				if err != nil {
					b.Fatal(err)
				}
				defer so.Destroy()
				if err := so.SetIntraOpNumThreads(1); err != nil {
					b.Fatal(err)
				}
				if err := so.SetInterOpNumThreads(1); err != nil {
					b.Fatal(err)
				}
				s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"features"}, []string{"score"}, so)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Destroy()
				x, err := ort.NewTensor(ort.NewShape(int64(rows), int64(mlp.In())), features(1, rows, mlp.In()))
				if err != nil {
					b.Fatal(err)
				}
				defer x.Destroy()
				y, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 1))
				if err != nil {
					b.Fatal(err)
				}
				defer y.Destroy()
				ins, outs := []ort.Value{x}, []ort.Value{y}
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					if err := s.Run(ins, outs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkLoad measures Load with its warm-up inferences.
func BenchmarkLoad(b *testing.B) {
	for _, bm := range benchModels {
		model := bm.mlp().Model().Marshal()
		for _, instances := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/instances=%d", bm.name, instances), func(b *testing.B) {
				initORT(b)
				for b.Loop() {
					m, err := Load(model, Options{Instances: instances})
					if err != nil {
						b.Fatal(err)
					}
					m.Close()
				}
				b.ReportMetric(float64(len(model)), "model-bytes")
			})
		}
	}
}

// BenchmarkRunShapes runs ranker at about 16 rows a batch, the same size
// every time or varying as the batcher's batches do: ONNX Runtime's cost of
// changing shapes.
func BenchmarkRunShapes(b *testing.B) {
	mlp := onnx.DemoRanker()
	m := load(b, mlp.Model().Marshal(), Options{Instances: 1, IntraOpThreads: 1})
	ins := make(map[int][]oip.Tensor)
	for r := 1; r <= 64; r++ {
		ins[r] = []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{int64(r), int64(mlp.In())}, Data: f32Bytes(features(1, r, mlp.In()))}}
	}
	for _, c := range []struct {
		name string
		rows func(i int) int
	}{
		{"fixed16", func(int) int { return 16 }},
		{"12to20", func(i int) int { return 12 + i%9 }},
		{"1to64", func(i int) int { return 1 + (i*37)%64 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var dst []oip.Tensor
			var err error
			rows, i := 0, 0
			start := time.Now()
			for b.Loop() {
				r := c.rows(i)
				i++
				if dst, err = m.Run(context.Background(), ins[r], nil, dst); err != nil {
					b.Fatal(err)
				}
				rows += r
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

// BenchmarkRunGatherBuffer runs ctr on 8 and 9 rows in turn out of one
// buffer, with the result passed back, as a batcher's worker does with its
// gather buffer: the values that wrap the buffers are kept per shape, so a
// size seen before costs no cgo call to wrap them again.
func BenchmarkRunGatherBuffer(b *testing.B) {
	mlp := onnx.DemoCTR()
	m := load(b, mlp.Model().Marshal(), Options{Instances: 1, IntraOpThreads: 1})
	buf := f32Bytes(features(1, 9, mlp.In()))
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{0, int64(mlp.In())}}}
	var dst []oip.Tensor
	var err error
	i := 0
	for b.Loop() {
		rows := 8 + i%2
		i++
		in[0].Shape[0] = int64(rows)
		in[0].Data = buf[:rows*mlp.In()*4]
		if dst, err = m.Run(context.Background(), in, nil, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunAfterPause times one ctr row, as a lone request runs it,
// after the thread has spun for a pause without touching the model: what
// a request at one connection pays over the ort-floor's tight loop once
// the model's memory has gone cold in the shared caches. ns/op includes
// the pause; runµs is the run alone.
func BenchmarkRunAfterPause(b *testing.B) {
	mlp := onnx.DemoCTR()
	m := load(b, mlp.Model().Marshal(), Options{Instances: 1, IntraOpThreads: 1})
	in := []oip.Tensor{{Name: "features", Datatype: oip.FP32, Shape: []int64{1, int64(mlp.In())}, Data: f32Bytes(features(1, 1, mlp.In()))}}
	for _, pause := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond} {
		b.Run(fmt.Sprintf("pause=%s", pause), func(b *testing.B) {
			ctx := context.Background()
			var run time.Duration
			for b.Loop() {
				for t := time.Now(); time.Since(t) < pause; {
				}
				t := time.Now()
				if _, err := m.Run(ctx, in, nil, nil); err != nil {
					b.Fatal(err)
				}
				run += time.Since(t)
			}
			b.ReportMetric(run.Seconds()*1e6/float64(b.N), "runµs")
		})
	}
}
