package gateway_test

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
	"github.com/infergate/infergate/registry"
)

// Triton's classification extension: an output asked for with
// "classification": N comes back as each batch entry's N highest values,
// "<value>:<index>", in JSON and as binary data, from a computed answer and
// from the response cache alike; an output that cannot be classified is a
// 400 before the model runs.
func TestClassification(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: map[string][]byte{"emb/1": embeddingONNX()},
		defaults: registry.ModelConfig{ResponseCache: &registry.ResponseCache{Enable: true}}})
	// Row i of the table holds 4i, 4i+1, 4i+2, 4i+3: index 3 is the top.
	want := []string{"7.000000:3", "6.000000:2", "11.000000:3", "10.000000:2"}
	check := func(body string, binaryOut bool) {
		t.Helper()
		resp := decodeInfer(t, s.post(t, "/v2/models/emb/infer", []byte(body)))
		if len(resp.Outputs) != 1 {
			t.Fatalf("%s: %d outputs; want 1", body, len(resp.Outputs))
		}
		o := resp.Outputs[0]
		if o.Name != "emb" || o.Datatype != oip.BYTES || !slices.Equal(o.Shape, []int64{2, 2}) || o.Binary != binaryOut {
			t.Fatalf("%s: output %s %s %v (binary %v); want emb BYTES [2 2] (binary %v)", body, o.Name, o.Datatype, o.Shape, o.Binary, binaryOut)
		}
		var got []string
		for d := o.Data; len(d) >= 4; {
			n := binary.LittleEndian.Uint32(d)
			got = append(got, string(d[4:4+n]))
			d = d[4+n:]
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: classes %q; want %q", body, got, want)
		}
	}
	const ids = `"inputs":[{"name":"ids","datatype":"INT64","shape":[2],"data":[1,2]}]`
	asked := `{` + ids + `,"outputs":[{"name":"emb","parameters":{"classification":2}}]}`
	check(asked, false)
	check(asked, false) // the same body again: the cache's answer
	check(`{"parameters":{"cache_bypass":true},`+ids+`,"outputs":[{"name":"emb","parameters":{"classification":2,"binary_data":true}}]}`, true)
	// Another body with the same inputs: the cached values, classified.
	check(`{"id":"x",`+ids+`,"outputs":[{"name":"emb","parameters":{"classification":2}}]}`, false)

	// Without the parameter, the values.
	resp := decodeInfer(t, s.post(t, "/v2/models/emb/infer", []byte(`{`+ids+`}`)))
	if o := resp.Outputs[0]; o.Datatype != oip.FP32 || !slices.Equal(o.Shape, []int64{2, 4}) {
		t.Fatalf("without classification: %s %v; want FP32 [2 4]", o.Datatype, o.Shape)
	}

	r := s.post(t, "/v2/models/emb/infer", []byte(`{`+ids+`,"outputs":[{"name":"emb","parameters":{"classification":-2}}]}`))
	checkError(t, r, fasthttp.StatusBadRequest, `parameter "classification"`)

	var sm oip.ServerMetadata
	if err := oip.DecodeServerMetadata(&sm, s.do(t, fasthttp.MethodGet, "/v2", nil).body); err != nil || !slices.Contains(sm.Extensions, "classification") {
		t.Fatalf("server metadata %+v, %v; want the classification extension listed", sm, err)
	}

	// Classes whose strings outgrow max_output_bytes: 413. The values
	// themselves (32 bytes) fit the 40.
	small := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: map[string][]byte{"emb/1": embeddingONNX()},
		defaults: registry.ModelConfig{MaxOutputBytes: 40}})
	if r := small.post(t, "/v2/models/emb/infer", []byte(`{`+ids+`}`)); r.code != fasthttp.StatusOK {
		t.Fatalf("values within max_output_bytes: got %s; want 200", r)
	}
	r = small.post(t, "/v2/models/emb/infer", []byte(asked))
	checkError(t, r, fasthttp.StatusRequestEntityTooLarge, "fewer classes (max_output_bytes 40)")
}

// classifiedFake asks for the fake model's output y as its top class:
// "10.000000:0", 15 bytes with its length, past a max_output_bytes of 8
// that y's own 4 bytes fit.
var classifiedFake = []byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}],"outputs":[{"name":"y","parameters":{"classification":1}}]}`)

// A classification too large for max_output_bytes (413) still leaves the
// model's values in the response cache, and every request that looked
// the cache up counts as a hit or a miss, the 413s included.
func TestClassificationTooLargeKeepsCacheAndCounts(t *testing.T) {
	b := newFakeBackend()
	s := startFake(t, b, gateway.DefaultConfig(), registry.ModelConfig{MaxOutputBytes: 8, ResponseCache: &registry.ResponseCache{Enable: true}})
	stats := func() oip.ModelStat {
		t.Helper()
		var st oip.ModelStatistics
		if err := json.Unmarshal(s.do(t, fasthttp.MethodGet, "/v2/models/fake/stats", nil).body, &st); err != nil || len(st.ModelStats) != 1 {
			t.Fatalf("stats: %v", err)
		}
		return st.ModelStats[0]
	}
	// Computed on an empty cache: 413, a miss; the values are stored.
	checkError(t, s.post(t, fakeInfer, classifiedFake), fasthttp.StatusRequestEntityTooLarge, "fewer classes")
	waitCache(t, s)
	r := s.post(t, fakeInfer, fakeRequest)
	if r.code != fasthttp.StatusOK || r.header["X-Cache"] != "hit" {
		t.Fatalf("the same inputs again, values asked: got %s, X-Cache %q; want 200 from the cache", r, r.header["X-Cache"])
	}
	// The stored values found, their classes too large: a hit.
	checkError(t, s.post(t, fakeInfer, classifiedFake), fasthttp.StatusRequestEntityTooLarge, "fewer classes")
	st := stats()
	is := st.InferenceStats
	if st.ExecutionCount != 1 || is.CacheMiss.Count != 1 || is.CacheHit.Count != 2 || is.Fail.Count != 2 {
		t.Fatalf("executions %d, cache misses %d, hits %d, failures %d; want 1, 1, 2, 2", st.ExecutionCount, is.CacheMiss.Count, is.CacheHit.Count, is.Fail.Count)
	}
}
