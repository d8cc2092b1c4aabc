package gateway_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// FuzzFeedback posts mutated feedback bodies to ctr's feedback endpoint,
// with and without a version in the path. The answer is a 200 that
// accepted as many outcomes as the body holds, each with an id and a
// label or reward, or a 400 or 413 with the JSON error body; never a 5xx.
func FuzzFeedback(f *testing.F) {
	f.Add([]byte(`{"id":"imp-1","label":1}`), false)
	f.Add([]byte(`[{"id":"a","reward":-0.5,"arm":"control"},{"id":"b","label":0,"version":1}]`), true)
	f.Add([]byte(`{"id":"x","label":1e13}`), false)
	f.Add([]byte(`[]`), false)
	s, _, _ := startTraffic(f, 100, registry.ModelConfig{})
	handle := s.srv.Handler()

	f.Fuzz(func(t *testing.T, body []byte, versioned bool) {
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		uri := "/v2/models/ctr/feedback"
		if versioned {
			uri = "/v2/models/ctr/versions/1/feedback"
		}
		req.SetRequestURI(uri)
		req.Header.SetHost("gateway.test")
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		handle(&ctx)
		code, answer := ctx.Response.StatusCode(), ctx.Response.Body()

		switch code {
		case fasthttp.StatusOK:
			var got struct{ Accepted, Attributed int }
			if err := json.Unmarshal(answer, &got); err != nil {
				t.Fatalf("200 with %q: %v", answer, err)
			}
			type entry struct {
				ID     string
				Label  *float64
				Reward *float64
			}
			var entries []entry
			if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
				if err := json.Unmarshal(body, &entries); err != nil {
					return // encoding/json is stricter here than needed
				}
			} else {
				var one entry
				if err := json.Unmarshal(body, &one); err != nil {
					return
				}
				entries = []entry{one}
			}
			if got.Accepted != len(entries) {
				t.Fatalf("accepted %d of a body of %d outcomes: %q", got.Accepted, len(entries), body)
			}
			for i, e := range entries {
				if e.ID == "" || (e.Label == nil && e.Reward == nil) {
					t.Fatalf("outcome %d accepted without an id or an outcome: %+v", i, e)
				}
			}
		case fasthttp.StatusBadRequest, fasthttp.StatusRequestEntityTooLarge:
			if _, err := errorMessage(answer); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("POST %s %q: got %d %q", uri, body, code, answer)
		}
	})
}
