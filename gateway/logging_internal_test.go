package gateway

import (
	"net"
	"testing"
	"time"
)

// appendDuration writes what Duration's String writes for the duration
// rounded to the microsecond.
func TestAppendDuration(t *testing.T) {
	f := func(d time.Duration) {
		t.Helper()
		want := d.Round(time.Microsecond).String()
		if got := string(appendDuration([]byte("x"), d)); got != "x"+want {
			t.Fatalf("appendDuration(%d): got %q; want %q", d, got, "x"+want)
		}
	}
	f(0)
	f(400 * time.Nanosecond) // rounds to 0
	f(500 * time.Nanosecond)
	f(451 * time.Microsecond)
	f(999*time.Microsecond + 600*time.Nanosecond) // rounds to 1ms
	f(time.Millisecond)
	f(1500 * time.Microsecond)
	f(1001 * time.Microsecond)
	f(12*time.Millisecond + 340*time.Microsecond)
	f(999999 * time.Microsecond)
	f(time.Second)
	f(2*time.Second + time.Microsecond)
	f(59*time.Second + 120*time.Millisecond)
	f(61*time.Second + 5*time.Microsecond)
	f(3 * time.Hour)
}

// appendPrintable escapes every byte that is not printable ASCII, and
// the backslash, and nothing else.
func TestAppendPrintable(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(appendPrintable(nil, []byte(in))); got != want {
			t.Fatalf("appendPrintable(%q): got %q; want %q", in, got, want)
		}
	}
	f("", "")
	f("/v2/models/ctr/infer?x=1&y=%20", "/v2/models/ctr/infer?x=1&y=%20")
	f(" ~", " ~")
	f("a\nb\r\x00\x1b[31m\x7f", `a\x0ab\x0d\x00\x1b[31m\x7f`)
	f("é\u009b\u202e", `\xc3\xa9\xc2\x9b\xe2\x80\xae`)
	f(`a\x0ab`, `a\x5cx0ab`) // a client's own backslash cannot pass for an escape
}

func TestAppendAddr(t *testing.T) {
	f := func(a net.Addr) {
		t.Helper()
		if got := string(appendAddr(nil, a)); got != a.String() {
			t.Fatalf("appendAddr(%#v): got %q; want %q", a, got, a.String())
		}
	}
	f(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	f(&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To4(), Port: 1})
	f(&net.TCPAddr{IP: net.IPv6loopback, Port: 443})
	f(&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 9, Zone: "eth0"})
	f(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"})
}
