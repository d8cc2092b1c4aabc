package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
)

// The settings of Triton's logging extension, in the order they are
// answered, named as Triton's server reads and answers them (over HTTP
// and gRPC): code written against a running Triton, its own tests
// included, reads log_warning and log_error.
const (
	logFile         = "log_file"
	logInfo         = "log_info"
	logWarning      = "log_warning"
	logError        = "log_error"
	logVerboseLevel = "log_verbose_level"
	logFormat       = "log_format"
)

var logSettingNames = []string{logFile, logInfo, logWarning, logError, logVerboseLevel, logFormat}

// logSettingAliases are the names the extension's document gives where
// Triton's server has log_warning and log_error. A change takes either
// name.
var logSettingAliases = map[string]string{"log_warnings": logWarning, "log_errors": logError}

// maxVerboseLevel bounds log_verbose_level: level 1 writes a line a
// request, and no level above it writes more.
const maxVerboseLevel = 1

// logSettings returns the settings s, of the log written to file ("":
// standard error), as the extension names them.
func logSettings(s logging.Settings, file string) []oip.LogSetting {
	return []oip.LogSetting{
		{Name: logFile, Kind: oip.LogString, String: file},
		{Name: logInfo, Kind: oip.LogBool, Bool: s.Info},
		{Name: logWarning, Kind: oip.LogBool, Bool: s.Warning},
		{Name: logError, Kind: oip.LogBool, Bool: s.Error},
		{Name: logVerboseLevel, Kind: oip.LogUint32, Uint32: s.VerboseLevel},
		{Name: logFormat, Kind: oip.LogString, String: s.Format},
	}
}

// updateLogSettings applies update to the log's settings, all of it or,
// when one setting is wrong, none (a 400 naming it), and returns the
// settings now in force. The change is audited, by client, with INFO
// lines on before or after it: one that turns them off or on is logged.
// Changes at the same time (HTTP, gRPC) apply one after the other
// (logMu), none undoing another.
func (s *Server) updateLogSettings(client string, update []oip.LogSetting) ([]oip.LogSetting, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	next := s.cfg.Logging.Settings()
	// Where a change gives a setting by both its names, the values must
	// agree: given holds each setting's first, by the extension's name.
	given := make(map[string]oip.LogSetting, len(update))
	for _, u := range update {
		asGiven := u.Name
		if name, ok := logSettingAliases[u.Name]; ok {
			u.Name = name
		}
		if prev, ok := given[u.Name]; !ok {
			given[u.Name] = oip.LogSetting{Name: asGiven, Kind: u.Kind, Bool: u.Bool}
		} else if prev.Kind != u.Kind || prev.Bool != u.Bool {
			return nil, badRequest("log settings %s and %s are one setting, and disagree: give one of them", prev.Name, asGiven)
		}
		want := oip.LogBool
		switch u.Name {
		case logFile, logFormat:
			want = oip.LogString
		case logVerboseLevel:
			want = oip.LogUint32
		case logInfo, logWarning, logError:
		default:
			return nil, badRequest("log setting %q is not one of the logging extension's: %s (or log_warnings and log_errors, as its document names those)", u.Name, strings.Join(logSettingNames, ", "))
		}
		if u.Kind != want {
			return nil, badRequest("log setting %s must be a %s", asGiven, logKindName(want))
		}
		switch u.Name {
		case logFile:
			if u.String != s.cfg.LogFile {
				return nil, badRequest("log_file %q: the log goes where serve --log-file says (%q; empty: standard error), which this call cannot move: a client could otherwise have the server write wherever its user can", u.String, s.cfg.LogFile)
			}
		case logInfo:
			next.Info = u.Bool
		case logWarning:
			next.Warning = u.Bool
		case logError:
			next.Error = u.Bool
		case logVerboseLevel:
			if u.Uint32 > maxVerboseLevel {
				return nil, badRequest("log_verbose_level %d: use 0 (no verbose lines) or 1 (a line for each request)", u.Uint32)
			}
			next.VerboseLevel = u.Uint32
		case logFormat:
			next.Format = u.String
			if err := next.Validate(); err != nil {
				return nil, badRequest("log_format %q: use %q or %q", u.String, logging.FormatDefault, logging.FormatISO8601)
			}
		}
	}
	settings := logSettings(next, s.cfg.LogFile)
	// Audited under the settings that write INFO lines, the new ones or
	// the old.
	if next.Info {
		s.cfg.Logging.Set(next)
		s.auditFrom(client, "set the log settings: %s", logSettingsLine(settings))
	} else {
		s.auditFrom(client, "set the log settings: %s", logSettingsLine(settings))
		s.cfg.Logging.Set(next)
	}
	return settings, nil
}

func logKindName(k oip.LogSettingKind) string {
	switch k {
	case oip.LogBool:
		return "boolean (true or false)"
	case oip.LogUint32:
		return "number from 0 to 4294967295"
	}
	return "string"
}

// decodeLogSettings decodes the JSON body of POST /v2/logging: an object
// of settings, each a string, a boolean or a number.
func decodeLogSettings(body []byte) ([]oip.LogSetting, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, badRequest("the body must be a JSON object of log settings, such as {\"log_verbose_level\": 1}: %s", err)
	}
	if len(raw) > oip.MaxLogSettings {
		return nil, badRequest("the body has %d settings; the logging extension has %d", len(raw), len(logSettingNames))
	}
	out := make([]oip.LogSetting, 0, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		u := oip.LogSetting{Name: name}
		v := raw[name]
		switch {
		case string(v) == "null":
			// No change, as Triton's server takes it (Unmarshal would
			// take it for false, or "").
			continue
		case json.Unmarshal(v, &u.Bool) == nil:
			u.Kind = oip.LogBool
		case json.Unmarshal(v, &u.String) == nil:
			u.Kind = oip.LogString
		default:
			n, err := strconv.ParseUint(string(v), 10, 32)
			if err != nil {
				return nil, badRequest("log setting %s is %.40s; give a boolean, a whole number from 0 to 4294967295, or a string", name, v)
			}
			u.Kind, u.Uint32 = oip.LogUint32, uint32(n)
		}
		out = append(out, u)
	}
	return out, nil
}

// appendLogSettings appends settings as the JSON object GET /v2/logging
// answers.
func appendLogSettings(dst []byte, settings []oip.LogSetting) []byte {
	dst = append(dst, '{')
	for i, s := range settings {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = oip.AppendJSONString(dst, s.Name)
		dst = append(dst, ':')
		switch s.Kind {
		case oip.LogBool:
			dst = strconv.AppendBool(dst, s.Bool)
		case oip.LogUint32:
			dst = strconv.AppendUint(dst, uint64(s.Uint32), 10)
		default:
			dst = oip.AppendJSONString(dst, s.String)
		}
	}
	return append(dst, '}')
}

// logSettingsLine writes settings for the audit line: name=value, ...
func logSettingsLine(settings []oip.LogSetting) string {
	var b strings.Builder
	for i, s := range settings {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Name)
		b.WriteByte('=')
		switch s.Kind {
		case oip.LogBool:
			b.WriteString(strconv.FormatBool(s.Bool))
		case oip.LogUint32:
			b.WriteString(strconv.FormatUint(uint64(s.Uint32), 10))
		default:
			b.WriteString(strconv.Quote(s.String))
		}
	}
	return b.String()
}

// serveLogging serves GET and POST /v2/logging. Reading takes the inference
// token where one is set, as the rest of /v2 does; a change takes the
// admin token alone, as the trace settings' do, and is audited.
func (s *Server) serveLogging(ctx *fasthttp.RequestCtx) error {
	if err := allow(ctx, fasthttp.MethodGet, fasthttp.MethodPost); err != nil {
		return err
	}
	if s.cfg.Logging == nil {
		return notFound("this server was started without settable logging (gateway.Config.Logging)")
	}
	authorize := s.authorizeInference
	if ctx.IsPost() {
		authorize = s.authorizeAdmin
	}
	if err := authorize(ctx); err != nil {
		return err
	}
	settings := logSettings(s.cfg.Logging.Settings(), s.cfg.LogFile)
	if ctx.IsPost() {
		body, err := s.requestBody(ctx)
		if err != nil {
			return err
		}
		update, err := decodeLogSettings(body)
		if err != nil {
			return err
		}
		// {}, or nulls alone, change nothing: no audit.
		if len(update) > 0 {
			if settings, err = s.updateLogSettings(ctx.RemoteIP().String(), update); err != nil {
				return err
			}
		}
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(appendLogSettings(nil, settings))
	return nil
}

// grpcLogSettings answers LogSettings as GET and POST /v2/logging do:
// with no settings it reads them (the inference token), else it changes
// them (the admin token alone). Not in grpcGuarded: which token it takes
// depends on the message.
func (s *Server) grpcLogSettings(ctx context.Context, sc *scratch) ([]byte, error) {
	update, err := oip.DecodeLogSettingsRequest(sc.in)
	if err != nil {
		return nil, err
	}
	if s.cfg.Logging == nil {
		return nil, &httpError{code: fasthttp.StatusNotImplemented, msg: "this server was started without settable logging"}
	}
	if len(update) > 0 {
		if err := s.grpcAuthorizeAdmin(ctx, grpcLogSettings); err != nil {
			return nil, err
		}
	} else if s.cfg.InferenceToken != "" && !grpcBearerMatches(ctx, s.cfg.InferenceToken) {
		return nil, &httpError{code: fasthttp.StatusUnauthorized, msg: "this server needs the inference token: send the metadata authorization: Bearer <token>"}
	}
	if len(update) == 0 {
		return oip.AppendLogSettingsResponse(sc.buf[:0], logSettings(s.cfg.Logging.Settings(), s.cfg.LogFile)), nil
	}
	settings, err := s.updateLogSettings(grpcPeerHost(ctx)+" (gRPC)", update)
	if err != nil {
		return nil, err
	}
	return oip.AppendLogSettingsResponse(sc.buf[:0], settings), nil
}

// verbose reports whether requests are logged a line each (verbose
// level 1).
func (s *Server) verbose() bool {
	return s.cfg.Logging != nil && s.cfg.Logging.Verbose() >= 1
}

// logRequest writes the verbose line of the HTTP request ctx answered,
// begun at start: client, method, URI, status, time taken, bytes in and
// out ("-" for an answer streamed, or written on the hijacked connection
// after the handler returns: a backup, a blob), and the version that
// answered where one did. The method and URI are the client's bytes:
// what is not printable ASCII is escaped (appendPrintable), so that no
// client writes its own lines, or terminal controls, into the log.
//
// The line is built without fmt, on the stack for the usual request:
// fmt's formatting cost about 1.2 µs and 11 allocations a request.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, start time.Time) {
	var arr [256]byte
	b := append(arr[:0], "request: "...)
	b = appendAddr(b, ctx.RemoteAddr())
	b = append(b, ' ')
	b = appendPrintable(b, ctx.Method())
	b = append(b, ' ')
	b = appendPrintable(b, ctx.RequestURI())
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, " in "...)
	b = appendDuration(b, time.Since(start))
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(len(ctx.Request.Body())), 10)
	b = append(b, " bytes in, "...)
	if !ctx.Response.IsBodyStream() && !ctx.Hijacked() {
		b = strconv.AppendInt(b, int64(len(ctx.Response.Body())), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " out"...)
	if v := ctx.Response.Header.Peek("X-Model-Version"); len(v) > 0 {
		b = append(b, " version "...)
		b = appendPrintable(b, v)
	}
	s.cfg.Logging.VerboseLine(1, b)
}

// logGRPC writes the verbose line of gRPC call m, begun at start, which
// ended with err: client, method, status, time taken, and more (a
// stream's requests).
func (s *Server) logGRPC(ctx context.Context, m grpcMethod, err error, start time.Time, more string) {
	var arr [160]byte
	b := append(arr[:0], "request: "...)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		b = appendAddr(b, p.Addr)
	} else {
		b = append(b, "an unknown address"...)
	}
	b = append(b, " gRPC "...)
	b = append(b, grpcMethods[m]...)
	b = append(b, ' ')
	b = append(b, status.Code(err).String()...)
	b = append(b, " in "...)
	b = appendDuration(b, time.Since(start))
	b = append(b, more...)
	s.cfg.Logging.VerboseLine(1, b)
}

// appendAddr appends a client's address as net.Addr's String gives it,
// without its allocation for a TCP address.
func appendAddr(b []byte, a net.Addr) []byte {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(b)
	}
	return append(b, a.String()...)
}

// appendPrintable appends p, escaping as \xNN every byte that is not
// printable ASCII, and the backslash, so that a line holds what the
// client sent unambiguously and nothing that a terminal or a log reader
// acts on (a newline, an escape sequence, C1 controls).
func appendPrintable(b, p []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range p {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendDuration appends d rounded to the microsecond, as its String
// writes it (451µs, 1.5ms, 2.000001s), without its allocation below a
// minute.
func appendDuration(b []byte, d time.Duration) []byte {
	us := int64(d.Round(time.Microsecond) / time.Microsecond)
	switch {
	case us <= 0:
		return append(b, "0s"...)
	case us < 1e3:
		b = strconv.AppendInt(b, us, 10)
		return append(b, "µs"...)
	case us < 1e6:
		return appendDecimal(b, us, 3, "ms")
	case us < 60e6:
		return appendDecimal(b, us, 6, "s")
	}
	return append(b, d.Round(time.Microsecond).String()...)
}

// appendDecimal appends n / 10^frac with the fraction's trailing zeros
// left out (frac ≤ 6), then unit.
func appendDecimal(b []byte, n int64, frac int, unit string) []byte {
	p := int64(1)
	for range frac {
		p *= 10
	}
	b = strconv.AppendInt(b, n/p, 10)
	if r := n % p; r != 0 {
		var d [6]byte
		for i := frac - 1; i >= 0; i-- {
			d[i] = byte('0' + r%10)
			r /= 10
		}
		k := frac
		for d[k-1] == '0' {
			k--
		}
		b = append(b, '.')
		b = append(b, d[:k]...)
	}
	return append(b, unit...)
}
