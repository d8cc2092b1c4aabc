package gateway_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/oip"
)

// With --compress-responses, an infer response of 1 KiB or more goes out
// gzip- or deflate-compressed as the request's Accept-Encoding allows, its
// binary-data JSON length still that of the uncompressed body; small
// responses, requests that accept neither, and a server without the option
// answer uncompressed.
func TestCompressResponses(t *testing.T) {
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprint(i % 10)
	}
	large := []byte(`{"inputs":[{"name":"ids","datatype":"INT64","shape":[300],"data":[` + strings.Join(ids, ",") + `]}]}`)
	largeBinary := []byte(`{"parameters":{"binary_data_output":true},"inputs":[{"name":"ids","datatype":"INT64","shape":[300],"data":[` + strings.Join(ids, ",") + `]}]}`)
	small := []byte(`{"inputs":[{"name":"ids","datatype":"INT64","shape":[1],"data":[3]}]}`)

	cfg := gateway.DefaultConfig()
	cfg.CompressResponses = true
	s := startServer(t, serverOptions{cfg: cfg, files: map[string][]byte{"emb/1": embeddingONNX()}})
	plain := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: map[string][]byte{"emb/1": embeddingONNX()}})

	// want is each body's answer, uncompressed.
	want := func(body []byte) response {
		t.Helper()
		r := plain.post(t, "/v2/models/emb/infer", body)
		if r.code != fasthttp.StatusOK || r.header["Content-Encoding"] != "" || len(r.body) == 0 {
			t.Fatalf("without --compress-responses: got %s, Content-Encoding %q", r, r.header["Content-Encoding"])
		}
		return r
	}
	check := func(body []byte, accept, wantCoding string) {
		t.Helper()
		w := want(body)
		r, err := s.send(fasthttp.MethodPost, "/v2/models/emb/infer", body, "Accept-Encoding", accept)
		if err != nil || r.code != fasthttp.StatusOK {
			t.Fatalf("Accept-Encoding %q: got %v, %v", accept, r, err)
		}
		if got := r.header["Content-Encoding"]; got != wantCoding {
			t.Fatalf("Accept-Encoding %q, %d-byte answer: Content-Encoding %q; want %q", accept, len(w.body), got, wantCoding)
		}
		got := decompress(t, wantCoding, r.body)
		if wantCoding != "" && len(r.body) >= len(w.body) {
			t.Errorf("Accept-Encoding %q: %d bytes compressed, %d not; want fewer", accept, len(r.body), len(w.body))
		}
		if !bytes.Equal(got, w.body) {
			t.Fatalf("Accept-Encoding %q: the body decompressed differs from the uncompressed answer", accept)
		}
		if r.header["Inference-Header-Content-Length"] != w.header["Inference-Header-Content-Length"] {
			t.Fatalf("Accept-Encoding %q: Inference-Header-Content-Length %q; want %q, the uncompressed JSON's", accept,
				r.header["Inference-Header-Content-Length"], w.header["Inference-Header-Content-Length"])
		}
		if r.header["Vary"] != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q; want Accept-Encoding", accept, r.header["Vary"])
		}
	}
	check(large, "gzip, deflate", "gzip")
	check(large, "deflate", "deflate")
	check(large, "gzip;q=0, deflate", "deflate")
	check(largeBinary, "gzip", "gzip")
	check(large, "br", "")
	check(small, "gzip", "")

	// The answer decodes as the model's output once decompressed.
	r, _ := s.send(fasthttp.MethodPost, "/v2/models/emb/infer", largeBinary, "Accept-Encoding", "gzip")
	r.body = decompress(t, "gzip", r.body)
	if out := decodeInfer(t, r).Outputs[0]; out.Name != "emb" || out.Datatype != oip.FP32 || len(out.Data) != 300*4*4 {
		t.Fatalf("decompressed binary answer: %s %s, %d bytes; want emb FP32, %d", out.Name, out.Datatype, len(out.Data), 300*4*4)
	}
	// Without the option, the server ignores Accept-Encoding.
	if r, _ := plain.send(fasthttp.MethodPost, "/v2/models/emb/infer", large, "Accept-Encoding", "gzip"); r.header["Content-Encoding"] != "" {
		t.Fatalf("without --compress-responses: Content-Encoding %q; want none", r.header["Content-Encoding"])
	}
}

// decompress returns body decoded from coding ("" for none).
func decompress(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var zr io.Reader
	var err error
	switch coding {
	case "":
		return body
	case "gzip":
		zr, err = gzip.NewReader(bytes.NewReader(body))
	case "deflate":
		zr, err = zlib.NewReader(bytes.NewReader(body))
	default:
		t.Fatalf("no decoder for %q", coding)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
