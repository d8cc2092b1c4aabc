package gateway_test

import (
	"encoding/binary"
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
