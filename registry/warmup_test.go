package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/infergate/infergate/oip"
)

// model_warmup, as Triton writes it, loads; what no model could run is
// refused, naming the sample, and in config.pbtxt the line.
func TestModelWarmupConfig(t *testing.T) {
	c, err := ParseModelConfig([]byte(`{"max_batch_size":8,"model_warmup":[
		{"name":"zeros","batch_size":"4","count":2,"inputs":{"x":{"data_type":"TYPE_FP32","dims":["2"],"zero_data":true}}},
		{"name":"file","inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"input_data_file":"x.bin"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ModelWarmup) != 2 || c.ModelWarmup[0].BatchSize != 4 || c.ModelWarmup[0].Count != 2 || !c.ModelWarmup[0].Inputs["x"].ZeroData ||
		c.ModelWarmup[1].Inputs["x"].InputDataFile != "x.bin" {
		t.Fatalf("got %+v", c.ModelWarmup)
	}

	f := func(in, want string) {
		t.Helper()
		_, err := ParseModelConfig([]byte(in))
		if err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v; want ErrBadConfig containing %q", in, err, want)
		}
	}
	x := func(in string) string { return `"inputs":{"x":{` + in + `}}` }
	ok := x(`"data_type":"TYPE_FP32","dims":[2],"zero_data":true`)
	f(`{"model_warmup":[{`+ok+`}]}`, `model_warmup[0] has no name`)
	f(`{"model_warmup":[{"name":"a",`+ok+`},{"name":"a",`+ok+`}]}`, `model_warmup names "a" twice`)
	f(`{"model_warmup":[{"name":"a","count":1001,`+ok+`}]}`, `model_warmup "a": count must be between 1 and 1000`)
	f(`{"model_warmup":[{"name":"a","count":600,`+ok+`},{"name":"b","count":401,`+ok+`}]}`, `model_warmup runs 1001 inferences on each instance by sample "b"; give at most 1000 together`)
	f(`{"max_batch_size":8,"model_warmup":[{"name":"a","batch_size":9,`+ok+`}]}`, `batch_size 9 is above max_batch_size 8`)
	f(`{"max_batch_size":0,"model_warmup":[{"name":"a","batch_size":2,`+ok+`}]}`, `max_batch_size 0 says the model has no batch dimension`)
	f(`{"model_warmup":[{"name":"a","batch_size":-1,`+ok+`}]}`, `batch_size must be between 1 and max_batch_size`)
	f(`{"model_warmup":[{"name":"a"}]}`, `model_warmup "a" gives no inputs`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"FP32","dims":[2],"zero_data":true`)+`}]}`, `data_type "FP32" is not a Triton type`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_STRING","dims":[2],"zero_data":true`)+`}]}`, `TYPE_STRING inputs cannot be warmed`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[-1],"zero_data":true`)+`}]}`, `a warm-up's shape is fixed`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[2]`)+`}]}`, `give exactly one of zero_data, random_data and input_data_file`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[2],"zero_data":true,"random_data":true`)+`}]}`, `give exactly one of`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[2],"input_data_file":"../../etc/passwd"`)+`}]}`, `must name a file under the model's warmup directory`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[2],"input_data_file":"/etc/passwd"`)+`}]}`, `must name a file under the model's warmup directory`)
	f(`{"model_warmup":[{"name":"a","batch_size":64,`+x(`"data_type":"TYPE_FP32","dims":[1024,1024],"zero_data":true`)+`}]}`, `its inputs take more than 67108864 bytes`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[4611686018427387904,4],"zero_data":true`)+`}]}`, `its inputs take more than`)
	f(`{"model_warmup":[{"name":"a",`+x(`"data_type":"TYPE_FP32","dims":[2],"zero_data":true,"file":"x"`)+`}]}`, `unknown field "file"`)

	text := "max_batch_size: 8\nmodel_warmup [\n  {\n    name: \"a\"\n    batch_size: 2\n    inputs {\n      key: \"x\"\n      value: { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true }\n    }\n  },\n  {\n    name: \"b\"\n    inputs {\n      key: \"x\"\n      value: { data_type: TYPE_FP32 dims: [ -1 ] zero_data: true }\n    }\n  }\n]\n"
	if _, err := ParseModelConfigText([]byte(text)); err == nil || !strings.Contains(err.Error(), `config.pbtxt line 15: model_warmup "b" input "x": dims [-1]`) {
		t.Fatalf("config.pbtxt: got %v; want the second sample's input named at its line", err)
	}
	c, err = ParseModelConfigText([]byte(strings.Replace(text, "[ -1 ]", "[ 3 ]", 1)))
	if err != nil || len(c.ModelWarmup) != 2 || !slices.Equal(c.ModelWarmup[1].Inputs["x"].Dims, []int64{3}) {
		t.Fatalf("config.pbtxt: got %+v, %v", c.ModelWarmup, err)
	}

	// A cluster model has no warmup directory.
	c, err = ParseModelConfig([]byte(`{"model_warmup":[{"name":"a",` + x(`"data_type":"TYPE_FP32","dims":[2],"input_data_file":"x.bin"`) + `}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckClusterConfig(); err == nil || !strings.Contains(err.Error(), "use zero_data or random_data") {
		t.Fatalf("CheckClusterConfig: got %v; want the input_data_file refused", err)
	}
}

// warmupLoader records the warm-up runs each load was given.
type warmupLoader struct {
	fakeLoader
	mu   sync.Mutex
	runs [][]WarmupRun
}

func (l *warmupLoader) load(data []byte, cfg ModelConfig) (Backend, error) {
	b, err := l.fakeLoader.load(data, cfg)
	if err != nil {
		return nil, err
	}
	fb := b.(*fakeBackend)
	runs, err := cfg.Warmups(fb.Inputs(), fb.Outputs())
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.runs = append(l.runs, runs)
	l.mu.Unlock()
	return b, nil
}

func (l *warmupLoader) last() []WarmupRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[len(l.runs)-1]
}

// The registry makes a load's warm-up inputs: the batch dimension before
// the dims, zeros, random values in [0, 1) that are the same at every
// load, and a file's bytes from the model's warmup directory, whose size
// must match the shape.
func TestWarmupsMadeForLoad(t *testing.T) {
	dir := t.TempDir()
	l := &warmupLoader{fakeLoader: fakeLoader{t: t}}
	r, err := New(Config{Dir: dir, Load: l.load, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	writeModel(t, dir, "m", 1, "m1")
	file := make([]byte, 3*2*4)
	for i := range 6 {
		binary.LittleEndian.PutUint32(file[4*i:], math.Float32bits(float32(i)+0.5))
	}
	if err := os.MkdirAll(filepath.Join(dir, "m", "warmup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m", "warmup", "x.bin"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"max_batch_size":8,"model_warmup":[
		{"name":"zeros","batch_size":4,"count":3,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"zero_data":true}}},
		{"name":"random","batch_size":5,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"random_data":true}}},
		{"name":"file","batch_size":3,"inputs":{"x":{"data_type":"TYPE_FP32","dims":[2],"input_data_file":"x.bin"}}}]}`
	mustLoad := func(cfg string) []WarmupRun {
		t.Helper()
		c, err := ParseModelConfig([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Load("m", &c); err != nil {
			t.Fatal(err)
		}
		return l.last()
	}
	runs := mustLoad(cfg)
	if len(runs) != 3 {
		t.Fatalf("got %d warm-up runs; want 3", len(runs))
	}
	zeros, random, fromFile := runs[0], runs[1], runs[2]
	if zeros.Name != "zeros" || zeros.Count != 3 || len(zeros.Inputs) != 1 || !slices.Equal(zeros.Inputs[0].Shape, []int64{4, 2}) ||
		zeros.Inputs[0].Datatype != oip.FP32 || !bytes.Equal(zeros.Inputs[0].Data, make([]byte, 32)) {
		t.Fatalf("zeros: got %+v", zeros)
	}
	if random.Count != 1 || !slices.Equal(random.Inputs[0].Shape, []int64{5, 2}) || len(random.Inputs[0].Data) != 40 {
		t.Fatalf("random: got %+v", random)
	}
	distinct := map[float32]bool{}
	for i := 0; i < 40; i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(random.Inputs[0].Data[i:]))
		if !(v >= 0 && v < 1) {
			t.Fatalf("random: value %v; want [0, 1)", v)
		}
		distinct[v] = true
	}
	if len(distinct) < 5 {
		t.Fatalf("random: %d distinct values of 10", len(distinct))
	}
	if !slices.Equal(fromFile.Inputs[0].Shape, []int64{3, 2}) || !bytes.Equal(fromFile.Inputs[0].Data, file) {
		t.Fatalf("file: got %+v; want the file's bytes", fromFile)
	}
	// The same configuration again (the version reloads: a new file)
	// gives the same random values.
	writeModel(t, dir, "m", 1, "m1 again")
	if again := mustLoad(cfg); !bytes.Equal(again[1].Inputs[0].Data, random.Inputs[0].Data) {
		t.Fatal("random_data differs between two loads; want the same values")
	}

	// max_batch_size 0: dims are whole shapes.
	if runs := mustLoad(`{"max_batch_size":0,"model_warmup":[{"name":"w","inputs":{"x":{"data_type":"TYPE_FP32","dims":[3,2],"zero_data":true}}}]}`); !slices.Equal(runs[0].Inputs[0].Shape, []int64{3, 2}) || len(runs[0].Inputs[0].Data) != 24 {
		t.Fatalf("max_batch_size 0: got %+v", runs[0])
	}

	// A file of the wrong size, or none, fails the load, saying which.
	writeModel(t, dir, "m", 1, "m1 third")
	bad, err := ParseModelConfig([]byte(strings.Replace(cfg, `"batch_size":3`, `"batch_size":2`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", &bad); err == nil || !strings.Contains(err.Error(), `model_warmup "file" input "x": `+filepath.Join(dir, "m", "warmup", "x.bin")+` holds 24 bytes (shape [2,2] of FP32 takes 16 bytes)`) {
		t.Fatalf("Load with a short warm-up file: got %v", err)
	}
	missing, err := ParseModelConfig([]byte(strings.Replace(cfg, "x.bin", "y.bin", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Load("m", &missing); err == nil || !strings.Contains(err.Error(), "y.bin: no such file") {
		t.Fatalf("Load with a missing warm-up file: got %v", err)
	}
}
