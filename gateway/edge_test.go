package gateway_test

// Tests of the front door's contracts at their edges (DESIGN.md): the
// status a request that is too large gets, header values HTTP compares
// without case, control bodies refused rather than half read, and error
// messages that name what the client sent and the setting that applied.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/registry"
	"github.com/valyala/fasthttp"
)

// A request whose line and headers (a long header, a long URI) exceed
// --max-header-bytes gets 431, not 400 "malformed"; the message names the
// flag, not fasthttp's buffer, and does not echo the request back.
func TestOversizedRequestHead(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	addr := s.listenTCP(t)
	body := inputs(input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64))))
	for _, c := range []struct{ name, path, header string }{
		{"long header", "/v2/models/ctr/infer", "X-Trace: " + strings.Repeat("a", 6000)},
		{"long URI", "/v2/models/ctr/infer?trace=" + strings.Repeat("a", 6000), "X-Trace: b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, got := rawExchange(t, addr, httpRequest(addr, c.path, body, c.header))
			msg, err := errorMessage(got)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != fasthttp.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != fasthttp.StatusRequestEntityTooLarge {
				t.Errorf("status: got %d; want 431 (or 413): the request is too large, not malformed", resp.StatusCode)
			}
			if !strings.Contains(msg, "--max-header-bytes") || strings.Contains(strings.ToLower(msg), "readbuffersize") {
				t.Errorf("message %q: want it to name --max-header-bytes, not fasthttp's ReadBufferSize", truncate([]byte(msg), 200))
			}
			if strings.Contains(msg, "aaaaaaaaaa") {
				t.Errorf("message echoes the request head back: %q", truncate([]byte(msg), 200))
			}
		})
	}
	// Raised, the limit lets the same request through.
	cfg := gateway.DefaultConfig()
	cfg.MaxHeaderBytes = 16 << 10
	big := startDemo(t, cfg, false)
	bigAddr := big.listenTCP(t)
	resp, got := rawExchange(t, bigAddr, httpRequest(bigAddr, "/v2/models/ctr/infer", body, "X-Trace: "+strings.Repeat("a", 6000)))
	if resp.StatusCode != fasthttp.StatusOK {
		t.Fatalf("a 6000-byte header with --max-header-bytes 16384: got %d %s; want 200", resp.StatusCode, truncate(got, 200))
	}
}

// Content codings are compared without case (RFC 9110 8.4.1): "Identity"
// is an uncompressed body.
func TestContentEncodingIdentityAnyCase(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	x := features(3, 1, 64)
	r := s.post(t, "/v2/models/ctr/infer", ctrRequest(x, 1), "Content-Encoding", "Identity")
	if r.code != fasthttp.StatusOK {
		t.Fatalf("Content-Encoding: Identity on an uncompressed body: got %s; want 200", r)
	}
	checkScores(t, bytesF32(decodeInfer(t, r).Outputs[0].Data), x, 1)
}

// An admin body with more after its JSON object, `{"version":1} {"version":7}`
// or `{"version":1}garbage`, is refused, not read up to its first object.
func TestAdminBodyTrailingData(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	s := startAdmin(t, cfg)
	for _, body := range []string{`{"version":1} {"version":7}`, `{"version":1}garbage`} {
		r := s.admin(t, "PUT", "/v1/models/ctr/aliases/beta", []byte(body))
		if r.code != fasthttp.StatusBadRequest {
			t.Errorf("alias body %q: got %s; want 400 (data after the JSON object)", body, r)
		}
	}
}

// The repository load and index calls refuse unknown members: a
// misspelled or misplaced "parameters" must not load the model with its
// old configuration and answer 200, leaving the operator to believe the
// new one is live.
func TestRepositoryAPIUnknownFields(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	instances := func() int {
		t.Helper()
		r := s.do(t, "GET", "/v2/models/ctr/config", nil)
		var c struct {
			Instances int `json:"instances"`
		}
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatalf("config %s: %s", r, err)
		}
		return c.Instances
	}
	before := instances()
	for _, body := range []string{
		`{"config":"{\"instances\":3}"}`,                      // "parameters" wrapper left out
		`{"paramters":{"config":"{\"instances\":3}"}}`,        // misspelled
		`{"parameters":{"confg":"{\"instances\":3}"}}`,        // misspelled key inside
		`{"parameters":{"config":"{\"instances\":3}"},"x":1}`, // unknown extra member
	} {
		r := s.post(t, "/v2/repository/models/ctr/load", []byte(body))
		if r.code != fasthttp.StatusBadRequest {
			t.Errorf("load body %s: got %s with instances %d (was %d); want 400 naming the unknown member",
				body, r, instances(), before)
		}
	}
	if r := s.post(t, "/v2/repository/index", []byte(`{"raedy":true}`)); r.code != fasthttp.StatusBadRequest {
		t.Errorf(`index body {"raedy":true}: got %s; want 400 naming the unknown member`, r)
	}
}

// The authentication scheme's name is compared without case (RFC 9110
// 11.1): "bearer <token>" with the right token is let in.
func TestBearerSchemeAnyCase(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken = "infer-token"
	s := startDemo(t, cfg, false)
	if r := s.do(t, "GET", "/v2/models/ctr", nil, "Authorization", "Bearer infer-token"); r.code != fasthttp.StatusOK {
		t.Fatalf("Bearer: got %s; want 200", r)
	}
	if r := s.do(t, "GET", "/v2/models/ctr", nil, "Authorization", "bearer infer-token"); r.code != fasthttp.StatusOK {
		t.Fatalf("bearer (lower case) with the right token: got %s; want 200", r)
	}
}

// A priority above the model's levels runs at the default level, as in
// Triton, even one far out of range; a negative one gets 400 naming the
// value sent.
func TestPriorityOutOfRange(t *testing.T) {
	s := startDemo(t, gateway.DefaultConfig(), false)
	body := `{"parameters":{"priority":99999999999},"inputs":[` + input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64))) + `]}`
	if r := s.post(t, "/v2/models/ctr/infer", []byte(body)); r.code != fasthttp.StatusOK {
		t.Fatalf("priority 99999999999: got %s; want 200 at the default level", r)
	}
	body = `{"parameters":{"priority":-1},"inputs":[` + input("features", "FP32", "[1,64]", jsonFloats(features(1, 1, 64))) + `]}`
	checkError(t, s.post(t, "/v2/models/ctr/infer", []byte(body)), fasthttp.StatusBadRequest, `parameter "priority" is -1`)
}

// With the model's dynamic_batching.default_queue_timeout_us shorter than
// the server's --request-timeout, a request that waits too long is told
// the time it waited and that setting, not the server's timeout.
func TestQueueTimeoutMessage(t *testing.T) {
	b := newFakeBackend()
	cfg := gateway.DefaultConfig()
	s := startFake(t, b, cfg, registry.ModelConfig{Instances: 1,
		DynamicBatching: &registry.DynamicBatching{DefaultQueueTimeoutUS: 20000}})
	running := occupy(t, s, b)
	r := s.post(t, fakeInfer, fakeRequest)
	b.unblock()
	<-running
	if r.code != fasthttp.StatusServiceUnavailable {
		t.Fatalf("got %s; want 503", r)
	}
	checkRetryAfter(t, r)
	msg, err := errorMessage(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if r.took > 5*time.Second {
		t.Fatalf("took %s; want about 20ms", r.took)
	}
	if strings.Contains(msg, fmt.Sprint(cfg.RequestTimeout)) || !strings.Contains(msg, "default_queue_timeout_us") {
		t.Fatalf("message %q (answered after %s): want the 20ms the request waited and the knob that set it, default_queue_timeout_us", msg, r.took.Round(time.Millisecond))
	}
}
