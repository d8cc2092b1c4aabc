package gateway

import "testing"

// withoutRequestHead drops what fasthttp quotes of the request head and
// keeps the rest of its messages as they are.
func TestWithoutRequestHead(t *testing.T) {
	f := func(msg, want string) {
		t.Helper()
		if got := withoutRequestHead(msg); got != want {
			t.Fatalf("withoutRequestHead(%q)\ngot  %q\nwant %q", msg, got, want)
		}
	}
	f(`error when reading request headers: invalid request uri "/?a=\x01" in "GET /?a=\x01 HTTP/1.1\r\nAuthorization: Bearer T\r\n\r\n": fasthttp: invalid uri: buffer size=52, contents: "GET"`,
		`error when reading request headers: invalid request uri "/?a=\x01": fasthttp: invalid uri`)
	f(`error when reading request headers: cannot find whitespace in the first line of request "GET /x\r\nAuthorization: Bearer T\r\n\r\n": buffer size=40, contents: "GET"`,
		`error when reading request headers: cannot find whitespace in the first line of request`)
	f(`error when reading request headers: invalid header value "Bearer T\x01": buffer size=58, contents: "GET"`,
		`error when reading request headers: invalid header value`)
	f(`error when reading request headers: malformed mime header: missing colon: "Authorization Bearer T": buffer size=9`,
		`error when reading request headers: malformed mime header: missing colon`)
	f(`error when reading request headers: malformed mime header line: "Cookie\x01: sess=abc"`,
		`error when reading request headers: malformed mime header line`)
	// A head quoted past the cut at ": buffer size=": all of it goes.
	f(`error when reading request headers: invalid header value "X: buffer size=1 Bearer T"`,
		`error when reading request headers: invalid header value`)
	// What quotes no head stays, quotes within quotes included.
	f(`error when reading request headers: invalid request uri "/a in \"b\""`, `error when reading request headers: invalid request uri "/a in \"b\""`)
	f(`error when reading request headers: unsupported transfer-encoding: "gzip"`, `error when reading request headers: unsupported transfer-encoding: "gzip"`)
	f(`error when reading request headers: fasthttp: duplicate content-length header`, `error when reading request headers: fasthttp: duplicate content-length header`)
	f(`empty hex number`, `empty hex number`)
}
