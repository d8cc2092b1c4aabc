package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/internal/pbtest"
	"github.com/infergate/infergate/internal/testenv"
	"github.com/infergate/infergate/registry"
)

// logBuffer is the log of a server under test; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged starts a fake server whose log is a logging.Logger over
// the returned buffer.
func startLogged(t *testing.T, cfg gateway.Config) (*testServer, *logBuffer, *logging.Logger) {
	t.Helper()
	var out logBuffer
	lg := logging.New(&out, logging.DefaultSettings())
	cfg.Logging, cfg.Logf = lg, lg.Logf
	return startFake(t, newFakeBackend(), cfg, registry.ModelConfig{}), &out, lg
}

const defaultLogSettings = `{"log_file":"","log_info":true,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"default"}`

func TestLoggingHTTP(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = "adm"
	s, out, _ := startLogged(t, cfg)
	admin := []string{"Authorization", "Bearer adm"}
	want := func(r response, body string) {
		t.Helper()
		if r.code != 200 || string(r.body) != body {
			t.Fatalf("got %s; want 200 %s", r, body)
		}
	}
	want(s.do(t, "GET", "/v2/logging", nil), defaultLogSettings)
	if r := s.do(t, "GET", "/v2", nil); !strings.Contains(string(r.body), `"logging"`) {
		t.Fatalf("GET /v2: %s; want the logging extension listed", r)
	}
	checkError(t, s.post(t, "/v2/logging", []byte(`{"log_verbose_level":1}`)), fasthttp.StatusUnauthorized, "admin token")
	for body, fragment := range map[string]string{
		`{"log_verbose_level":2}`:                  "use 0 (no verbose lines) or 1",
		`{"log_verbose_level":-1}`:                 "a whole number from 0 to 4294967295",
		`{"log_verbose_level":"1"}`:                "log_verbose_level must be a number",
		`{"log_info":"false"}`:                     "log_info must be a boolean",
		`{"log_format":"iso"}`:                     `log_format "iso": use "default" or "ISO8601"`,
		`{"log_file":"/tmp/x.log"}`:                "standard error",
		`{"log_warn":false}`:                       `log setting "log_warn" is not one of the logging extension's: log_file, log_info, log_warning, log_error`,
		`{"log_error":false,"log_errors":true}`:    "log settings log_error and log_errors are one setting, and disagree",
		`{"log_warning":1}`:                        "log setting log_warning must be a boolean",
		`{"log_info":false,"log_verbose_level":9}`: "log_verbose_level 9",
		`[1]`:                               "JSON object of log settings",
		`{"log_verbose_level":{"level":1}}`: "give a boolean, a whole number",
		`{"log_verbose_level":1.5,"log_info":true}`: "give a boolean, a whole number",
	} {
		checkError(t, s.post(t, "/v2/logging", []byte(body), admin...), fasthttp.StatusBadRequest, fragment)
	}
	// A refused change changed nothing, its valid settings included.
	want(s.do(t, "GET", "/v2/logging", nil), defaultLogSettings)
	checkError(t, s.do(t, "PUT", "/v2/logging", nil), fasthttp.StatusMethodNotAllowed, "")

	// The change is audited, though it turns INFO lines off; then an
	// inference request is logged, with ISO 8601 times.
	want(s.post(t, "/v2/logging", []byte(`{"log_verbose_level":1,"log_format":"ISO8601","log_info":false,"log_file":""}`), admin...),
		`{"log_file":"","log_info":false,"log_warning":true,"log_error":true,"log_verbose_level":1,"log_format":"ISO8601"}`)
	if !strings.Contains(out.String(), " set the log settings: log_file=\"\", log_info=false, log_warning=true, log_error=true, log_verbose_level=1, log_format=\"ISO8601\"\n") {
		t.Fatalf("the log does not audit the change:\n%s", out)
	}
	checkFakeAnswer(t, s.post(t, "/v2/models/fake/infer", fakeRequest))
	checkError(t, s.do(t, "GET", "/v2/models/nope", nil), fasthttp.StatusNotFound, "nope")
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT[\d:.]+Z VERBOSE request: \S+ POST /v2/models/fake/infer 200 in [\d.]+[µm]?s, ` +
		`\d+ bytes in, \d+ out version 1\n\S+ VERBOSE request: \S+ GET /v2/models/nope 404 in `)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !line.MatchString(out.String()) {
			return fmt.Errorf("the log has no verbose lines of the two requests:\n%s", out)
		}
		return nil
	})
	// A client's bytes that are not printable ASCII reach the log
	// escaped: here a C1 control, U+009B (a terminal's escape sequence
	// introducer), and an é. fasthttp refuses ASCII's controls in a
	// URI before any handler sees it (400).
	// Over TCP, the client's address is written as net.Addr's String.
	conn, err := net.Dial("tcp", s.listenTCP(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v2/models/a\xc2\x9bb\xc3\xa9\\b HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 404 ") {
		t.Fatalf("a request with bytes above ASCII in its URI: got %q, %v; want 404", status, err)
	}
	escaped := ` VERBOSE request: ` + conn.LocalAddr().String() + ` GET /v2/models/a\xc2\x9bb\xc3\xa9\x5cb 404 in `
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(out.String(), escaped) {
			return fmt.Errorf("the log has no line with %q:\n%q", escaped, out)
		}
		return nil
	})
	// The lines are counted by level, and the verbose level shows.
	metrics := string(s.do(t, "GET", "/metrics", nil).body)
	for _, re := range []string{`infergate_log_lines_total\{level="verbose"\} [2-9]`, `infergate_log_lines_total\{level="info"\} [1-9]`,
		`infergate_log_lines_total\{level="error"\} 0\n`, `infergate_log_verbose_level 1\n`} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Fatalf("/metrics does not match %s:\n%s", re, metrics)
		}
	}
	// INFO is off: nothing is logged but the audit of the change that
	// turns it on again.
	want(s.post(t, "/v2/logging", []byte(`{"log_verbose_level":0}`), admin...),
		`{"log_file":"","log_info":false,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"ISO8601"}`)
	before := out.String()
	s.post(t, "/v2/models/fake/infer", fakeRequest)
	want(s.post(t, "/v2/logging", []byte(`{"log_info":true}`), admin...),
		`{"log_file":"","log_info":true,"log_warning":true,"log_error":true,"log_verbose_level":0,"log_format":"ISO8601"}`)
	if got := strings.TrimPrefix(out.String(), before); strings.Contains(got, "VERBOSE") || strings.Count(got, "\n") != 1 {
		t.Fatalf("with verbose 0 and INFO off, the log grew by\n%s; want the audit line of the last change alone", got)
	}
}

// Triton's server reads and answers log_warning and log_error, where the
// extension's document says log_warnings and log_errors: a change takes
// both, over HTTP and gRPC, and null leaves a setting as it is, as
// Triton's server takes it.
func TestLoggingTritonServerNames(t *testing.T) {
	s, out, lg := startLogged(t, gateway.DefaultConfig())
	r := s.post(t, "/v2/logging", []byte(`{"log_info":true,"log_warning":false,"log_error":false,"log_verbose_level":null,"log_format":"default"}`))
	if w := `{"log_file":"","log_info":true,"log_warning":false,"log_error":false,"log_verbose_level":0,"log_format":"default"}`; r.code != 200 || string(r.body) != w {
		t.Fatalf("POST /v2/logging with log_warnings and log_errors: got %s; want 200 %s", r, w)
	}
	if !strings.Contains(out.String(), "set the log settings: log_file=\"\", log_info=true, log_warning=false, log_error=false,") {
		t.Fatalf("the log does not audit the change by Triton's server's names:\n%s", out)
	}
	// Both names, agreeing, as a client that sends both servers' does.
	r = s.post(t, "/v2/logging", []byte(`{"log_warning":true,"log_warnings":true}`))
	if r.code != 200 || !lg.Settings().Warning || lg.Settings().Error {
		t.Fatalf("POST /v2/logging with log_warning and log_warnings true: %s; settings %+v", r, lg.Settings())
	}

	c := s.serveGRPC(t)
	m := pbtest.New("LogSettingsRequest")
	settings := m.Mutable(m.Descriptor().Fields().ByName("settings")).Map()
	v := settings.NewValue().Message()
	v.Set(v.Descriptor().Fields().ByName("bool_param"), protoreflect.ValueOfBool(true))
	settings.Set(protoreflect.ValueOfString("log_errors").MapKey(), protoreflect.ValueOfMessage(v))
	if _, err := c.call(context.Background(), "LogSettings", m, "LogSettingsResponse"); err != nil {
		t.Fatalf("LogSettings with log_errors: %v", err)
	}
	if !lg.Settings().Error {
		t.Fatalf("LogSettings with log_errors true left log_error false: %+v", lg.Settings())
	}
}

// Reading the settings takes the inference token, changing them the
// admin token alone.
func TestLoggingTokens(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.InferenceToken, cfg.AdminToken = "inf", "adm"
	s, _, _ := startLogged(t, cfg)
	inf, adm := []string{"Authorization", "Bearer inf"}, []string{"Authorization", "Bearer adm"}
	checkError(t, s.do(t, "GET", "/v2/logging", nil), fasthttp.StatusUnauthorized, "inference token")
	if r := s.do(t, "GET", "/v2/logging", nil, inf...); r.code != 200 {
		t.Fatalf("GET /v2/logging with the inference token: %s", r)
	}
	checkError(t, s.post(t, "/v2/logging", []byte(`{"log_info":false}`), inf...), fasthttp.StatusUnauthorized, "admin token")
	if r := s.post(t, "/v2/logging", []byte(`{"log_info":false}`), adm...); r.code != 200 {
		t.Fatalf("POST /v2/logging with the admin token: %s", r)
	}
}

// Without Config.Logging the extension is not served.
func TestLoggingNotServed(t *testing.T) {
	s := startFake(t, newFakeBackend(), gateway.DefaultConfig(), registry.ModelConfig{})
	checkError(t, s.do(t, "GET", "/v2/logging", nil), fasthttp.StatusNotFound, "without settable logging")
	if r := s.do(t, "GET", "/v2", nil); strings.Contains(string(r.body), `"logging"`) {
		t.Fatalf("GET /v2: %s; want no logging extension listed", r)
	}
	_, err := s.serveGRPC(t).call(context.Background(), "LogSettings", pbtest.New("LogSettingsRequest"), "LogSettingsResponse")
	checkCode(t, err, codes.Unimplemented, "without settable logging")
}

func TestLoggingGRPC(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = "adm"
	s, out, lg := startLogged(t, cfg)
	c := s.serveGRPC(t)
	ctx := context.Background()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer adm")
	// req makes a LogSettingsRequest of name, value pairs: a bool, a
	// uint32 or a string each.
	req := func(kv ...any) *dynamicpb.Message {
		m := pbtest.New("LogSettingsRequest")
		settings := m.Mutable(m.Descriptor().Fields().ByName("settings")).Map()
		for i := 0; i < len(kv); i += 2 {
			v := settings.NewValue().Message()
			fs := v.Descriptor().Fields()
			switch x := kv[i+1].(type) {
			case bool:
				v.Set(fs.ByName("bool_param"), protoreflect.ValueOfBool(x))
			case uint32:
				v.Set(fs.ByName("uint32_param"), protoreflect.ValueOfUint32(x))
			case string:
				v.Set(fs.ByName("string_param"), protoreflect.ValueOfString(x))
			}
			settings.Set(protoreflect.ValueOfString(kv[i].(string)).MapKey(), protoreflect.ValueOfMessage(v))
		}
		return m
	}
	// got gives the response's settings as name=value, in name order,
	// with the field each value came in.
	got := func(resp *dynamicpb.Message) string {
		settings := resp.Get(resp.Descriptor().Fields().ByName("settings")).Map()
		var lines []string
		settings.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			m := v.Message()
			m.Range(func(fd protoreflect.FieldDescriptor, x protoreflect.Value) bool {
				lines = append(lines, k.String()+"="+string(fd.Name())+":"+x.String())
				return true
			})
			return true
		})
		slices.Sort(lines)
		return strings.Join(lines, " ")
	}
	resp, err := c.call(ctx, "LogSettings", req(), "LogSettingsResponse")
	if err != nil {
		t.Fatal(err)
	}
	// A false, a 0 and an empty string are sent: a oneof's field is.
	const def = "log_error=bool_param:true log_file=string_param: log_format=string_param:default log_info=bool_param:true log_verbose_level=uint32_param:0 log_warning=bool_param:true"
	if g := got(resp); g != def {
		t.Fatalf("settings: got %s; want %s", g, def)
	}
	_, err = c.call(ctx, "LogSettings", req("log_info", false), "LogSettingsResponse")
	checkCode(t, err, codes.Unauthenticated, "admin token")
	for _, bad := range []struct {
		req      *dynamicpb.Message
		fragment string
	}{
		{req("log_info", uint32(1)), "log_info must be a boolean"},
		{req("log_verbose_level", uint32(2)), "use 0 (no verbose lines) or 1"},
		{req("log_format", "ISO"), `use "default" or "ISO8601"`},
		{req("log_file", "/var/log/x"), "standard error"},
		{req("log_level", true), `"log_level" is not one of`},
		{req("log_info", false, "log_error", "no"), "log_error must be a boolean"},
	} {
		_, err = c.call(actx, "LogSettings", bad.req, "LogSettingsResponse")
		checkCode(t, err, codes.InvalidArgument, bad.fragment)
	}
	if lg.Settings() != logging.DefaultSettings() {
		t.Fatalf("refused changes changed the settings: %+v", lg.Settings())
	}
	resp, err = c.call(actx, "LogSettings", req("log_warning", false, "log_verbose_level", uint32(1)), "LogSettingsResponse")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := got(resp), strings.NewReplacer("log_verbose_level=uint32_param:0", "log_verbose_level=uint32_param:1", "log_warning=bool_param:true", "log_warning=bool_param:false").Replace(def); g != w {
		t.Fatalf("settings after the change: got %s; want %s", g, w)
	}
	if _, err := c.call(ctx, "ServerLive", pbtest.New("ServerLiveRequest"), "ServerLiveResponse"); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\S+ \S+ INFO admin: 127\.0\.0\.1 \(gRPC\) set the log settings: .*log_warning=false.*log_verbose_level=1.*\n` +
		`(.*\n)*\S+ \S+ VERBOSE request: 127\.0\.0\.1:\d+ gRPC ServerLive OK in `)
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !line.MatchString(out.String()) {
			return fmt.Errorf("the log has neither the change's audit nor the call's verbose line:\n%s", out)
		}
		return nil
	})
}

// Changes at the same time, each of other settings, all take: each reads
// the settings, changes what it names and sets the whole, so that two
// not serialized would leave one undone, though both were answered 200.
func TestLoggingConcurrentChanges(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = "adm"
	s, _, lg := startLogged(t, cfg)
	admin := []string{"Authorization", "Bearer adm"}
	changes := []string{`{"log_info":false}`, `{"log_warnings":false}`, `{"log_errors":false}`, `{"log_verbose_level":1}`, `{"log_format":"ISO8601"}`}
	want := logging.Settings{VerboseLevel: 1, Format: logging.FormatISO8601}
	for round := range 30 {
		lg.Set(logging.DefaultSettings())
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, body := range changes {
			wg.Go(func() {
				<-start
				if r := s.post(t, "/v2/logging", []byte(body), admin...); r.code != 200 {
					t.Errorf("POST %s: %s", body, r)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := lg.Settings(); got != want {
			t.Fatalf("round %d: after %d changes at once the settings are %+v; want %+v, every change", round, len(changes), got, want)
		}
	}
}

// An answer written on the hijacked connection (a backup, a blob) has
// no body fasthttp knows of: its verbose line says "-" for the bytes
// out, as for a streamed answer, not 0.
func TestLoggingVerboseHijacked(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = adminToken
	var out logBuffer
	s := logging.DefaultSettings()
	s.VerboseLevel = 1
	lg := logging.New(&out, s)
	cfg.Logging, cfg.Logf = lg, lg.Logf
	ts := startAdmin(t, cfg)
	if r := ts.admin(t, "GET", "/v1/cluster/backup", nil); r.code != 200 || len(r.body) == 0 {
		t.Fatalf("backup: %s", r)
	}
	line := regexp.MustCompile(`(?m) VERBOSE request: \S+ GET /v1/cluster/backup 200 in \S+, 0 bytes in, (\S+) out$`)
	testenv.CheckFor(t, 5*time.Second, func() error {
		m := line.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("no verbose line of the backup:\n%s", out.String())
		}
		if m[1] != "-" {
			t.Fatalf("the backup's verbose line says %s bytes out; want -", m[1])
		}
		return nil
	})
}

// A server given Logging and no Logf logs through Logging, whose
// settings the extension changes: not through log.Printf, past them.
func TestLoggingIsTheLog(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = "adm"
	var out logBuffer
	cfg.Logging = logging.New(&out, logging.DefaultSettings())
	s := startFake(t, newFakeBackend(), cfg, registry.ModelConfig{})
	if r := s.post(t, "/v2/logging", []byte(`{"log_warnings":false}`), "Authorization", "Bearer adm"); r.code != 200 {
		t.Fatalf("POST /v2/logging: %s", r)
	}
	if !strings.Contains(out.String(), " INFO admin: ") {
		t.Fatalf("the change's audit is not in the log Logging writes:\n%s", out.String())
	}
}

// A change that changes nothing ({}, or nulls alone) answers the
// settings and is not audited.
func TestLoggingEmptyChange(t *testing.T) {
	s, out, _ := startLogged(t, gateway.DefaultConfig())
	for _, body := range []string{`{}`, `{"log_info":null}`} {
		if r := s.post(t, "/v2/logging", []byte(body)); r.code != 200 || string(r.body) != defaultLogSettings {
			t.Fatalf("POST /v2/logging %s: got %s; want 200 %s", body, r, defaultLogSettings)
		}
	}
	if strings.Contains(out.String(), "set the log settings") {
		t.Fatalf("a change of nothing was audited:\n%s", out)
	}
}

// The status page says how many ERROR and WARNING lines were logged, in
// red with an ERROR among them, and that a verbose log is on.
func TestStatusPageLogLine(t *testing.T) {
	s, _, lg := startLogged(t, gateway.DefaultConfig())
	page := func() string {
		t.Helper()
		r := s.do(t, "GET", "/", nil)
		if r.code != 200 {
			t.Fatalf("GET /: %s", r)
		}
		return string(r.body)
	}
	if p := page(); !strings.Contains(p, "<span>log: no ERROR or WARNING line since the start</span>") {
		t.Fatalf("a fresh server's status page has no quiet log line:\n%s", p)
	}
	lg.Logf(logging.Warning + "a warning")
	lg.Logf(logging.Error + "an error")
	s.post(t, "/v2/logging", []byte(`{"log_verbose_level":1}`))
	if p, want := page(), `<span class="UNAVAILABLE">log: 1 ERROR and 1 WARNING lines since the start; verbose: a line a request (log_verbose_level 1)</span>`; !strings.Contains(p, want) {
		t.Fatalf("the status page does not say %s:\n%s", want, p)
	}
}
