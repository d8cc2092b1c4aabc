package oip

// The comparison that chose the JSON decoder: encoding/json, goccy/go-json
// and a pooled valyala/fastjson parser against DecodeRequest's own scanner,
// each turning an infer request with one FP32 input into Tensor.Data bytes.
//
//	go test -run='^$' -bench=BenchmarkJSONLibraries -benchmem ./oip/
//
// The libraries get their best case: encoding/json and goccy/go-json decode
// into a struct that knows the data are float32 (a real decoder would have
// to hold "data" as json.RawMessage until it knows the datatype), reused
// across iterations, and fastjson parses each number's text with
// strconv.ParseFloat(s, 32) so that it is as exact as the others.

import (
	"encoding/binary"
	stdjson "encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"unsafe"

	goccy "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// libRequest is the schema of an infer request, typed for FP32 data.
type libRequest struct {
	ID     string `json:"id"`
	Inputs []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float32 `json:"data"`
	} `json:"inputs"`
}

// floatBody returns an infer request with n FP32 elements written as Go
// writes float32 (shortest round trip), and the elements.
func floatBody(n int, seed uint64) ([]byte, []float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	vals := make([]float32, n)
	b := []byte(`{"id":"bench","inputs":[{"name":"features","datatype":"FP32","shape":[1,`)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `],"data":[`...)
	for i := range vals {
		vals[i] = float32(r.NormFloat64())
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(vals[i]), 'g', -1, 32)
	}
	return append(b, "]}]}"...), vals
}

// libDecoder decodes a body into FP32 Tensor.Data bytes.
type libDecoder struct {
	name   string
	decode func(body []byte, data *[]byte) error
}

// libDecoders returns the contenders, each with its own reused state.
func libDecoders() []libDecoder {
	toBytes := func(dst []byte, vals []float32) []byte {
		dst = dst[:0]
		for _, v := range vals {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
		return dst
	}
	var stdReq, goccyReq libRequest
	var pool fastjson.ParserPool
	var req InferRequest
	return []libDecoder{
		{"encoding_json", func(body []byte, data *[]byte) error {
			if err := stdjson.Unmarshal(body, &stdReq); err != nil {
				return err
			}
			*data = toBytes(*data, stdReq.Inputs[0].Data)
			return nil
		}},
		{"goccy_go_json", func(body []byte, data *[]byte) error {
			if err := goccy.Unmarshal(body, &goccyReq); err != nil {
				return err
			}
			*data = toBytes(*data, goccyReq.Inputs[0].Data)
			return nil
		}},
		{"fastjson_pooled", func(body []byte, data *[]byte) error {
			p := pool.Get()
			defer pool.Put(p)
			v, err := p.ParseBytes(body)
			if err != nil {
				return err
			}
			in := v.GetArray("inputs")
			if len(in) == 0 {
				return fmt.Errorf("no inputs")
			}
			_ = in[0].GetStringBytes("name")
			_ = in[0].GetStringBytes("datatype")
			for _, d := range in[0].GetArray("shape") {
				if _, err := d.Int64(); err != nil {
					return err
				}
			}
			dst := (*data)[:0]
			var num []byte
			for _, e := range in[0].GetArray("data") {
				if e.Type() != fastjson.TypeNumber {
					return fmt.Errorf("not a number")
				}
				num = e.MarshalTo(num[:0])
				f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 32)
				if err != nil {
					return err
				}
				dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f)))
			}
			*data = dst
			return nil
		}},
		{"oip_scanner", func(body []byte, data *[]byte) error {
			if err := DecodeRequest(&req, body, -1); err != nil {
				return err
			}
			*data = append((*data)[:0], req.Inputs[0].Data...)
			return nil
		}},
	}
}

func BenchmarkJSONLibraries(b *testing.B) {
	for _, n := range []int{64, 4096} {
		body, _ := floatBody(n, 1)
		for _, dec := range libDecoders() {
			b.Run(fmt.Sprintf("%s/fp32x%d", dec.name, n), func(b *testing.B) {
				var data []byte
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if err := dec.decode(body, &data); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
			})
		}
	}
}

// TestJSONLibrariesExactness checks what the comparison claims about
// precision: every contender decodes ordinary data to the same bits, and
// only those that parse at 32 bits agree with strconv.ParseFloat(s, 32) on
// a number that rounding through float64 gets wrong.
func TestJSONLibrariesExactness(t *testing.T) {
	body, vals := floatBody(4096, 2)
	want := make([]byte, 0, 4*len(vals))
	for _, v := range vals {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(v))
	}
	// 1 + 2^-24 + 1e-25: a hair above the midpoint of 1 and the next
	// float32, so it rounds up; through float64 it lands on the midpoint
	// and rounds to even, down to 1.
	const hard = "1.0000000596046447753906251"
	f, _ := strconv.ParseFloat(hard, 32)
	hardBody := []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[` + hard + `]}]}`)
	for _, dec := range libDecoders() {
		var data []byte
		if err := dec.decode(body, &data); err != nil {
			t.Fatalf("%s: %s", dec.name, err)
		}
		if string(data) != string(want) {
			t.Errorf("%s decodes ordinary float32 text to other bits", dec.name)
		}
		if err := dec.decode(hardBody, &data); err != nil {
			t.Fatalf("%s: %s", dec.name, err)
		}
		got := math.Float32frombits(binary.LittleEndian.Uint32(data))
		exact := got == float32(f)
		t.Logf("%-16s %s -> %v (exact: %v)", dec.name, hard, got, exact)
		if !exact && (dec.name == "oip_scanner" || dec.name == "encoding_json" || dec.name == "fastjson_pooled") {
			t.Errorf("%s: got %v; want %v", dec.name, got, float32(f))
		}
	}
}
